"""The lone writer's SyncEach pass in C (``sync_pass`` in walrus/_native/hot.c): taken when
no pass runs, and bound by the Python pass's rules: what it publishes, the MARK it leaves,
a failed sync's undo, an interrupt's hand-back. (The group-commit and power-loss tests run
through it too; these make sure it is the path taken.)"""

from __future__ import annotations

import errno
import threading
import zlib
from pathlib import Path
from typing import Any

import pytest

from walrus import (
    Entry,
    FsyncSchedule,
    StorageError,
    Walrus,
    _codec,
    _durability,
    _log,
    _speedups,
    _syncbook,
)
from walrus.testing._faults import powered

from .conftest import FAULT_BACKENDS
from .test_sync_each_paths import _read, _until

needs_hot = pytest.mark.skipif(_speedups.hot_sync_pass is None, reason=_speedups.HOT_REASON)


def _spied(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record what each call of the C pass answered (or the exception it raised)."""
    seen: list[object] = []
    real = _speedups.hot_sync_pass
    assert real is not None

    def spy(durability: _durability.Durability, lsn: int) -> object:
        try:
            answer = real(durability, lsn)
        except BaseException as exc:
            seen.append(type(exc))
            raise
        seen.append(answer)
        return answer

    monkeypatch.setattr(_durability, "_sync_pass", spy)
    return seen


@needs_hot
def test_a_lone_writers_pass_runs_in_c_publishes_and_leaves_a_mark(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _spied(monkeypatch)
    with Walrus(data_dir=tmp_path, backend="mmap", fsync_schedule=FsyncSchedule.SyncEach) as wal:
        wal.append_for_topic("t", b"first")
        got: list[Entry | None] = []
        reader = threading.Thread(target=lambda: got.extend(
            [wal.read_next("t"), wal.read_next("t", checkpoint=False, timeout=30)]))
        reader.start()
        _until(lambda: wal._log._on_visible is not None)  # it waits for the next entry
        seen.clear()  # the passes so far (its cursor's too)
        for i in range(3):
            assert wal.append_for_topic("t", b"%d" % i) == i + 1
        reader.join(30)
        assert seen == [True, True, True]
        assert [e and e.data for e in got] == [b"first", b"0"]  # told by the C pass
        log = wal._log
        assert log.pending == [] and not wal._durability.busy
        seg = log.active
        assert seg is not None and seg.view is not None
        assert log.durable == seg.lsn_base | seg.end
        crc, n, tid, kind, left, seq, durable = _codec.RECORD.unpack_from(seg.view, seg.end)
        assert (n, tid, kind, left, seq, durable) == (0, 0, _codec.MARK, 0, 0, log.durable)
        assert crc == zlib.crc32(seg.view[seg.end + 4:seg.end + 32], seg.salt)
        assert _read(wal, "t") == [b"first", b"0", b"1", b"2"]
        told: list[object] = []
        monkeypatch.setattr(log, "_announce", told.append)  # an announce set on the log
        assert wal.append_for_topic("t", b"3") == 4
        assert seen[-1] is True and told == [log.by_name["t"]]


@needs_hot
@pytest.mark.parametrize("faulty", FAULT_BACKENDS[:1])
def test_a_failed_sync_in_the_c_pass_undoes_the_write(
        tmp_path: Path, faulty: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _spied(monkeypatch)
    with powered() as m, Walrus(data_dir=tmp_path, backend=faulty,
                                fsync_schedule=FsyncSchedule.SyncEach) as wal:
        assert wal.append_for_topic("t", b"0") == 0
        m.arm("sync", errno.EIO, times=1)
        with pytest.raises(StorageError):
            wal.append_for_topic("t", b"lost")
        assert seen[-1] is StorageError
        assert not wal._durability.busy and wal._durability.undone
        assert wal.append_for_topic("t", b"1") == 1
        assert _read(wal, "t") == [b"0", b"1"]


@needs_hot
@pytest.mark.parametrize("faulty", FAULT_BACKENDS[:1])
def test_an_interrupt_in_the_c_pass_gives_the_right_back(
        tmp_path: Path, faulty: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C inside the backend's sync: the append raises it, the right to run passes is
    given back, and the next pass makes the interrupted write durable with its own."""
    seen = _spied(monkeypatch)
    with powered(), Walrus(data_dir=tmp_path, backend=faulty,
                           fsync_schedule=FsyncSchedule.SyncEach) as wal:
        assert wal.append_for_topic("t", b"0") == 0
        backend = wal._log.backend
        real = backend.sync_files

        def interrupted(files: object) -> None:
            monkeypatch.setattr(backend, "sync_files", real)
            raise KeyboardInterrupt

        monkeypatch.setattr(backend, "sync_files", interrupted)
        with pytest.raises(KeyboardInterrupt):
            wal.append_for_topic("t", b"1")
        assert seen[-1] is KeyboardInterrupt
        assert not wal._durability.busy and len(wal._log.pending) == 1
        assert wal.append_for_topic("t", b"2") == 2
        assert seen[-1:] == [True] and wal._log.pending == []
        assert _read(wal, "t") == [b"0", b"1", b"2"]


@needs_hot
def test_the_c_append_makes_the_pending_write_log_append_makes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The C append fills a PendingEntries field by field, without ``__init__``: every field
    the class has must be set, to what Log.append's ``PendingEntries(...)`` stores (a field
    added to the class and not to hot.c fails here, not in a pass's publish or undo)."""
    with Walrus(data_dir=tmp_path, backend="mmap", fsync_schedule=FsyncSchedule.SyncEach) as wal:
        log = wal._log
        wal.append_for_topic("t", b"0")  # the topic exists: the next append is the C one's
        made: list[Any] = []
        real = log._wait_durable

        def caught(lsn: int) -> None:
            made.append(log.pending[-1])
            real(lsn)

        monkeypatch.setattr(log, "_wait_durable", caught)
        before = sum(_speedups.hot_fallbacks().values())
        assert wal.append_for_topic("t", b"one") == 1
        assert sum(_speedups.hot_fallbacks().values()) == before, "not the C append"
        assert _log.Log.append(log, "t", b"two") == 2  # the Python method itself
        c, py = made
        assert type(c) is type(py) is _syncbook.PendingEntries
        fields = {name for cls in type(c).__mro__ for name in getattr(cls, "__slots__", ())}
        assert fields == {"start", "end", "t", "seq", "count", "size", "announce", "unlist"}
        expected = {"t": py.t, "seq": 1, "count": 1, "size": py.size, "start": py.start - py.size,
                    "end": py.start, "announce": log._announce, "unlist": None}
        assert {name: getattr(c, name) for name in fields} == expected
        assert py.seq == 2 and py.end - py.start == py.size
