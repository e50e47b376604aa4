"""When writes become durable: group commit, sync passes, and the background worker.

A *sync pass* syncs every segment with unsynced writes, oldest first, and then publishes
what it covered. Passes never overlap. Under ``SyncEach`` a writer that needs durability
either leads the next pass or waits for the running one: writers arriving together share
one fsync (group commit). Under ``Milliseconds(n)`` the flusher thread starts a pass every n ms
and does nothing else, so that no other work delays it; the background worker prepares the
next segment, writes the index of sealed segments and deletes segments that every cursor has
passed, holding the right to run a pass only for the passes it needs itself.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from . import _speedups
from ._codec import SegmentSummary
from ._consumers import Registry, lowest
from ._errors import StorageError, WalrusClosedError, storage_error
from ._indexing import index_segment, summary_of, write_index
from ._log import Log
from ._prefault import Prefaulter, SyncCadence
from ._reclaim import delete_before, low_watermark
from ._reserve import DescriptorReserve
from ._segment import Segment
from .backends._base import Backend
from .backends._mmap import MmapFile
from .backends._pwrite import PwriteFile

logger = logging.getLogger("walrus")

RECLAIM_EVERY = 0.1
"""Seconds between two looks for segments to delete (each look costs O(topics))."""
TICK = 0.25
"""Longest sleep of the worker: how soon consumed segments are noticed."""
RECHECK = 0.1
"""Seconds after which a thread waiting for a pass (or for the right to run one) looks again
by itself. A wake-up is given by calls in the thread that ends a pass; in the main thread a
signal handler raising (KeyboardInterrupt) can land before them, and Python code cannot rule
that out, so a wake-up may be lost: waiting threads then look again instead of sleeping for
ever. Costs ten wake-ups a second in a waiting thread, none on the append path."""
GATHER = 0.0005
"""Seconds a writer that a pass did not cover waits for another writer to lead the next
pass, before the first sync's duration is known (then that duration, at least
``GATHER_FLOOR``, at most ``RECHECK``)."""
GATHER_FLOOR = 0.00005
"""Where syncs cost next to nothing (a RAM disk), the wait above stays long enough for a
writer's wake-up to be worth it."""
SLEEP_THROUGH = 3
"""A writer that finds a pass running sleeps this many times ``gather`` before it looks
again by itself: long enough for the running pass to end and for the pass a writer coming
back from it leads (which covers the sleeper) to end too, so that the sleeper's next wake-up
is the one that pass gives. With one ``gather`` it woke by the clock near the end of the
running pass and went back to sleep: 858-898 of 2,400 appends of four threads under SyncEach
did (mmap, 100-byte entries), 8-35 with three (docs/performance.md)."""
CHECKPOINT_BYTES = 8 << 20
"""The active segment's index is rewritten each time it grows by this much, bounding what
a crash makes the next open rescan."""


