"""I/O faults: ENOSPC, EIO and short writes, failing fsync, failing file creation.

Every public call that touches the disk is run with each fault armed (through the
``faults-*`` backends of ``walrus.testing._faults``), under each fsync schedule. A call
either succeeds, and its effect is all there, or raises a ``StorageError`` (an ``OSError``
carrying the injected errno), and nothing of it is visible, now or after reopening. Once the
fault clears, the same instance keeps working. A failed fsync is never taken for success: what
it covered is not claimed durable, and a power cut afterwards returns nothing wrong.
"""

from __future__ import annotations

import errno
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import pytest

from walrus import CorruptionError, FsyncSchedule, StorageError, Walrus
from walrus.testing._faults import Machine, powered

from ._workload import FIGURES, check_content, dump, payload, recovered
from .conftest import BACKENDS, FAULT_BACKENDS

SEGMENT = 8192
SCHEDULES = {"sync_each": FsyncSchedule.SyncEach, "ms": FsyncSchedule.Milliseconds(60_000),
             "no_fsync": FsyncSchedule.NoFsync}
"""``ms``: a flusher too slow to run during a test, so only the calls themselves sync."""


class Fault(NamedTuple):
    op: str
    err: int
    short: bool = False


FAULTS = {
    "write-enospc": Fault("write", errno.ENOSPC),
    "write-eio": Fault("write", errno.EIO),
    "short-write": Fault("write", errno.ENOSPC, short=True),
    "fsync-eio": Fault("sync", errno.EIO),
    "create-enospc": Fault("create", errno.ENOSPC),
    "create-emfile": Fault("create", errno.EMFILE),
}


class Op(NamedTuple):
    """A call under test; ``effect`` applies its success to the expected dump."""

    call: Callable[[Walrus], object]
    writes: bool
    rolls: bool = False
    syncs_always: bool = False
    """It syncs under every schedule (flush)."""


BIG = payload("t", 7) * 30  # larger than a segment: needs a segment of its own


def _batch_roll(wal: Walrus) -> None:
    wal.batch_append_for_topic("t", [payload("t", 5 + i) for i in range(20)])


OPS = {
    "append": Op(lambda w: w.append_for_topic("t", payload("t", 5)), writes=True),
    "append-new-topic": Op(lambda w: w.append_for_topic("new", payload("new", 0)), writes=True),
    "batch": Op(lambda w: w.batch_append_for_topic("t", [payload("t", 5), payload("t", 6)]),
                writes=True),
    "append-roll": Op(lambda w: w.append_for_topic("t", BIG), writes=True, rolls=True),
    "batch-roll": Op(_batch_roll, writes=True, rolls=True),
    "read_next": Op(lambda w: w.read_next("t"), writes=True),
    "batch-read": Op(lambda w: w.batch_read_for_topic("t", 1000), writes=True),
    "mark-clean": Op(lambda w: w.mark_topic_clean("t"), writes=True),
    "flush": Op(lambda w: w.flush(), writes=False, syncs_always=True),
}


def must_fail(fault: Fault, op: Op, schedule: str) -> bool:
    """Does this call necessarily do the operation the fault breaks?"""
    if fault.op == "write":
        return op.writes
    if fault.op == "create":
        return op.rolls
    return op.syncs_always if schedule != "sync_each" else op.writes


def prefill(wal: Walrus) -> None:
    """Five entries, two consumed; the last append not yet synced (except under SyncEach)."""
    wal.batch_append_for_topic("t", [payload("t", i) for i in range(4)])
    wal.read_next("t")
    wal.read_next("t")
    wal.flush()
    wal.append_for_topic("t", payload("t", 4))


def _open(path: Path, backend: str, schedule: str) -> Walrus:
    return Walrus(data_dir=path, backend=backend, segment_size=SEGMENT,
                  fsync_schedule=SCHEDULES[schedule])


Dump = dict[str, tuple[object, ...]]


