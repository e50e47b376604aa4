"""Read-only observers following a live writer: whatever the writer does between and during
the observer's looks (segments created, spares stamped, segments reclaimed, rolls), an entry
is seen whole or not yet, never reported damaged when it is intact, never skipped; and a look
costs what is new, not the size of the active segment."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import walrus
from walrus import CorruptionError, FsyncSchedule, Walrus, WalrusError, _codec, _segment
from walrus._recovery import Rebuilder
from walrus._segment import Segment

from .cli_support import child_env

BACKENDS = [row.name for row in walrus.available_backends()
            if row.available and row.plugin == "builtin"]
"""The built-in backends (test plugins registered in this process do not exist in children)."""

FAST_WRITER = r"""
import sys
from walrus import FsyncSchedule, Walrus
w = Walrus(data_dir=sys.argv[1], backend=sys.argv[2], segment_size=4096,
           fsync_schedule=FsyncSchedule.NoFsync)
n = 0
print("ready", flush=True)
while True:
    w.batch_append_for_topic("t", [b"entry-%d|" % (n + i) + b"x" * 200 for i in range(4)])
    n += 4
"""

FOLLOW_SECONDS = 2.0
FOLLOW_ENTRIES = 1000
"""The observer follows for that long, and for at least that many entries (a slow machine)."""
LISTING_PADDING = 1000
"""Other long names in the directory: listing it takes several system calls, as for a log
that retains thousands of segments, so a segment created meanwhile may be missing from it."""


@pytest.fixture
def fast_writer(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A writer process appending batches as fast as it can, rolling every few batches (its
    background thread prepares spares and indexes sealed segments meanwhile)."""
    data_dir = tmp_path / "wal"
    data_dir.mkdir()
    other = data_dir / "other"
    other.touch()
    for i in range(LISTING_PADDING):  # links: directory entries without new files
        os.link(other, data_dir / f"other-{i:05d}-{'n' * 200}")
    writer = subprocess.Popen([sys.executable, "-c", FAST_WRITER, str(data_dir),
                               request.param], stdout=subprocess.PIPE, env=child_env())
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline() == b"ready\n"
        yield data_dir
    finally:
        writer.kill()
        writer.wait()


@pytest.mark.parametrize("fast_writer", BACKENDS, indirect=True)
def test_an_observer_of_a_fast_rolling_writer_sees_every_entry_intact(fast_writer: Path) -> None:
    """The directory listing races with segment creation; an entry the observer has not
    found yet must read as "not yet", never as damaged, and no entry may be skipped."""
    seen = 0
    with Walrus(data_dir=fast_writer, read_only=True) as observer:
        deadline = time.monotonic() + FOLLOW_SECONDS
        while time.monotonic() < deadline or (seen < FOLLOW_ENTRIES
                                              and time.monotonic() < deadline + 60):
            batch = observer.batch_read_for_topic("t", 1 << 20, checkpoint=False,
                                                  start_offset=seen)
            for entry in batch:
                assert entry.offset == seen
                assert entry.data.startswith(b"entry-%d|" % seen)
                seen += 1
    assert seen >= FOLLOW_ENTRIES
    assert len(list(fast_writer.glob("*.wal"))) > FOLLOW_ENTRIES // 20  # across many rolls


def _entries(observer: Walrus, start: int = 0) -> list[bytes]:
    return [e.data for e in observer.batch_read_for_topic("t", 1 << 30, checkpoint=False,
                                                          start_offset=start)]


def _fill_segments(writer: Walrus, count: int, first: int = 0) -> int:
    """Append entries until ``count`` more rolls happened; returns the next entry number."""
    start = max(writer._log.segments)
    n = first
    while max(writer._log.segments) < start + count:
        writer.append_for_topic("t", b"entry-%d|" % n + b"y" * 300)
        n += 1
    return n