class Durability:
    """Sync passes and group commit for one log. ``mutex`` guards the fields, but where
    one's docstring says otherwise."""

    __slots__ = ("busy", "cond", "ended", "error", "gather", "log", "mutex", "on_cond", "owner",
                 "sleepers", "stopped", "undo_error", "undone")
    """Fixed fields: the C pass (``sync_pass`` in ``walrus/_native/hot.c``) reads and stores
    them at their offsets."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.mutex = threading.Lock()
        """The condition's lock. Main-thread code takes it with ``with self.mutex``: a C
        ``__enter__``, so an interrupt cannot land between taking it and the block (as it
        can inside ``Condition.__enter__``, a Python function)."""
        self.cond = threading.Condition(self.mutex)
        self.busy = False
        self.owner = 0
        """The thread holding ``busy``. A thread that finds it holds ``busy`` while not in a
        pass itself was interrupted before it could give it back (see :meth:`forgive`)."""
        self.error: StorageError | None = None
        """A failed pass not reported yet: the next ``flush()`` raises it."""
        self.undone = log.sync_book.undone
        """The LSN ranges of the writes failed passes undid (the sync book's, read here
        without the append lock; see :meth:`raise_if_undone`)."""
        self.undo_error: StorageError | None = None
        """The last failed pass's error, which the writers it undid raise."""
        self.sleepers: list[tuple[int, Cue]] = []
        """(LSN, event) of each blocked writer: a pass wakes only those it made durable."""
        self.gather = GATHER
        """Seconds a writer that a pass did not cover waits for another to lead the next one
        before it leads it itself: the last sync's duration (see :meth:`wait`). Stored by
        the pass's holder without ``mutex`` (one store), read under it."""
        self.ended = 0.0
        """When the last pass that left sleepers uncovered ended (``time.monotonic``)."""
        self.stopped = False
        """Set by :meth:`stop` (closing): every waiting writer is woken to lead its own pass."""
        self.on_cond = 0
        """Threads blocked on ``cond`` (:meth:`exclusive`): a pass that ends with none skips
        ``notify_all``, a Python call of a few thousand instructions on a lone writer's
        path. Counted under ``mutex``; too high only costs a needless call."""

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the right to run a pass (or to close and delete files) for a while."""
        taken = False
        me = _ident()
        try:
            with self.mutex:
                while self.busy and self.owner != me:  # its own: left by an interrupt
                    self.wait_cond()
                self.owner = me
                self.busy = True
                taken = True  # no call since the store above: no interrupt between the two
            yield
        finally:
            if taken:
                self.handed_back()

    def wait_cond(self) -> None:
        """Block on ``cond`` (held) until a pass ends, counted in :attr:`on_cond`."""
        self.on_cond += 1
        try:
            self.cond.wait(RECHECK)
        finally:
            self.on_cond -= 1

    def forgive(self) -> None:
        """Give back a right to run passes that this thread (not in a pass now) still holds.

        Only the main thread gets interrupts (KeyboardInterrupt from a signal handler), at a
        call or while blocked taking a lock, and Python code cannot rule out one landing
        before a ``finally`` has given the right back (a blocked ``acquire`` runs signal
        handlers; so does entering a function). So the right records its holder, and the
        holder's next call (an append, a flush, ``close()``) sees it left behind and gives it
        back. The caller holds ``cond``.
        """
        self.busy = False
        self.released()

    def reclaim(self) -> None:
        """:meth:`forgive` for a thread about to wait for the others (``close()``)."""
        with self.mutex:
            if self.busy and self.owner == _ident():
                self.forgive()

    def released(self) -> None:
        """A pass (or exclusive work) ended; the caller holds ``cond``.

        Wakes the writers it made durable or a failure undid (they raise), and all of them
        once closing. The others sleep on: a writer coming back from its last append leads
        the next pass, which covers them too (see :meth:`wait`). Waking only those a pass
        concerns keeps the others from taking the GIL for nothing.
        """
        self.busy = False
        if self.sleepers:
            durable = self.log.durable
            if self.undone:  # the writers a failed pass undid wake to raise
                durable = max(durable, self.undone[-1][1])
            everyone = self.stopped
            keep = []
            for lsn, event in self.sleepers:
                if everyone or lsn <= durable:
                    event.set()
                else:
                    keep.append((lsn, event))
            self.sleepers = keep
            if keep:
                self.ended = _monotonic()
        if self.on_cond:
            self.cond.notify_all()  # exclusive() callers wait on the condition

    def handed_back(self) -> None:
        """Give back the right to run passes (taken by this thread) and wake whom it
        concerns. `with self.mutex` enters in C, unlike `with self.cond`; the store comes
        first, before any call (see :meth:`wait`)."""
        with self.mutex:
            self.busy = False
            self.released()

    def pass_locked(self) -> None:
        """One sync pass; the caller holds :meth:`exclusive`."""
        log = self.log
        target, targets = log.sync_book.sync_targets()
        if target <= log.durable and not log.unsynced:
            return
        start = _monotonic()
        try:
            log.backend.sync_files([targets[0][0].file] if len(targets) == 1
                                   else [seg.file for seg, _ in targets])
            self.gather = min(max(_monotonic() - start, GATHER_FLOOR), RECHECK)
        except OSError as exc:
            self.pass_failed(exc)
        log.sync_book.synced(target, targets)

    def pass_failed(self, exc: OSError) -> None:
        """The pass's sync raised ``exc`` (the caller holds :meth:`exclusive`): undo what
        it must and raise the StorageError every writer it concerns is told."""
        log = self.log
        error = storage_error(exc, "syncing the log (writes since the last successful sync "
                                   "may not be durable)")
        with self.mutex:  # first: a writer that finds its write undone raises this
            self.undo_error = error
            if not log.sync_each:
                self.error = error
        log.sync_failed()  # notes what it undid in ``undone``
        raise error from exc

    def wait(self, lsn: int) -> None:
        """Return once everything up to ``lsn`` is durable (SyncEach appends and reads).

        Group commit with a leader and followers: a writer that finds no pass running leads
        one, which covers everything written so far; a writer that finds one running sleeps
        until a pass covers it. A pass wakes only the writers it covered. Those it did not
        (they wrote during its sync) sleep on, and the next writer to arrive leads the pass
        that covers them with it: with several threads appending, that is one just released
        coming back with its next entry, which then shares the sync instead of waiting for
        another. Should nobody arrive, a sleeper leads itself, at the latest
        ``SLEEP_THROUGH`` times ``gather`` (the last sync's duration) after it fell asleep,
        so a write waits at most two to three syncs longer than it would with an immediate
        handover. A writer alone finds no pass running and leads its own:
        no thread handoff on its path (and, with the C extension, that pass runs in C:
        ``sync_pass`` in ``walrus/_native/hot.c``, by the same rules).
        """
        log = self.log
        if _sync_pass is not None and _sync_pass(self, lsn):
            if log.durable < lsn:
                raise _gone()
            return
        event = None
        patience = 0.0
        timed_out = False
        lead = False
        me = _ident()
        try:
            while True:
                with self.mutex:
                    if self.busy and self.owner == me:
                        self.forgive()
                    if self.undone:  # asked first: later writes may be durable past it
                        self.raise_if_undone(lsn)
                    if log.durable >= lsn:
                        return
                    if self.busy:  # sleep until this pass, or the next, covers the write
                        patience = min(patience * 2 if timed_out
                                       else SLEEP_THROUGH * self.gather, RECHECK)
                    else:
                        # A sleeper the last pass did not cover gives a writer coming back
                        # from it the time of one sync to lead the next pass first.
                        left = (self.ended + self.gather - _monotonic()
                                if timed_out and not self.stopped else 0.0)
                        if left <= 0:
                            # No call between these two stores: an interrupt (a signal
                            # handler raising KeyboardInterrupt) cannot land between them,
                            # so the finally below always gives back the right it took.
                            self.owner = me
                            self.busy = True
                            lead = True
                            break
                        patience = left
                    if event is None:
                        event = _event()
                    event.clear()
                    self.sleepers.append((lsn, event))
                timed_out = not event.wait(patience)
                if timed_out:
                    with self.mutex:  # not woken: no longer a sleeper
                        if (lsn, event) in self.sleepers:
                            self.sleepers.remove((lsn, event))
            self.pass_locked()
        finally:
            if lead:
                # An interrupt (a signal handler raising in the main thread) lands only at
                # a call: one before the store in it could leave the right to run passes
                # taken for ever, hanging every later sync and close() (see forgive()).
                self.handed_back()
        if log.durable < lsn:
            raise _gone()

    def raise_if_undone(self, lsn: int) -> None:
        """Raise the failed pass's error if it undid the write ending at ``lsn``; the caller
        holds ``cond``.

        :meth:`wait` asks this before it compares ``lsn`` with the durable point: a writer
        may look only after newer writes (in a new segment, past the undone ones) were made
        durable, and must not take that for its own write.
        """
        for start, end in reversed(self.undone):
            if start < lsn <= end:
                error = self.undo_error
                assert error is not None  # noted before the pass undoes anything
                raise StorageError(error.errno, str(error))

    def stop(self) -> None:
        """Closing: wake every waiting writer, which leads its own pass from now on."""
        with self.mutex:
            self.stopped = True
            if not self.busy:
                self.released()

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
                logger.error("background sync failed: %s", exc)


_local = threading.local()
_ident = threading.get_ident
_monotonic = time.monotonic


def _gone() -> StorageError:
    """A pass that starts after a write covers it unless a failed pass undid it, and
    :meth:`Durability.wait` looked for that first: never report a write that is gone as
    durable, and never look again in a loop: fail it."""
    return StorageError(errno.EIO, "syncing the log: the write is no longer in the log")


_sync_pass: Callable[[Durability, int], bool | None] | None = _speedups.hot_sync_pass
"""The lone writer's pass in C (None without the extension): ``sync_pass(durability, lsn)``
is True once ``lsn`` is durable, None when :meth:`Durability.wait` decides. With four threads
appending, how many entries share a sync depends on timing, with this pass or without it: the
``fdatasync`` calls of 200 entries from four threads, 80 fresh processes each way, alternated
(2026-12-05): with it median 101, largest 140; without it median 101, largest 205, three over
150 (docs/performance.md)."""
if _speedups.hot_use_durability is not None:
    _speedups.hot_use_durability(globals(), Backend.sync_files,
                                 {MmapFile: MmapFile.sync, PwriteFile: PwriteFile.sync},
                                 Log._announce)


class Cue:
    """A wake-up that a signal handler raising in the thread that gives it cannot break.

    ``Event.set`` enters a Condition in Python: an interrupt landing there leaves the
    Event's lock taken, and every later ``set`` (a roll waking the worker, a pass waking
    writers) blocks for ever. Here giving the cue is releasing a lock, one C call.
    """

    __slots__ = ("lock",)

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lock.acquire()

    def set(self) -> None:
        try:
            self.lock.release()
        except RuntimeError:  # given already, not taken yet
            pass

    def clear(self) -> None:
        self.lock.acquire(False)

    def wait(self, timeout: float = -1) -> bool:
        """Block until the cue is given (or ``timeout`` seconds); taking it clears it."""
        return self.lock.acquire(timeout=timeout)


def _event() -> Cue:
    """This thread's reusable wake-up cue (a writer waits on one pass at a time)."""
    event: Cue | None = getattr(_local, "event", None)
    if event is None:
        event = _local.event = Cue()
    return event


