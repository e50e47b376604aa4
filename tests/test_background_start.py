"""The writer's worker thread starts only once it knows everything its passes rely on."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from walrus import Walrus, _durability
from walrus._durability import Background


def test_the_first_pass_of_a_reopened_writer_keeps_what_a_named_consumer_has_not_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer reopened where the shared cursor has read everything and a named consumer
    has not: the worker's first pass, however soon it runs, must hold that consumer's
    entries (it once ran before it was told of the consumers: under load, a pass could
    delete them)."""
    path = tmp_path / "w"
    with Walrus(path, segment_size=4096) as wal:
        for i in range(300):
            wal.append_for_topic("t", b"%d" % i * 8)
        assert wal.read_next("t", consumer="slow").offset == 0  # type: ignore[union-attr]
        while wal.read_next("t") is not None:
            pass
    passed = threading.Event()
    start, reclaim = threading.Thread.start, Background.reclaim

    def start_then_let_it_run(self: threading.Thread) -> None:
        start(self)
        if self.name == "walrus-background":  # as a descheduled opener would
            assert passed.wait(30), "the worker made no pass"

    def reclaim_and_tell(self: Background) -> None:
        reclaim(self)
        passed.set()

    monkeypatch.setattr(_durability, "TICK", 0.001)
    monkeypatch.setattr(threading.Thread, "start", start_then_let_it_run)
    monkeypatch.setattr(Background, "reclaim", reclaim_and_tell)
    with Walrus(path, segment_size=4096) as wal:
        monkeypatch.undo()
        assert passed.is_set()
        assert wal.topic_info("t").first_offset == 0
        got = wal.batch_read_for_topic("t", 1 << 20, consumer="slow")
        assert [e.offset for e in got] == list(range(1, 300))