def test_a_segment_missing_from_a_listing_is_found_through_its_successor(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A listing taken while the writer rolled twice may hold the newer segment but not the
    one before it; the observer must still read every entry of the one it missed."""
    with Walrus(data_dir=tmp_path, backend=backend, segment_size=4096) as writer, \
            Walrus(data_dir=tmp_path, backend=backend, read_only=True) as observer:
        writer.append_for_topic("t", b"entry-0|")
        assert _entries(observer) == [b"entry-0|"]
        known = max(writer._log.segments)
        total = _fill_segments(writer, 2, first=1)
        missed = min(n for n in writer._log.segments if n > known)
        listing = Rebuilder.segment_numbers

        def racing_listing(self: Rebuilder) -> list[int]:
            return [n for n in listing(self) if n != missed]

        monkeypatch.setattr(Rebuilder, "segment_numbers", racing_listing)
        got = _entries(observer)
        assert [int(d.split(b"|")[0][6:]) for d in got] == list(range(total))


def test_an_observer_that_lags_behind_reclamation_reports_nothing_damaged(
        tmp_path: Path, backend: str) -> None:
    """Segments the observer never saw may be consumed and deleted before it looks again:
    their entries are gone (reclaimed), not damaged, and what follows reads intact."""
    with Walrus(data_dir=tmp_path, backend=backend, segment_size=4096) as writer, \
            Walrus(data_dir=tmp_path, backend=backend, read_only=True) as observer:
        writer.append_for_topic("t", b"entry-0|")
        assert _entries(observer) == [b"entry-0|"]
        total = _fill_segments(writer, 6, first=1)
        while writer.read_next("t") is not None:  # consume everything...
            pass
        writer._background.run_once()  # type: ignore[union-attr]  # ...and reclaim it
        assert len(writer._log.segments) <= 2
        writer.append_for_topic("t", b"entry-%d|" % total)
        counts = observer.get_topic_entry_counts()
        assert counts == {"t": 1}
        assert _entries(observer, total) == [b"entry-%d|" % total]
        with pytest.raises(WalrusError, match="reclaimed"):
            _entries(observer, 1)
        assert set(observer._log.segments) <= set(writer._log.segments)  # it let go
        for _ in range(2):  # and again, with no entry of the topic left in what it knows
            total = _fill_segments(writer, 3, first=total + 1)
            while writer.read_next("t") is not None:
                pass
            writer._background.run_once()  # type: ignore[union-attr]
            writer.append_for_topic("t", b"entry-%d|" % total)
            assert observer.get_topic_entry_counts() == {"t": 1}
            assert _entries(observer, total) == [b"entry-%d|" % total]


class _Examined:
    """Counts the bytes a look examines: the span of every scan, and what is read from a
    backend without a mapping."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.bytes = 0
        scan, region = _codec.scan, Segment.region

        def counting_scan(buf: object, start: int, limit: int, *args: int) -> object:
            self.bytes += limit - start
            return scan(buf, start, limit, *args)

        def counting_region(seg: Segment, begin: int, limit: int) -> tuple[object, int]:
            if seg.view is None:
                self.bytes += limit - begin
            return region(seg, begin, limit)

        monkeypatch.setattr(_codec, "scan", counting_scan)
        monkeypatch.setattr(Segment, "region", counting_region)

    def take(self) -> int:
        count, self.bytes = self.bytes, 0
        return count


def test_a_look_at_a_live_log_costs_what_is_new(tmp_path: Path, backend: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Polling an idle writer's 64 MiB active segment must not rescan its unwritten rest."""
    with Walrus(data_dir=tmp_path, backend=backend) as writer, \
            Walrus(data_dir=tmp_path, backend=backend, read_only=True) as observer:
        writer.append_for_topic("t", b"x")
        assert _entries(observer) == [b"x"]
        examined = _Examined(monkeypatch)
        for _ in range(5):
            assert _entries(observer, 1) == []
        assert examined.take() <= 5 * 128 << 10  # nothing new: next to nothing examined
        writer.batch_append_for_topic("t", [b"y" * 1000] * 10)
        assert len(_entries(observer, 1)) == 10
        assert examined.take() <= 256 << 10  # the new records, not the segment's rest


def test_an_observer_of_a_dead_writers_torn_tail_does_not_rescan_it(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bytes that are neither records nor unwritten space (a crashed writer's torn record)
    get the full look once; polling on without any change must not repeat it."""
    with Walrus(data_dir=tmp_path, backend=backend) as writer:
        writer.append_for_topic("t", b"x")
        seg = writer._log.active
        assert seg is not None
        end, path = seg.end, seg.path
        writer._log.closed = True  # like a crash: no clean close, no index, no SEAL
        writer._background.stop()  # type: ignore[union-attr]
        with open(path, "r+b") as f:  # a torn record: garbage where the next one started
            f.seek(end)
            f.write(b"\xab" * 24)
        with Walrus(data_dir=tmp_path, backend=backend, read_only=True) as observer:
            assert _entries(observer) == [b"x"]
            examined = _Examined(monkeypatch)
            for _ in range(5):
                assert _entries(observer, 1) == []
            assert examined.take() <= 64 << 20  # at most one full look
            for _ in range(5):
                assert _entries(observer, 1) == []
            assert examined.take() <= 5 * 128 << 10
        writer._log.closed = False


def test_damage_past_the_newest_entry_seen_is_reported_once_the_log_moves_on(
        tmp_path: Path, backend: str) -> None:
    """A zeroed record in the active segment looks like unwritten space to a quick look. The
    entries after it must still be found (here once the writer rolled), and the zeroed one
    reported as damaged, not skipped."""
    with Walrus(data_dir=tmp_path, backend=backend, segment_size=16384,
                fsync_schedule=FsyncSchedule.SyncEach) as writer, \
            Walrus(data_dir=tmp_path, backend=backend, read_only=True) as observer:
        writer.append_for_topic("t", b"entry-0|")
        assert _entries(observer) == [b"entry-0|"]
        seg = writer._log.active
        assert seg is not None
        hole = seg.end
        writer.append_for_topic("t", b"entry-1|")
        writer.append_for_topic("t", b"entry-2|")
        fd = os.open(seg.path, os.O_WRONLY)
        try:
            os.pwrite(fd, bytes(_codec.HEADER_SIZE), hole)  # entry 1's header, zeroed
        finally:
            os.close(fd)
        try:  # "not yet", or damage if this look noticed that the writer touched the file
            assert _entries(observer, 1) == []
        except CorruptionError as exc:
            assert exc.offset == 1
        n = _fill_segments(writer, 1, first=3)
        with pytest.raises(CorruptionError):
            observer.batch_read_for_topic("t", 1 << 20, checkpoint=False, start_offset=1)
        later = _entries(observer, 2)
        assert [d.split(b"|")[0] for d in later] == [b"entry-%d" % i for i in range(2, n)]


def test_an_observer_lets_go_of_reclaimed_segments_beside_a_late_spare(
        tmp_path: Path, backend: str) -> None:
    """The writer makes its next segment ahead of need; a roll that did not wait for it takes
    the next number, and the late spare is deleted again a moment later. Until then it is
    listed with a number below the oldest segment's. An observer that looks meanwhile must
    still let go of what the writer deleted: else a consumer it registers then starts in a
    deleted segment (read through the observer's own mapping), and skips the rest of that
    segment once the observer notices."""
    with Walrus(data_dir=tmp_path, backend=backend, segment_size=4096) as writer, \
            Walrus(data_dir=tmp_path, backend=backend, read_only=True) as observer:
        total = _fill_segments(writer, 3)
        while writer.read_next("t") is not None:
            pass
        writer._background.run_once()  # type: ignore[union-attr]  # the oldest are deleted
        total = _fill_segments(writer, 4, first=total)
        assert observer.topic_info("t").first_offset == writer.topic_info("t").first_offset
        while writer.read_next("t") is not None:
            pass
        writer._background.run_once()  # type: ignore[union-attr]
        first = writer.topic_info("t").first_offset
        assert observer._log.by_name["t"].first_seq < first  # it has not looked since
        late = 0  # below every segment's (the log numbers them from 1): as the late spare's
        Segment.create(writer._backend, str(tmp_path), late, 4096,  # type: ignore[attr-defined]
                       _segment.SPARE_PREV_END).close()
        assert observer.topic_info("t").first_offset == first
        placed = observer.read_next("t", checkpoint=False, consumer="late")
        assert placed is not None and placed.offset == first
        assert set(observer._log.segments) <= set(writer._log.segments) | {late}
