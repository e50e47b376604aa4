"""Where a topic's walrus batches end: what the forwarder needs to keep each batch whole.

A batch (the entries of one ``batch_append_for_topic``) is framed on disk: each record's
``batch_left`` counts the records of the same batch that follow it, and 0 ends the batch. The
read API hands out entries, not batches, so the forwarder asks here, for the entries it has
just read, which of them end a batch. Only the record headers are read (their payloads were
checked by the read that returned the entries).
"""

from __future__ import annotations

from ._codec import DAMAGED, HEADER_SIZE, OFFSET_MASK, RECORD, SEG_SHIFT
from ._errors import OffsetOutOfRangeError
from ._walrus import Walrus

_unpack_from = RECORD.unpack_from


def batch_ends(wal: Walrus, topic: str, start: int, count: int) -> list[bool]:
    """For entries ``start .. start + count - 1`` of ``topic`` (entries a read returned just
    now): whether each is the last entry of its batch.

    Raises :class:`OffsetOutOfRangeError` when some of them are no longer stored (reclaimed
    or expired since the read): read them again.
    """
    log = wal._log
    t = log.by_name.get(topic)
    if t is None:
        raise OffsetOutOfRangeError(f"topic {topic!r} is not in the log")
    ends: list[bool] = []
    with t.read_lock:  # reclamation, expiry and an observer's refresh trim the index
        first = t.first_seq
        if start < first or start + count > first + len(t.lsns):
            raise OffsetOutOfRangeError(
                f"topic {topic!r}: offsets {start}..{start + count - 1} are not all stored "
                f"(stored from {first})")
        segments = log.segments
        for seq, lsn in enumerate(t.lsns[start - first:start - first + count], start):
            seg = segments.get(lsn >> SEG_SHIFT)
            if seg is None or lsn & DAMAGED:
                raise OffsetOutOfRangeError(f"topic {topic!r}: entry {seq} is not readable")
            pos = lsn & OFFSET_MASK
            buf, base = seg.locate(pos, HEADER_SIZE)
            _, _, tid, _, left, record_seq, _ = _unpack_from(buf, pos - base)  # type: ignore[arg-type]
            if tid != t.tid or record_seq != seq:
                raise OffsetOutOfRangeError(f"topic {topic!r}: entry {seq} moved under the read")
            ends.append(left == 0)
    return ends
