"""When writes become durable: group commit, sync passes, and the background worker.

A *sync pass* syncs every segment with unsynced writes, oldest first, and then publishes
what it covered. Passes never overlap. Under ``SyncEach`` a writer that needs durability
either leads the next pass or waits for the running one: writers arriving together share
one fsync (group commit). The background worker runs the ``Milliseconds(n)`` flusher, writes
the index of sealed segments, and deletes segments that every cursor has passed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ._errors import StorageError
from ._log import Log, storage_error
from ._speedups import populate

log = logging.getLogger("walrus")

RECLAIM_EVERY = 0.1
"""Seconds between two looks for segments to delete (each look costs O(topics))."""
TICK = 0.25
"""Longest sleep of the worker: how soon consumed segments are noticed."""
CHECKPOINT_BYTES = 8 << 20
"""The active segment's index is rewritten each time it grows by this much, bounding what
a crash makes the next open rescan."""


class Durability:
    """Sync passes and group commit for one log."""

    def __init__(self, wal: Log) -> None:
        self.wal = wal
        self.cond = threading.Condition(threading.Lock())
        self.busy = False
        self.error: StorageError | None = None
        """A failed pass not reported yet: the next ``flush()`` raises it."""
        self.undone_through = -1
        """Pending writes up to this LSN were undone after a failed pass."""
        self.undo_error: StorageError | None = None
        self.waiting = 0
        """Writers blocked in :meth:`wait` behind a running pass."""
        self.crowd = 0
        """How many writers the last pass released: >0 means others are likely to append
        again in a moment, so the next leader lets them in before it syncs."""

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the right to run a pass (or to close and delete files) for a while."""
        with self.cond:
            while self.busy:
                self.cond.wait()
            self.busy = True
        try:
            yield
        finally:
            with self.cond:
                self.busy = False
                self.cond.notify_all()

    def pass_locked(self) -> None:
        """One sync pass; the caller holds :meth:`exclusive`."""
        wal = self.wal
        target, targets = wal.sync_targets()
        if target <= wal.durable and not wal.unsynced:
            return
        try:
            wal.backend.sync_files([seg.file for seg, _ in targets])
        except OSError as exc:
            error = storage_error(exc, "syncing the log (writes since the last successful sync "
                                       "may not be durable)")
            wal.sync_failed(target)
            with self.cond:
                self.undone_through = max(self.undone_through, target)
                self.undo_error = error
                if not wal.sync_each:
                    self.error = error
            raise error from exc
        wal.synced(target, targets)

    def wait(self, lsn: int) -> None:
        """Return once everything up to ``lsn`` is durable (SyncEach appends and reads).

        The first writer to arrive leads a pass; writers arriving while it runs wait and are
        covered by the next one. After a pass that released other writers, the new leader
        yields the GIL a few times first so they can append and share its fsync.
        """
        wal = self.wal
        with self.cond:
            while wal.durable < lsn:
                if lsn <= self.undone_through:
                    assert self.undo_error is not None
                    raise StorageError(self.undo_error.errno, str(self.undo_error))
                if not self.busy:
                    self.busy = True
                    break
                self.waiting += 1
                self.cond.wait()
                self.waiting -= 1
            else:
                return
            crowd = self.crowd
        try:
            if crowd:
                _gather(wal, crowd)
            self.pass_locked()
        finally:
            with self.cond:
                self.busy = False
                self.crowd = self.waiting
                self.cond.notify_all()

    def flush(self) -> None:
        """Make everything written so far durable; raise a failure nobody was told about."""
        with self.exclusive():
            error, self.error = self.error, None
            try:
                self.pass_locked()
            except StorageError:
                self.error = None  # raised to this caller: reported now, not again later
                raise
        if error is not None:
            raise StorageError(error.errno, str(error))

    def background_pass(self) -> None:
        """A flusher tick: sync if anything is dirty; failures wait for ``flush()``."""
        with self.exclusive():
            try:
                self.pass_locked()
            except StorageError as exc:
                log.error("background sync failed: %s", exc)


def _gather(wal: Log, crowd: int) -> None:
    """Give writers released by the last pass a moment to append before this one starts."""
    pending = len(wal.pending)
    for _ in range(2 * crowd):
        time.sleep(0)
        now = len(wal.pending)
        if now - pending >= crowd:
            return


