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

from . import _codec, _speedups
from ._codec import (
    CLEAN,
    CURSOR,
    DIRTY,
    ENTRY,
    FOLLOWS_FAILED_SYNC,
    HEADER_SIZE,
    OFFSET_MASK,
    RECORD,
    SEAL,
    SEG_SHIFT,
    SEGMENT_HEADER_SIZE,
    TOPIC,
    SegmentSummary,
    TopicSummary,
    record_size,
)
from ._config import MAX_BATCH_BYTES, MAX_BATCH_ENTRIES, MAX_ENTRY_BYTES
from ._errors import (
    BatchTooLargeError,
    CorruptionError,
    EntryTooLargeError,
    InvalidArgumentError,
    StorageError,
    WalrusClosedError,
)
from ._segment import SPARE_PREV_END, WINDOW, Segment, index_name
from ._speedups import (
    STOP_BUFFER,
    STOP_COUNT,
    STOP_SEGMENT,
    encode_entries,
    record_bytes,
    verify_entries,
)
from ._topics import DAMAGED, MARKED_DIRTY, Topic

if TYPE_CHECKING:
    from .backends._base import Backend

log = logging.getLogger("walrus")

_crc32 = __import__("zlib").crc32
_pack_into = RECORD.pack_into
_crc_pack_into = _codec.CRC.pack_into
_unpack_from = RECORD.unpack_from
_SEAL_ROOM = HEADER_SIZE
"""Every segment keeps room for its SEAL record."""

Payload = bytes | bytearray | memoryview


def as_payload(data: object) -> bytes | memoryview:
    """Accept any bytes-like object as a payload; reject everything else by name."""
    if type(data) is bytes:
        return data
    if isinstance(data, (str, int, float)) or data is None:
        raise InvalidArgumentError(
            f"entry data must be bytes-like, not {type(data).__name__}"
            + (" (encode the str first)" if isinstance(data, str) else ""))
    try:
        view = memoryview(data)  # type: ignore[arg-type]
    except TypeError:
        raise InvalidArgumentError(
            f"entry data must be bytes-like, not {type(data).__name__}") from None
    if not view.c_contiguous:
        view = memoryview(view.tobytes())
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def check_size(n: int) -> None:
    if n > MAX_ENTRY_BYTES:
        raise EntryTooLargeError(f"entry of {n} bytes is over MAX_ENTRY_BYTES ({MAX_ENTRY_BYTES})")


