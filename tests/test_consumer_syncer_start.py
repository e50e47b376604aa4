"""The consumer files' sync thread starts when a named consumer is opened, not in a read."""

from __future__ import annotations

import threading
from pathlib import Path

from walrus import FsyncSchedule, ReadConsistency, Walrus


def _syncers() -> int:
    return sum(t.name == "walrus-consumers" for t in threading.enumerate())


def test_the_first_checkpointed_read_starts_no_thread(tmp_path: Path) -> None:
    """Starting a thread waits until it runs: milliseconds on a loaded machine, paid by the
    read that stored a position first (a bench's drain of a named consumer ran at a tenth
    of the shared cursor's rate under two CPU hogs for it)."""
    with Walrus(str(tmp_path), fsync_schedule=FsyncSchedule.Milliseconds(1000),
                consistency=ReadConsistency.StrictlyAtOnce) as wal:
        wal.batch_append_for_topic("t", [b"a", b"b"])
        before = _syncers()
        assert wal.read_next("t", checkpoint=False, consumer="c") is not None  # opens it
        opened = _syncers()
        started = threading.Thread.start
        starts: list[str] = []

        def counting(self: threading.Thread) -> None:
            starts.append(self.name)
            started(self)

        threading.Thread.start = counting  # type: ignore[method-assign]
        try:
            assert wal.read_next("t", consumer="c") is not None  # stores its position
        finally:
            threading.Thread.start = started  # type: ignore[method-assign]
        assert "walrus-consumers" not in starts
        assert opened == before + 1
    assert _syncers() == before