class Background:
    """The worker thread of one instance."""

    def __init__(self, wal: Log, durability: Durability, interval: float | None) -> None:
        self.wal = wal
        self.durability = durability
        self.interval = interval
        """Seconds between flusher passes under ``Milliseconds(n)``; None: no flusher."""
        self.wakeup = threading.Event()
        self.stopping = False
        self.reclaim_seen = -1
        self.reclaim_after = 0.0
        self.checkpointed: dict[int, int] = {}
        """Segment number -> offset its last checkpoint index covers."""
        self.thread = threading.Thread(target=self._run, name="walrus-background", daemon=True)
        self.thread.start()

    def wake(self) -> None:
        self.wakeup.set()

    def stop(self) -> None:
        self.stopping = True
        self.wakeup.set()
        if self.thread is not threading.current_thread():
            self.thread.join()

    def _run(self) -> None:
        self.populate_active()
        timeout = self.interval if self.interval is not None else 0.5
        next_flush = time.monotonic() + timeout
        while not self.stopping:
            self.wakeup.wait(min(TICK, max(0.0, next_flush - time.monotonic())))
            self.wakeup.clear()
            if self.stopping:
                break
            try:
                if time.monotonic() >= next_flush:
                    next_flush = time.monotonic() + timeout
                    if self.interval is not None:
                        self.durability.background_pass()
                self.prepare_spare()
                self.index_sealed()
                self.reclaim()
                self.checkpoint_active()
            except Exception:  # never let the worker die silently
                log.exception("walrus background work failed")

    def checkpoint_active(self) -> None:
        """Index the synced part of the active segment once it grew by CHECKPOINT_BYTES.

        A crash then rescans at most that much of it on the next open.
        """
        wal = self.wal
        seg = wal.active
        if seg is None or seg.sealed or seg.end - self.checkpointed.get(seg.number, 0) \
                < CHECKPOINT_BYTES:
            return
        end = seg.end
        summary = wal.summary_of(seg, end)
        with self.durability.exclusive():
            try:
                self.durability.pass_locked()  # the index may only cover durable records
            except StorageError as exc:
                log.error("not checkpointing %s: %s", seg.path, exc)
                return
            if seg.sealed or wal.closed:
                return  # sealed meanwhile: its full index follows
            try:
                wal.write_index(seg, summary)
            except OSError as exc:
                log.warning("could not checkpoint the index of %s: %s", seg.path, exc)
                return
        self.checkpointed = {seg.number: end}

    def populate_active(self) -> None:
        """Pre-fault the unwritten rest of the segment the log was opened on."""
        with self.wal.lock:
            seg = self.wal.active
            view = None if seg is None or self.wal.closed else seg.view
            start = 0 if seg is None else seg.end
        if view is not None:
            try:
                populate(view, start, self.wal.populate_writable)
            except ValueError:  # closed meanwhile
                pass

    def prepare_spare(self) -> None:
        """Keep the next segment ready so that a roll never waits for a file to be made."""
        if self.wal.spare is None:
            try:
                self.wal.prepare_spare()
            except OSError as exc:
                log.warning("cannot prepare the next segment ahead of need: %s", exc)

    def run_once(self) -> None:
        """Index sealed segments and reclaim space now (tests and tools use this)."""
        self.reclaim_seen, self.reclaim_after = -1, 0.0
        self.index_sealed()
        self.reclaim()

    def index_sealed(self) -> None:
        """Sync sealed segments and write their index files (so reopening skips them)."""
        wal = self.wal
        if not wal.to_index:
            return
        with self.durability.exclusive():
            try:
                self.durability.pass_locked()
            except StorageError as exc:
                log.error("could not sync sealed segments: %s", exc)
                return
            for seg in list(wal.to_index):
                if seg in wal.unsynced:
                    continue
                try:
                    wal.write_index(seg, wal.summary_of(seg))
                except OSError as exc:
                    log.warning("could not write the index of %s: %s", seg.path, exc)
                    return
                wal.to_index.remove(seg)

    def reclaim(self) -> None:
        """Delete segments that every persisted cursor has passed."""
        wal = self.wal
        now = time.monotonic()
        if (len(wal.segments) < 2 or wal.cursor_writes == self.reclaim_seen
                or now < self.reclaim_after):
            return
        self.reclaim_seen = wal.cursor_writes
        self.reclaim_after = now + RECLAIM_EVERY
        persisted = {tid: t.persisted for tid, t in list(wal.by_tid.items())}
        with self.durability.exclusive():
            try:
                self.durability.pass_locked()  # the cursors below must be durable before deleting
            except StorageError as exc:
                log.error("not reclaiming space: %s", exc)
                return
            low = wal.low_watermark(persisted)
            doomed = wal.delete_before(low)
        if doomed:
            log.debug("reclaimed %d segment(s): %s", len(doomed),
                      ", ".join(s.path for s in doomed))
