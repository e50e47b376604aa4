"""Taking entries off the front of a topic (expiry, reclamation) and appending to it change
the same fields (its size, its LSN table): the front is trimmed under the append lock, so a
thread switch inside ``nbytes -= ...`` cannot lose an append's bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from walrus import FsyncSchedule, Walrus
from walrus._topics import Topic

from ._quiesce import quiesced


def test_the_front_of_a_topic_is_trimmed_under_the_append_lock(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    held: list[bool] = []
    real = Topic.expire_before
    with Walrus(data_dir=tmp_path, backend=backend, segment_size=16384,
                fsync_schedule=FsyncSchedule.NoFsync) as wal:
        lock = wal._log._mutex

        def watched(self: Topic, seq: int, nbytes: int) -> None:
            held.append(lock.locked())
            real(self, seq, nbytes)

        monkeypatch.setattr(Topic, "expire_before", watched)
        for i in range(400):
            wal.append_for_topic("expiring", b"%04d" % i * 50)
            wal.append_for_topic("consumed", b"%04d" % i * 50)
        wal.set_retention("expiring", max_bytes=20_000)
        while wal.read_next("consumed") is not None:  # reclamation may delete what all passed
            pass
        wal.flush()
        with quiesced(wal):
            pass
        info = wal.topic_info("expiring")
        assert info.first_offset > 0  # expiry ran
        assert wal.topic_info("consumed").first_offset > 0  # and reclamation
    assert held and all(held), held
