"""The append-only log shared by every topic of a data directory.

All topics append into one sequence of segment files, so one fsync covers every topic
(group commit across topics) and the number of open files does not grow with the number of
topics. Each topic keeps, in memory, the LSN of each of its retained entries.

Locking: ``Log.mutex`` (the append lock) guards the write position and the topics'
write-side fields; a topic's ``read_lock`` guards its cursor. The order is always topic,
then append. Beside the log, with fields of their own under the same lock: making segments
(``_making.py``), sync bookkeeping (``_syncbook.py``), laying records down and noting what
they say (``_records.py``), the prefaulter's cue (``_progress.py``).
"""

from __future__ import annotations

import os
import threading
from array import array
from collections.abc import Callable, Sequence
from functools import partial
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import attrs

from . import _codec, _speedups
from ._backpressure import Stall
from ._codec import (
    CLEAN,
    CURSOR,
    ENTRY,
    FOLLOWS_FAILED_SYNC,
    HEADER_SIZE,
    MARKED_DIRTY,
    OFFSET_MASK,
    RECORD,
    SEG_SHIFT,
    TopicSummary,
    record_size,
)
from ._errors import StorageError, WalrusClosedError, storage_error
from ._making import SEAL_ROOM, SegmentMaker, preamble
from ._progress import ProgressCue
from ._records import Payload as Payload  # where other modules find it
from ._records import SegmentStates, encode_batch, erase, mark_durable, seal, write_records
from ._segment import STATE_ROOM, Segment
from ._syncbook import Pending, PendingEntries, SyncBook, pending_state
from ._topics import Topic
from ._validate import as_payload, check_size, check_topic, check_writable, snapshot_batch
from ._waiting import wait_for as wait_for  # where other modules find it
from ._wakeup import wake_after_append as _wake_after

if TYPE_CHECKING:
    from ._backpressure import Throttle
    from ._reserve import DescriptorReserve
    from .backends._base import Backend

_crc32 = __import__("zlib").crc32
_pack_into = RECORD.pack_into
_crc_pack_into = _codec.CRC.pack_into


def _exposed(field: str) -> Any:
    """A read-only property over ``field`` for other modules (the getter runs in C)."""
    return property(attrgetter(field))


@attrs.frozen
class Recovered:
    """What recovery found in a directory, handed to :class:`Log` once (it derives the rest).

    ``topics`` is the recovery's own table: an observer's later refreshes update it in
    place (see :meth:`Log.follow`)."""

    segments: tuple[Segment, ...]
    """The segments, oldest first; the last one is active."""
    topics: dict[int, Topic]
    max_tid: int
    meta: dict[int, dict[int, TopicSummary]]
    """Per segment: the state records it holds (for its index)."""
    next_number: int | None = None
    """Number of the next segment to create (None: one past the newest segment)."""
    durable: int = 0
    """LSN through which everything found is durable."""
    to_index: tuple[Segment, ...] = ()
    """Sealed segments without an index file (they are synced before it is written)."""
    abandon_at: int | None = None
    """Set when the active segment must not be written again (a torn or sealed end): the
    LSN where its log ends; the next write starts a new segment."""


class _Unlisted(Exception):
    """The topic an append looked up before taking the append lock is no longer in the
    topic table: a failed sync pass undid its creation meanwhile (``Log._unlist``). The
    append must not write into that topic object: its entry would belong to no topic on
    disk, and its offset would be handed out again by the topic made anew."""


