"""Reading entries back: one payload, or a run of them checked in one C pass.

Reads take no lock of the log: a topic's offsets are appended before they are published
(``Topic.visible``), records never move, and the caller holds the topic's ``read_lock``
against reclamation. ``segments`` is the log's table of open segments (``Log.segments``).
"""

from __future__ import annotations

from array import array

from . import _codec
from ._codec import DAMAGED, HEADER_SIZE, OFFSET_MASK, RECORD, SEG_SHIFT
from ._errors import CorruptionError
from ._limits import MAX_ENTRY_BYTES
from ._segment import WINDOW, Segment
from ._speedups import STOP_BUFFER, STOP_COUNT, STOP_SEGMENT, hot_slices, verify_entries
from ._topics import Topic

_unpack_from = RECORD.unpack_from


def read_payload(segments: dict[int, Segment], t: Topic, seq: int,
                 max_len: int = MAX_ENTRY_BYTES) -> bytes | None:
    """The payload of entry ``seq`` of ``t`` (None if longer than ``max_len``).

    Raises CorruptionError if the record is damaged or is not the entry it should be.
    """
    i = seq - t.first_seq
    if not 0 <= i < len(t.lsns):  # an offset handed out whose record recovery never found
        raise CorruptionError(f"topic {t.name!r} entry {seq} is lost", t.name, seq)
    lsn = t.lsns[i]
    seg = segments.get(lsn >> SEG_SHIFT)
    if seg is None:
        raise CorruptionError(f"topic {t.name!r} entry {seq}: its segment is missing",
                              t.name, seq)
    pos = lsn & OFFSET_MASK
    if not lsn & DAMAGED:
        view = seg.view
        if view is not None:
            decoded = _codec.decode_entry(view, pos, seg.salt, max_len)
        else:
            decoded = _decode_windowed(seg, pos, max_len)
        if decoded is not None and decoded[0] == t.tid and decoded[1] == seq:
            return decoded[2]
    raise CorruptionError(
        f"topic {t.name!r} entry {seq} is damaged ({seg.path} at byte {pos & ~DAMAGED})",
        t.name, seq)


def read_run(segments: dict[int, Segment], t: Topic, seq: int, end: int, budget: int,
             limit: int) -> list[bytes]:
    """Payloads of entries ``seq``, ``seq + 1``, ... (before ``end``, at most ``limit``).

    Stops before the entry that would take the total past ``budget`` (the first is always
    taken) and before a damaged one; raises CorruptionError only if the first is damaged,
    so a caller that consumes what it got plus the entry an error names never consumes
    an entry it did not deliver.
    """
    out: list[bytes] = []
    total = 0
    lsns = t.lsns
    if seq < t.first_seq:  # the caller must start at a stored entry: never a wrapped index
        raise AssertionError(f"topic {t.name!r}: read from offset {seq}, before the first "
                             f"stored entry {t.first_seq}")
    stop_at = min(end, t.first_seq + len(lsns))  # offsets past the index are lost entries
    while seq < stop_at and len(out) < limit:
        if out and total > budget:  # over already (the first is free): even b"" is past it
            break
        i = seq - t.first_seq
        lsn = lsns[i]
        number = lsn >> SEG_SHIFT
        seg = segments.get(number)
        if seg is None or lsn & DAMAGED:
            break
        view = seg.view
        if view is not None:
            buf: object = view
            base = 0
        else:
            buf, base = seg.locate(lsn & OFFSET_MASK, HEADER_SIZE)
        run = lsns[i:i + min(stop_at - seq, limit - len(out))]
        starts, ends, stop = verify_entries(buf, base, run, number, t.tid, seq, seg.salt,
                                            max(0, budget - total), not out)
        if starts:  # the payloads of the prefix that passed, sliced in C (or C-level loops)
            if hot_slices is not None and type(starts) is array:
                got = hot_slices(buf, starts, ends)
                out += got
                total += sum(map(len, got))  # small ints: no int made per entry, unlike ends
            else:
                out += map(buf.__getitem__, map(slice, starts, ends))  # type: ignore[attr-defined,index]
                total += sum(ends) - sum(starts)
        seq += len(starts)
        if stop == STOP_BUFFER and not starts:
            # The next record does not fit the read window (or the file): read it on its
            # own. Damage there ends the run; the next call raises for it.
            try:
                data = read_payload(segments, t, seq,
                                         max(0, budget - total) if out else MAX_ENTRY_BYTES)
            except CorruptionError:
                if out:
                    break
                raise
            if data is None:
                break
            out.append(data)
            total += len(data)
            seq += 1
        elif stop not in (STOP_COUNT, STOP_SEGMENT, STOP_BUFFER):
            break
    if not out and seq < end and limit:
        data = read_payload(segments, t, seq)  # raises CorruptionError for a damaged entry
        if data is not None:
            out.append(data)
    return out


def _decode_windowed(seg: Segment, pos: int,
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
