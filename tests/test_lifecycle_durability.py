"""Promises kept through a process's whole life: the Milliseconds window whatever allocation
costs, a failed SyncEach write that never comes back, close() racing SyncEach writers,
Ctrl-C (KeyboardInterrupt) inside a call, and a full disk that still drains.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

import walrus
from walrus import FsyncSchedule, StorageError, Walrus, WalrusClosedError
from walrus.backends import Backend, Buffer, File
from walrus.plugins import plugin_manager

from ._sched import run_delay
from .conftest import PLUGINS, ROOT

FAILING = "test-failing-disk"
DISK: dict[str, object] = {"sync_fails": False, "create_errno": None, "room": None}
"""What the failing disk does now (reset around every test); ``room``: the largest file
that can still be made (None: any)."""


class _FailingFile(File):
    def __init__(self, inner: File) -> None:
        self.inner, self.path, self.size, self.view = inner, inner.path, inner.size, None

    def write(self, pos: int, data: Buffer) -> None:
        self.inner.write(pos, data)

    def writev(self, pos: int, buffers: Sequence[Buffer]) -> None:
        self.inner.writev(pos, buffers)

    def read(self, pos: int, size: int) -> bytes:
        return self.inner.read(pos, size)

    def sync(self) -> None:
        if DISK["sync_fails"]:
            raise OSError(errno.EIO, "injected: fsync failed")
        self.inner.sync()

    def close(self) -> None:
        self.inner.close()


class FailingDisk(Backend):
    """pwrite underneath; fsync fails (EIO) or new files cannot be made, on demand."""

    name = FAILING

    def __init__(self) -> None:
        self.inner = walrus.backend_spec("pwrite").factory()

    def open(self, path: str, *, size: int = 0, create: bool = False,
             writable: bool = True) -> File:
        code = DISK["create_errno"]
        room = DISK["room"]
        if create and isinstance(room, int) and size > room:
            code = errno.ENOSPC
        if create and isinstance(code, int):
            raise OSError(code, "injected: " + os.strerror(code))
        return _FailingFile(self.inner.open(path, size=size, create=create, writable=writable))

    def sync_files(self, files: Sequence[File]) -> None:
        for f in files:
            f.sync()


class _Plugin:
    @walrus.hookimpl
    def walrus_register_backends(self) -> list[walrus.BackendSpec]:
        return [walrus.BackendSpec(FAILING, FailingDisk, priority=-1000,
                                   probe=lambda: walrus.Availability(True, "test double"),
                                   description="pwrite with injected failures")]


@pytest.fixture(autouse=True, scope="module")
def _failing_disk_registered() -> Iterator[None]:
    """The failing disk is a backend of this module's tests only (others list backends)."""
    plugin_manager().register(_Plugin(), name=FAILING)
    try:
        yield
    finally:
        plugin_manager().unregister(name=FAILING)


@pytest.fixture(autouse=True)
def _healthy_disk() -> Iterator[None]:
    DISK.update(sync_fails=False, create_errno=None, room=None)
    yield
    DISK.update(sync_fails=False, create_errno=None, room=None)


def _all(wal: Walrus, topic: str) -> list[bytes]:
    """Every retained entry of ``topic``, read without consuming (raises if one is damaged)."""
    got: list[bytes] = []
    while batch := wal.batch_read_for_topic(topic, 1 << 20, checkpoint=False,
                                            start_offset=len(got)):
        got += [e.data for e in batch]
    return got


# --- the Milliseconds(n) window --------------------------------------------------------------

WINDOW = 0.1
SLOW_ALLOCATION = 1.0
MARGIN = 0.4
"""What the interpreter may add to the window (the GIL, a busy disk); well under
SLOW_ALLOCATION. The time the machine kept the threads off the CPU is measured apart."""


