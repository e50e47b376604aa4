"""The prefaulter: pages just ahead of a fast writer are faulted in, and never too many.

What it does is visible in ``/proc/self/pagemap``: a page faulted in is present in this
process's page tables before any data reaches it. These tests count the present pages of the
active segment's mapping to see how far ahead of the writer the thread went. (Dirty bytes
would show it too, but only until the kernel's writeback cleans the pages, which it may do
at any moment on a busy machine; it never unmaps them.)

Each test runs with both threads: the native one (the default where it is built) and the
Python one (``WALRUS_NATIVE_PREFAULT=0``).
"""

from __future__ import annotations

import array
import mmap
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from walrus import FsyncSchedule, Walrus, _durability, _prefault, _speedups
from walrus._native import prefault as native_prefault
from walrus._segment import Segment
from walrus.backends._mmap import MmapBackend

from .conftest import BACKENDS

pytestmark = pytest.mark.skipif(not _speedups.ACCELERATED, reason=_speedups.REASON)

PAYLOAD = b"p" * 100
BATCH = [PAYLOAD] * 2000
FOLIO = 2 << 20
"""The page cache dirties and counts whole folios, up to 2 MiB on x86-64 (64 KiB ones are
common here): a store dirties up to this much past it, with or without a prefaulter."""