def storage_error(exc: OSError, what: str) -> StorageError:
    """Wrap an OSError from a backend so it names the operation (and stays an OSError)."""
    if isinstance(exc, StorageError):
        return exc
    return StorageError(exc.errno or errno.EIO, f"{what}: {exc.strerror or exc}")


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
    """Segments, the write position, durability bookkeeping and space reclamation."""

    def __init__(self, directory: str, backend: Backend, segments: list[Segment],
                 topics: dict[int, Topic], max_tid: int, *, segment_size: int,
                 sync_each: bool, read_only: bool) -> None:
        self.directory = directory
        self.backend = backend
        self.segments = {s.number: s for s in segments}
        """Open segments by number, oldest first."""
        self.active = segments[-1] if segments else None
        self.by_tid = topics
        self.by_name = {t.name: t for t in topics.values()}
        self.max_tid = max_tid
        self.segment_size = segment_size
        self.sync_each = sync_each
        self.read_only = read_only
        self.mutex = threading.Lock()
        """The append lock; ``lock`` takes it the convoy-free way (see :func:`wait_for`)."""
        self.lock = AppendLock(self.mutex)
        self.closed = False
        self.durable = 0
        """LSN through which everything written is durable (claims in record headers)."""
        self.abandon_at: int | None = None
        """Set when the active segment must not be written again: the LSN where its log ends."""
        self.failed_sync = False
        """The active segment was abandoned because a sync failed: bytes of it after
        ``durable`` may be lost, which the next segment's header records."""
        self.pending: list[_Pending] = []
        self.unsynced: list[Segment] = []
        """Sealed segments with writes not yet synced, oldest first."""
        self.to_index: list[Segment] = []
        """Sealed segments whose index file is still to be written (after a sync)."""
        self.meta: dict[int, dict[int, TopicSummary]] = {}
        """Per segment: the TOPIC/CURSOR/CLEAN/DIRTY state its records hold (for its index)."""
        self.on_seal: Callable[[], None] | None = None
        self.progress_step = 0
        """When not 0, ``on_progress`` is called each time the writer passes this many more
        bytes of the active segment (the prefaulter's cue)."""
        self.on_progress: Callable[[], None] | None = None
        self.spare: Segment | None = None
        """A segment made ready in the background (allocated, pre-faulted) for the next roll."""
        self.new_topic: Callable[[str, Sequence[Payload]], int] = self._no_new_topic
        """Where :meth:`append` sends the first append of a topic (set by the facade)."""
        self.cursor_writes = 0
        """Counts CURSOR records; reclamation only looks again when it moved."""
        self.next_number = (segments[-1].number + 1) if segments else 1
        """Number of the next segment to create (numbers of damaged files are never reused)."""

    # --- writing ------------------------------------------------------------------------------

    def append(self, topic: str, data: Payload, _pack: Any = _pack_into,
               _crc: Any = _crc32, _crc_pack: Any = _crc_pack_into,
               _encode: Any = _speedups.encode_entry) -> int:
        """Append one entry: the hot path behind ``Walrus.append_for_topic``.

        One Python frame, one lock, no allocation beyond the record itself (the defaults bind
        the struct and zlib functions as locals). Into a writable mapping with the C
        extension, the record is one C call (``encode_entry``). A topic seen for the first
        time goes to ``new_topic``, the facade's validating path. Returns the LSN to wait for
        under SyncEach, else 0.
        """
        try:
            t = self.by_name[topic]
        except (KeyError, TypeError):  # new, or unhashable: the validating path sees to it
            return self.new_topic(topic, (data,))
        if type(data) is not bytes:
            data = as_payload(data)
        n = len(data)
        if n > 4096:
            check_size(n)
        lock = self.mutex
        if not lock.acquire(False):  # not `with`: measurably cheaper on this path
            wait_for(lock)
        try:
            if self.closed:
                raise WalrusClosedError()
            seg = self.active
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
                _encode(address, p, data, n, t.tid, seq, self.durable, seg.salt)  # type: ignore[union-attr]
            elif (view := seg.view) is not None:  # type: ignore[union-attr]
                _pack(view, p, 0, n, t.tid, 1, 0, seq, self.durable)  # 1: ENTRY
                view[p + 32:e] = data
                if n <= 4096:
                    _crc_pack(view, p, _crc(view[p + 4:e], seg.salt))  # type: ignore[union-attr]
                else:
                    with memoryview(view) as mv:
                        _crc_pack(view, p, _crc(mv[p + 4:e], seg.salt))  # type: ignore[union-attr]
            else:
                self._write(seg, p, [_codec.encode_header(  # type: ignore[arg-type]
                    ENTRY, t.tid, 0, seq, self.durable, data, seg.salt), data])  # type: ignore[union-attr]
            t.lsns.append(seg.lsn_base | p)  # type: ignore[union-attr]
            t.nbytes += end - p
            seg.end = end  # type: ignore[union-attr]
            if not self.sync_each:
                t.visible = t.next_seq = seq + 1
                return 0
            self._add_pending(t, p, end, seg, seq, 1, end - p)  # type: ignore[arg-type]
            t.next_seq = seq + 1
            return seg.lsn_base | end  # type: ignore[union-attr]
        finally:
            lock.release()

    def _no_new_topic(self, name: str, payloads: Sequence[Payload]) -> int:
        raise InvalidArgumentError(f"unknown topic {name!r}")

    def append_batch(self, name: str, t: Topic | None, payloads: Sequence[Payload]) -> int:
        """Append entries as one all-or-nothing batch, creating the topic if ``t`` is None.

        Returns the LSN just past the batch. Checks every limit before writing anything.
        """
        if len(payloads) > MAX_BATCH_ENTRIES:
            raise BatchTooLargeError(
                f"batch of {len(payloads)} entries is over MAX_BATCH_ENTRIES ({MAX_BATCH_ENTRIES})")
        items = [as_payload(d) for d in payloads]
        total = need = 0
        for data in items:  # one pass: the limits, and the room the records take
            n = len(data)
            if n > MAX_ENTRY_BYTES:
                check_size(n)
            total += n
            need += (HEADER_SIZE + n + 7) & ~7  # record_size(n), inlined
        if total > MAX_BATCH_BYTES:
            raise BatchTooLargeError(
                f"batch of {total} bytes is over MAX_BATCH_BYTES ({MAX_BATCH_BYTES})")
        with self.lock:
            if self.closed:
                raise WalrusClosedError()
            if t is None:
                t = self.by_name.get(name)
            new = t is None
            tid = self.max_tid + 1 if t is None else t.tid
            seq = 0 if t is None else t.next_seq
            name_bytes = name.encode("utf-8", "surrogatepass")
            size = need  # what the entries' records take
            if new:  # the TOPIC record that heads the batch, and its copy after it
                need += 2 * record_size(len(name_bytes))
            seg = self.active
            assert seg is not None
            if seg.end + need > seg.check_at:
                seg = self.make_room(need)
            p = seg.end
            end, lsns = self._encode_batch(seg, p, need, tid, seq, items,
                                           name_bytes if new else None)
            seg.end = end
            if new:
                t = Topic(tid, name, 0)
                t.mark = MARKED_DIRTY
                self.max_tid = tid
                self.by_tid[tid] = t
                self.by_name[name] = t
                self._note_meta(seg, tid, TOPIC, seq + len(items), name)
            assert t is not None
            t.lsns.extend(lsns)
            t.nbytes += size
            if self.sync_each:
                self._add_pending(t, p, end, seg, seq, len(items), size, created=new)
                t.next_seq = seq + len(items)
            else:
                t.visible = t.next_seq = seq + len(items)
            return seg.lsn_base | end

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
        durable = self.durable
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
        with self.lock:
            if self.closed:
                raise WalrusClosedError()
            if value is None:
                value = t.next_seq if kind == CLEAN else 0
            seg = self.active
            assert seg is not None
            if seg.end + HEADER_SIZE > seg.check_at:
                seg = self.make_room(HEADER_SIZE)
            p = seg.end
            self._write_records(seg, p, [(kind, t.tid, 0, value, b"")])
            previous = (t.persisted, t.mark)
            if kind == CURSOR:
                t.persisted = value
                self.cursor_writes += 1
            else:
                t.mark = value if kind == CLEAN else MARKED_DIRTY
            self._note_meta(seg, t.tid, kind, value)
            if self.sync_each:
                def undo(t: Topic = t, previous: tuple[int, int] = previous) -> None:
                    t.persisted, t.mark = previous
                    t.cursor = min(t.cursor, max(t.persisted, t.first_seq))
                self.pending.append(_Pending(seg.lsn_base | p, seg.lsn_base | seg.end, None, undo))
            return seg.lsn_base | seg.end

    def _add_pending(self, t: Topic, p: int, end: int, seg: Segment, seq: int, count: int,
                     size: int, created: bool = False) -> None:
        """Under SyncEach: publish the entries once durable, or undo them if the sync fails.

        Undo runs newest first, so each undo removes exactly what its own append added.
        """

        def publish() -> None:
            if t.visible < seq + count:
                t.visible = seq + count

        def undo() -> None:
            del t.lsns[len(t.lsns) - count:]
            t.next_seq = seq
            t.nbytes -= size
            if created:
                self.by_tid.pop(t.tid, None)
                self.by_name.pop(t.name, None)

        base = seg.lsn_base
        self.pending.append(_Pending(base | p, base | end, publish, undo))

    def _note_meta(self, seg: Segment, tid: int, kind: int, value: int,
                   name: str | None = None) -> None:
        meta = self.meta.setdefault(seg.number, {}).setdefault(tid, TopicSummary())
        if kind == TOPIC:
            meta.name = name
            meta.next_seq = max(meta.next_seq, value)
        elif kind == CURSOR:
            meta.cursor = value
        elif kind == CLEAN:
            meta.mark = value
        elif kind == DIRTY:
            meta.mark = -2

    def _write_records(self, seg: Segment, p: int,
                       records: Sequence[tuple[int, int, int, int, Payload]]) -> list[int]:
        """Encode records back to back from ``p``; returns their offsets and moves ``seg.end``."""
        offsets = []
        durable = self.durable
        salt = seg.salt
        view = seg.view
        pos = p
        if view is not None:
            encode = _codec.encode_into
            for kind, tid, left, seq, data in records:
                offsets.append(pos)
                pos = encode(view, pos, kind, tid, left, seq, durable, data, salt)
        else:
            parts: list[Payload] = []
            for kind, tid, left, seq, data in records:
                offsets.append(pos)
                parts.append(_codec.encode_header(kind, tid, left, seq, durable, data, salt))
                parts.append(data)
                pad = _codec.padding(len(data))
                if pad:
                    parts.append(pad)
                pos += record_size(len(data))
            self._write(seg, p, parts)
        seg.end = pos
        return offsets

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
            self.abandon(seg.lsn_base | p)
            raise storage_error(exc, f"writing to {seg.path} at {p}") from exc

    def abandon(self, lsn: int) -> None:
        """End the log at ``lsn`` in the active segment: the next write starts a new one."""
        self.abandon_at = lsn
        if self.active is not None:
            self.active.limit = self.active.check_at = 0

    def make_room(self, need: int) -> Segment:
        """The slow path of a write of ``need`` bytes that ends past the active segment's
        ``check_at`` (under the append lock): roll to a new segment if it does not fit, else
        note the next mark; either way tell ``on_progress`` that the writer moved on."""
        seg = self.active
        assert seg is not None
        if seg.end + need > seg.limit:
            seg = self._roll(need)
        else:
            self._next_check(seg, seg.end + need)
        if self.on_progress is not None:
            self.on_progress()
        return seg

    def watch_progress(self, step: int, callback: Callable[[], None] | None) -> None:
        """Call ``callback`` each time the writer passes ``step`` more bytes (0, None: stop)."""
        with self.lock:
            self.progress_step, self.on_progress = step, callback
            if self.active is not None:
                self._next_check(self.active, self.active.end)

    def _next_check(self, seg: Segment, pos: int) -> None:
        seg.check_at = min(seg.limit, pos + self.progress_step) if self.progress_step \
            else seg.limit

    def _roll(self, need: int) -> Segment:
        """Close the active segment and start the next one (under the append lock)."""
        old = self.active
        assert old is not None
        prev_end = self.abandon_at
        if prev_end is None:
            prev_end = old.lsn_base | old.end
            try:  # the SEAL marks the end; the records' region ends where it starts
                self._write_records(old, old.end, [(SEAL, 0, 0, 0, b"")])
                old.end -= HEADER_SIZE
            except OSError:
                pass  # the next segment's prev_end says where the log ended anyway
        preamble = self._preamble()
        size = max(self.segment_size,
                   SEGMENT_HEADER_SIZE + sum(record_size(len(r[4])) for r in preamble)
                   + need + _SEAL_ROOM)
        flags = FOLLOWS_FAILED_SYNC if self.failed_sync else 0
        new = self._take_spare(size, prev_end, flags)
        if new is None:
            number = max(self.next_number, old.number + 1)
            try:
                new = Segment.create(self.backend, self.directory, number, size, prev_end,
                                     flags, self.durable)
                sync_directory(self.directory)
            except OSError as exc:
                self.abandon(prev_end)
                raise storage_error(exc, f"creating segment {number}") from exc
            self.next_number = number + 1
        self.abandon_at = None
        self.failed_sync = False
        old.sealed = True
        self.segments[new.number] = new
        self.active = new
        self._next_check(new, new.end)
        self.unsynced.append(old)
        self.to_index.append(old)
        self._write_records(new, new.end, preamble)
        for kind, tid, _left, value, payload in preamble:
            name = bytes(payload).decode("utf-8", "surrogatepass") if kind == TOPIC else None
            self._note_meta(new, tid, kind, value, name)
        if self.on_seal is not None:
            self.on_seal()
        return new

    def _take_spare(self, size: int, prev_end: int, flags: int) -> Segment | None:
        """The segment the background prepared, stamped as the next one; None if unusable."""
        spare, self.spare = self.spare, None
        if spare is None:
            return None
        if spare.size >= size:
            try:
                spare.activate(prev_end, flags, self.durable)
                return spare
            except OSError as exc:
                log.warning("cannot use the prepared segment %s: %s", spare.path, exc)
        discard(spare)
        return None

    def prepare_spare(self) -> None:
        """Create, allocate and pre-fault the next segment ahead of need (background)."""
        with self.lock:
            if self.closed or self.spare is not None or self.read_only:
                return
            number = self.next_number
            self.next_number += 1
        seg = Segment.create(self.backend, self.directory, number, self.segment_size,
                             SPARE_PREV_END)
        sync_directory(self.directory)
        seg.populate(0)
        with self.lock:
            active = self.active
            if self.closed or self.spare is not None or (
                    active is not None and active.number > number):
                keep = False
            else:
                self.spare, keep = seg, True
        if not keep:
            discard(seg)

    def _preamble(self) -> list[tuple[int, int, int, int, Payload]]:
        """State records that open a segment, so older segments can be deleted."""
        records: list[tuple[int, int, int, int, Payload]] = []
        for t in self.by_tid.values():
            records.append((TOPIC, t.tid, 0, t.next_seq, t.name.encode("utf-8", "surrogatepass")))
            if t.persisted:
                records.append((CURSOR, t.tid, 0, t.persisted, b""))
            if t.mark >= 0:
                records.append((CLEAN, t.tid, 0, t.mark, b""))
        return records

    # --- durability ---------------------------------------------------------------------------

    def sync_targets(self) -> tuple[int, list[tuple[Segment, int]]]:
        """What a sync pass must cover right now: (LSN written so far, [(segment, end)])."""
        with self.lock:
            active = self.active
            assert active is not None
            targets = [(s, s.end) for s in self.unsynced]
            targets.append((active, active.end))
            return active.lsn_base | active.end, targets

    def synced(self, target: int, targets: list[tuple[Segment, int]]) -> None:
        """A sync pass covering ``targets`` succeeded: publish what it made durable."""
        with self.lock:
            self.durable = max(self.durable, target)
            # A segment counts as synced only up to where the pass found it: one that was
            # active when the pass began may have been written on (and sealed) meanwhile.
            covered = {id(seg): end for seg, end in targets}
            self.unsynced = [s for s in self.unsynced if covered.get(id(s), -1) < s.end]
            done = 0
            for item in self.pending:
                if item.end > target:
                    break
                if item.publish is not None:
                    item.publish()
                done += 1
            if done:
                del self.pending[:done]

    def sync_failed(self, target: int) -> None:
        """A sync pass failed: nothing since ``durable`` may be durable; never claim it is.

        Under ``SyncEach`` every write since then is still pending (nobody was told it
        succeeded): undo them all and end the log where they began. Otherwise the writes were
        acknowledged already: keep them, and move on to a fresh segment so that new writes get
        a clean durability record.
        """
        with self.lock:
            if self.pending:
                start = self.pending[0].start
                for item in reversed(self.pending):
                    item.undo()
                self.pending.clear()
                self._drop_after(start)
                self.abandon(start)
            elif self.active is not None and self.abandon_at is None:
                self.abandon(self.active.lsn_base | self.active.end)
                self.failed_sync = True

    def _drop_after(self, lsn: int) -> None:
        """Discard segments that start after ``lsn`` (they hold nothing durable)."""
        keep = lsn >> SEG_SHIFT
        for number in [n for n in self.segments if n > keep]:
            seg = self.segments.pop(number)
            seg.close()
            try:
                os.unlink(seg.path)
            except OSError:
                pass
            self.meta.pop(number, None)
        self.active = self.segments[keep]
        self.active.sealed = False
        self.unsynced = [s for s in self.unsynced if s.number < keep]
        self.to_index = [s for s in self.to_index if s.number < keep]

    # --- reading ------------------------------------------------------------------------------

    def read_payload(self, t: Topic, seq: int, max_len: int = MAX_ENTRY_BYTES) -> bytes | None:
        """The payload of entry ``seq`` of ``t`` (None if longer than ``max_len``).

        Raises CorruptionError if the record is damaged or is not the entry it should be.
        """
        lsn = t.lsns[seq - t.first_seq]
        seg = self.segments.get(lsn >> SEG_SHIFT)
        if seg is None:
            raise CorruptionError(f"topic {t.name!r} entry {seq}: its segment is missing",
                                  t.name, seq)
        pos = lsn & OFFSET_MASK
        if not lsn & DAMAGED:
            view = seg.view
            if view is not None:
                decoded = _codec.decode_entry(view, pos, seg.salt, max_len)
            else:
                decoded = self._decode_windowed(seg, pos, max_len)
            if decoded is not None and decoded[0] == t.tid and decoded[1] == seq:
                return decoded[2]
        raise CorruptionError(
            f"topic {t.name!r} entry {seq} is damaged ({seg.path} at byte {pos & ~DAMAGED})",
            t.name, seq)

    def read_run(self, t: Topic, seq: int, end: int, budget: int, limit: int) -> list[bytes]:
        """Payloads of entries ``seq``, ``seq + 1``, ... (before ``end``, at most ``limit``).

        Stops before the entry that would take the total past ``budget`` (the first is always
        taken) and before a damaged one; raises CorruptionError only if the first is damaged.
        """
        out: list[bytes] = []
        total = 0
        lsns = t.lsns
        while seq < end and len(out) < limit:
            if out and total > budget:  # over already (the first is free): even b"" is past it
                break
            i = seq - t.first_seq
            lsn = lsns[i]
            number = lsn >> SEG_SHIFT
            seg = self.segments.get(number)
            if seg is None or lsn & DAMAGED:
                break
            view = seg.view
            if view is not None:
                buf: object = view
                base = 0
            else:
                buf, base = seg.locate(lsn & OFFSET_MASK, HEADER_SIZE)
            run = lsns[i:i + min(end - seq, limit - len(out))]
            starts, ends, stop = verify_entries(buf, base, run, number, t.tid, seq, seg.salt,
                                                max(0, budget - total), not out)
            if starts:  # the payloads of the prefix that passed, sliced in C-level loops
                out += map(buf.__getitem__, map(slice, starts, ends))  # type: ignore[attr-defined,index]
                total += sum(ends) - sum(starts)
            seq += len(starts)
            if stop == STOP_BUFFER and not starts:
                # The next record does not fit the read window: read it on its own.
                data = self.read_payload(t, seq, max(0, budget - total) if out else MAX_ENTRY_BYTES)
                if data is None:
                    break
                out.append(data)
                total += len(data)
                seq += 1
            elif stop not in (STOP_COUNT, STOP_SEGMENT, STOP_BUFFER):
                break
        if not out and seq < end and limit:
            data = self.read_payload(t, seq)  # raises CorruptionError for a damaged entry
            if data is not None:
                out.append(data)
        return out

    def _decode_windowed(self, seg: Segment, pos: int,
                         max_len: int) -> tuple[int, int, bytes | None] | None:
        buf, base = seg.locate(pos, HEADER_SIZE)
        if pos - base + HEADER_SIZE > len(buf):  # type: ignore[arg-type]
            return None
        header = bytes(buf[pos - base:pos - base + HEADER_SIZE])  # type: ignore[index]
        n = _unpack_from(header, 0)[1]
        if n > MAX_ENTRY_BYTES or pos + HEADER_SIZE + n > seg.size:
            return None
        if n > WINDOW and n <= max_len:
            # A large payload is read once, straight into the bytes object returned.
            return _codec.decode_split(header, seg.file.read(pos + HEADER_SIZE, n), seg.salt)
        if n <= max_len:
            buf, base = seg.locate(pos, HEADER_SIZE + n)
        return _codec.decode_entry(buf, pos - base, seg.salt, max_len)

    # --- indexes and reclamation ----------------------------------------------------------------

    def summary_of(self, seg: Segment, end: int | None = None) -> SegmentSummary:
        """The index of a segment, built from memory (no rescan).

        With ``end``, only records before that offset (a checkpoint of the active segment
        while appends go on: entries before ``end`` never change).
        """
        covered = seg.end if end is None else end
        summary = SegmentSummary(seg.number, seg.salt, covered, seg.sealed and end is None)
        meta = self.meta.get(seg.number, {})
        buf = seg.whole()
        for tid, t in list(self.by_tid.items()):
            lo, hi = t.lsn_range(seg.number, covered)
            m = meta.get(tid)
            if hi == lo and m is None:
                continue
            entry = TopicSummary()
            if m is not None:
                entry.name, entry.next_seq = m.name, m.next_seq
                entry.cursor, entry.mark = m.cursor, m.mark
            if hi > lo:
                entry.first_seq = t.first_seq + lo
                entry.lsns = t.lsns[lo:hi]
                entry.nbytes = record_bytes(buf, entry.lsns)
            summary.topics[tid] = entry
        return summary

    def write_index(self, seg: Segment, summary: SegmentSummary) -> None:
        """Persist a segment's index: write, fsync, rename (the segment is synced already)."""
        path = os.path.join(self.directory, index_name(seg.number))
        tmp = path + ".tmp"
        data = _codec.encode_index(summary)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        sync_directory(self.directory)

    def low_watermark(self, persisted: dict[int, int]) -> int:
        """LSN below which every entry is consumed by the given (durable) cursors."""
        active = self.active
        assert active is not None
        low = active.lsn_base
        for tid, cursor in persisted.items():
            t = self.by_tid.get(tid)
            if t is None:
                continue
            lsn = t.first_unconsumed_lsn(max(cursor, t.first_seq))
            if lsn is not None and lsn < low:
                low = lsn
        return low

    def delete_before(self, low: int) -> list[Segment]:
        """Forget and delete the oldest segments wholly below ``low``.

        The caller has synced the cursors that ``low`` was computed from. Only a prefix of the
        log is ever deleted, and never a segment still waiting to be synced or indexed.
        """
        doomed = []
        for number, seg in self.segments.items():
            if ((number + 1) << SEG_SHIFT > low or seg is self.active or seg in self.unsynced
                    or seg in self.to_index):
                break
            doomed.append(seg)
        if not doomed:
            return []
        oldest_kept = doomed[-1].number + 1
        buffers = [(seg.number, seg.whole()) for seg in doomed]
        for t in list(self.by_tid.values()):
            with t.read_lock:
                t.drop_before(oldest_kept, buffers)
        with self.lock:
            for seg in doomed:
                del self.segments[seg.number]
                self.meta.pop(seg.number, None)
        for seg in doomed:
            seg.close()
            for path in (seg.path, os.path.join(self.directory, index_name(seg.number))):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
        return doomed