def test_milliseconds_window_holds_while_allocation_is_slow(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Allocating a segment file takes a second (a file system without fallocate), rolls
    happen while appending, yet every append acknowledged under Milliseconds(100) is covered
    by a sync that starts within the window (plus a margin far below the allocation time):
    no sync waits for allocation, indexing or reclamation."""
    real_allocate = os.posix_fallocate
    allocations: list[str] = []

    def slow_allocate(fd: int, offset: int, length: int) -> None:
        allocations.append(threading.current_thread().name)
        time.sleep(SLOW_ALLOCATION)
        real_allocate(fd, offset, length)

    wal = Walrus(data_dir=tmp_path / "w", backend=backend, segment_size=16 << 10,
                 fsync_schedule=FsyncSchedule.Milliseconds(int(WINDOW * 1000)))
    starts: list[tuple[float, float]] = []
    real_sync = wal._log.backend.sync_files

    def timed_sync(files: Sequence[File]) -> None:
        starts.append((time.monotonic(), run_delay()))
        real_sync(files)

    monkeypatch.setattr(wal._log.backend, "sync_files", timed_sync)
    monkeypatch.setattr(os, "posix_fallocate", slow_allocate)
    acks: list[tuple[float, float]] = []
    try:
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            wal.append_for_topic("t", b"x" * 1000)
            acks.append((time.monotonic(), run_delay()))
            time.sleep(0.001)
    finally:
        wal.close()
    assert allocations, "no segment was allocated: the test did not test anything"
    # What the machine kept the threads off the CPU meanwhile is the scheduler's, not a wait.
    lags = [next(((s - a) - max(0.0, d - delay) for s, d in starts if s >= a), float("inf"))
            for a, delay in acks]
    late = [round(lag, 3) for lag in lags if lag > WINDOW + MARGIN]
    assert not late, (f"{len(late)} of {len(acks)} acknowledged appends waited longer than "
                      f"{WINDOW + MARGIN} s for a sync to start: {late[:10]}")


# --- a failed SyncEach write -----------------------------------------------------------------

def test_a_sync_each_append_whose_fsync_failed_never_comes_back(tmp_path: Path) -> None:
    """The fsync fails and so does making the next segment (nothing on disk can say where
    the log ends): the append raises, and no reopen ever returns it; once the disk is well
    again the log goes on after the last acknowledged entry."""
    d = tmp_path / "w"
    wal = Walrus(data_dir=d, backend=FAILING, fsync_schedule=FsyncSchedule.SyncEach)
    wal.append_for_topic("t", b"acknowledged")
    DISK.update(sync_fails=True, create_errno=errno.EIO)
    with pytest.raises(StorageError):
        wal.append_for_topic("t", b"FAILED")
    try:
        wal.close()
    except StorageError:
        pass  # reporting the failure again is fine
    DISK.update(sync_fails=False, create_errno=None)
    with Walrus(data_dir=d, backend="pwrite") as again:
        assert _all(again, "t") == [b"acknowledged"]
    with Walrus(data_dir=d, backend=FAILING, fsync_schedule=FsyncSchedule.SyncEach) as wal:
        DISK.update(sync_fails=True)
        with pytest.raises(StorageError):
            wal.append_for_topic("t", b"FAILED")
        DISK.update(sync_fails=False)
        wal.append_for_topic("t", b"after")
        assert _all(wal, "t") == [b"acknowledged", b"after"]
    with Walrus(data_dir=d, backend="pwrite") as again:
        assert _all(again, "t") == [b"acknowledged", b"after"]


def test_a_failed_sync_each_cursor_is_not_indexed(tmp_path: Path) -> None:
    """A consuming read whose cursor record could not be synced raises and leaves the
    cursor where it was, also in the index a clean close writes."""
    d = tmp_path / "w"
    with Walrus(data_dir=d, backend=FAILING, fsync_schedule=FsyncSchedule.SyncEach) as wal:
        wal.batch_append_for_topic("t", [b"a", b"b"])
        DISK.update(sync_fails=True)
        with pytest.raises(StorageError):
            wal.read_next("t")
        DISK.update(sync_fails=False)
    with Walrus(data_dir=d, backend="pwrite") as again:
        entry = again.read_next("t")
        assert entry is not None and entry.data == b"a"


# --- close() racing SyncEach writers ---------------------------------------------------------

def test_close_racing_sync_each_appenders_leaves_nobody_blocked(tmp_path: Path,
                                                                backend: str) -> None:
    """Threads append under SyncEach while close() runs: every one of them returns (with
    success or WalrusClosedError), and close() finishes."""
    for round_ in range(8):
        wal = Walrus(data_dir=tmp_path / f"w{round_}", backend=backend, segment_size=8192,
                     fsync_schedule=FsyncSchedule.SyncEach)
        stop = threading.Event()

        def producer(i: int, wal: Walrus = wal, stop: threading.Event = stop) -> None:
            while not stop.is_set():
                try:
                    wal.append_for_topic("t", b"x" * (10 + i))
                except WalrusClosedError:
                    return

        threads = [threading.Thread(target=producer, args=(i,), daemon=True) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.1)
        wal.close()
        stop.set()
        deadline = time.monotonic() + 60  # a blocked appender never returns; a slow one does
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in threads), \
            f"round {round_}: an appender is still blocked 60 s after close()"


# --- Ctrl-C inside a call --------------------------------------------------------------------

def test_an_interrupted_roll_leaves_no_file_in_the_way(
        tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A KeyboardInterrupt right after a roll made the next segment file (before the log
    took it): the append did not happen, the next rolls work, nothing is damaged."""
    from walrus import _segment

    real_create = _segment.Segment.create.__func__  # type: ignore[attr-defined]
    armed = [True]

    def interrupted_create(cls: type, /, *args: object, **kwargs: object) -> object:
        seg = real_create(cls, *args, **kwargs)
        if armed[0] and threading.current_thread() is threading.main_thread():
            armed[0] = False
            raise KeyboardInterrupt
        return seg

    d = tmp_path / "w"
    wal = Walrus(data_dir=d, backend=backend, segment_size=8192,
                 fsync_schedule=FsyncSchedule.SyncEach)
    wal._background.stop()  # type: ignore[union-attr]  # no spare: every roll makes a file
    monkeypatch.setattr(_segment.Segment, "create", classmethod(interrupted_create))
    acked = []
    for i in range(60):
        data = b"entry-%d|" % i + b"." * 300
        try:
            wal.append_for_topic("t", data)
            acked.append(data)
        except KeyboardInterrupt:
            pass
    assert not armed[0], "no roll made a file: the test did not test anything"
    assert _all(wal, "t") == acked
    wal.close()
    with Walrus(data_dir=d, backend=backend) as again:
        assert _all(again, "t") == acked


CHILD = """
import random, signal, sys, time
from walrus import CorruptionError, FsyncSchedule, StorageError, Walrus

def interrupt(signum, frame):
    raise KeyboardInterrupt

rnd = random.Random(int(sys.argv[3]))
d, backend = sys.argv[1], sys.argv[2]
w = Walrus(data_dir=d, backend=backend, fsync_schedule=FsyncSchedule.SyncEach, segment_size=8192)
signal.signal(signal.SIGALRM, interrupt)
acked, failures, k = [], [], 0
end = time.monotonic() + float(sys.argv[4])
while time.monotonic() < end:
    try:
        signal.setitimer(signal.ITIMER_REAL, rnd.uniform(0.00001, 0.0005))
        data = b"entry-%d|" % k + b"." * rnd.randint(8, 400)
        k += 1
        w.append_for_topic("t", data)
        acked.append(data)
    except KeyboardInterrupt:
        pass
    except StorageError as exc:
        failures.append(str(exc))
    finally:
        while True:
            try:
                signal.setitimer(signal.ITIMER_REAL, 0)
                break
            except KeyboardInterrupt:
                pass
signal.signal(signal.SIGALRM, signal.SIG_DFL)
assert not failures, failures[:3]
w.close()
with Walrus(data_dir=d, backend=backend) as again:
    got, damaged = [], []
    while True:
        try:
            batch = again.batch_read_for_topic("t", 1 << 20, checkpoint=False,
                                               start_offset=len(got) + len(damaged))
        except CorruptionError:
            damaged.append(len(got) + len(damaged))
            continue
        if not batch:
            break
        got += [e.data for e in batch]
assert not damaged, f"damaged after a clean close: {damaged}"
present = set(got)
missing = [a for a in acked if a not in present]
assert not missing, f"{len(missing)} acknowledged entries missing"
print(f"{len(acked)} acknowledged, {k - len(acked)} interrupted")
"""


@pytest.mark.parametrize("seed", [1, 2])
def test_ctrl_c_at_random_moments_keeps_the_instance_whole(tmp_path: Path, seed: int,
                                                           backend: str) -> None:
    """KeyboardInterrupts land at random moments inside SyncEach appends (rolls included):
    no append fails afterwards, close() finishes, and after a reopen every acknowledged
    entry is there and nothing reads as damaged."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(PLUGINS)])}
    try:
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(CHILD), str(tmp_path / "w"), backend,
             str(seed), "2"], env=env, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("the child hung (close() or an append blocked for ever)")
    assert done.returncode == 0, done.stderr[-3000:]


# --- a full disk -----------------------------------------------------------------------------

def _fill_until_full(wal: Walrus, appended: int, entry: bytes) -> int:
    """Append until the disk refuses a new segment; returns how many entries there are."""
    with pytest.raises(StorageError, match="No space left"):
        while True:
            wal.append_for_topic("t", b"%d|" % appended + entry)
            appended += 1
    return appended


def _drain(wal: Walrus, count: int, entry: bytes) -> None:
    for i in range(count):
        got = wal.read_next("t")
        assert got is not None and got.data == b"%d|" % i + entry
    assert wal.read_next("t") is None


def test_a_full_disk_still_takes_cursor_records(tmp_path: Path) -> None:
    """Not a byte left for a new file: the append that needs a new segment fails, but every
    entry can still be consumed (the cursor records go into the room each segment keeps
    for them), and a reopen resumes after the last one."""
    d = tmp_path / "w"
    wal = Walrus(data_dir=d, backend=FAILING, fsync_schedule=FsyncSchedule.SyncEach,
                 segment_size=64 << 10)
    entry = b"." * 300
    for i in range(20):
        wal.append_for_topic("t", b"%d|" % i + entry)
    DISK["room"] = 0
    appended = _fill_until_full(wal, 20, entry)
    _drain(wal, appended, entry)
    wal.close()
    DISK["room"] = None
    with Walrus(data_dir=d, backend="pwrite") as again:
        assert again.read_next("t") is None
        assert again.get_topic_entry_count("t") == 0


def test_a_full_disk_still_drains(tmp_path: Path) -> None:
    """No room for a whole segment: appends that need one fail, but consumers consume the
    whole backlog (their cursor records take the room kept in each segment, then small
    segments), and the consumed segments are reclaimed, freeing space, while the disk is
    still full. Once there is room again, the log goes on."""
    d = tmp_path / "w"
    wal = Walrus(data_dir=d, backend=FAILING, fsync_schedule=FsyncSchedule.SyncEach,
                 segment_size=1 << 20)
    entry = b"." * 200
    for i in range(0, 10_000, 1000):  # a few segments, more entries than one keeps room for
        wal.batch_append_for_topic("t", [b"%d|" % j + entry for j in range(i, i + 1000)])
    DISK["room"] = 256 << 10  # less than a segment
    appended = _fill_until_full(wal, 10_000, entry)
    full = sorted(p.name for p in d.glob("*.wal"))
    assert len(full) > 2
    _drain(wal, appended, entry)
    wal._background.run_once()  # type: ignore[union-attr]
    left = sorted(p.name for p in d.glob("*.wal"))
    assert not set(full) & set(left[:-1]), "consumed segments were not reclaimed"
    DISK["room"] = None
    wal.append_for_topic("t", b"more")
    wal.close()
    with Walrus(data_dir=d, backend="pwrite") as again:
        got = again.read_next("t")
        assert got is not None and got.data == b"more"


# --- interrupts in the thread that holds the right to sync ------------------------------------


def test_a_right_to_sync_left_by_an_interrupt_is_given_back(tmp_path: Path) -> None:
    """An interrupt can land before a pass's holder gives the right back (Python code cannot
    rule it out): the holder's next append takes it back instead of waiting for itself."""
    wal = Walrus(data_dir=tmp_path / "w", fsync_schedule=FsyncSchedule.SyncEach)
    durability = wal._durability

    def holder() -> None:
        with durability.mutex:  # as an interrupted pass leaves it
            durability.busy, durability.owner = True, threading.get_ident()
        wal.append_for_topic("t", b"after the interrupt")

    thread = threading.Thread(target=holder, daemon=True)
    thread.start()
    thread.join(60)  # a deadlock never ends; a busy machine only slows
    assert not thread.is_alive(), "the append waited for a pass its own thread left behind"
    wal.close()
    with Walrus(data_dir=tmp_path / "w") as again:
        assert _all(again, "t") == [b"after the interrupt"]


def test_a_lost_wake_up_is_not_waited_for_for_ever(tmp_path: Path) -> None:
    """The right to sync given back without the wake-up (the interrupt landed between the
    two): a thread waiting for it looks again by itself."""
    wal = Walrus(data_dir=tmp_path / "w", fsync_schedule=FsyncSchedule.SyncEach)
    durability = wal._durability
    with durability.mutex:
        durability.busy, durability.owner = True, -1
    thread = threading.Thread(target=wal.flush, daemon=True)
    thread.start()
    thread.join(0.3)
    assert thread.is_alive()  # it waits while the right is taken
    durability.busy = False  # given back, no wake-up
    thread.join(60)
    assert not thread.is_alive(), "flush() waited for ever for a wake-up that was lost"
    wal.close()
