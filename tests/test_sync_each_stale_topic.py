"""A failed pass that undoes a topic's creation, against a writer that found the topic just
before: the writer must not append to the topic object the undo removed (its entry would
belong to no topic, its offset would be handed out again by the topic made anew)."""

from __future__ import annotations

import errno
import gc
import threading
from pathlib import Path

import pytest

from walrus import FsyncSchedule, StorageError, Walrus, _log, _speedups, _syncbook
from walrus.testing._faults import powered

from .conftest import FAULT_BACKENDS
from .test_sync_each_paths import _read, _until


@pytest.mark.parametrize("faulty", FAULT_BACKENDS[:1])
@pytest.mark.parametrize("batch", [False, True])
def test_a_writer_that_found_a_topic_an_undo_removes_does_not_write_to_it(
        tmp_path: Path, faulty: str, batch: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writer 1 creates topic "t" and its pass fails; the undo removes "t" while it holds
    the append lock, and writer 3, which found "t" before, waits for that lock. Whatever
    writer 3 is told, an offset it is given must hold its entry, now and after reopening,
    and no offset of "t" goes to two acknowledged entries."""
    blocked = threading.Event()
    real_wait_for = _log.wait_for

    def noting_wait_for(lock: threading.Lock) -> None:
        if threading.current_thread().name == "w3":
            blocked.set()
        real_wait_for(lock)

    monkeypatch.setattr(_log, "wait_for", noting_wait_for)
    real_undo = _syncbook.PendingEntries.undo
    late: dict[str, object] = {}

    def late_writer(wal: Walrus) -> None:
        try:
            late["offset"] = (wal.batch_append_for_topic("t", [b"late"]) if batch
                              else wal.append_for_topic("t", b"late"))
        except StorageError as exc:
            late["error"] = exc

    def undo(self: _syncbook.PendingEntries) -> None:
        if self.unlist is not None and "thread" not in late:  # writer 1's new topic
            w3 = late["thread"] = threading.Thread(target=late_writer, args=(late["wal"],),
                                                   name="w3")
            w3.start()
            _until(blocked.is_set)  # it found "t" and waits for the append lock
        real_undo(self)

    monkeypatch.setattr(_syncbook.PendingEntries, "undo", undo)
    with powered() as m:
        with Walrus(data_dir=tmp_path, backend=faulty,
                    fsync_schedule=FsyncSchedule.SyncEach) as wal:
            late["wal"] = wal
            wal.append_for_topic("other", b"0")
            m.arm("sync", errno.EIO, times=1)
            with pytest.raises(StorageError):
                wal.append_for_topic("t", b"first")
            w3 = late["thread"]
            assert isinstance(w3, threading.Thread)
            w3.join(30)
            assert not w3.is_alive()
            again = wal.append_for_topic("t", b"again")
            entries = _read(wal, "t")
            offset = late.get("offset")
            if isinstance(offset, int):  # else it raised: nothing was acknowledged
                assert offset != again, "an offset handed out twice"
                assert entries[offset] == b"late"
        with Walrus(data_dir=tmp_path, backend=faulty,
                    fsync_schedule=FsyncSchedule.SyncEach) as wal:
            assert _read(wal, "t") == entries


@pytest.mark.skipif(_speedups.hot_append is None, reason=_speedups.HOT_REASON)
def test_the_c_append_looks_again_for_its_topic_once_the_lock_is_free(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The C append finds "t", then makes the write's objects before it looks at the append
    lock: a collection there runs Python code (here a gc callback), and meanwhile a failed
    pass undoes the creation of "t" and another append rolls to a new segment. The C append
    must not write into the topic object the undo removed."""
    found, undone = threading.Event(), threading.Event()
    armed: list[bool] = []

    def stall(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and armed and threading.current_thread().name == "w3":
            armed.clear()
            found.set()
            undone.wait(30)

    late: dict[str, object] = {}

    def late_writer(wal: Walrus) -> None:
        try:
            armed.append(True)
            gc.set_threshold(1)  # the next object the collector tracks starts a collection
            late["offset"] = wal.append_for_topic("t", b"late")
        except StorageError as exc:
            late["error"] = exc

    real_undo = _syncbook.PendingEntries.undo

    def undo(self: _syncbook.PendingEntries) -> None:
        if self.unlist is not None and "thread" not in late:  # writer 1's new topic
            w3 = late["thread"] = threading.Thread(target=late_writer, args=(late["wal"],),
                                                   name="w3")
            w3.start()
            _until(found.is_set)  # inside the C append, past its look-up of "t"
        real_undo(self)

    monkeypatch.setattr(_syncbook.PendingEntries, "undo", undo)
    threshold = gc.get_threshold()
    gc.callbacks.append(stall)
    try:
        with Walrus(data_dir=tmp_path, backend="mmap",
                    fsync_schedule=FsyncSchedule.SyncEach) as wal:
            late["wal"] = wal
            wal.append_for_topic("other", b"0")
            backend = wal._log.backend
            real = backend.sync_files

            def failing(files: object) -> None:
                monkeypatch.setattr(backend, "sync_files", real)
                raise OSError(errno.EIO, "injected")

            monkeypatch.setattr(backend, "sync_files", failing)
            with pytest.raises(StorageError):
                wal.append_for_topic("t", b"first")
            wal.append_for_topic("other", b"1")  # rolls past the segment the undo ended
            undone.set()
            w3 = late["thread"]
            assert isinstance(w3, threading.Thread)
            w3.join(30)
            assert not w3.is_alive()
            gc.set_threshold(*threshold)
            again = wal.append_for_topic("t", b"again")
            assert "thread" in late and not armed, "the C append never got there"
            offset = late.get("offset")
            if isinstance(offset, int):  # else it raised: nothing was acknowledged
                assert offset != again, "an offset handed out twice"
                assert _read(wal, "t")[offset] == b"late"
    finally:
        gc.callbacks.remove(stall)
        gc.set_threshold(*threshold)