SPINS = 200
"""How often a writer yields the GIL to the append lock's holder before blocking on it."""


def wait_for(lock: threading.Lock) -> None:
    """Take a held lock without queueing on it.

    The holder is usually a thread the GIL preempted inside its (microseconds long) critical
    section. Blocking on the lock would hand ownership through a chain of context switches,
    and with several appending threads that chain (a lock convoy) never ends: measured, four
    threads on four topics fell to a quarter of one thread's rate. Yielding the GIL instead
    lets the holder finish; the lock is then free for whoever holds the GIL. Only a long
    hold (a segment being created) falls back to blocking.
    """
    for _ in range(SPINS):
        time.sleep(0)
        if lock.acquire(False):
            return
    lock.acquire()


class AppendLock:
    """A lock taken with :func:`wait_for`: never queued on, so never a convoy."""

    __slots__ = ("mutex",)

    def __init__(self, mutex: threading.Lock) -> None:
        self.mutex = mutex

    def __enter__(self) -> None:
        if not self.mutex.acquire(False):
            wait_for(self.mutex)

    def __exit__(self, *exc: object) -> None:
        self.mutex.release()


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
        log.warning("could not remove the unused segment %s: %s", seg.path, exc)


def sync_directory(path: str) -> None:
    """fsync a directory so that files created or renamed in it survive a power loss."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
