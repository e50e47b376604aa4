"""The native prefaulter thread (the default where it is built): it faults pages in while the
writer holds the GIL, and no mapping is ever unmapped under it (close, roll, stop, fork, exit)."""

from __future__ import annotations

import gc
import logging
import mmap
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from walrus import FsyncSchedule, Walrus, _durability, _prefault
from walrus._native import prefault as native_prefault
from walrus._segment import Segment
from walrus.backends._mmap import MmapBackend

from .conftest import child_environment
from .test_prefault import BATCH, FOLIO, active, faulted_bytes, prefault_threads, prefaulter_tasks

native, REASON = native_prefault()
pytestmark = pytest.mark.skipif(native is None, reason=REASON)

SEGMENT = 64 << 20


def started(before: set[int]) -> set[int]:
    """The prefaulter thread a log just opened started (its kernel task id), beside those of
    ``before``: for checking that this one is gone once the log is closed. Only its own: a
    thread of the process that another test left may end meanwhile (a whole-process thread
    count changed under a test that counted it so)."""
    mine = prefaulter_tasks() - before
    assert len(mine) == 1
    return mine


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


@pytest.fixture
def unwritten_back(tmp_path: Path) -> Iterator[Path]:
    """A folder whose pages the kernel never writes back (tmpfs), where there is one.

    On a disk, the kernel writes dirty pages back whenever the page cache holds too many
    (other processes writing fill it at any moment: the suite's other workers did), and
    writeback write-protects each page it cleans, so the writer's next store into it faults
    again. Counting the writer's faults there measured the machine's writeback, not the
    prefaulter (one loaded run of the suite: 1,130 faults over 1,213 prefaulted pages)."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK):
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="walrus-prefault-", dir=shm))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_native_thread_faults_in_ahead_while_the_writer_holds_the_gil(
        unwritten_back: Path, native_env: None) -> None:
    before = prefaulter_tasks()
    with Walrus(data_dir=unwritten_back / "wal", backend="mmap",
                fsync_schedule=FsyncSchedule.Milliseconds(60_000)) as wal:
        seg, p = active(wal), native_of(wal)
        mine = started(before)
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
    assert prefaulter_tasks().isdisjoint(mine)  # close() joined it


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
    """Wake-ups, rolls and closes in turn: no madvise on a mapping that was gone, no thread
    left behind, and no mapping the thread was given kept alive (each is freed)."""
    monkeypatch.setattr(_prefault, "STEPS", 64)  # a wake-up (and a cue) every 64th of the lead
    before = prefaulter_tasks()
    views: set[weakref.ref[mmap.mmap]] = set()
    for cycle in range(10):
        with Walrus(data_dir=tmp_path / f"wal{cycle}", backend="mmap", segment_size=8 << 20,
                    fsync_schedule=FsyncSchedule.Milliseconds(60_000)) as wal:
            p = native_of(wal)
            mine = started(before)
            p.cadence = _prefault.SyncCadence(60.0, 1 << 40, 60.0)
            first = active(wal)
            while active(wal) is first or active(wal).end < 2 * p.step:  # rolls too
                views.add(weakref.ref(active(wal).view))  # type: ignore[arg-type]
                wal.batch_append_for_topic("t", BATCH[:200])
            wakes, _, failures, _, _ = p.native.stats()
            assert wakes > 50 and failures == 0
        assert prefaulter_tasks().isdisjoint(mine)
    gc.collect()
    assert len(views) >= 20 and all(ref() is None for ref in views)


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
                    with Walrus(data_dir=tmp_path / "child", backend="mmap",
                                fsync_schedule=FsyncSchedule.NoFsync) as mine:
                        # a log of its own: a thread of its own, and appends past steps
                        theirs = native_of(mine)
                        while active(mine).end < 2 * theirs.step:
                            mine.batch_append_for_topic("t", BATCH)
                        if not theirs.native.running() or theirs.native.stats()[0] < 2:
                            code = 4
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


def mapping(tmp_path: Path, name: str, size: int = SEGMENT) -> mmap.mmap:
    """A writable shared mapping of a new file of ``size`` bytes, allocated on disk."""
    fd = os.open(tmp_path / name, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.posix_fallocate(fd, 0, size)
        return mmap.mmap(fd, size)
    finally:
        os.close(fd)


def under_way(thread: object) -> None:
    """Wait until the thread has started a chunk of what it was cued to fault in."""
    chunks = thread.stats()[1]  # type: ignore[attr-defined]
    while thread.stats()[1] == chunks:  # type: ignore[attr-defined]
        time.sleep(0.0001)


def test_the_native_thread_is_the_default_and_named(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("WALRUS_NATIVE_PREFAULT", raising=False)  # the suite may set it
    caplog.set_level(logging.DEBUG, logger="walrus")
    with Walrus(data_dir=tmp_path / "wal", backend="mmap",
                fsync_schedule=FsyncSchedule.NoFsync) as wal:
        assert type(wal._background.prefaulter) is _prefault.NativePrefaulter  # type: ignore[union-attr]
        assert prefault_threads() == []  # no Python thread
        assert len(prefaulter_tasks()) == 1  # a native one, named as the Python one is
    assert prefaulter_tasks() == set()
    assert "prefaulter thread: a native thread (walrus._native._prefault)" in caplog.messages


def test_the_thread_is_named_from_the_moment_it_exists() -> None:
    """Its name is set when it is made, not when it first runs: a listing of the threads
    right after a log opened could show an anonymous one."""
    assert native is not None
    for _ in range(200):
        before = set(os.listdir("/proc/self/task"))
        thread = native.Prefaulter()
        try:
            [tid] = set(os.listdir("/proc/self/task")) - before
            with open(f"/proc/self/task/{tid}/comm") as comm:
                assert comm.read() == "walrus-prefault\n"
        finally:
            thread.stop()


def test_zero_asks_for_the_python_thread(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("WALRUS_NATIVE_PREFAULT", "0")
    caplog.set_level(logging.DEBUG, logger="walrus")
    assert _prefault.thread_kind() == (False, "a Python thread (WALRUS_NATIVE_PREFAULT=0)")
    with Walrus(data_dir=tmp_path / "wal", backend="mmap",
                fsync_schedule=FsyncSchedule.NoFsync) as wal:
        assert type(wal._background.prefaulter) is _prefault.Prefaulter  # type: ignore[union-attr]
        assert len(prefault_threads()) == 1 and len(prefaulter_tasks()) == 1
    assert "prefaulter thread: a Python thread (WALRUS_NATIVE_PREFAULT=0)" in caplog.messages


def test_a_second_stop_waits_for_the_chunk_in_flight(tmp_path: Path) -> None:
    """Two stops at once: the one that does not join must not drop the last reference to a
    mapping (unmapping it) while the thread still faults a chunk of it in."""
    assert native is not None
    for run in range(20):
        thread = native.Prefaulter()
        view = mapping(tmp_path, f"s{run}")
        thread.map(view)
        thread.cue(0, SEGMENT)
        del view  # the thread holds the last reference
        under_way(thread)
        joiner = threading.Thread(target=thread.stop)
        joiner.start()
        while thread.running():  # the joiner has begun (it lets the GIL go to join)
            pass
        thread.stop()
        joiner.join()
        assert thread.stats()[2] == 0  # the chunk in flight ran on a mapping still there
        os.unlink(tmp_path / f"s{run}")


def test_a_roll_while_the_old_mapping_is_faulted_in(tmp_path: Path) -> None:
    assert native is not None
    thread = native.Prefaulter()
    try:
        old, new, never = (mapping(tmp_path, name) for name in ("old", "new", "never"))
        thread.map(old)
        thread.cue(0, SEGMENT)
        under_way(thread)
        thread.map(new)  # the roll: the old mapping's chunk may still be in flight
        thread.cue(0, SEGMENT)
        native.retire(old)  # the old segment closes
        old.close()
        native.retire(never)  # a mapping it was never given: nothing to wait for
        never.close()
        _, _, failures, ready, target = spin_until_ready_of(thread)
        assert failures == 0 and ready == target == SEGMENT  # the new one, whole
        thread.map(mapping(tmp_path, "third"))
        thread.map(mapping(tmp_path, "fourth"))  # drops ``new`` (two back)
        assert sys.getrefcount(new) == 2  # this name and the call's argument: none kept
    finally:
        thread.stop()


def spin_until_ready_of(thread: object, timeout: float = 60.0) -> tuple[int, ...]:
    """The thread's stats once it has reached its target (the timeout is a safety net)."""
    deadline = time.monotonic() + timeout
    while True:
        stats = thread.stats()  # type: ignore[attr-defined]
        if stats[3] >= stats[4] or time.monotonic() > deadline:
            return tuple(stats)
        time.sleep(0.001)


