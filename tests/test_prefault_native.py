"""The native prefaulter thread (``WALRUS_NATIVE_PREFAULT=1``): it faults pages in while the
writer holds the GIL, and no mapping is ever unmapped under it (close, roll, fork)."""

from __future__ import annotations

import mmap
import os
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from walrus import FsyncSchedule, Walrus, _durability, _prefault
from walrus._native import prefault as native_prefault
from walrus._segment import Segment
from walrus.backends._mmap import MmapBackend

from .test_prefault import BATCH, FOLIO, active, faulted_bytes, prefault_threads

native, REASON = native_prefault()
pytestmark = pytest.mark.skipif(native is None, reason=REASON)

SEGMENT = 64 << 20


def tasks() -> int:
    """This process's threads, native ones included."""
    return len(os.listdir("/proc/self/task"))


@pytest.fixture
def native_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The native thread, and no read-faulting of the segment a log opens on by the worker
    (that would make every page of it present)."""
    monkeypatch.setenv("WALRUS_NATIVE_PREFAULT", "1")
    monkeypatch.setattr(_durability.Background, "populate_active", lambda self: None)
    yield


def native_of(wal: Walrus) -> _prefault.NativePrefaulter:
    found = wal._background.prefaulter  # type: ignore[union-attr]
    assert isinstance(found, _prefault.NativePrefaulter)
    return found


def spin_until_ready(p: _prefault.NativePrefaulter, timeout: float = 60.0) -> tuple[int, int]:
    """Wait for the thread to reach its target without ever letting the GIL go (no sleep,
    no I/O, and a switch interval longer than the wait): only a thread that runs without
    the GIL gets anything done meanwhile. The timeout is a safety net only."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(timeout + 10)
    try:
        deadline = time.monotonic() + timeout
        while True:
            _, _, _, ready, target = p.native.stats()
            if (target and ready >= target) or time.monotonic() > deadline:
                return ready, target
    finally:
        sys.setswitchinterval(old)


def test_the_native_thread_faults_in_ahead_while_the_writer_holds_the_gil(
        tmp_path: Path, native_env: None) -> None:
    before = tasks()
    with Walrus(data_dir=tmp_path / "wal", backend="mmap",
                fsync_schedule=FsyncSchedule.Milliseconds(60_000)) as wal:
        seg, p = active(wal), native_of(wal)
        assert prefault_threads() == [] and p.native.running()
        p.cadence = _prefault.SyncCadence(60.0, 1 << 40, 60.0)  # any pace earns the lead
        for _ in range(2):
            mark = seg.check_at
            while seg.end <= mark:
                wal.batch_append_for_topic("t", BATCH)
        end = seg.end
        ready, target = spin_until_ready(p)
        assert target > end + p.step and ready >= target  # populated, GIL held throughout
        faulted = faulted_bytes(seg.path)
        assert faulted >= target - FOLIO  # really faulted in
        assert faulted <= end + p.max_lead + FOLIO  # never more than the lead
        # The writer now stores into pages that are present and writable: it takes
        # (almost) none of their faults itself.
        pages = (target - seg.end) // mmap.PAGESIZE
        faults = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        while seg.end + len(BATCH) * 200 < target:
            wal.batch_append_for_topic("t", BATCH)
        faults = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - faults
        assert pages > 500 and faults < pages // 4
    assert tasks() == before  # close() joined it


def test_closing_segments_while_the_thread_populates_them(tmp_path: Path) -> None:
    assert native is not None
    thread = native.Prefaulter()
    try:
        for number in range(1, 21):
            seg = Segment.create(MmapBackend(), str(tmp_path), number, SEGMENT, 0)
            thread.map(seg.view)
            chunks = thread.stats()[1]
            thread.cue(0, SEGMENT)  # 64 MiB: many chunks, still going when the close comes
            while thread.stats()[1] == chunks:  # under way
                time.sleep(0.0001)
            seg.close()  # retires the mapping first, waiting for the chunk in flight
            assert seg.file.view is None
            os.unlink(seg.path)
        wakes, chunks, failures, ready, target = thread.stats()
        assert wakes == 20 and chunks >= 20
        assert failures == 0  # never a madvise on a mapping that was gone
        assert ready == target == 0  # nothing mapped any more
    finally:
        thread.stop()
    assert not thread.running()


def test_open_append_close_cycles(tmp_path: Path, native_env: None,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_prefault, "STEPS", 64)  # a wake-up (and a cue) every 64th of the lead
    before = tasks()
    for cycle in range(10):
        with Walrus(data_dir=tmp_path / f"wal{cycle}", backend="mmap", segment_size=8 << 20,
                    fsync_schedule=FsyncSchedule.Milliseconds(60_000)) as wal:
            p = native_of(wal)
            p.cadence = _prefault.SyncCadence(60.0, 1 << 40, 60.0)
            first = active(wal)
            while active(wal) is first or active(wal).end < 2 * p.step:  # rolls too
                wal.batch_append_for_topic("t", BATCH[:200])
            wakes, _, failures, _, _ = p.native.stats()
            assert wakes > 50 and failures == 0  # no madvise on a mapping that was gone
        assert tasks() == before


def test_a_forked_child_has_no_thread_and_can_start_one(
        tmp_path: Path, native_env: None) -> None:
    with Walrus(data_dir=tmp_path / "wal", backend="mmap",
                fsync_schedule=FsyncSchedule.Milliseconds(60_000)) as wal:
        p = native_of(wal)
        wal.batch_append_for_topic("t", BATCH)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through its exit status
            code = 1
            try:
                if p.native.running():
                    code = 2  # the parent's thread does not exist here
                else:
                    p.native.stop()  # must not join a thread that is not there
                    seg = Segment.create(MmapBackend(), str(tmp_path), 99, 4 << 20, 0)
                    fresh = native.Prefaulter()
                    fresh.map(seg.view)
                    fresh.cue(0, 4 << 20)
                    deadline = time.monotonic() + 60
                    while fresh.stats()[3] < 4 << 20 and time.monotonic() < deadline:
                        time.sleep(0.001)
                    populated = fresh.stats()[3] == 4 << 20 and fresh.stats()[2] == 0
                    seg.close()
                    fresh.stop()
                    code = 0 if populated and not fresh.running() else 3
            finally:
                os._exit(code)
        deadline = time.monotonic() + 60
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        if done[0] == 0:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung")
        assert os.waitstatus_to_exitcode(done[1]) == 0
        assert p.native.running()  # the parent's is untouched


def test_without_the_extension_the_python_thread(
        tmp_path: Path, native_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_prefault, "native_prefault", lambda: (None, "not built"))
    with Walrus(data_dir=tmp_path / "wal", backend="mmap",
                fsync_schedule=FsyncSchedule.NoFsync) as wal:
        assert type(wal._background.prefaulter) is _prefault.Prefaulter  # type: ignore[union-attr]
        assert len(prefault_threads()) == 1