class Flusher:
    """The ``Milliseconds(n)`` thread: a sync pass starts every n ms, whatever else goes on."""

    def __init__(self, durability: Durability, interval: float) -> None:
        self.durability = durability
        self.interval = interval
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="walrus-flush", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()

    def _run(self) -> None:
        due = time.monotonic() + self.interval
        while not self.stopping.wait(max(0.0, due - time.monotonic())):
            # The next pass is due one interval after this one starts, not after it ends.
            due = max(due + self.interval, time.monotonic())
            try:
                self.durability.background_pass()
            except Exception:  # never let the thread die silently
                logger.exception("walrus flusher failed")


class Background:
    """The worker thread of one instance."""

    def __init__(self, log: Log, durability: Durability, interval: float | None,
                 writeback: float | None = None, *, registry: Registry | None = None,
                 expiry: Callable[[], bool] | None = None,
                 on_indexed: Callable[[SegmentSummary], None] | None = None,
                 reserve: DescriptorReserve | None = None) -> None:
        """Everything a pass relies on is given here, before the thread starts: a pass that
        ran before it knew the consumer files would delete what only they hold."""
        self.log = log
        self.reserve = DescriptorReserve(0) if reserve is None else reserve
        """Descriptors held back for this thread's passes (see ``_reserve.py``); released
        when it stops."""
        self.durability = durability
        self.flusher = None if interval is None else Flusher(durability, interval)
        """Syncs every ``interval`` seconds under ``Milliseconds(n)``; None: no flusher."""
        self.wakeup = Cue()
        self.stopping = False
        self.reclaim_seen = -1
        self.reclaim_after = 0.0
        self.checkpointed: dict[int, int] = {}
        """Segment number -> offset its last checkpoint index covers."""
        self.registry = registry
        """The consumer files of the directory: their positions hold segments too."""
        self.named_seen: dict[str, tuple[str, int]] | None = {}
        self.expiry = expiry
        """Retention's expiry: True when a first stored offset moved."""
        self.expiry_failed: str | None = None
        """Why the last expiry failed (logged once per reason), or None."""
        self.on_indexed = on_indexed
        """Told each index the worker writes (retention keeps its slices' sizes)."""
        self.work = threading.RLock()
        """Serialises indexing and reclaiming (the worker, and ``run_once`` from outside); no
        sync pass waits for it. Reentrant: a thread that holds it (a tool keeping the worker
        still) and appends may reach ``run_once`` again through a roll's backpressure."""
        self.prefaulter: Prefaulter | None = None
        """Faults pages in ahead of the writer, when something other than each append's own
        sync writes them back (``writeback``: the flusher's interval, or the kernel's under
        NoFsync; None under SyncEach) and the segments are mapped writable."""
        if writeback is not None:
            self.prefaulter = Prefaulter.start(log, SyncCadence(writeback, CHECKPOINT_BYTES, TICK))
        self.thread = threading.Thread(target=self._run, name="walrus-background", daemon=True)
        self.thread.start()

    def wake(self) -> None:
        self.wakeup.set()

    def stop(self) -> None:
        self.stopping = True
        self.wakeup.set()
        if self.thread is not threading.current_thread():
            self.thread.join()
        with self.work:  # a writer relieving the worker (run_once) has finished too
            pass
        if self.flusher is not None:
            self.flusher.stop()
        if self.prefaulter is not None:
            self.prefaulter.stop()

    def _run(self) -> None:
        self.populate_active()
        while not self.stopping:
            self.wakeup.wait(TICK)
            if self.stopping:
                break
            try:
                self.prepare_spare()
                with self.work, self.reserve.lent_out():
                    self.index_sealed()
                    self.expire()
                    self.reclaim()
                    self.checkpoint_active()
            except Exception:  # never let the worker die silently
                logger.exception("walrus background work failed")
        self.reserve.release()

    def checkpoint_active(self) -> None:
        """Index the synced part of the active segment once it grew by CHECKPOINT_BYTES.

        A crash then rescans at most that much of it on the next open.
        """
        log = self.log
        seg = log.active
        if seg is None or seg.sealed or seg.end - self.checkpointed.get(seg.number, 0) \
                < CHECKPOINT_BYTES:
            return
        end = seg.end
        summary = summary_of(log, seg, end)
        if not self.synced():  # the index may only cover durable records
            return
        if seg.sealed or log.closed:
            return  # sealed meanwhile: its full index follows
        try:  # this thread alone writes indexes until close() stops it: no pass waits for it
            write_index(log.directory, seg, summary)
        except OSError as exc:
            logger.warning("could not checkpoint the index of %s: %s", seg.path, exc)
            return
        self.checkpointed = {seg.number: end}

    def synced(self) -> bool:
        """Run a sync pass for work that needs one (indexing, reclaiming); False if it failed."""
        with self.durability.exclusive():
            try:
                self.durability.pass_locked()
            except StorageError as exc:
                logger.error("background work waits for a sync that failed: %s", exc)
                return False
        return True

    def populate_active(self) -> None:
        """Pre-fault the unwritten rest of the segment the log was opened on."""
        seg = self.log.active
        if seg is not None and not self.log.closed:
            seg.populate(seg.end)

    def prepare_spare(self) -> None:
        """Keep the next segment ready so that a roll never waits for a file to be made."""
        if self.log.spare is None:
            try:
                self.log.prepare_spare()
            except OSError as exc:
                logger.warning("cannot prepare the next segment ahead of need: %s", exc)

    def run_once(self) -> None:
        """Index sealed segments, expire and reclaim space now (tests and tools use this, and
        a writer whose roll waits for retention: see ``_backpressure.py``); nothing once the
        worker stopped (closing)."""
        with self.work:
            if self.stopping or self.log.closed:
                return
            self.reclaim_seen, self.reclaim_after = -1, 0.0
            self.index_sealed()
            self.expire()
            self.reclaim()

    def _reclaim(self, named: dict[str, int]) -> list[Segment]:
        """Delete what every cursor has passed: the shared ones and ``named`` (per topic
        name, the lowest durable position of its named consumers)."""
        log = self.log
        persisted = {}
        for tid, t in list(log.by_tid.items()):
            hold = named.get(t.name)
            persisted[tid] = t.persisted if hold is None else min(hold, t.persisted)
        if not self.synced():  # the cursors above must be durable before deleting
            return []
        return delete_before(log, low_watermark(log, persisted))

    def index_sealed(self) -> None:
        """Sync sealed segments, write their index files (so reopening skips them), and
        unmap their pages: a log nobody consumes would otherwise grow the process's RSS."""
        log = self.log
        if not log.to_index or not self.synced():
            return
        for seg in list(log.to_index):
            if seg in log.unsynced:
                continue
            try:
                summary = index_segment(log, seg)
            except OSError as exc:
                logger.warning("could not write the index of %s: %s", seg.path, exc)
                return
            if self.on_indexed is not None:
                self.on_indexed(summary)
            log.indexed([seg])
            seg.retire()  # clean now, and read again only by a late consumer

    def reclaim(self) -> None:
        """Delete segments that every persisted cursor has passed."""
        log = self.log
        now = time.monotonic()
        if len(log.segments) < 2 or now < self.reclaim_after:
            return
        registry = self.registry
        if registry is None:
            if log.cursor_writes == self.reclaim_seen:
                return
            self.reclaim_seen, self.reclaim_after = log.cursor_writes, now + RECLAIM_EVERY
            doomed = self._reclaim({})
        else:  # no consumer of any process registers or seeks back meanwhile
            with registry.locked(wait=False) as free:
                if not free:
                    return  # another process holds it for a moment: the next tick
                named = registry.positions()
                if log.cursor_writes == self.reclaim_seen and named == self.named_seen:
                    return
                self.reclaim_seen, self.reclaim_after = log.cursor_writes, now + RECLAIM_EVERY
                self.named_seen = named
                if named is None:  # a consumer file nobody can read: its topic unknown, it
                    # holds every entry still stored, and only what expired goes
                    hold = {t.name: 0 for t in list(log.by_tid.values())}
                else:
                    registry.sync(named)
                    hold = lowest(named)
                doomed = self._reclaim(hold)
        if doomed:
            logger.debug("reclaimed %d segment(s): %s", len(doomed),
                      ", ".join(s.path for s in doomed))

    def expire(self) -> None:
        """Apply retention (under the registry lock, as reclamation: no consumer seeks back
        meanwhile); what expired is reclaimed at once."""
        expiry, registry = self.expiry, self.registry
        if expiry is None:
            return
        try:
            if registry is None:
                moved = expiry()
            else:
                with registry.locked(wait=False) as free:
                    if not free:
                        return
                    moved = expiry()
        except WalrusClosedError:  # closing meanwhile: what it wrote is whole or not begun
            return
        except Exception as exc:  # reclamation goes on: consumed segments free space still
            if str(exc) != self.expiry_failed:
                logger.error("retention: expiry failed (%s); it is tried again at each pass, "
                             "and consumed segments are still deleted", exc, exc_info=exc)
            self.expiry_failed = str(exc)
            return
        if self.expiry_failed is not None:
            logger.warning("retention: expiry works again")
            self.expiry_failed = None
        if moved:
            self.reclaim_seen, self.reclaim_after = -1, 0.0