def test_cues_past_the_mapping_stop_at_its_end(tmp_path: Path) -> None:
    assert native is not None
    size = 1 << 20
    thread = native.Prefaulter()
    try:
        view = mapping(tmp_path, "small", size)
        thread.map(view)
        thread.cue(size // 2, 1 << 62)  # far past the end: clamped to it
        _, _, failures, ready, target = spin_until_ready_of(thread)
        assert (failures, ready, target) == (0, size, size)
        thread.cue(10 * size, size)  # the writer past the end: nothing to fault in
        assert thread.stats()[2:] == (0, 10 * size, size)
        with pytest.raises(ValueError):
            thread.cue(-1, 0)
        with pytest.raises(OverflowError):
            thread.cue(1 << 64, 0)
        native.retire(view)
        view.close()
    finally:
        thread.stop()


def test_a_failed_fault_in_leaves_the_thread_working(tmp_path: Path) -> None:
    """A mapping past its file's end (EFAULT), as an old kernel's EINVAL: counted, the rest of
    that mapping skipped, the next one faulted in."""
    assert native is not None
    thread = native.Prefaulter()
    try:
        view = mapping(tmp_path, "cut", 8 << 20)
        os.truncate(tmp_path / "cut", 0)
        thread.map(view)
        thread.cue(0, 8 << 20)
        _, _, failures, ready, target = spin_until_ready_of(thread)
        assert failures == 1 and ready == target == 8 << 20
        native.retire(view)
        view.close()
        view = mapping(tmp_path, "whole", 8 << 20)
        thread.map(view)
        thread.cue(0, 8 << 20)
        _, _, failures, ready, target = spin_until_ready_of(thread)
        assert failures == 1 and ready == target == 8 << 20
        assert faulted_bytes(str(tmp_path / "whole")) == 8 << 20
        native.retire(view)
        view.close()
    finally:
        thread.stop()


def test_two_logs_have_a_thread_each(tmp_path: Path, native_env: None) -> None:
    with Walrus(data_dir=tmp_path / "a", backend="mmap",
                fsync_schedule=FsyncSchedule.Milliseconds(60_000)) as a:
        with Walrus(data_dir=tmp_path / "b", backend="mmap",
                    fsync_schedule=FsyncSchedule.Milliseconds(60_000)) as b:
            assert len(prefaulter_tasks()) == 2
            pa = native_of(a)
            pa.cadence = _prefault.SyncCadence(60.0, 1 << 40, 60.0)
        assert len(prefaulter_tasks()) == 1 and pa.native.running()  # a's, still running
        assert not native_of(b).native.running()
        seg = active(a)
        mark = seg.check_at
        while seg.end <= mark:
            a.batch_append_for_topic("t", BATCH)
        ready, target = spin_until_ready(pa)
        assert pa.native.stats()[2] == 0 and target > seg.end and ready == target
    assert prefaulter_tasks() == set()


EXIT_WHILE_POPULATING = textwrap.dedent("""
    import sys
    from walrus import FsyncSchedule, Walrus, _prefault
    wal = Walrus(data_dir=sys.argv[1], backend="mmap", segment_size=256 << 20,
                 fsync_schedule=FsyncSchedule.NoFsync)
    p = wal._background.prefaulter
    assert type(p) is _prefault.NativePrefaulter
    seg = wal._log.active
    p.native.map(seg.view)
    p.native.cue(seg.end, 200 << 20)  # a while of faulting in: still going at exit
    while p.native.stats()[1] == 0:
        pass
    if sys.argv[2] == "close":
        wal.close()
    print("exiting", flush=True)
""")


@pytest.mark.parametrize("how", ["close", "leave open"])
def test_the_interpreter_exits_with_the_thread_mid_chunk(
        tmp_path: Path, how: str, native_env: None) -> None:
    """Py_Finalize with the thread faulting pages in: it touches no Python object, and holds
    references to its mappings, so nothing it uses goes away under it."""
    for run in range(3):
        done = subprocess.run([sys.executable, "-c", EXIT_WHILE_POPULATING,
                               str(tmp_path / f"wal{run}"), how],
                              env=child_environment(), capture_output=True, timeout=60)
        assert (done.returncode, done.stdout, done.stderr) == (0, b"exiting\n", b"")