@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("fault_name", list(FAULTS))
@pytest.mark.parametrize("faulty", FAULT_BACKENDS)
def test_every_call_fails_cleanly_and_recovers(tmp_path: Path, faulty: str, fault_name: str,
                                               schedule: str) -> None:
    fault = FAULTS[fault_name]
    for op_name, op in OPS.items():
        path = tmp_path / op_name
        with powered() as m:
            wal = _open(path, faulty, schedule)
            try:
                prefill(wal)
                before = dump(wal)
                m.arm(fault.op, fault.err, short=fault.short)
                try:
                    op.call(wal)
                except StorageError as exc:
                    FIGURES["I/O faults injected into a call"] += 1
                    assert isinstance(exc, OSError) and exc.errno == fault.err, exc
                    assert "injected" in str(exc), str(exc)
                    assert dump(wal) == before, f"{op_name}: a failed call left a trace"
                    done = False
                else:
                    assert not must_fail(fault, op, schedule), f"{op_name} hid the fault"
                    done = True
                expected, final = _twin(tmp_path / f"{op_name}-twin", schedule, op_name, done)
                assert dump(wal) == expected, f"{op_name}: the state differs from a clean run"
                m.disarm()
                _still_usable(wal, expected)
            finally:
                try:
                    wal.close()
                except StorageError:
                    pass
        with Walrus(data_dir=path, backend=BACKENDS[-1], segment_size=SEGMENT) as wal:
            assert dump(wal) == final, f"{op_name}: reopening shows something else"


_TWINS: dict[tuple[str, str, bool], tuple[Dump, Dump]] = {}


def _twin(path: Path, schedule: str, op_name: str, done: bool) -> tuple[Dump, Dump]:
    """The same calls without faults on a plain backend: the dump after the call (if
    ``done``; else the call failed and has no effect) and the dump after the append of
    :func:`_still_usable` and a reopen. Cached: every fault and backend shares them."""
    key = (schedule, op_name, done)
    if key not in _TWINS:
        with _open(path, BACKENDS[0], schedule) as wal:
            prefill(wal)
            if done:
                OPS[op_name].call(wal)
            expected = dump(wal)
            _still_usable(wal, expected)
        with Walrus(data_dir=path, backend=BACKENDS[-1], segment_size=SEGMENT) as wal:
            _TWINS[key] = (expected, dump(wal))
    return _TWINS[key]


def _still_usable(wal: Walrus, expected: Dump) -> None:
    """Once the fault clears, appends, reads and flushes work again on the same instance."""
    end = expected["t"][2]
    assert isinstance(end, int)
    wal.append_for_topic("t", payload("t", end))
    wal.flush()
    got = recovered(wal, "t")
    check_content("t", got)
    assert got.end == end + 1 and end in got.entries


@contextmanager
def _watched(live: Path) -> Iterator[Machine]:
    """A fresh machine watching the new directory ``live`` (for power cuts)."""
    live.mkdir()
    with powered() as m:
        m.watch(live)
        yield m


def _fsync_fails_then_power_cut(tmp_path: Path, faulty: str, schedule: str,
                                indexes: bool) -> Path:
    """Acknowledged appends 0-2 (flushed) and 3-5; a flush whose fsync fails (like Linux,
    the kernel then drops the dirty pages: no later fsync writes them); appends 6-8 and a
    flush that succeeds; then the power goes. Returns the image.

    ``indexes``: let the indexer write the index of the abandoned segment before the cut;
    else index files cannot be created (a full disk for new files).
    """
    live = tmp_path / "live"
    with _watched(live) as m:
        if not indexes:
            m.arm("index", errno.ENOSPC)
        wal = _open(live, faulty, schedule)
        wal.batch_append_for_topic("t", [payload("t", i) for i in range(3)])
        wal.flush()
        for i in range(3, 6):
            wal.append_for_topic("t", payload("t", i))
        m.arm("sync", errno.EIO, times=1)
        with pytest.raises(StorageError, match="may not be durable"):
            wal.flush()
        for i in range(6, 9):
            wal.append_for_topic("t", payload("t", i))
        wal.flush()
        if indexes:
            wal._background.run_once()  # type: ignore[union-attr]
            assert (live / "0000000000000001.idx").exists()
        m.cut()
        m.image(live, tmp_path / "image", random.Random(0), "lose_all")
        try:
            wal.close()
        except StorageError:
            pass
    FIGURES["power cuts after a failed fsync"] += 1
    return tmp_path / "image"


