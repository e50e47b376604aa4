"""The append-only log shared by every topic of a data directory.

All topics append into one sequence of segment files, so one fsync covers every topic
(group commit across topics) and the number of open files does not grow with the number of
topics. Each topic keeps, in memory, the LSN of each of its retained entries.

Locking: ``lock`` (the append lock) guards the write position and the topics' write-side
fields; a topic's ``read_lock`` guards its cursor. The order is always topic, then append.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from array import array
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from . import _codec, _speedups
from ._codec import (
    CLEAN,
    CURSOR,
    DIRTY,
    ENTRY,
    FOLLOWS_FAILED_SYNC,
    HEADER_SIZE,
    MARK,
    MARKED_DIRTY,
    OFFSET_MASK,
    RECORD,
    SEAL,
    SEG_SHIFT,
    SEGMENT_HEADER_SIZE,
    TOPIC,
    TopicSummary,
    record_size,
)
from ._errors import StorageError, WalrusClosedError
from ._segment import (
    SPARE_PREV_END,
    STATE_ROOM,
    Segment,
    segment_name,
    size_for,
)
from ._speedups import (
    encode_entries,
)
from ._topics import Topic
from ._validate import as_payload, check_size, check_topic, check_writable, snapshot_batch

if TYPE_CHECKING:
    from .backends._base import Backend

logger = logging.getLogger("walrus")

_crc32 = __import__("zlib").crc32
_pack_into = RECORD.pack_into
_crc_pack_into = _codec.CRC.pack_into
_unpack_from = RECORD.unpack_from
_SEAL_ROOM = HEADER_SIZE
"""Every segment keeps room for its SEAL record."""

Payload = bytes | bytearray | memoryview


def storage_error(exc: OSError, what: str) -> StorageError:
    """Wrap an OSError from a backend so it names the operation (and stays an OSError)."""
    if isinstance(exc, StorageError):
        return exc
    return StorageError(exc.errno or errno.EIO, f"{what}: {exc.strerror or exc}")


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


class _Pending:
    """A write made under ``SyncEach`` that is not durable yet (published or undone later)."""

    __slots__ = ("end", "publish", "start", "undo")

    def __init__(self, start: int, end: int, publish: Callable[[], None] | None,
                 undo: Callable[[], None]) -> None:
        self.start = start
        self.end = end
        self.publish = publish
        self.undo = undo


class Log:
    """The write side of the log: segments, the write position, the pending ledger, sync
    bookkeeping and the spare segment. Every field is assigned here and nowhere else.

    Which lock guards what (``_mutex`` is the append lock; the order is always a topic's
    ``read_lock``, then the append lock):

    - under ``_mutex``: ``_active`` and its ``end``, ``_segments`` (a roll adds, reclamation
      deletes), ``_by_tid``/``_by_name``/``_max_tid`` (a batch creates a topic; pending undo
      removes it), the topics' write-side fields, ``_durable``, ``_pending``, ``_unsynced``,
      ``_meta``, ``_abandon_at``, ``_failed_sync``, ``_next_number``, ``_spare``,
      ``_making``, ``_progress_step``/``_on_progress``, ``closed``.
    - ``_roll_targets`` and ``_deferred``: set by a roll under ``_mutex``; a sync pass reads
      them without it (that is their point: it must not wait for the roll).
    - ``_to_index``: a roll appends under ``_mutex``; the index writer (the background
      worker, or ``close`` once that stopped) removes through :meth:`indexed` (single list
      operations, atomic under the GIL).
    - ``_cursor_writes``: counted under ``_mutex``, read racily by reclamation (a hint).
    - ``_on_visible``: set by :meth:`watch_visible` (under the waiters' own lock), read by
      writers under ``_mutex``.
    - set once before any write: ``_wait_durable``, ``_on_seal`` (see
      :meth:`use_durability`, :meth:`call_on_seal`), and the configuration.
    """

    def __init__(self, directory: str, backend: Backend, found: Recovered, *,
                 segment_size: int, sync_each: bool, read_only: bool) -> None:
        segments = list(found.segments)
        self._directory = directory
        self._backend = backend
        self._segments = {s.number: s for s in segments}
        """Open segments by number, oldest first."""
        self._active = segments[-1] if segments else None
        self._by_tid = found.topics
        self._by_name = {t.name: t for t in found.topics.values()}
        self._max_tid = found.max_tid
        self._segment_size = size_for(segment_size)
        """Bytes of a new segment file: the configured size for entries, plus the room kept
        for state records (see ``state_room``), so that the room costs no entry capacity."""
        self._sync_each = sync_each
        self._read_only = read_only
        self._mutex = threading.Lock()
        """The append lock. Hot paths wait for it with :func:`wait_for` (no convoy), then
        take it with ``with`` (safe from interrupts)."""
        self.closed = False
        """No write from now on (set by :meth:`shut` and :meth:`disown` only)."""
        self._durable = found.durable
        """LSN through which everything written is durable (claims in record headers)."""
        self._abandon_at: int | None = None
        """Set when the active segment must not be written again: the LSN where its log ends."""
        self._failed_sync = False
        """The active segment was abandoned because a sync failed: bytes of it after
        ``durable`` may be lost, which the next segment's header records."""
        self._pending: list[_Pending] = []
        self._to_index: list[Segment] = list(found.to_index)
        """Sealed segments whose index file is still to be written (after a sync)."""
        self._unsynced: list[Segment] = list(found.to_index)
        """Sealed segments with writes not yet synced, oldest first."""
        self._meta: dict[int, dict[int, TopicSummary]] = found.meta
        """Per segment: the TOPIC/CURSOR/CLEAN/DIRTY state its records hold (for its index)."""
        self._on_seal: Callable[[], None] | None = None
        self._progress_step = 0
        """When not 0, ``on_progress`` is called each time the writer passes this many more
        bytes of the active segment (the prefaulter's cue)."""
        self._on_progress: Callable[[], None] | None = None
        self._spare: Segment | None = None
        """A segment made ready in the background (allocated, pre-faulted) for the next roll."""
        self._owner = os.getpid()
        """The process that opened the log: a fork's copy refuses every write."""
        self._wait_durable: Callable[[int], None] = self._no_durability
        """Under SyncEach: returns once the log is durable up to an LSN, raising if the
        write was undone (the durability's wait, see :meth:`use_durability`)."""
        self._cursor_writes = 0
        """Counts CURSOR records; reclamation only looks again when it moved."""
        self._next_number = (found.next_number if found.next_number is not None
                             else segments[-1].number + 1 if segments else 1)
        """Number of the next segment to create (numbers of damaged files are never reused)."""
        self._roll_targets: tuple[int, list[tuple[Segment, int]]] | None = None
        """While a roll makes the next segment: the sync targets as it found them."""
        self._making: Segment | None = None
        """The segment a roll is making, until it is part of the log (removed on failure)."""
        self._deferred: list[tuple[int, list[tuple[Segment, int]]]] = []
        """Sync passes that ended while a roll was making a file: it publishes them."""
        self._on_visible: Callable[[Topic], None] | None = None
        """Called when entries of a topic become visible to readers, while anybody waits
        for one (see ``_wait.py``); None otherwise, so an append pays one attribute check."""
        if found.abandon_at is not None:
            self.abandon(found.abandon_at)

    # --- what other modules read (never assign) ------------------------------------------------

    @property
    def directory(self) -> str:
        return self._directory

    @property
    def backend(self) -> Backend:
        return self._backend

    @property
    def segments(self) -> dict[int, Segment]:
        return self._segments

    @property
    def active(self) -> Segment | None:
        return self._active

    @property
    def by_tid(self) -> dict[int, Topic]:
        return self._by_tid

    @property
    def by_name(self) -> dict[str, Topic]:
        return self._by_name

    @property
    def meta(self) -> dict[int, dict[int, TopicSummary]]:
        return self._meta

    @property
    def mutex(self) -> threading.Lock:
        return self._mutex

    @property
    def durable(self) -> int:
        return self._durable

    @property
    def pending(self) -> list[_Pending]:
        return self._pending

    @property
    def unsynced(self) -> list[Segment]:
        return self._unsynced

    @property
    def to_index(self) -> list[Segment]:
        return self._to_index

    @property
    def spare(self) -> Segment | None:
        return self._spare

    @property
    def sync_each(self) -> bool:
        return self._sync_each

    @property
    def progress_step(self) -> int:
        return self._progress_step

    @property
    def cursor_writes(self) -> int:
        return self._cursor_writes

    # --- what other modules tell it ------------------------------------------------------------

    def use_durability(self, wait: Callable[[int], None]) -> None:
        """Under SyncEach, writes return once ``wait`` says they are durable."""
        self._wait_durable = wait

    def call_on_seal(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after each roll (the background worker's cue to index)."""
        self._on_seal = callback

    def watch_visible(self, callback: Callable[[Topic], None] | None) -> None:
        """Call ``callback`` (under the append lock) whenever entries of a topic become
        visible to readers; None: stop."""
        self._on_visible = callback

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
        if self._spare is not None:
            discard(self._spare)
            self._spare = None

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
        with lock:  # `with` on the lock itself: an interrupt cannot leave it taken
            if self.closed:
                raise WalrusClosedError()
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
                if self._on_visible is not None:
                    self._on_visible(t)
                return seq
            pending = self._ledger_entry(t, lsn, lsn + end - p, seq, 1, end - p)
            t.nbytes += end - p
            seg.end = end  # type: ignore[union-attr]
            t.next_seq = seq + 1
            self._pending += (pending,)
            t.lsns.append(lsn)
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
        """Append entries as one all-or-nothing batch, creating the topic if ``t`` is None.

        ``items`` and ``need`` are what :func:`snapshot_batch` returned (every limit is
        checked there). Returns the offset of the batch's first entry; under SyncEach once
        the batch is durable.
        """
        lock = self._mutex
        wait_for(lock)
        with lock:
            if self.closed:
                raise WalrusClosedError()
            if t is None:
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
            end, lsns = self._encode_batch(seg, p, need, tid, seq, items,
                                           name_bytes if new else None)
            # Everything that calls first; then stores only (see append): an interrupt finds
            # the batch whole or not begun.
            count = len(items)
            if t is None:
                t = Topic(tid, name, 0)
                t.mark = MARKED_DIRTY
            meta = self._meta_of(seg, tid)
            pending = self._ledger_entry(t, seg.lsn_base | p, seg.lsn_base | end, seq, count, size,
                                    created=new) if self._sync_each else None
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
                if self._on_visible is not None:
                    self._on_visible(t)
                return seq
            self._pending += (pending,)
        self._wait_durable(pending.end)
        return seq

    def _encode_batch(self, seg: Segment, p: int, need: int, tid: int, seq: int,
                      items: Sequence[Payload], topic: bytes | None) -> tuple[int, array[int]]:
        """Encode a batch (headed by a TOPIC record for a new topic) at ``p``.

        A new topic's name is written twice: in the TOPIC record that heads the batch, and in
        a TOPIC record of its own after it, so one damaged byte cannot cost the topic its name
        (recovery would then know its entries only by a number). In place into a mapping;
        otherwise into one buffer written with a single call.
        """
        view = seg.view
        target = view if view is not None else bytearray(need)
        start = p if view is not None else 0
        base = seg.lsn_base + (p - start)
        left = len(items) - 1 + (topic is not None)
        durable = self._durable
        if topic is not None:
            start = _codec.encode_into(target, start, TOPIC, tid, left, seq, durable, topic,
                                       seg.salt)
            left -= 1
        end, lsns = encode_entries(target, start, items, tid, left, seq, durable, seg.salt, base)
        if topic is not None:
            end = _codec.encode_into(target, end, TOPIC, tid, 0, seq + len(items), durable, topic,
                                     seg.salt)
        if view is not None:
            return end, lsns
        self._write(seg, p, [target])
        return p + end, lsns

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
            end = self._write_records(seg, p, [(kind, t.tid, 0, value, b"")])
            meta = self._meta_of(seg, t.tid)
            pending = None
            if self._sync_each:
                def undo(t: Topic = t, previous: tuple[int, int] = (t.persisted, t.mark),
                         meta: TopicSummary = meta,
                         noted: tuple[int, int] = (meta.cursor, meta.mark)) -> None:
                    t.persisted, t.mark = previous
                    t.rewind_cursor()
                    meta.cursor, meta.mark = noted  # the segment's index must not claim it
                pending = _Pending(seg.lsn_base | p, seg.lsn_base | end, None, undo)
            # Stores only from here (see append): an interrupt finds it whole or not begun.
            seg.end = end
            if kind == CURSOR:
                t.persisted = meta.cursor = value
                self._cursor_writes += 1
            else:
                t.mark = meta.mark = value if kind == CLEAN else MARKED_DIRTY
            if pending is not None:
                self._pending += (pending,)
            return seg.lsn_base | end

    def _ledger_entry(self, t: Topic, start: int, end: int, seq: int, count: int, size: int,
                 created: bool = False) -> _Pending:
        """Under SyncEach: publish the entries once durable, or undo them if the sync fails.

        Undo runs newest first, so each undo removes exactly what its own append added.
        """

        def publish() -> None:
            if t.visible < seq + count:
                t.visible = seq + count
                if self._on_visible is not None:
                    self._on_visible(t)

        def undo() -> None:
            del t.lsns[len(t.lsns) - count:]
            t.next_seq = seq
            t.nbytes -= size
            if created:
                self._by_tid.pop(t.tid, None)
                self._by_name.pop(t.name, None)

        return _Pending(start, end, publish, undo)

    def _meta_of(self, seg: Segment, tid: int) -> TopicSummary:
        """The state records of ``tid`` in ``seg`` (for its index)."""
        return self._meta.setdefault(seg.number, {}).setdefault(tid, TopicSummary())

    def _note_meta(self, seg: Segment, tid: int, kind: int, value: int,
                   name: str | None = None) -> None:
        meta = self._meta_of(seg, tid)
        if kind == TOPIC:
            meta.name = name
            meta.next_seq = max(meta.next_seq, value)
        elif kind == CURSOR:
            meta.cursor = value
        elif kind == CLEAN:
            meta.mark = value
        elif kind == DIRTY:
            meta.mark = MARKED_DIRTY

    def _write_records(self, seg: Segment, p: int,
                       records: Sequence[tuple[int, int, int, int, Payload]]) -> int:
        """Encode records back to back from ``p``; returns where they end (the caller moves
        ``seg.end`` there)."""
        durable = self._durable
        salt = seg.salt
        view = seg.view
        pos = p
        if view is not None:
            encode = _codec.encode_into
            for kind, tid, left, seq, data in records:
                pos = encode(view, pos, kind, tid, left, seq, durable, data, salt)
        else:
            parts: list[Payload] = []
            for kind, tid, left, seq, data in records:
                parts.append(_codec.encode_header(kind, tid, left, seq, durable, data, salt))
                parts.append(data)
                pad = _codec.padding(len(data))
                if pad:
                    parts.append(pad)
                pos += record_size(len(data))
            self._write(seg, p, parts)
        return pos

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
        note the next mark; either way tell ``on_progress`` that the writer moved on.

        A ``state`` record (a cursor or a mark) that finds no room for a new segment (a full
        disk) goes into the room the segment keeps for them, then into a small segment: a
        consumer can go on, so that the segments it passed are reclaimed and space is freed.
        """
        seg = self._active
        assert seg is not None
        if seg.end + need > seg.limit:
            try:
                seg = self._roll(need)
            except StorageError:
                if not state or self._abandon_at is not None:
                    raise
                if seg.end + need > seg.state_limit:
                    seg = self._roll(need, STATE_ROOM)
        else:
            self._next_check(seg, seg.end + need)
        if self._on_progress is not None:
            self._on_progress()
        return seg

    def watch_progress(self, step: int, callback: Callable[[], None] | None) -> None:
        """Call ``callback`` each time the writer passes ``step`` more bytes (0, None: stop)."""
        with self._mutex:
            self._progress_step, self._on_progress = step, callback
            if self._active is not None:
                self._next_check(self._active, self._active.end)

    def _next_check(self, seg: Segment, pos: int) -> None:
        seg.check_at = min(seg.limit, pos + self._progress_step) if self._progress_step \
            else seg.limit

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
        preamble = self._preamble()
        size = self.new_segment_size(sum(record_size(len(r[4])) for r in preamble), need, size)
        flags = FOLLOWS_FAILED_SYNC if self._failed_sync else 0
        self._roll_targets = self._targets()
        self._making = None
        try:
            new = self._next_segment(max(self._next_number, old.number + 1), size, prev_end,
                                     flags)
            new.end = self._write_records(new, new.end, preamble)
        except BaseException as exc:
            # Whatever happened (a full disk, an interrupt), no segment the log does not
            # know may stay: a crash would find it naming where the log ended.
            made, self._making = self._making, None
            if made is not None:
                if made is self._spare:
                    self._spare = None
                discard(made)
            if isinstance(exc, OSError):
                raise storage_error(exc, "starting the next segment") from exc
            raise
        finally:
            self._roll_targets = None
            deferred, self._deferred = self._deferred, []
            for target, targets in deferred:
                self._publish(target, targets)
        for kind, tid, _left, value, payload in preamble:
            name = bytes(payload).decode("utf-8", "surrogatepass") if kind == TOPIC else None
            self._note_meta(new, tid, kind, value, name)
        self._next_check(new, new.end)
        if self._abandon_at is None and old.end + HEADER_SIZE <= old.size:  # else cut short
            try:  # the SEAL marks the end; the records' region ends where it starts
                self._write_records(old, old.end, [(SEAL, 0, 0, 0, b"")])
            except OSError:
                pass  # the next segment's prev_end says where the log ended anyway
        next_number = max(self._next_number, new.number + 1)
        spare = None if new is self._spare else self._spare
        # The switch: stores only (no call, so no interrupt and no other thread in between).
        self._unsynced += [old]
        self._to_index += [old]
        self._segments[new.number] = new
        old.sealed = True
        self._spare = spare
        self._abandon_at = None
        self._failed_sync = False
        self._next_number = next_number
        self._making = None
        self._active = new
        if self._on_seal is not None:
            self._on_seal()
        return new

    def new_segment_size(self, preamble: int, need: int, minimum: int | None = None) -> int:
        """Bytes of the next segment, whose preamble takes ``preamble`` bytes and whose
        first write takes ``need`` (at least ``minimum``, else ``segment_size``).

        Room for at least as many bytes of entries as the preamble takes: the preamble
        repeats every topic's state, and with many topics of long names it could fill a
        whole segment, so every append would roll and write it again. This way it takes at
        most half of any segment's entries, and costs at most one byte written per byte of
        entries.
        """
        return max(self._segment_size if minimum is None else minimum,
                   size_for(SEGMENT_HEADER_SIZE + preamble + max(need, preamble) + _SEAL_ROOM))

    def _next_segment(self, number: int, size: int, prev_end: int, flags: int) -> Segment:
        """The spare, stamped as the next segment, or else a new segment ``number``; noted
        in ``making`` before anything is written to it."""
        spare = self._spare
        if spare is not None and spare.size >= size:
            self._making = spare
            try:
                spare.activate(prev_end, flags, self._durable)
                return spare
            except OSError as exc:
                logger.warning("cannot use the prepared segment %s: %s", spare.path, exc)
        if spare is not None:
            self._making = self._spare = None
            discard(spare)
        return self._create(number, size, prev_end, flags)

    def _create(self, number: int, size: int, prev_end: int, flags: int) -> Segment:
        """Create segment ``number`` as the next one; nothing of the log changes.

        The log does not know the number yet, so a file already there is one an interrupted
        roll left half made: it is removed and made again.
        """
        try:
            try:
                new = Segment.create(self._backend, self._directory, number, size, prev_end,
                                     flags, self._durable)
            except FileExistsError:
                os.unlink(os.path.join(self._directory, segment_name(number)))
                new = Segment.create(self._backend, self._directory, number, size, prev_end,
                                     flags, self._durable)
        except OSError as exc:
            raise storage_error(exc, f"creating segment {number}") from exc
        self._making = new
        sync_directory(self._directory)
        return new

    def prepare_spare(self) -> None:
        """Create, allocate and pre-fault the next segment ahead of need (background)."""
        with self._mutex:
            if self.closed or self._spare is not None or self._read_only:
                return
            number = self._next_number
            self._next_number += 1
        seg = Segment.create(self._backend, self._directory, number, self._segment_size,
                             SPARE_PREV_END)
        sync_directory(self._directory)
        seg.populate(0)
        with self._mutex:
            active = self._active
            if self.closed or self._spare is not None or (
                    active is not None and active.number > number):
                keep = False
            else:
                self._spare, keep = seg, True
        if not keep:
            discard(seg)

    def _preamble(self) -> list[tuple[int, int, int, int, Payload]]:
        """State records that open a segment, so older segments can be deleted."""
        records: list[tuple[int, int, int, int, Payload]] = []
        for t in self._by_tid.values():
            records.append((TOPIC, t.tid, 0, t.next_seq, t.name.encode("utf-8", "surrogatepass")))
            if t.persisted:
                records.append((CURSOR, t.tid, 0, t.persisted, b""))
            if t.mark >= 0:
                records.append((CLEAN, t.tid, 0, t.mark, b""))
        return records

    # --- durability ---------------------------------------------------------------------------

    def sync_targets(self) -> tuple[int, list[tuple[Segment, int]]]:
        """What a sync pass must cover right now: (LSN written so far, [(segment, end)]).

        While a roll holds the append lock to make a file (slow on some file systems), the
        targets it saw are the answer: nothing can be written meanwhile, and the sync that
        keeps the schedule's promise must not wait for the allocation.
        """
        if self._rolling():
            rolling = self._roll_targets
            if rolling is not None:
                return rolling
        with self._mutex:
            return self._targets()

    def _rolling(self) -> bool:
        """Wait for the append lock to look free; True instead once a roll holds it to make
        a file (``rolling`` is set)."""
        mutex = self._mutex
        for spin in range(SPINS + 1):
            if not mutex.locked():
                return False
            if self._roll_targets is not None:
                return True
            time.sleep(0 if spin < SPINS else ROLL_POLL)  # see wait_for
        while mutex.locked():
            if self._roll_targets is not None:
                return True
            time.sleep(ROLL_POLL)
        return False

    def _targets(self) -> tuple[int, list[tuple[Segment, int]]]:
        """The sync targets (under the append lock)."""
        active = self._active
        assert active is not None
        targets = [(s, s.end) for s in self._unsynced]
        targets.append((active, active.end))
        return active.lsn_base | active.end, targets

    def synced(self, target: int, targets: list[tuple[Segment, int]]) -> None:
        """A sync pass covering ``targets`` succeeded: publish what it made durable.

        Unless writers wait for it (SyncEach), a roll making a file publishes it when done:
        the next pass must not wait for the allocation either.
        """
        if not self._sync_each and self._rolling() and self._roll_targets is not None:
            self._deferred += [(target, targets)]  # no call since the test: the roll sees it
            return
        wait_for(self._mutex)
        with self._mutex:
            self._publish(target, targets)

    def _publish(self, target: int, targets: list[tuple[Segment, int]]) -> None:
        """Note what a sync pass made durable (under the append lock)."""
        if target > self._durable:
            self._durable = target
            self._mark_durable()
        # A segment counts as synced only up to where the pass found it: one that was
        # active when the pass began may have been written on (and sealed) meanwhile.
        covered = {id(seg): end for seg, end in targets}
        self._unsynced = [s for s in self._unsynced if covered.get(id(s), -1) < s.end]
        if self._pending:
            done = 0
            for item in self._pending:
                if item.end > target:
                    break
                if item.publish is not None:
                    item.publish()
                done += 1
            del self._pending[:done]

    def _mark_durable(self) -> None:
        """Claim the new durable point just past the end of the log (a MARK record).

        Every record claims the durable point known when it was written, so damage to a
        record is told from a torn write by a later record's claim. The records of the last
        sync pass have no later record: the mark is it. It is not part of the log: the next
        write goes over it (records are never shorter than it), and a roll's SEAL too. Best
        effort and not synced itself: it reaches the disk with the next sync or the system's
        own writeback; a mark that never does proves nothing, and a torn one is not a record.
        (A 32-byte store per sync pass, under the append lock the pass takes anyway.)
        """
        seg = self._active
        if seg is None or seg.sealed or self._abandon_at is not None or self._read_only:
            return
        p = seg.end
        if p + HEADER_SIZE > seg.size:
            return
        record = _codec.encode_record(MARK, 0, 0, 0, self._durable, b"", seg.salt)
        try:
            if seg.view is not None:
                seg.view[p:p + HEADER_SIZE] = record
            else:
                seg.file.write(p, record)
        except OSError as exc:  # the next write, or sync, meets the failure and reports it
            logger.debug("could not mark the durable point in %s: %s", seg.path, exc)

    def sync_failed(self, target: int) -> None:
        """A sync pass failed: nothing since ``durable`` may be durable; never claim it is.

        Under ``SyncEach`` every write since then is still pending (nobody was told it
        succeeded): undo them all and end the log where they began. Otherwise the writes were
        acknowledged already: keep them, and move on to a fresh segment so that new writes get
        a clean durability record.
        """
        wait_for(self._mutex)
        with self._mutex:
            if self._pending:
                start = self._pending[0].start
                for item in reversed(self._pending):
                    item.undo()
                self._pending.clear()
                self._drop_after(start)
                self._erase_from(start)
                self.abandon(start)
            elif self._active is not None and self._abandon_at is None:
                self.abandon(self._active.lsn_base | self._active.end)
                self._failed_sync = True

    def _erase_from(self, lsn: int) -> None:
        """Zero the undone writes from ``lsn`` to the end of the active segment, so that no
        reopen finds them: they are still in the file, and the next segment (which would say
        where the log ends) may never be made on a failing disk. Best effort: the zeros reach
        the disk with the next sync that succeeds."""
        seg = self._active
        assert seg is not None and lsn >> SEG_SHIFT == seg.number
        pos = lsn & OFFSET_MASK
        end, seg.end = min(seg.end + _SEAL_ROOM, seg.size), pos  # a SEAL too, if sealed
        try:
            while pos < end:
                n = min(end - pos, 1 << 20)
                if seg.view is not None:
                    seg.view[pos:pos + n] = bytes(n)
                else:
                    seg.file.write(pos, bytes(n))
                pos += n
        except OSError as exc:
            logger.warning("could not erase the writes a failed sync undid in %s: %s",
                        seg.path, exc)

    def _drop_after(self, lsn: int) -> None:
        """Discard segments that start after ``lsn`` (they hold nothing durable)."""
        keep = lsn >> SEG_SHIFT
        for number in [n for n in self._segments if n > keep]:
            seg = self._segments.pop(number)
            seg.close()
            try:
                os.unlink(seg.path)
            except OSError:
                pass
            self._meta.pop(number, None)
        self._active = self._segments[keep]
        self._active.sealed = False
        self._unsynced = [s for s in self._unsynced if s.number < keep]
        self._to_index = [s for s in self._to_index if s.number < keep]

    def forget(self, doomed: list[Segment]) -> None:
        """Reclamation deletes these oldest segments: they are no longer part of the log."""
        with self._mutex:
            for seg in doomed:
                del self._segments[seg.number]
                self._meta.pop(seg.number, None)


SPINS = 200
"""How often a writer yields the GIL to the append lock's holder before blocking on it."""
ROLL_POLL = 0.001
"""Seconds a sync pass waits between two looks for a roll under way, once the append lock
was held longer than SPINS."""


def wait_for(lock: threading.Lock) -> None:
    """Wait for a held lock to be free without queueing on it (then take it with ``with``).

    The holder is usually a thread the GIL preempted inside its (microseconds long) critical
    section. Blocking on the lock would hand ownership through a chain of context switches,
    and with several appending threads that chain (a lock convoy) never ends: measured, four
    threads on four topics fell to a quarter of one thread's rate. Yielding the GIL instead
    lets the holder finish; the lock is then free for whoever holds the GIL. Only a long
    hold (a segment being created) falls back to blocking, in the ``with``.

    The lock is taken with ``with lock:`` and never ``acquire()``: a signal handler that
    raises (KeyboardInterrupt) does so only at a call, and one right after ``acquire()``
    returned would leave the lock taken for ever; ``with`` enters in C.
    """
    for _ in range(SPINS):
        if not lock.locked():
            return
        time.sleep(0)


def discard(seg: Segment) -> None:
    """Close and delete a segment that never became part of the log.

    Never raises for the deletion: a leftover is harmless (recovery removes unused spares),
    while an error here would abort a roll or a close halfway.
    """
    seg.close()
    try:
        os.unlink(seg.path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        logger.warning("could not remove the unused segment %s: %s", seg.path, exc)


def sync_directory(path: str) -> None:
    """fsync a directory so that files created or renamed in it survive a power loss."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
