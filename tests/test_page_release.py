"""Sealed segments give their mapped pages back once synced and indexed: a log nobody
consumes does not grow the process's RSS, and reading such a segment maps what it reads
again."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from walrus import FsyncSchedule, Walrus, _speedups
from walrus.backends import _mmap

from .conftest import peek_all, smaps_bytes

SEGMENT = 4 << 20
BATCH = [bytes([i]) * 1000 for i in range(250)] * 8  # 2000 entries, about 2 MiB


def resident(wal: Walrus, number: int) -> int:
    return smaps_bytes(wal._log.segments[number].path, "Rss")


def indexed(wal: Walrus, timeout: float = 60.0) -> None:
    """Wait until the background worker has synced and indexed every sealed segment."""
    deadline = time.monotonic() + timeout
    while wal._log.to_index and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not wal._log.to_index, "the background worker did not index the sealed segments"


@pytest.mark.parametrize("pure", [False, True], ids=["c", "pure-python"])
def test_sealed_segments_release_their_pages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             pure: bool) -> None:
    if pure:
        monkeypatch.setattr(_speedups, "_lib", None)
        monkeypatch.setattr(_mmap, "_lib", None)  # the mapping's page hooks
    elif not _speedups.ACCELERATED:
        pytest.skip(_speedups.REASON)
    with Walrus(data_dir=tmp_path / "wal", backend="mmap", segment_size=SEGMENT,
                fsync_schedule=FsyncSchedule.NoFsync) as wal:
        first = min(wal._log.segments)
        written = 0
        while len(wal._log.segments) < 4:  # three sealed segments and an active one
            wal.batch_append_for_topic("t", BATCH)
            written += len(BATCH)
        assert resident(wal, wal._log.active.number) > 0  # type: ignore[union-attr]
        indexed(wal)
        for number in sorted(wal._log.segments)[:-1]:
            assert resident(wal, number) == 0, f"segment {number} still mapped"
        # Reading maps the pages again, from the page cache, byte for byte.
        assert [e.data for e in peek_all(wal, "t")] == BATCH * (written // len(BATCH))
        assert resident(wal, first) > SEGMENT // 2
    # And nothing was lost.
    with Walrus(data_dir=tmp_path / "wal", backend="mmap", segment_size=SEGMENT) as wal:
        assert [e.data for e in peek_all(wal, "t")] == BATCH * (written // len(BATCH))