@pytest.mark.parametrize("faulty", FAULT_BACKENDS)
@pytest.mark.parametrize("schedule", ["ms", "no_fsync"])
@pytest.mark.parametrize("indexes", [
    pytest.param(True, id="indexed"),
    # The old segment's index was not written before the cut: recovery learns from the
    # new segment's header (FOLLOWS_FAILED_SYNC, prev_durable) that its hole is the failed
    # window, not a torn tail that would disqualify the flushed segment after it.
    pytest.param(False, id="index-failed"),
])
def test_a_failed_fsync_is_never_taken_for_success(tmp_path: Path, faulty: str, schedule: str,
                                                   indexes: bool) -> None:
    """After the cut, everything acknowledged before the good flush (6-8) is there; the
    entries of the failed window (3-5) are reported damaged, never returned wrong, and
    their offsets are not reused."""
    image = _fsync_fails_then_power_cut(tmp_path, faulty, schedule, indexes)
    for backend in BACKENDS:
        with Walrus(data_dir=image, backend=backend) as wal:
            got = recovered(wal, "t")
            check_content("t", got)
            assert set(got.entries) == {0, 1, 2, 6, 7, 8} and got.damaged == [3, 4, 5]
    with Walrus(data_dir=image, backend=BACKENDS[0]) as wal:
        assert [e.offset for e in wal.batch_read_for_topic("t", 1 << 20)] == [0, 1, 2]
        for offset in (3, 4, 5):
            with pytest.raises(CorruptionError) as info:
                wal.read_next("t")
            assert info.value.offset == offset
        assert [e.offset for e in wal.batch_read_for_topic("t", 1 << 20)] == [6, 7, 8]


@pytest.mark.parametrize("faulty", FAULT_BACKENDS)
@pytest.mark.parametrize("seed", range(6))
def test_sync_each_never_resurrects_a_failed_append(tmp_path: Path, faulty: str,
                                                    seed: int) -> None:
    """Under SyncEach an append whose fsync failed was never acknowledged: it must not
    appear later, not after the next successful append, not after a power cut."""
    live = tmp_path / "live"
    with _watched(live) as m:
        wal = _open(live, faulty, "sync_each")
        wal.append_for_topic("t", payload("t", 0))
        m.arm("sync", errno.EIO, times=1)
        with pytest.raises(StorageError):
            wal.append_for_topic("t", b"never acknowledged")
        wal.append_for_topic("t", payload("t", 1))
        m.cut()
        m.image(live, tmp_path / "image", random.Random(seed), ["random", "keep_all"][seed % 2])
        wal.close()
    FIGURES["power cuts after a failed fsync"] += 1
    with Walrus(data_dir=tmp_path / "image", backend=BACKENDS[seed % len(BACKENDS)]) as wal:
        got = recovered(wal, "t")
        check_content("t", got)
        assert got.entries == {0: payload("t", 0), 1: payload("t", 1)} and got.end == 2


@pytest.mark.parametrize("schedule", ["ms", "no_fsync"])
def test_a_failed_flush_is_reported_once(tmp_path: Path, schedule: str) -> None:
    """The flush whose fsync fails raises; the next flush, with the disk healthy again, is
    not handed the same failure a second time (the background flusher's failures, which
    nobody was told about, are the ones a later flush reports)."""
    with powered() as m:
        wal = _open(tmp_path / "w", FAULT_BACKENDS[0], schedule)
        wal.append_for_topic("t", payload("t", 0))
        m.arm("sync", errno.EIO, times=1)
        with pytest.raises(StorageError, match="injected fsync failure"):
            wal.flush()
        wal.append_for_topic("t", payload("t", 1))
        wal.flush()
        wal.close()


@pytest.mark.parametrize("faulty", FAULT_BACKENDS)
def test_close_on_a_failing_disk_still_releases_the_directory(tmp_path: Path,
                                                              faulty: str) -> None:
    """Every disk operation fails (the machine's power is off) while a prepared spare
    segment waits: close() reports a StorageError, yet closes everything and releases the
    directory lock, so the directory opens again once the disk is back."""
    live = tmp_path / "live"
    with _watched(live) as m:
        wal = _open(live, faulty, "no_fsync")
        wal.append_for_topic("t", payload("t", 0))
        deadline = time.monotonic() + 60  # a bound on failure only: a busy machine is slow
        while wal._log.spare is None:  # the worker prepares the next segment ahead of need
            assert time.monotonic() < deadline, "no spare segment was prepared"
            time.sleep(0.005)
        m.cut()
        with pytest.raises(StorageError):
            wal.close()
    with Walrus(data_dir=live, backend=BACKENDS[0], segment_size=SEGMENT) as again:
        got = recovered(again, "t")
        assert got.entries == {0: payload("t", 0)}