@pytest.fixture(autouse=True, params=["native", "python"])
def thread_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Each test with the native prefaulter thread, then with the Python one."""
    if request.param == "native" and native_prefault()[0] is None:
        pytest.skip(native_prefault()[1])
    monkeypatch.setenv("WALRUS_NATIVE_PREFAULT", "1" if request.param == "native" else "0")
    yield request.param


def faulted_bytes(path: str) -> int:
    """Bytes of this process's mappings of ``path`` that are faulted in: present in its page
    tables (bit 63 of each page's ``/proc/self/pagemap`` entry, readable without privileges).
    Writeback write-protects the pages it cleans but leaves them mapped."""
    total = 0
    with open("/proc/self/maps") as maps, open("/proc/self/pagemap", "rb") as pagemap:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) < 6 or not fields[5].rstrip("\n").endswith(path):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            entries = array.array("Q")
            pagemap.seek(start // mmap.PAGESIZE * entries.itemsize)
            entries.frombytes(pagemap.read((end - start) // mmap.PAGESIZE * entries.itemsize))
            total += sum(entry >> 63 for entry in entries) * mmap.PAGESIZE
    return total


@pytest.fixture
def unpopulated(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int | None, bool]]:
    """The worker does not read-fault the segment it opens on (that would make every page of
    it present), and the prefaulter's fault-ins are recorded: (start, end, writable)."""
    monkeypatch.setattr(_durability.Background, "populate_active", lambda self: None)
    calls: list[tuple[int, int | None, bool]] = []
    populate = Segment.populate

    def recorded(seg: Segment, start: int, end: int | None = None,
                 writable: bool = False) -> None:
        if threading.current_thread().name == "walrus-prefault":
            calls.append((start, end, writable))
        populate(seg, start, end, writable)

    monkeypatch.setattr(Segment, "populate", recorded)
    return calls


def write_back(path: str) -> None:
    """Clean the file's dirty pages now, as the kernel's writeback may at any moment."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def active(wal: Walrus) -> Segment:
    seg = wal._log.active
    assert seg is not None
    return seg


def prefaulter(wal: Walrus) -> _prefault.Prefaulter:
    found = wal._background.prefaulter  # type: ignore[union-attr]
    assert found is not None
    return found


def prefault_threads() -> list[threading.Thread]:
    """The Python prefaulter threads."""
    return [t for t in threading.enumerate() if t.name == "walrus-prefault"]


def prefaulter_tasks() -> set[int]:
    """Every prefaulter thread of this process, Python or native (their kernel task ids)."""
    tids = {t.native_id for t in prefault_threads() if t.native_id is not None}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as comm:
                if comm.read().strip() == "walrus-prefault":
                    tids.add(int(tid))
        except FileNotFoundError:  # a task that just ended
            pass
    return tids


def fault_ins(wal: Walrus, calls: list[tuple[int, int | None, bool]]) -> int:
    """How many fault-ins the prefaulter has made (``unpopulated`` records the Python
    thread's; the native thread counts its chunks)."""
    p = prefaulter(wal)
    if isinstance(p, _prefault.NativePrefaulter):
        return int(p.native.stats()[1])
    assert all(writable for _, _, writable in calls)
    return len(calls)


def settle(seg: Segment, at_least: int, timeout: float = 60.0) -> int:
    """The mapping's faulted-in bytes once they reach ``at_least`` (or the timeout passes:
    only a prefaulter that never ran takes that long, even on a busy machine)."""
    deadline = time.monotonic() + timeout
    faulted = faulted_bytes(seg.path)
    while faulted < at_least and time.monotonic() < deadline:
        time.sleep(0.01)
        faulted = faulted_bytes(seg.path)
    return faulted


def test_a_fast_writer_finds_the_pages_ahead_faulted_in(
        tmp_path: Path, unpopulated: list[tuple[int, int | None, bool]]) -> None:
    with Walrus(data_dir=tmp_path / "wal", backend="mmap",
                fsync_schedule=FsyncSchedule.Milliseconds(60_000)) as wal:
        seg, p = active(wal), prefaulter(wal)
        # Syncs this rare make any pace earn the whole lead (so a loaded machine cannot make
        # the writer look slow), and no sync cleans the pages while the test looks at them.
        p.cadence = _prefault.SyncCadence(60.0, 1 << 40, 60.0)
        assert p.max_lead == 5 << 20 and p.step > FOLIO  # so a lead shows
        for _ in range(2):  # up to just past the second mark (5 MiB: no checkpoint yet)
            mark = seg.check_at
            while seg.end <= mark:
                wal.batch_append_for_topic("t", BATCH)
            assert seg.check_at == seg.end + p.step  # the next mark, one step on
        assert seg.end < _durability.CHECKPOINT_BYTES
        end = seg.end
        ahead = end + p.max_lead - 2 * len(PAYLOAD * len(BATCH))
        """The thread's last look may come up to two batches before ``end``."""
        settle(seg, ahead)
        write_back(seg.path)  # what is measured does not depend on the writeback's timing
        faulted = faulted_bytes(seg.path)
        assert faulted >= ahead  # faulted in ahead
        assert faulted <= end + p.max_lead + FOLIO  # never more than the lead
        assert fault_ins(wal, unpopulated) > 0
        mark = seg.check_at
        while seg.end <= mark:  # single appends pass the marks too
            wal.append_for_topic("t", PAYLOAD)
        assert seg.check_at == seg.end + p.step


def test_a_slow_writer_gets_no_lead(
        tmp_path: Path, unpopulated: list[tuple[int, int | None, bool]]) -> None:
    # Milliseconds(1000): a lead of one step (2.5 MiB) needs 100 MiB/s; this writer does 5.
    with Walrus(data_dir=tmp_path / "wal", backend="mmap",
                fsync_schedule=FsyncSchedule.Milliseconds(1000)) as wal:
        seg, p = active(wal), prefaulter(wal)
        while seg.end < 3 * p.step:
            wal.batch_append_for_topic("t", [PAYLOAD] * 200)  # about 27 KB
            time.sleep(0.005)
            assert faulted_bytes(seg.path) <= seg.end + FOLIO
        time.sleep(0.2)
        assert faulted_bytes(seg.path) <= seg.end + FOLIO
        assert fault_ins(wal, unpopulated) == 0


def test_lead_follows_the_pace_and_the_syncs(tmp_path: Path) -> None:
    mib = 1 << 20
    with Walrus(data_dir=tmp_path / "wal", backend="mmap",
                fsync_schedule=FsyncSchedule.Milliseconds(1000)) as wal:
        [thread] = prefaulter_tasks()
        p = prefaulter(wal)
        assert p.cadence == _prefault.SyncCadence(1.0, _durability.CHECKPOINT_BYTES,
                                                  _durability.TICK)
        # At 200 MiB/s the checkpoints sync every tick (50 MiB): 10 % of that, in 2 steps.
        assert (p.max_lead, p.step) == (5 * mib, 5 * mib // 2)
        assert wal._log.progress_step == p.step
        assert p.lead(400 * mib, 1.0) == p.max_lead  # capped
        assert p.lead(100 * mib, 1.0) == p.step  # 10 % of 25 MiB per sync
        assert p.lead(40 * mib, 1.0) == 0  # 10 % of 10 MiB: under one step, not worth it
        assert p.lead(mib, 0.0) == p.max_lead  # no division by zero
    assert thread not in prefaulter_tasks()  # closing the log ended it
    with Walrus(data_dir=tmp_path / "short", backend="mmap",
                fsync_schedule=FsyncSchedule.Milliseconds(100)) as wal:
        assert prefaulter(wal).max_lead == 2 * mib  # 10 % of 20 MiB per sync
    with Walrus(data_dir=tmp_path / "shorter", backend="mmap",
                fsync_schedule=FsyncSchedule.Milliseconds(10)) as wal:
        assert prefaulter_tasks() == set()  # a lead of 0.2 MiB is not worth a thread


def test_sync_cadence() -> None:
    mib = 1 << 20
    cadence = _prefault.SyncCadence(interval=1.0, checkpoint_bytes=8 * mib, tick=0.25)
    assert cadence.bytes_between(400 * mib) == 100 * mib  # a checkpoint every tick
    assert cadence.bytes_between(16 * mib) == 8 * mib  # a checkpoint every 8 MiB
    assert cadence.bytes_between(4 * mib) == 4 * mib  # the flusher first
    nofsync = _prefault.SyncCadence(interval=30.0, checkpoint_bytes=8 * mib, tick=0.25)
    assert nofsync.lead(10_000 * mib) == _prefault.MAX_LEAD
    assert cadence.lead(123_457) % (2 * _prefault.PAGE) == 0


@pytest.mark.parametrize("schedule", [FsyncSchedule.NoFsync, FsyncSchedule.Milliseconds(500)])
def test_schedules_that_sync_in_the_background_prefault(tmp_path: Path, schedule: object) -> None:
    with Walrus(data_dir=tmp_path / "wal", backend="mmap", fsync_schedule=schedule) as wal:
        assert len(prefaulter_tasks()) == 1
        assert active(wal).check_at == active(wal).end + prefaulter(wal).step
    assert prefaulter_tasks() == set()


@pytest.mark.parametrize(("backend", "schedule"), [
    ("mmap", FsyncSchedule.SyncEach),  # every sync would write the lead
    ("pwrite", FsyncSchedule.Milliseconds(1000)),  # nothing mapped to fault in
    pytest.param("io_uring", FsyncSchedule.Milliseconds(1000), marks=pytest.mark.skipif(
        "io_uring" not in BACKENDS, reason="the io_uring backend is unavailable")),
])
def test_no_prefaulting(tmp_path: Path, backend: str, schedule: object) -> None:
    with Walrus(data_dir=tmp_path / "wal", backend=backend, fsync_schedule=schedule) as wal:
        assert prefaulter_tasks() == set()
        seg = active(wal)
        assert seg.check_at == seg.limit
        wal.batch_append_for_topic("t", BATCH)
        assert seg.check_at == seg.limit


def test_the_writer_rolls_past_marks_into_new_segments(tmp_path: Path) -> None:
    size = 12 << 20
    with Walrus(data_dir=tmp_path / "wal", backend="mmap", segment_size=size,
                fsync_schedule=FsyncSchedule.Milliseconds(1000)) as wal:
        first, p = active(wal), prefaulter(wal)
        count = 0
        while active(wal) is first or active(wal).end < 2 * p.step:
            wal.batch_append_for_topic("t", BATCH)
            count += len(BATCH)
        seg = active(wal)
        assert seg.check_at <= seg.end + p.step
        got = 0
        while (batch := wal.batch_read_for_topic("t", 1 << 20)):
            assert all(e.data == PAYLOAD for e in batch)
            got += len(batch)
        assert got == count


def test_closing_a_segment_waits_for_a_populate_in_flight(tmp_path: Path) -> None:
    seg = Segment.create(MmapBackend(), str(tmp_path), 1, 64 << 20, 0)
    started = threading.Event()
    stop = threading.Event()
    errors: list[BaseException] = []

    def populate_again_and_again() -> None:
        try:
            while not stop.is_set():
                seg.populate(0)  # 64 MiB: milliseconds without the GIL
                started.set()
        except BaseException as exc:  # pragma: no cover - the failure being tested for
            errors.append(exc)

    other = threading.Thread(target=populate_again_and_again)
    other.start()
    try:
        assert started.wait(10)
        seg.close()  # an mmap refuses to close while the other thread's populate pins it
    finally:
        stop.set()
        other.join()
    assert errors == []
    assert seg.view is None and seg.file.view is None  # really unmapped
    seg.populate(0, writable=True)  # closed: a no-op
