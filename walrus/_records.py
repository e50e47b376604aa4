"""Putting records into a segment, and noting what its state records say.

The log decides where a write goes and what it means; this module only lays bytes down at a
position: a batch of entries, state records, the best-effort ``MARK`` that claims the durable
point, and the zeros that erase undone writes. Into a mapping it encodes in place; without
one it builds the bytes and hands them to the log's ``write`` (which abandons the active
segment when a write fails, so that decision stays with the log). None of it moves
``seg.end``: the caller does, after every call, so an interrupt finds a write whole or not
begun.

:class:`SegmentStates` is the other half: which TOPIC, CURSOR, CLEAN and DIRTY state each
segment's records hold, kept in memory so that the segment's index can say it without a
rescan.
"""

from __future__ import annotations

import logging
from array import array
from collections.abc import Callable, Iterable, Sequence

from . import _codec
from ._codec import (
    CLEAN,
    CURSOR,
    DIRTY,
    HEADER_SIZE,
    MARK,
    MARKED_DIRTY,
    SEAL,
    TOPIC,
    TopicSummary,
    record_size,
)
from ._segment import Segment
from ._speedups import encode_entries

logger = logging.getLogger("walrus")
_pack_into = _codec.RECORD.pack_into
_crc_pack_into = _codec.CRC.pack_into
_crc32 = __import__("zlib").crc32

Payload = bytes | bytearray | memoryview
Record = tuple[int, int, int, int, Payload]
"""(kind, tid, left, seq, payload): one record to encode."""
Write = Callable[[Segment, int, list[Payload]], None]
"""How the log writes parts at a position of a segment without a mapping."""


def encode_batch(seg: Segment, p: int, need: int, tid: int, seq: int, items: Sequence[Payload],
                 topic: bytes | None, durable: int, write: Write) -> tuple[int, array[int]]:
    """Encode a batch (headed by a TOPIC record for a new topic) at ``p``; returns where it
    ends and its entries' LSNs.

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
    write(seg, p, [target])
    return p + end, lsns


def write_records(seg: Segment, p: int, records: Sequence[Record], durable: int,
                  write: Write) -> int:
    """Encode records back to back from ``p``; returns where they end."""
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
        write(seg, p, parts)
    return pos


def seal(seg: Segment, durable: int, write: Write) -> None:
    """End ``seg``'s records with a SEAL, if it fits (the records' region ends where it
    starts). Best effort: the next segment's header says where the log ended anyway."""
    if seg.end + HEADER_SIZE <= seg.size:
        try:
            write_records(seg, seg.end, [(SEAL, 0, 0, 0, b"")], durable, write)
        except OSError:
            pass


def mark_durable(seg: Segment, durable: int) -> None:
    """Claim the durable point just past the end of ``seg`` (a MARK record).

    Every record claims the durable point known when it was written, so damage to a
    record is told from a torn write by a later record's claim. The records of the last
    sync pass have no later record: the mark is it. It is not part of the log: the next
    write goes over it (records are never shorter than it), and a roll's SEAL too. Best
    effort and not synced itself: it reaches the disk with the next sync or the system's
    own writeback; a mark that never does proves nothing, and a torn one is not a record.
    (A 32-byte store per sync pass, under the append lock the pass takes anyway.)
    """
    p = seg.end
    if p + HEADER_SIZE > seg.size:
        return
    try:
        view = seg.view
        if view is not None:  # packed in place, as an append's header is: no bytes made
            _pack_into(view, p, 0, 0, 0, MARK, 0, 0, durable)
            _crc_pack_into(view, p, _crc32(view[p + 4:p + HEADER_SIZE], seg.salt))
        else:
            seg.file.write(p, _codec.encode_record(MARK, 0, 0, 0, durable, b"", seg.salt))
    except OSError as exc:  # the next write, or sync, meets the failure and reports it
        logger.debug("could not mark the durable point in %s: %s", seg.path, exc)


def erase(seg: Segment, pos: int, end: int) -> None:
    """Zero ``[pos, end)`` of ``seg``: writes a failed sync undid, so that no reopen finds
    them (the next segment, which would say where the log ends, may never be made on a
    failing disk). Best effort: the zeros reach the disk with the next sync that succeeds."""
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


class SegmentStates:
    """Per segment, the TOPIC/CURSOR/CLEAN/DIRTY state its records hold (for its index).

    Owns one table, filled by recovery and then by the log's writes, all under the log's
    append lock; the index writer reads a sealed segment's entry without it (a sealed
    segment gets no more records).
    """

    __slots__ = ("_table",)

    def __init__(self, table: dict[int, dict[int, TopicSummary]]) -> None:
        self._table = table

    def of(self, seg: Segment, tid: int) -> TopicSummary:
        """The state records of ``tid`` in ``seg``, to update as a write adds one."""
        return self._table.setdefault(seg.number, {}).setdefault(tid, TopicSummary())

    def in_segment(self, number: int) -> dict[int, TopicSummary]:
        """What segment ``number``'s state records say, by topic (empty if nothing)."""
        return self._table.get(number, {})

    def note(self, seg: Segment, records: Iterable[Record]) -> None:
        """Note the state records just written to ``seg`` (a new segment's preamble)."""
        for kind, tid, _left, value, payload in records:
            meta = self.of(seg, tid)
            if kind == TOPIC:
                meta.name = bytes(payload).decode("utf-8", "surrogatepass")
                meta.next_seq = max(meta.next_seq, value)
            elif kind == CURSOR:
                meta.cursor = value
            elif kind == CLEAN:
                meta.mark = value
            elif kind == DIRTY:
                meta.mark = MARKED_DIRTY

    def forget(self, number: int) -> None:
        """Segment ``number`` is no longer part of the log."""
        self._table.pop(number, None)
