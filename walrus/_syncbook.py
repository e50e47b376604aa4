"""Sync bookkeeping: what a sync pass must cover, and what a pass settles.

A sync pass runs without the append lock (an fsync takes milliseconds): it asks for its
targets, syncs them, and reports back. :class:`SyncBook` answers both: it owns what the
targets are made of beyond the active segment (the sealed segments not synced yet), lets a
pass go on while a roll holds the append lock to make a file, and settles what a pass made
durable; the log keeps the durable point itself (every record claims it), and is told
through :meth:`Log.durable_through`. :class:`Pending` is what a ``SyncEach`` write leaves
until a pass settles it: published once durable, or undone if the pass failed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

from . import _speedups
from ._codec import TopicSummary
from ._segment import Segment
from ._topics import Topic
from ._waiting import SPINS, wait_for

ROLL_POLL = 0.001
"""Seconds a sync pass waits between two looks for a roll under way, once the append lock
was held longer than SPINS."""

Targets = tuple[int, list[tuple[Segment, int]]]
"""What a sync pass must cover: (LSN written so far, [(segment, end)])."""


class _Log(Protocol):
    """What the book asks of the log (under the append lock)."""

    @property
    def active(self) -> Segment | None: ...

    @property
    def durable(self) -> int: ...

    def durable_through(self, target: int) -> None: ...


class SyncBook:
    """The writes a sync pass must still settle, the sealed segments it must still cover,
    and the targets a roll froze.

    Guarded by the log's append lock, ``_mutex``: ``pending`` (the ``SyncEach`` writes not
    durable yet, oldest first: entered through :attr:`add`, settled when a pass succeeded
    or undone by :meth:`undo_all`) and ``unsynced`` (sealed segments with writes not yet
    synced, oldest first: a roll adds the one it seals, a pass that covered one removes it).
    ``undone`` (the LSN ranges of the writes failed passes undid) is added to under it too,
    and read by the writers' waits without it (see :meth:`undo_all`).

    Set by a roll under that lock, but read or added to by a pass without it: ``_frozen``
    (while the roll makes the next segment, the targets as it found them) and ``_deferred``
    (passes that ended meanwhile, which the roll publishes). That is their point, a pass
    must not wait for the allocation; single stores and list operations, atomic under the
    GIL. Set once: ``_log`` (told what a pass made durable), ``_mutex``, ``_sync_each``.
    """

    __slots__ = ("_deferred", "_frozen", "_log", "_mutex", "_sync_each", "add", "pending",
                 "undone", "unsynced")

    def __init__(self, log: _Log, mutex: threading.Lock, unsynced: list[Segment],
                 sync_each: bool) -> None:
        self._log = log
        self._mutex = mutex
        self._sync_each = sync_each
        self.pending: list[Pending] = []
        self.add = self.pending.append
        """Enter a write's :class:`Pending` (under the append lock). A C call, so a write's
        bookkeeping, which is plain stores, can end with it: an interrupt lands after it,
        never inside (``pending`` is therefore never rebound, only changed in place)."""
        self.unsynced = unsynced
        self.undone: list[tuple[int, int]] = []
        """(start, end) of each run of writes a failed pass undid: a wait for an LSN in
        ``(start, end]`` (a write's end) is for an undone write. Only ever added to, in
        place (a failure is rare; the durability holds the list): a wait may look without
        the append lock, and however late."""
        self._frozen: Targets | None = None
        self._deferred: list[Targets] = []

    def sync_targets(self) -> Targets:
        """What a sync pass must cover right now.

        While a roll holds the append lock to make a file (slow on some file systems), the
        targets it saw are the answer: nothing can be written meanwhile, and the sync that
        keeps the schedule's promise must not wait for the allocation.

        With no sealed segment left to sync (the common case) the answer is the active
        segment up to its end, read without the append lock, which a pass would otherwise
        take and give back for two loads. That is sound for the pass's caller (the holder of
        the right to run passes): every byte below an end already stored was written before
        it (a write's bookkeeping stores the end last); only a pass removes a segment from
        ``unsynced`` or cuts the log back; and a roll lists the segment it seals in
        ``unsynced`` before it switches, so the list is read after the active segment: once
        a roll switched, the list is not empty and the answer comes from under the lock.
        """
        active = self._log.active
        if active is not None:
            end = active.end
            if not self.unsynced:
                return active.lsn_base | end, [(active, end)]
        if self._rolling():
            frozen = self._frozen
            if frozen is not None:
                return frozen
        with self._mutex:
            return self._targets()

    def _targets(self) -> Targets:
        """The sync targets now (under the append lock)."""
        active = self._log.active
        assert active is not None
        unsynced = self.unsynced
        targets = [(s, s.end) for s in unsynced] if unsynced else []
        targets.append((active, active.end))
        return active.lsn_base | active.end, targets

    def synced(self, target: int, targets: list[tuple[Segment, int]]) -> None:
        """A sync pass covering ``targets`` succeeded: publish what it made durable.

        Unless writers wait for it (SyncEach), a roll making a file publishes it when done:
        the next pass must not wait for the allocation either.
        """
        if not self._sync_each and self._rolling() and self._frozen is not None:
            self._deferred += [(target, targets)]  # no call since the test: the roll sees it
            return
        if self._mutex.locked():
            wait_for(self._mutex)
        with self._mutex:
            self._settle(target, targets)

    def _rolling(self) -> bool:
        """Wait for the append lock to look free; True instead once a roll holds it to make
        a file (``_frozen`` is set)."""
        mutex = self._mutex
        if not mutex.locked():  # the common case, without the loop's allocations
            return False
        for spin in range(SPINS + 1):
            if not mutex.locked():
                return False
            if self._frozen is not None:
                return True
            time.sleep(0 if spin < SPINS else ROLL_POLL)  # see wait_for
        while mutex.locked():
            if self._frozen is not None:
                return True
            time.sleep(ROLL_POLL)
        return False

    def freeze(self) -> None:
        """A roll is about to make a file: passes meanwhile cover what is written now."""
        self._frozen = self._targets()

    def thaw(self) -> None:
        """The roll made its file (or failed): publish the passes that ended meanwhile."""
        self._frozen = None
        deferred, self._deferred = self._deferred, []
        for target, targets in deferred:
            self._settle(target, targets)

    def sealing(self, seg: Segment) -> None:
        """A roll is sealing ``seg``: passes must cover its end. Told before the roll's
        switch (which is plain stores), so an interrupt in between leaves the active segment
        listed too: one more sync, never one less."""
        self.unsynced += [seg]

    def _settle(self, target: int, targets: list[tuple[Segment, int]]) -> None:
        """A pass synced ``targets``, up to LSN ``target`` (under the append lock): tell the
        log, publish the writes it made durable, and forget the segments it covered. A
        segment counts as synced only up to where the pass found it (one that was active
        when the pass began may have been written on, and sealed, meanwhile)."""
        self._log.durable_through(target)
        if self.unsynced:
            ends = {id(seg): end for seg, end in targets}
            self.unsynced = [s for s in self.unsynced if ends.get(id(s), -1) < s.end]
        pending = self.pending
        if pending:
            done = 0
            for item in pending:
                if item.end > target:
                    break
                item.publish()
                done += 1
            del pending[:done]

    def undo_all(self) -> int | None:
        """A pass failed (under the append lock): undo every pending write that is not
        durable, newest first, those made after the pass took its targets too, and note
        them in :attr:`undone`; returns the LSN where the first began (None if there was
        none).

        A pending write may be durable already: an interrupt (Ctrl-C in a pass's thread)
        can land in :meth:`_settle` after the durable point moved and before the writes it
        covered left the list, and their writers may have returned. Those are never undone;
        the next pass publishes them."""
        pending = self.pending
        durable = self._log.durable
        first = 0
        while first < len(pending) and pending[first].end <= durable:
            first += 1
        if first == len(pending):
            return None
        start = pending[first].start
        # Noted, and the writes taken off the list, before any call: an interrupt landing
        # in the undos below must neither leave a writer whose write is gone to find the
        # log durable past it later (once newer writes were synced) and report success,
        # nor leave an undone write for a later pass to publish.
        self.undone += [(start, pending[-1].end)]
        doomed = pending[first:]
        del pending[first:]
        for item in reversed(doomed):
            item.undo()
        return start

    def drop_from(self, number: int) -> None:
        """Segments from ``number`` on are no longer part of the log."""
        self.unsynced = [s for s in self.unsynced if s.number < number]


class Pending:
    """A write made under ``SyncEach`` that is not durable yet (published or undone later).

    Each kind of write is a subclass with its own ``publish`` and ``undo`` and its state in
    slots: one object per write, no closures (a durable append makes one)."""

    __slots__ = ("end", "start")

    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.end = end

    def publish(self) -> None:
        """The write is durable: make it visible (nothing to do for a state record)."""

    def undo(self) -> None:  # pragma: no cover - every kind undoes its own write
        raise NotImplementedError


class PendingEntries(Pending):
    """Entries ``seq`` to ``seq + count`` of ``t`` (``size`` bytes on disk): published (made
    visible, and ``announce``d to its waiting readers) once durable, undone if the sync
    fails; ``unlist`` removes a topic they created. Undo runs newest first, so each undo
    removes exactly what its own append added. The C append (``walrus/_native/hot.c``)
    makes one without calling ``__init__``, field by field: keep ``__init__`` plain stores."""

    __slots__ = ("announce", "count", "seq", "size", "t", "unlist")

    def __init__(self, t: Topic, start: int, end: int, seq: int, count: int, size: int,
                 announce: Callable[[Topic], None],
                 unlist: Callable[[Topic], None] | None) -> None:
        self.start = start
        self.end = end
        self.t = t
        self.seq = seq
        self.count = count
        self.size = size
        self.announce = announce
        self.unlist = unlist

    def publish(self) -> None:
        t = self.t
        if t.visible < self.seq + self.count:
            t.visible = self.seq + self.count
            self.announce(t)

    def undo(self) -> None:
        t = self.t
        del t.lsns[len(t.lsns) - self.count:]
        t.next_seq = self.seq
        t.nbytes -= self.size
        if self.unlist is not None:
            self.unlist(t)


class PendingState(Pending):
    """A CURSOR, CLEAN or DIRTY record of ``t``: the topic's and the segment index's state
    as they were before it."""

    __slots__ = ("meta", "noted", "previous", "t")

    def __init__(self, t: Topic, meta: TopicSummary, start: int, end: int) -> None:
        self.start = start
        self.end = end
        self.t = t
        self.meta = meta
        self.previous = (t.persisted, t.mark)
        self.noted = (meta.cursor, meta.mark)

    def undo(self) -> None:
        t, meta = self.t, self.meta
        t.persisted, t.mark = self.previous
        t.rewind_cursor()
        meta.cursor, meta.mark = self.noted  # the segment's index must not claim it




def pending_state(t: Topic, meta: TopicSummary, start: int, end: int) -> Pending:
    """A CURSOR, CLEAN or DIRTY record about to be written for ``t``: undone (the topic's
    and the segment index's state as they are now) if the sync fails."""
    return PendingState(t, meta, start, end)


if _speedups.hot_use_pending is not None:  # the C append of a SyncEach write makes its own
    _speedups.hot_use_pending(PendingEntries)