class Log:
    """The write side of the log: segments, the write position, the topic table, batches and
    rolls. Every field is assigned here and nowhere else; the rest of the write side has
    owners of their own, whose fields the append lock guards too (their docstrings say how):
    ``_maker`` (:class:`SegmentMaker`: the spare and the numbering), ``_book``
    (:class:`SyncBook`: the pending SyncEach writes, what a sync pass must cover),
    ``_states`` (:class:`SegmentStates`: what each segment's index will say) and
    ``_progress`` (:class:`ProgressCue`: the prefaulter's cue).

    Which lock guards what (``_mutex`` is the append lock; the order is always a topic's
    ``read_lock``, then the append lock):

    - under ``_mutex``: ``_active`` and its ``end`` (also read without it by the holder of
      the right to run sync passes: see ``SyncBook.sync_targets``), ``_segments`` (a roll
      adds, reclamation deletes), ``_by_tid``/``_by_name``/``_max_tid`` (a batch creates a
      topic; an undone one goes), the topics' write-side fields, ``_durable``,
      ``_abandon_at``, ``_failed_sync``, ``closed``.
    - ``_to_index``: a roll appends under ``_mutex``; the index writer (the background
      worker, or ``close`` once that stopped) removes through :meth:`indexed` (single list
      operations, atomic under the GIL).
    - ``_cursor_writes``: counted under ``_mutex``, read racily by reclamation (a hint).
    - ``_on_visible``: set by :meth:`watch_visible` (under the waiters' own lock), read by
      writers under ``_mutex`` and called after it (``_wakeup.py``).
    - set once before any write: ``_wait_durable``, ``_on_seal`` (see
      :meth:`use_durability`, :meth:`call_on_seal`), and the configuration.

    A write's bookkeeping, and a roll's switch, are plain stores ended by at most one call,
    so an interrupt (raised only at a call) finds them whole or not begun: the fields they
    change stay here, or change through a C call (``SyncBook.add``).
    """

    __slots__ = ("__dict__", "__weakref__", "_active", "_by_name", "_durable", "_mutex",
                 "_on_visible", "_sync_each", "closed")
    """The fields the C append reads (``walrus/_native/hot.c``), at fixed offsets; the rest
    in the instance dictionary."""

    def __init__(self, directory: str, backend: Backend, found: Recovered, *,
                 segment_size: int, sync_each: bool, read_only: bool) -> None:
        segments = list(found.segments)
        self._mutex = threading.Lock()
        """The append lock. Hot paths wait for it with :func:`wait_for` (no convoy), then
        take it with ``with`` (safe from interrupts)."""
        self._directory = directory
        self._backend = backend
        self._maker = SegmentMaker(directory, backend, self._mutex, segment_size, (
            found.next_number if found.next_number is not None
            else segments[-1].number + 1 if segments else 1))
        """Makes the next segments and the spare, and numbers them."""
        self._segments = {s.number: s for s in segments}
        """Open segments by number, oldest first."""
        self._active = segments[-1] if segments else None
        self._by_tid = found.topics
        self._by_name = {t.name: t for t in found.topics.values()}
        self._max_tid = found.max_tid
        self._sync_each = sync_each
        self._read_only = read_only
        self.closed = False
        """No write from now on (set by :meth:`shut` and :meth:`disown` only)."""
        self._durable = found.durable
        """LSN through which everything written is durable (claims in record headers)."""
        self._abandon_at: int | None = None
        """Set when the active segment must not be written again: the LSN where its log ends."""
        self._failed_sync = False
        """The active segment was abandoned because a sync failed: bytes of it after
        ``durable`` may be lost, which the next segment's header records."""
        self._to_index: list[Segment] = list(found.to_index)
        """Sealed segments whose index file is still to be written (after a sync)."""
        self._book = SyncBook(self, self._mutex, list(found.to_index), sync_each)
        """The pending SyncEach writes, what sync passes must still cover beyond the active
        segment, and the passes' side of the protocol."""
        self._states = SegmentStates(found.meta)
        """Per segment: the TOPIC/CURSOR/CLEAN/DIRTY state its records hold (for its index)."""
        self._on_seal: Callable[[], None] | None = None
        self._progress = ProgressCue()
        """Who watches the writer move on (the prefaulter), and how often it is told."""
        self._owner = os.getpid()
        """The process that opened the log: a fork's copy refuses every write."""
        self._wait_durable: Callable[[int], None] = self._no_durability
        """Under SyncEach: returns once the log is durable up to an LSN, raising if the
        write was undone (the durability's wait, see :meth:`use_durability`)."""
        self._cursor_writes = 0
        """Counts CURSOR records; reclamation only looks again when it moved."""
        self._on_visible: Callable[[Topic], None] | None = None
        """Called when entries of a topic become visible to readers, while anybody waits
        for one (see ``_wait.py``); None otherwise, so an append pays one attribute check."""
        self._throttle: Throttle | None = None
        """Holds a roll back while retention's worker is behind (see ``_backpressure.py``);
        None: rolls never wait."""
        if found.abandon_at is not None:
            self.abandon(found.abandon_at)
        if _speedups.hot_append is not None:  # the common case in C, the rest in append
            self.append = partial(_speedups.hot_append, self, Log.append)  # type: ignore[method-assign]

    # --- what other modules read (never assign) ------------------------------------------------

    directory: str = _exposed("_directory")
    backend: Backend = _exposed("_backend")
    segments: dict[int, Segment] = _exposed("_segments")
    active: Segment | None = _exposed("_active")
    by_tid: dict[int, Topic] = _exposed("_by_tid")
    by_name: dict[str, Topic] = _exposed("_by_name")
    states: SegmentStates = _exposed("_states")
    mutex: threading.Lock = _exposed("_mutex")
    sync_book: SyncBook = _exposed("_book")
    durable: int = _exposed("_durable")
    pending: list[Pending] = _exposed("_book.pending")
    unsynced: list[Segment] = _exposed("_book.unsynced")
    to_index: list[Segment] = _exposed("_to_index")
    sync_each: bool = _exposed("_sync_each")
    progress_step: int = _exposed("_progress.step")
    cursor_writes: int = _exposed("_cursor_writes")

    @property
    def spare(self) -> Segment | None:
        """The segment made ready for the next roll, if any."""
        return self._maker.spare(self._active)

    # --- what other modules tell it ------------------------------------------------------------

    def use_durability(self, wait: Callable[[int], None]) -> None:
        """Under SyncEach, writes return once ``wait`` says they are durable."""
        self._wait_durable = wait

    def call_on_seal(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after each roll (the background worker's cue to index)."""
        self._on_seal = callback

    def keep_descriptors(self, reserve: DescriptorReserve) -> None:
        """Make segment files as ``reserve`` allows (see ``_reserve.py``)."""
        self._maker.keep_descriptors(reserve)

    def throttle_rolls(self, throttle: Throttle) -> None:
        """Ask ``throttle`` at each roll of an append whether retention must catch up first."""
        self._throttle = throttle

    def _relieve(self, stall: Stall) -> None:
        """A roll stalled (raised under the append lock, caught outside it): catch up."""
        assert self._throttle is not None
        self._throttle.relieve(stall)

    def watch_visible(self, callback: Callable[[Topic], None] | None) -> None:
        """Call ``callback`` whenever entries of a topic become visible to readers (after an
        append, outside the append lock; under SyncEach, by the sync pass that published
        them); None: stop."""
        self._on_visible = callback

    def _announce(self, t: Topic) -> None:
        """Entries of ``t`` became visible (under ``SyncEach``, once durable): wake its
        waiting readers, if anybody waits."""
        on_visible = self._on_visible
        if on_visible is not None:
            on_visible(t)

    def follow(self, segments: list[Segment], topics: dict[int, Topic]) -> None:
        """An observer's refresh found these segments and topics on disk: adopt them.

        ``topics`` is the table the log was opened with (already up to date); the names
        are not."""
        self._segments = {seg.number: seg for seg in segments}
        self._active = segments[-1] if segments else None
        for tid, t in topics.items():
            self._by_tid.setdefault(tid, t)
            self._by_name.setdefault(t.name, t)

    def shut(self) -> None:
        """No write from now on: racing appends raise WalrusClosedError (taken under the
        append lock, so writers leading sync passes cannot starve the last one)."""
        with self._mutex:
            self.closed = True

    def drop_spare(self) -> None:
        """Delete the prepared spare segment (never part of the log); after :meth:`shut`."""
        self._maker.drop_spare(self._active)

    def indexed(self, segments: list[Segment]) -> None:
        """These sealed segments' index files are written (or given up on): forget them."""
        for seg in segments:
            if seg in self._to_index:
                self._to_index.remove(seg)

    # --- writing ------------------------------------------------------------------------------

    def append(self, topic: str, data: Payload, _pack: Any = _pack_into,
               _crc: Any = _crc32, _crc_pack: Any = _crc_pack_into,
               _encode: Any = _speedups.encode_entry) -> int:
        """Append one entry: the hot path behind ``Walrus.append_for_topic``.

        One Python frame, one lock, no allocation beyond the record itself (the defaults bind
        the struct and zlib functions as locals). Into a writable mapping with the C
        extension, the record is one C call (``encode_entry``). A topic seen for the first
        time goes to :meth:`append_new`, the validating path. Returns the new entry's
        offset (a value at hand: no cost); under SyncEach once ``wait_durable`` says it is
        durable.
        """
        try:
            t = self._by_name[topic]
        except (KeyError, TypeError):  # new, or unhashable: the validating path sees to it
            return self.append_new(topic, (data,))
        if type(data) is not bytes:
            data = as_payload(data)
        n = len(data)
        if n > 4096:
            check_size(n)
        lock = self._mutex
        if lock.locked():
            wait_for(lock)
        try:
            with lock:  # `with` on the lock itself: an interrupt cannot leave it taken
                if self.closed:
                    raise WalrusClosedError()
                if self._sync_each and self._by_name.get(topic) is not t:
                    raise _Unlisted()  # only a failed SyncEach pass unlists a topic
                seg = self._active
                p = seg.end  # type: ignore[union-attr]
                e = p + 32 + n  # 32: HEADER_SIZE
                end = (e + 7) & ~7
                if end > seg.check_at:  # type: ignore[union-attr]  # full, abandoned, or a mark
                    seg = self.make_room(end - p)
                    p = seg.end
                    e = p + 32 + n
                    end = (e + 7) & ~7
                seq = t.next_seq
                address = seg.address  # type: ignore[union-attr]
                if address is not None and type(data) is bytes:
                    _encode(address, p, data, n, t.tid, seq, self._durable, seg.salt)  # type: ignore[union-attr]
                elif (view := seg.view) is not None:  # type: ignore[union-attr]
                    _pack(view, p, 0, n, t.tid, 1, 0, seq, self._durable)  # 1: ENTRY
                    view[p + 32:e] = data
                    if n <= 4096:
                        _crc_pack(view, p, _crc(view[p + 4:e], seg.salt))  # type: ignore[union-attr]
                    else:
                        with memoryview(view) as mv:
                            _crc_pack(view, p, _crc(mv[p + 4:e], seg.salt))  # type: ignore[union-attr]
                else:
                    self._write(seg, p, [_codec.encode_header(  # type: ignore[arg-type]
                        ENTRY, t.tid, 0, seq, self._durable, data, seg.salt), data])  # type: ignore[union-attr]
                # The bookkeeping: stores, then one call that ends it, so an interrupt (a signal
                # handler raising, which happens only at a call) finds the append whole or not
                # begun; no other thread runs in between either (the GIL switches at calls too).
                lsn = seg.lsn_base | p  # type: ignore[union-attr]
                if not self._sync_each:
                    t.nbytes += end - p
                    seg.end = end  # type: ignore[union-attr]
                    t.visible = t.next_seq = seq + 1
                    t.lsns.append(lsn)
                    wake = self._on_visible  # the append is done; a wake-up follows the lock
                    if wake is None:
                        return seq
                    pending = None
                else:
                    pending = PendingEntries(t, lsn, lsn + end - p, seq, 1, end - p,
                                             self._announce, None)
                    one = array("Q", (lsn,))
                    t.nbytes += end - p
                    seg.end = end  # type: ignore[union-attr]
                    t.next_seq = seq + 1
                    t.lsns += one
                    self._book.add(pending)  # the one call, last
        except Stall as stall:  # before anything was written: retention catches up first
            self._relieve(stall)
            return self.append(topic, data)
        except _Unlisted:  # before anything was written
            return self.append_new(topic, (data,))
        if pending is None:
            _wake_after(wake, t, seq)  # type: ignore[arg-type]  # somebody waits (see _wakeup.py)
            return seq
        self._wait_durable(pending.end)  # outside the lock: other writers join this sync
        return seq

    def append_new(self, name: object, payloads: Sequence[object]) -> int:
        """Append to a topic that may not exist yet (validated; creates it atomically with
        its first entries). Returns the first entry's offset, as the appends do; for an empty
        batch, which writes nothing, the offset the next entry will get."""
        check_topic(name)
        assert isinstance(name, str)
        check_writable(self.closed, self._owner, self._read_only)
        items, need = snapshot_batch(payloads)
        if not items:
            t = self._by_name.get(name)
            return 0 if t is None else t.next_seq
        return self.append_batch(name, None, items, need)

    def disown(self) -> None:
        """In a forked child: the parent goes on writing these files, so every write here
        is refused (the topic table emptied in place sends every append to the checks of
        :meth:`append_new`, and the append lock, which a parent thread may have held at the
        fork, is never taken)."""
        self.closed = True
        self._by_name.clear()

    def _no_durability(self, lsn: int) -> None:
        """Never acknowledge a SyncEach write that nothing made durable."""
        raise AssertionError("Log.wait_durable was not set for a SyncEach log")

    def append_batch(self, name: str, t: Topic | None, items: list[bytes], need: int) -> int:
        """Append entries as one all-or-nothing batch, creating topic ``name`` if it does
        not exist (``t``, the topic the caller found, is looked up again under the lock).

        ``items`` and ``need`` are what :func:`snapshot_batch` returned (every limit is
        checked there). Returns the offset of the batch's first entry; under SyncEach once
        the batch is durable.
        """
        lock = self._mutex
        wait_for(lock)
        try:
            with lock:
                if self.closed:
                    raise WalrusClosedError()
                # Looked up here, under the lock, whatever the caller found: a failed pass may
                # have undone the topic's creation since (see _Unlisted).
                t = self._by_name.get(name)
                new = t is None
                tid = self._max_tid + 1 if t is None else t.tid
                seq = 0 if t is None else t.next_seq
                name_bytes = name.encode("utf-8", "surrogatepass")
                size = need  # what the entries' records take
                if new:  # the TOPIC record that heads the batch, and its copy after it
                    need += 2 * record_size(len(name_bytes))
                seg = self._active
                assert seg is not None
                if seg.end + need > seg.check_at:
                    seg = self.make_room(need)
                p = seg.end
                end, lsns = encode_batch(seg, p, need, tid, seq, items,
                                         name_bytes if new else None, self._durable, self._write)
                # Everything that calls first; then stores only (see append): an interrupt finds
                # the batch whole or not begun.
                count = len(items)
                if t is None:
                    t = Topic(tid, name, 0)
                    t.mark = MARKED_DIRTY
                meta = self._states.of(seg, tid)
                pending = PendingEntries(t, seg.lsn_base | p, seg.lsn_base | end, seq, count, size,
                                         self._announce, self._unlist if new else None
                                         ) if self._sync_each else None
                seg.end = end
                if new:
                    self._max_tid = tid
                    self._by_tid[tid] = t
                    self._by_name[name] = t
                    meta.name = name
                    meta.next_seq = seq + count  # a new topic's first state in this segment
                t.lsns += lsns
                t.nbytes += size
                t.next_seq = seq + count
                if pending is None:
                    t.visible = seq + count
                    wake = self._on_visible  # the batch is done; a wake-up follows the lock
                    if wake is None:
                        return seq
                else:
                    self._book.add(pending)
        except Stall as stall:  # before anything was written: retention catches up first
            self._relieve(stall)
            return self.append_batch(name, t, items, size)  # `need` without a TOPIC record
        if pending is None:
            _wake_after(wake, t, seq)  # type: ignore[arg-type]  # somebody waits (see _wakeup.py)
            return seq
        self._wait_durable(pending.end)
        return seq

    def write_state(self, t: Topic, kind: int, value: int | None = None) -> int:
        """Write a CURSOR, CLEAN or DIRTY record for ``t``; returns the LSN just past it.

        A CLEAN record without a value marks the topic clean at its current next offset.
        """
        lock = self._mutex
        wait_for(lock)
        with lock:
            if self.closed:
                raise WalrusClosedError()
            if value is None:
                value = t.next_seq if kind == CLEAN else 0
            seg = self._active
            assert seg is not None
            if seg.end + HEADER_SIZE > seg.check_at:
                seg = self.make_room(HEADER_SIZE, state=True)
            p = seg.end
            end = write_records(seg, p, [(kind, t.tid, 0, value, b"")], self._durable,
                                self._write)
            meta = self._states.of(seg, t.tid)
            pending = None
            if self._sync_each:
                pending = pending_state(t, meta, seg.lsn_base | p, seg.lsn_base | end)
            # Stores only from here (see append): an interrupt finds it whole or not begun.
            seg.end = end
            if kind == CURSOR:
                t.persisted = meta.cursor = value
                self._cursor_writes += 1
            else:
                t.mark = meta.mark = value if kind == CLEAN else MARKED_DIRTY
            if pending is not None:
                self._book.add(pending)
            return seg.lsn_base | end

    def _unlist(self, t: Topic) -> None:
        """Forget a topic whose creation a failed sync undid."""
        self._by_tid.pop(t.tid, None)
        self._by_name.pop(t.name, None)

    def _write(self, seg: Segment, p: int, parts: list[Payload]) -> None:
        """Write through a backend without a mapping; on failure the segment is abandoned."""
        try:
            if len(parts) == 1:
                seg.file.write(p, parts[0])
            elif len(parts) == 2 or sum(len(x) for x in parts) > (4 << 20):
                seg.file.writev(p, parts)
            else:
                seg.file.write(p, b"".join(parts))
        except OSError as exc:
            if seg is self._active:
                self.abandon(seg.lsn_base | p)
            raise storage_error(exc, f"writing to {seg.path} at {p}") from exc

    def abandon(self, lsn: int) -> None:
        """End the log at ``lsn`` in the active segment: the next write starts a new one."""
        self._abandon_at = lsn
        if self._active is not None:
            self._active.limit = self._active.check_at = 0

    def make_room(self, need: int, state: bool = False) -> Segment:
        """The slow path of a write of ``need`` bytes that ends past the active segment's
        ``check_at`` (under the append lock): roll to a new segment if it does not fit, else
        note the next check; either way tell the progress cue that the writer moved on.

        A ``state`` record (a cursor or a mark) that finds no room for a new segment (a full
        disk) goes into the room the segment keeps for them, then into a small segment: a
        consumer can go on, so that the segments it passed are reclaimed and space is freed.
        """
        seg = self._active
        assert seg is not None
        if seg.end + need > seg.limit:
            if not state and self._throttle is not None and self._throttle.due():
                raise Stall(seg)  # nothing written yet: the writer catches up and comes back
            try:
                seg = self._roll(need)
            except StorageError:
                if not state or self._abandon_at is not None:
                    raise
                if seg.end + need > seg.state_limit:
                    seg = self._roll(need, STATE_ROOM)
        else:
            self._progress.check_at(seg, seg.end + need)
        self._progress.moved()
        return seg

    def roll_now(self) -> None:
        """Go on in a new segment, opened by every topic's state records (when opening:
        recovery found the active segment without them, see ``Rebuilder.opens_whole``). A
        full disk gets the small segment state records get (see :meth:`make_room`)."""
        with self._mutex:
            try:
                self._roll(0)
            except StorageError:
                self._roll(0, STATE_ROOM)

    def watch_progress(self, step: int, callback: Callable[[], None] | None) -> None:
        """Call ``callback`` each time the writer passes ``step`` more bytes (0, None: stop)."""
        with self._mutex:
            self._progress.watch(step, callback)
            if self._active is not None:
                self._progress.check_at(self._active, self._active.end)

    def _roll(self, need: int, size: int | None = None) -> Segment:
        """Seal the active segment and start the next one (under the append lock).

        The next segment is made whole (created or taken from the spare, its state records
        written) before anything of the log changes; a failure on the way (a full disk)
        leaves the active segment as it was. The switch itself is plain stores with no call
        between them, so an interrupt (a signal handler raising KeyboardInterrupt) finds the
        roll either not begun or complete; a file it left half made is taken over next time.
        ``size``: make the new segment only that big (plus what ``need`` takes), not the
        configured size.
        """
        old = self._active
        assert old is not None
        prev_end = self._abandon_at
        if prev_end is None:
            prev_end = old.lsn_base | old.end
        records = preamble(self._by_tid.values())
        flags = FOLLOWS_FAILED_SYNC if self._failed_sync else 0
        self._book.freeze()
        try:
            new = self._maker.next(old, records, need, size, prev_end, flags, self._durable,
                                   self._write)
        finally:
            self._book.thaw()
        self._states.note(new, records)
        self._progress.check_at(new, new.end)
        if self._abandon_at is None:  # else cut short
            seal(old, self._durable, self._write)
        self._book.sealing(old)
        # The switch: stores only (no call, so no interrupt and no other thread in between).
        self._to_index += [old]
        self._segments[new.number] = new
        old.sealed = True
        self._abandon_at = None
        self._failed_sync = False
        self._active = new
        if self._on_seal is not None:
            self._on_seal()
        return new

    def prepare_spare(self) -> None:
        """Create, allocate and pre-fault the next segment ahead of need (background)."""
        if not self._read_only:
            self._maker.prepare_spare(self)

    # --- durability ---------------------------------------------------------------------------

    def durable_through(self, target: int) -> None:
        """A sync pass made everything through ``target`` durable (under the append lock):
        note it, and claim it just past the end of the log (a MARK) if the log goes on."""
        if target > self._durable:
            self._durable = target
            seg = self._active
            if not (seg is None or seg.sealed or self._abandon_at is not None
                    or self._read_only):
                mark_durable(seg, target)

    def sync_failed(self) -> None:
        """A sync pass failed: nothing since ``durable`` may be durable; never claim it is.

        Under ``SyncEach`` every write since then is still pending (nobody was told it
        succeeded): undo them all, those made after the pass took its targets too (the sync
        book notes which, for their writers' waits), and end the log where they began.
        Otherwise the writes were acknowledged already: keep them, and move on to a fresh
        segment so that new writes get a clean durability record.
        """
        wait_for(self._mutex)
        with self._mutex:
            start = self._book.undo_all()
            if start is not None:
                self._cut_back(start)
            elif self._active is not None and self._abandon_at is None:
                self.abandon(self._active.lsn_base | self._active.end)
                self._failed_sync = True

    def _cut_back(self, lsn: int) -> None:
        """End the log at ``lsn``, where undone writes began: discard the segments after it
        (they hold nothing durable) and zero the undone bytes (a SEAL too, if sealed)."""
        keep = lsn >> SEG_SHIFT
        for number in [n for n in self._segments if n > keep]:
            self._maker.lost(self._segments.pop(number))
            self._states.forget(number)
        seg = self._active = self._segments[keep]
        seg.sealed = False
        self._book.drop_from(keep)
        self._to_index = [s for s in self._to_index if s.number < keep]
        pos = lsn & OFFSET_MASK
        end, seg.end = min(seg.end + SEAL_ROOM, seg.size), pos
        erase(seg, pos, end)
        self.abandon(lsn)

    def trim(self, t: Topic, seq: int, nbytes: int) -> None:
        """The entries of ``t`` before ``seq`` (``nbytes`` on disk) are no longer stored
        (expired, or their segments deleted). Under the append lock: an append changes the
        same topic's size and LSN table, and ``nbytes -= ...`` is not one step (a thread
        switch inside it would lose an append's bytes). The caller holds ``t.read_lock``."""
        with self._mutex:
            t.expire_before(seq, nbytes)

    def forget(self, doomed: list[Segment]) -> None:
        """Reclamation deletes these oldest segments: they are no longer part of the log."""
        with self._mutex:
            for seg in doomed:
                del self._segments[seg.number]
                self._states.forget(seg.number)
