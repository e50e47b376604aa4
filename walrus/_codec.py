"""The on-disk format as pure functions: bytes in, records out, no file handles.

Everything that knows a byte layout lives here, so every backend writes and reads the same
format and the whole format can be property-tested without files (``docs/format.md``).

A log is a sequence of segment files. Each segment starts with a 64-byte header and holds
records, each 8-byte aligned::

    pos    size  field
    0      4     crc         CRC-32 (zlib) of bytes [4, 32 + length), seeded with the segment salt
    4      4     length      payload bytes
    8      4     topic_id    topic the record belongs to (0 for SEAL and MARK)
    12     2     kind        ENTRY, TOPIC, CURSOR, CLEAN, DIRTY, SEAL, MARK
    14     2     batch_left  records of the same batch that follow this one (0 commits it)
    16     8     seq         ENTRY: entry offset; TOPIC: next offset; CURSOR/CLEAN: an offset
    24     8     durable     LSN through which the log was durable when this record was written
    32     n     payload

An LSN (log sequence number) is ``segment_number << 40 | pos``, ``pos`` the byte position in the
segment file. Here "pos" is always a byte position; "offset" is an entry's number in its topic.
"""

from __future__ import annotations

import bisect
import os
import re
import struct
import zlib
from array import array
from collections.abc import Callable
from typing import NamedTuple, Protocol

import attrs

from ._limits import MAX_BATCH_ENTRIES, MAX_ENTRY_BYTES

# --- numbers ---------------------------------------------------------------------------------

SEG_SHIFT = 40
"""An LSN keeps the byte position in its low 40 bits: a segment may hold up to 1 TiB."""
OFFSET_MASK = (1 << SEG_SHIFT) - 1
ALIGN = 8
HEADER_SIZE = 32
SEGMENT_HEADER_SIZE = 64
FORMAT_VERSION = 1

ENTRY = 1
TOPIC = 2
CURSOR = 3
CLEAN = 4
DIRTY = 5
SEAL = 6
MARK = 7
"""The durable point, claimed just past the end of the log after a sync: not part of the log
(the next write goes over it), it proves the last synced records durable, so damage to them is
never taken for a torn write."""
KIND_NAMES = {ENTRY: "ENTRY", TOPIC: "TOPIC", CURSOR: "CURSOR", CLEAN: "CLEAN", DIRTY: "DIRTY",
              SEAL: "SEAL", MARK: "MARK"}
_PAYLOAD_KINDS = (ENTRY, TOPIC)
_LOG_KINDS = (SEAL, MARK)
"""Records of the log itself, not of a topic (``topic_id`` 0)."""
_MAX_LEFT = {ENTRY: MAX_BATCH_ENTRIES - 1, TOPIC: MAX_BATCH_ENTRIES, CURSOR: 0, CLEAN: 0,
             DIRTY: 0, SEAL: 0, MARK: 0}
"""The highest ``batch_left`` each kind of record can carry. A batch holds at most
``MAX_BATCH_ENTRIES`` entries; the batch that creates a topic is headed by its TOPIC record,
one record more. Other records never belong to a batch."""

RECORD = struct.Struct("<IIIHHQQ")
"""crc, length, topic_id, kind, batch_left, seq, durable."""
CRC = struct.Struct("<I")

_crc32 = zlib.crc32
_pack_into = RECORD.pack_into
_crc_pack_into = CRC.pack_into
_unpack_from = RECORD.unpack_from


def record_size(length: int) -> int:
    """Bytes a record with ``length`` payload bytes occupies, padding included."""
    return (HEADER_SIZE + length + ALIGN - 1) & ~(ALIGN - 1)


# --- encoding --------------------------------------------------------------------------------


def encode_into(buf: bytearray | memoryview | object, pos: int, kind: int, topic_id: int,
                batch_left: int, seq: int, durable: int, payload: bytes | bytearray | memoryview,
                salt: int) -> int:
    """Write one record into a writable buffer (an mmap, a bytearray) at ``pos``; return its end.

    The checksum is written last, so a reader that races the write sees an invalid record,
    never a partial one. Padding bytes are left as they are (the format ignores them).
    """
    n = len(payload)
    end = pos + HEADER_SIZE + n
    _pack_into(buf, pos, 0, n, topic_id, kind, batch_left, seq, durable)  # type: ignore[arg-type]
    buf[pos + HEADER_SIZE:end] = payload  # type: ignore[index]
    if n <= 4096:
        crc = _crc32(buf[pos + 4:end], salt)  # type: ignore[index]
    else:
        with memoryview(buf) as view:  # type: ignore[arg-type]
            crc = _crc32(view[pos + 4:end], salt)
    _crc_pack_into(buf, pos, crc)  # type: ignore[arg-type]
    return int((end + ALIGN - 1) & ~(ALIGN - 1))


def encode_header(kind: int, topic_id: int, batch_left: int, seq: int, durable: int,
                  payload: bytes | bytearray | memoryview, salt: int) -> bytes:
    """The 32-byte header of a record, checksum included, for writers that do not map memory."""
    tail = RECORD.pack(0, len(payload), topic_id, kind, batch_left, seq, durable)[4:]
    return CRC.pack(_crc32(payload, _crc32(tail, salt))) + tail


def padding(length: int) -> bytes:
    """Zero bytes that follow a payload of ``length`` bytes up to the next record."""
    return bytes(-(HEADER_SIZE + length) % ALIGN)


def encode_record(kind: int, topic_id: int, batch_left: int, seq: int, durable: int,
                  payload: bytes | memoryview, salt: int) -> bytes:
    """A whole record as bytes (header, payload, padding)."""
    return (encode_header(kind, topic_id, batch_left, seq, durable, payload, salt)
            + bytes(payload) + padding(len(payload)))


# --- segment header --------------------------------------------------------------------------

SEGMENT_MAGIC = b"WALRUSPY"
_SEGMENT = struct.Struct("<8sHHIQIIQQQ")
"""magic, version, header size, flags, segment number, salt, reserved, prev_end, created_ns,
prev_durable; then zero padding up to byte 60 and a CRC-32 of bytes [0, 60) at 60."""
FOLLOWS_FAILED_SYNC = 1
"""Segment flag: started because a sync failed. The previous segment's bytes after
``prev_durable`` may be lost without anything later being suspect."""


@attrs.frozen
class SegmentHeader:
    """What a segment file says about itself."""

    number: int
    salt: int
    prev_end: int
    """LSN where the log ended in the previous segment (0 for the first segment).

    Authoritative: bytes of the previous segment at or after it are not part of the log.
    """
    created_ns: int = 0
    flags: int = 0
    prev_durable: int = 0
    """LSN through which the log was known durable when this segment started."""


def encode_segment_header(header: SegmentHeader) -> bytes:
    body = _SEGMENT.pack(SEGMENT_MAGIC, FORMAT_VERSION, SEGMENT_HEADER_SIZE, header.flags,
                         header.number, header.salt, 0, header.prev_end, header.created_ns,
                         header.prev_durable)
    body = body.ljust(SEGMENT_HEADER_SIZE - 4, b"\0")
    return body + CRC.pack(_crc32(body))


class FormatError(ValueError):
    """Bytes that do not hold what the format says they should."""


def decode_segment_header(data: bytes | memoryview) -> SegmentHeader:
    data = bytes(data[:SEGMENT_HEADER_SIZE])
    if len(data) < SEGMENT_HEADER_SIZE:
        raise FormatError("segment header is truncated")
    (magic, version, size, flags, number, salt, _r, prev_end, created,
     prev_durable) = _SEGMENT.unpack_from(data)
    if magic != SEGMENT_MAGIC:
        raise FormatError("not a walrus segment (bad magic)")
    if CRC.unpack_from(data, SEGMENT_HEADER_SIZE - 4)[0] != _crc32(data[:-4]):
        raise FormatError("segment header checksum mismatch")
    if version != FORMAT_VERSION or size != SEGMENT_HEADER_SIZE:
        raise FormatError(f"unsupported segment format version {version}")
    return SegmentHeader(number, salt, prev_end, created, flags, prev_durable)


_SALT_PROBE = 64 << 10
"""Only records up to this size are used to recover a salt (the first record of a segment
is a small TOPIC record in practice; bigger ones would cost more checksum passes)."""


def recover_salt(buf: object, start: int, limit: int, lsn_base: int, base: int = 0) -> int | None:
    """The salt of a segment whose header is damaged, found from its records, or None.

    A record's checksum is an affine function of the salt, so each plausible record header
    gives exactly one candidate salt (solved over GF(2)). A candidate is believed only if
    the record after it checks out with it too, or nothing but zeros follows.
    """
    pos = start
    while pos + HEADER_SIZE <= limit:
        pos = _first_plausible(buf, pos, limit, base,
                               lambda at: _plausible(buf, at, limit, lsn_base, base))
        if pos >= limit:
            return None
        salt = _salt_for(buf, pos - base)
        status, record = check(buf, pos, limit, salt, lsn_base, base) if salt else (BAD_CRC, None)
        if status == OK and record is not None and (
                _next_candidate(buf, record.end, limit, base) >= limit
                or check(buf, record.end, limit, salt, lsn_base, base)[0] == OK):
            return salt
        pos += ALIGN
    return None


def _plausible(buf: object, pos: int, limit: int, lsn_base: int, base: int) -> bool:
    _crc, n, tid, kind, left, _seq, durable = _unpack_from(buf, pos - base)  # type: ignore[arg-type]
    return (kind in KIND_NAMES and pos + HEADER_SIZE + n <= limit and n <= _SALT_PROBE
            and (not n or kind in _PAYLOAD_KINDS) and left < MAX_BATCH_ENTRIES + 1
            and (tid == 0) == (kind in _LOG_KINDS) and durable <= lsn_base + pos)


def _salt_for(buf: object, at: int) -> int:
    """The salt under which the record at buffer index ``at`` is valid (0 if none is)."""
    crc, n = struct.unpack_from("<II", buf, at)  # type: ignore[arg-type]
    data = bytes(buf[at + 4:at + HEADER_SIZE + n])  # type: ignore[index]
    # crc32(data, s) == crc32(data, 0) ^ L(s), with L linear: solve L(s) == crc ^ crc32(data, 0).
    zero = _crc32(data, 0)
    columns = [_crc32(data, 1 << i) ^ zero for i in range(32)]
    return _solve_gf2(columns, crc ^ zero) or 0


def _solve_gf2(columns: list[int], target: int) -> int | None:
    """The x with XOR of columns[i] for each bit i set in x == target, or None."""
    rows: list[tuple[int, int]] = []  # (pivoted column value, the x bits that make it)
    for i, col in enumerate(columns):
        x = 1 << i
        for value, bits in rows:
            if col ^ value < col:
                col, x = col ^ value, x ^ bits
        if col:
            rows.append((col, x))
            rows.sort(reverse=True)
    result = 0
    for value, bits in rows:
        if target ^ value < target:
            target, result = target ^ value, result ^ bits
    return result if target == 0 else None


def new_salt() -> int:
    return int.from_bytes(os.urandom(4), "little") or 1


# --- decoding --------------------------------------------------------------------------------


class Record(NamedTuple):
    """One decoded record header; the payload stays in the buffer at ``[pos + 32, ...)``."""

    pos: int
    """The record's byte position in its segment file (entry numbers are "offsets")."""
    kind: int
    topic_id: int
    batch_left: int
    seq: int
    durable: int
    length: int

    @property
    def end(self) -> int:
        return self.pos + record_size(self.length)

    @property
    def payload_pos(self) -> int:
        return self.pos + HEADER_SIZE


OK = 0
BAD_HEADER = 1
"""The header is implausible: this is not the start of a record."""
BAD_CRC = 2
"""The header is plausible but the checksum over header and payload does not match."""


def check(buf: object, pos: int, limit: int, salt: int, lsn_base: int,
          base: int = 0) -> tuple[int, Record | None]:
    """Classify the bytes at ``pos`` (which must be 8-aligned and < ``limit``).

    Positions are byte positions in the file; ``buf`` holds its bytes from ``base`` on (all
    scanning functions take it, so a backend without a mapping reads only what it scans).
    Bytes past the end of ``buf`` count as missing, whatever ``limit`` says: a file cut
    short ends in damage, never in an exception.
    """
    limit = min(limit, base + len(buf))  # type: ignore[arg-type]  # a file cut short
    if pos + HEADER_SIZE > limit:
        return BAD_HEADER, None
    at = pos - base
    crc, n, tid, kind, left, seq, durable = _unpack_from(buf, at)  # type: ignore[arg-type]
    end = pos + HEADER_SIZE + n
    if (left > _MAX_LEFT.get(kind, -1) or end > limit or n > MAX_ENTRY_BYTES
            or (n and kind not in _PAYLOAD_KINDS)
            or (tid == 0) != (kind in _LOG_KINDS) or durable > lsn_base + pos):
        return BAD_HEADER, None
    record = Record(pos, kind, tid, left, seq, durable, n)
    if n <= 4096:
        actual = _crc32(buf[at + 4:end - base], salt)  # type: ignore[index]
    else:
        with memoryview(buf) as view:  # type: ignore[arg-type]
            actual = _crc32(view[at + 4:end - base], salt)
    return (OK if actual == crc else BAD_CRC), record


def decode_entry(buf: object, pos: int, salt: int,
                 max_len: int = MAX_ENTRY_BYTES) -> tuple[int, int, bytes | None] | None:
    """Topic id, offset and payload of the ENTRY record at ``pos``; None if it fails a check.

    The read path: every entry is verified before it is returned. A payload longer than
    ``max_len`` is not copied (nor verified): its place in the tuple is None.
    """
    if pos + HEADER_SIZE > len(buf):  # type: ignore[arg-type]  # a file cut short
        return None
    crc, n, tid, kind, _left, seq, _durable = _unpack_from(buf, pos)  # type: ignore[arg-type]
    end = pos + HEADER_SIZE + n
    if kind != ENTRY or end > len(buf):  # type: ignore[arg-type]
        return None
    if n > max_len:
        return tid, seq, None
    data = buf[pos + HEADER_SIZE:end]  # type: ignore[index]
    if _crc32(data, _crc32(buf[pos + 4:pos + HEADER_SIZE], salt)) != crc:  # type: ignore[index]
        return None
    return tid, seq, data if type(data) is bytes else bytes(data)


def decode_split(header: bytes, payload: bytes, salt: int) -> tuple[int, int, bytes] | None:
    """Like :func:`decode_entry` for a header and a payload read separately."""
    crc, n, tid, kind, _left, seq, _durable = _unpack_from(header, 0)
    if kind != ENTRY or len(payload) != n or _crc32(payload, _crc32(header[4:], salt)) != crc:
        return None
    return tid, seq, payload


_NONZERO = re.compile(rb"[^\x00]")
_PLAUSIBLE = re.compile(rb"[\x01-\x07]\x00.[\x00-\x07]", re.DOTALL)
"""Bytes 12..15 of a plausible record header: a known kind, ``batch_left`` below 2048.

Resynchronising looks for this with C-speed searches and checks only what matches, so it costs
the same whatever the bytes are (compressed or encrypted payloads included)."""
_KIND_AT = 12


_CHUNK = 1 << 20
_FIRST_CHUNK = 4096
_ZEROS = bytes(_CHUNK)


def only_zeros(data: bytes | bytearray | memoryview) -> bool:
    """Does ``data`` (any length; a memoryview must be contiguous, of single bytes) hold
    nothing but zero bytes?

    Unwritten space is zeros, and scans pass over a lot of it. ``_ZEROS.startswith(chunk)`` is
    one ``memcmp``: 25 us per MiB on this machine kind, against 540 us for counting the zero
    bytes (``chunk.count(0)``).
    """
    if len(data) <= _CHUNK:
        return _ZEROS.startswith(data)
    with memoryview(data) as view:
        return all(_ZEROS.startswith(view[at:at + _CHUNK]) for at in range(0, len(view), _CHUNK))


def _next_candidate(buf: object, pos: int, limit: int, base: int = 0) -> int:
    """The first 8-aligned position >= pos whose 8 bytes are not all zero, else ``limit``.

    Unwritten space is zeros: whole chunks are skipped with ``only_zeros``, and a regex finds
    the byte only inside the one chunk that has data.
    """
    start = pos
    while start < limit:
        end = min(start + _CHUNK, limit)
        chunk = buf[start - base:end - base]  # type: ignore[index]
        if not only_zeros(chunk):
            found = _NONZERO.search(chunk)
            assert found is not None
            return max(pos, (start + int(found.start())) & ~(ALIGN - 1))
        start = end
    return limit


def resync(buf: object, pos: int, limit: int, salt: int, lsn_base: int, base: int = 0) -> int:
    """The first position at or after ``pos`` (8-aligned) holding a valid record, else ``limit``.

    Every aligned position is considered, so no valid record is skipped.
    """
    return _first_plausible(buf, pos, limit, base, lambda at: check(
        buf, at, limit, salt, lsn_base, base)[0] == OK)


def _first_plausible(buf: object, pos: int, limit: int, base: int,
                     accept: Callable[[int], bool]) -> int:
    """The first aligned position at or after ``pos`` whose kind and batch fields are
    plausible and that ``accept`` takes, else ``limit``.

    Linear in the bytes passed over: each byte is copied once (in chunks that grow from 4 KiB,
    so a record found nearby costs little), zero runs are skipped with ``only_zeros``, and only
    positions that match ``_PLAUSIBLE`` are offered to ``accept``.
    """
    size = _FIRST_CHUNK
    while pos + HEADER_SIZE <= limit:
        chunk = bytes(buf[pos - base:min(pos + size + HEADER_SIZE, limit) - base])  # type: ignore[index]
        size = min(size * 2, _CHUNK)
        last = len(chunk) - HEADER_SIZE  # the last position whose header the chunk holds
        if last < 0:
            break  # the buffer ends before ``limit`` (a file cut short)
        if not only_zeros(chunk):
            at = _KIND_AT
            while (found := _PLAUSIBLE.search(chunk, at, last + _KIND_AT + 4)) is not None:
                candidate = found.start() - _KIND_AT
                if candidate % ALIGN == 0:
                    if accept(pos + candidate):
                        return pos + candidate
                    candidate += ALIGN
                else:
                    candidate = (candidate + ALIGN - 1) & ~(ALIGN - 1)
                at = candidate + _KIND_AT
        pos += (last // ALIGN + 1) * ALIGN
    return limit


def misplaced_records(buf: object, pos: int, limit: int, salt: int, lsn_base: int,
                      base: int = 0) -> list[Record]:
    """Valid records from ``pos`` on at places no writer puts them (not 8-aligned, or before
    the durable point they claim): bytes were cut out of the file or put into it, and what
    followed moved. Linear, like :func:`resync`."""
    found: list[Record] = []
    limit = min(limit, base + len(buf))  # type: ignore[arg-type]
    start = pos
    while start + HEADER_SIZE <= limit:
        chunk = bytes(buf[start - base:min(start + _CHUNK + HEADER_SIZE, limit) - base])  # type: ignore[index]
        last = len(chunk) - HEADER_SIZE
        at = _KIND_AT
        while (match := _PLAUSIBLE.search(chunk, at, last + _KIND_AT + 4)) is not None:
            candidate = start + match.start() - _KIND_AT
            at = match.start() + 1
            if found and candidate < found[-1].end:
                continue
            # A moved record's durable claim may lie past its new place: not checked here.
            status, record = check(buf, candidate, limit, salt, lsn_base | OFFSET_MASK, base)
            if status == OK and record is not None and (
                    candidate % ALIGN or record.durable > lsn_base + candidate):
                found.append(record)
                at = max(at, record.end - start + _KIND_AT)
        start += last + 1
    return found


@attrs.define
class ScanResult:
    """What a scan of one segment found."""

    records: list[Record]
    """Valid records of complete batches, in log order (a SEAL or MARK that ends them included)."""
    end: int
    """Where the log ends in this segment: after the last kept record, at a SEAL or a MARK."""
    sealed: bool
    """The scan stopped at a SEAL record: the segment was closed by a roll."""
    damaged: list[tuple[int, Record | None]]
    """Damaged records kept in place because durable data lies beyond them (pos, header)."""
    torn: bool
    """Bytes after ``end`` looked like an interrupted write (not just unwritten space)."""

    @property
    def counted(self) -> int:
        """Records of the log it met, damaged ones included (a MARK is not one)."""
        return len(self.records) + len(self.damaged) - sum(r.kind == MARK for r in self.records)


def scan(buf: object, start: int, limit: int, salt: int, lsn_base: int,
         durable: int = 0, base: int = 0) -> ScanResult:
    """Decode the records of one segment from ``start`` up to ``limit``.

    The log ends at the first damaged record that nothing durable lies beyond (a torn tail:
    the record and any unfinished batch before it are cut). A damaged record followed by a
    valid record whose ``durable`` field covers it was durable once: it is corruption, kept
    as ``damaged`` so reads report it, and the scan goes on. So is damage below ``durable``,
    a position the caller knows was synced (a later segment proved it).

    The length of a damaged record is never believed: the scan resynchronises at the next
    valid record after its header, so a flipped length bit cannot hide the records after it.
    """
    records: list[Record] = []
    damaged: list[tuple[int, Record | None]] = []
    pending: list[Record] = []
    """Records of a batch whose last record has not been seen yet."""
    claims: _Claims | None = None
    pos = start
    while pos < limit:
        status, record = check(buf, pos, limit, salt, lsn_base, base)
        if status == OK:
            assert record is not None
            if not pending or _continues(pending[-1], record):
                if record.kind in _LOG_KINDS:  # the end: sealed, or where the writer stood
                    records.append(record)
                    return ScanResult(records, pos, record.kind == SEAL, damaged, False)
                pending.append(record)
                if not record.batch_left:
                    records.extend(pending)
                    pending.clear()
                pos = record.end
                continue
            beyond = pos  # a valid record, but the open batch broke off before it
        else:
            beyond = resync(buf, pos + ALIGN, limit, salt, lsn_base, base)
        # Damage at pos: corruption if something valid beyond it claims durability past it.
        if pos >= durable:
            if claims is None:
                claims = _Claims(buf, beyond, limit, salt, lsn_base, base)
            if not claims.past(beyond, lsn_base + pos):
                cut = pending[0].pos if pending else pos
                torn = _next_candidate(buf, cut, limit, base) < limit
                return ScanResult(records, cut, False, damaged, torn)
        if status != OK:
            if pending:  # a batch's records are contiguous: this was the batch's next one
                record = _next_in_batch(pending[-1], pos, beyond)
            damaged.append((pos, record if status == BAD_CRC or pending else None))
            if record is not None and pos < record.end < beyond:
                # Damage reaches past the end this record's header claims: another record
                # (at least) began there, its header unreadable.
                damaged.append((record.end, None))
        records.extend(pending)
        pending.clear()
        pos = beyond
    cut = pending[0].pos if pending else limit
    return ScanResult(records, cut, False, damaged, bool(pending))


class _Claims:
    """The ``durable`` claims of the valid records from a place on, walked once (as the scan
    walks: a valid record leads to the one after it, damage to the next valid record), so
    each damaged place is judged without walking the rest of the segment again."""

    def __init__(self, buf: object, pos: int, limit: int, salt: int, lsn_base: int,
                 base: int) -> None:
        self.positions: list[int] = []
        self.highest: list[int] = []
        """The highest claim of the record at ``positions[i]`` and of all after it."""
        while pos < limit:
            status, record = check(buf, pos, limit, salt, lsn_base, base)
            if status != OK or record is None:
                pos = resync(buf, pos + ALIGN, limit, salt, lsn_base, base)
                continue
            self.positions.append(pos)
            self.highest.append(record.durable)
            pos = record.end
        for i in range(len(self.highest) - 2, -1, -1):
            self.highest[i] = max(self.highest[i], self.highest[i + 1])

    def past(self, pos: int, target: int) -> bool:
        """Does a valid record at or after ``pos`` say the log was durable past ``target``?"""
        i = bisect.bisect_left(self.positions, pos)
        return i < len(self.highest) and self.highest[i] > target


def _next_in_batch(last: Record, pos: int, beyond: int) -> Record:
    """The header the record at ``pos``, damaged, must have had: the next of ``last``'s batch
    (the valid record before it says so; the damaged header itself is not believed)."""
    return Record(pos, ENTRY, last.topic_id, last.batch_left - 1,
                  last.seq + (1 if last.kind == ENTRY else 0), 0,
                  max(0, beyond - pos - HEADER_SIZE))


def header_as_written(buf: object, pos: int, base: int = 0) -> Record | None:
    """The fields of the header at ``pos`` as they are, checks failed or not (None if the
    buffer ends first): hints about damaged data, never believed alone."""
    at = pos - base
    if at < 0 or at + HEADER_SIZE > len(buf):  # type: ignore[arg-type]
        return None
    _crc, n, tid, kind, left, seq, durable = _unpack_from(buf, at)  # type: ignore[arg-type]
    return Record(pos, kind, tid, left, seq, durable, n)


def may_be_entry(record: Record) -> bool:
    """Could this damaged header be an entry's? Its kind says so, is no kind at all, or
    is one that carries no payload although the record has one."""
    return (record.kind == ENTRY or record.kind not in KIND_NAMES
            or (record.length > 0 and record.kind not in _PAYLOAD_KINDS))


def _continues(last: Record, record: Record) -> bool:
    """Is ``record`` the next member of the batch that ``last`` belongs to?

    A batch is a run of ENTRY records of one topic with consecutive offsets, optionally
    headed by the TOPIC record that creates the topic (its ``seq`` is the first offset).
    """
    step = 1 if last.kind == ENTRY else 0
    return (record.batch_left == last.batch_left - 1 and record.kind == ENTRY
            and last.kind in (ENTRY, TOPIC) and record.topic_id == last.topic_id
            and record.seq == last.seq + step)


# --- segment index (the recovery checkpoint of a segment) -----------------------------------

INDEX_MAGIC = b"WALRIDX1"
_INDEX_HEAD = struct.Struct("<8sHHIQIIQ")
"""magic, version, flags, reserved, segment number, salt, topic count, covered end."""
_INDEX_TOPIC = struct.Struct("<IIQQQqqQ")
"""topic_id, name length, first seq, entry count, next seq (from TOPIC), cursor (``NO_CURSOR``),
clean mark (or ``NO_MARK``, ``MARKED_DIRTY``), entry bytes; then the name and the entries' LSNs."""
INDEX_SEALED = 1
_NO_NAME = 0xFFFFFFFF

# --- sentinels (in index files and in the engine's topics alike) ----------------------------

DAMAGED = 1
"""Low bit set on an LSN in a topic's index (in memory or in an index file): the entry's
record is damaged on disk. Records are 8-aligned, so real LSNs have the low bits clear and
flagged values still sort between their neighbours (the index stays ordered for bisection)."""
NO_ENTRY = -1
"""A topic's ``first_seq`` while none of its entries has been seen (in a segment, or yet)."""
NO_CURSOR = -1
"""A topic's cursor in a segment that holds no CURSOR record of it."""
NO_MARK = -1
"""A topic's clean mark when no CLEAN or DIRTY record was written for it."""
MARKED_DIRTY = -2
"""A topic's clean mark after a DIRTY record (else the mark is the next offset when the topic
was marked clean)."""


class Entries(Protocol):
    """A topic's index of entries as recovery builds it (``TopicSummary``, ``Topic``)."""

    first_seq: int
    lsns: array[int]


def extend_lost(t: Entries, end: int, lsn: int) -> bool:
    """Give every offset from ``t``'s next one up to ``end`` (excluded) an entry whose record
    was lost to damage, placed at ``lsn`` (where the lost records were, as near as is known):
    reads of them raise ``CorruptionError`` and their offsets are never handed out again.
    Returns whether any offset was missing."""
    missing = end - (t.first_seq + len(t.lsns))
    if missing > 0:
        t.lsns.extend(lost(lsn, missing))
    return missing > 0


def lost(lsn: int, count: int) -> array[int]:
    """``count`` index entries at ``lsn``, flagged ``DAMAGED``: the one place fillers are made."""
    return array("Q", (lsn | DAMAGED,)) * count


@attrs.define
class TopicSummary:
    """What one segment holds for one topic."""

    name: str | None = None
    next_seq: int = 0
    """Highest "next offset" a TOPIC record stated for the topic in this segment."""
    first_seq: int = NO_ENTRY
    lsns: array[int] = attrs.field(factory=lambda: array("Q"))
    """LSN of each entry, for entries first_seq, first_seq + 1, ...; the low bit is set on
    entries whose record is damaged (``DAMAGED``)."""
    cursor: int = NO_CURSOR
    mark: int = NO_MARK
    """``NO_MARK``, ``MARKED_DIRTY``, or the next offset when the topic was marked clean."""
    nbytes: int = 0

    def lose_until(self, end: int, lsn: int) -> bool:
        """See :func:`extend_lost`."""
        return extend_lost(self, end, lsn)


@attrs.define
class SegmentSummary:
    """Everything recovery needs from one segment, from an index file or from a scan."""

    number: int
    salt: int
    end: int
    sealed: bool
    topics: dict[int, TopicSummary] = attrs.field(factory=dict)


def encode_index(summary: SegmentSummary) -> bytes:
    parts = [_INDEX_HEAD.pack(INDEX_MAGIC, FORMAT_VERSION, INDEX_SEALED if summary.sealed else 0,
                              0, summary.number, summary.salt, len(summary.topics), summary.end)]
    for tid, t in summary.topics.items():
        name = b"" if t.name is None else t.name.encode("utf-8", "surrogatepass")
        parts.append(_INDEX_TOPIC.pack(tid, _NO_NAME if t.name is None else len(name),
                                       max(t.first_seq, 0), len(t.lsns), t.next_seq, t.cursor,
                                       t.mark, t.nbytes))
        parts.append(name)
        parts.append(t.lsns.tobytes())
    body = b"".join(parts)
    return body + CRC.pack(_crc32(body))


def decode_index(data: bytes) -> SegmentSummary:
    if len(data) < _INDEX_HEAD.size + 4 or CRC.unpack_from(data, len(data) - 4)[0] != _crc32(
            memoryview(data)[:-4]):
        raise FormatError("segment index checksum mismatch")
    magic, version, flags, _r, number, salt, count, end = _INDEX_HEAD.unpack_from(data)
    if magic != INDEX_MAGIC or version != FORMAT_VERSION:
        raise FormatError("not a walrus segment index")
    summary = SegmentSummary(number, salt, end, bool(flags & INDEX_SEALED))
    pos = _INDEX_HEAD.size
    for _ in range(count):
        tid, nlen, first, n, next_seq, cursor, mark, nbytes = _INDEX_TOPIC.unpack_from(data, pos)
        pos += _INDEX_TOPIC.size
        name = None
        if nlen != _NO_NAME:
            name = data[pos:pos + nlen].decode("utf-8", "surrogatepass")
            pos += nlen
        lsns = array("Q")
        lsns.frombytes(data[pos:pos + 8 * n])
        pos += 8 * n
        summary.topics[tid] = TopicSummary(name, next_seq, first if n else NO_ENTRY, lsns, cursor,
                                           mark, nbytes)
    if pos != len(data) - 4:
        raise FormatError("segment index has trailing bytes")
    return summary


def summarize(number: int, salt: int, result: ScanResult, buf: object,
              base: int = 0) -> SegmentSummary:
    """Fold scanned records into a summary (the same thing an index file stores)."""
    summary = SegmentSummary(number, salt, result.end, result.sealed)
    topics = summary.topics
    lsn_base = number << SEG_SHIFT
    damaged = {record.pos for _, record in result.damaged if record is not None}
    records = sorted([*result.records, *(r for _, r in result.damaged if r is not None)])
    loose = sorted(pos for pos, record in result.damaged if record is None)
    """Damaged records whose header says nothing: each is the first entry of a gap, in turn."""
    promised: dict[int, tuple[int, int]] = {}
    """Per topic: the next offset a batch broken by damage was framed to reach, and where."""
    starts = [r.pos for r in result.records]  # in order: where valid records begin
    for r in records:
        kind = r.kind
        t = topics.get(r.topic_id)
        if r.pos in damaged:
            # A damaged header is only trusted when it names exactly the next entry of a
            # topic already seen here; anything else shows up later as a gap in offsets.
            if kind == ENTRY and t is not None and r.seq == _next_offset(t):
                lsn = lsn_base | r.pos | DAMAGED
                _add_entry(t, r.seq, lsn, record_size(r.length))
                # The rest of its batch follows it, contiguous: as many records as the
                # damaged stretch up to the next valid record can hold, at most.
                i = bisect.bisect_right(starts, r.pos)
                room = ((starts[i] if i < len(starts) else result.end) - r.pos) // HEADER_SIZE
                rest = min(r.batch_left, room - 1)
                if rest > 0:
                    promised[r.topic_id] = (r.seq + rest + 1, lsn)
            continue
        if kind in _LOG_KINDS:
            continue
        if t is None:
            t = topics[r.topic_id] = TopicSummary()
        if kind == ENTRY:
            gap_at = None
            if t.first_seq >= 0 and r.seq > _next_offset(t):
                gap_at = _claim_loose(loose, t.lsns[-1] & OFFSET_MASK if t.lsns else 0, r.pos)
            _add_entry(t, r.seq, lsn_base | r.pos, record_size(r.length),
                       None if gap_at is None else lsn_base | gap_at)
        elif kind == TOPIC:
            at = r.payload_pos - base
            t.name = bytes(buf[at:at + r.length]).decode(  # type: ignore[index]
                "utf-8", "surrogatepass")
            t.next_seq = max(t.next_seq, r.seq)
        elif kind == CURSOR:
            t.cursor = r.seq
        elif kind == CLEAN:
            t.mark = r.seq
        elif kind == DIRTY:
            t.mark = MARKED_DIRTY
    for tid, (reach, lsn) in promised.items():
        # The rest of a broken batch: its entries were written (the batch's framing says how
        # many) and are lost with the damage unless records of them were found after it.
        t = topics[tid]
        if reach > _next_offset(t):
            _add_entry(t, reach - 1, lsn, 0)
    return summary


def _next_offset(t: TopicSummary) -> int:
    """The offset of the entry that would come next in ``t`` (its TOPIC record's, if none
    has been seen yet)."""
    return t.first_seq + len(t.lsns) if t.first_seq >= 0 else t.next_seq


def _claim_loose(loose: list[int], after: int, before: int) -> int | None:
    """Take the first damaged record strictly between two positions: where the first entry
    of a gap in a topic's offsets was (records of one topic are in offset order)."""
    i = bisect.bisect_right(loose, after)
    if i < len(loose) and loose[i] < before:
        return loose.pop(i)
    return None


def _add_entry(t: TopicSummary, seq: int, lsn: int, size: int,
               gap_at: int | None = None) -> None:
    """Index an entry; offsets skipped over (records with damaged headers) are flagged, at
    ``gap_at`` when the damaged record where the gap begins is known."""
    if t.first_seq < 0:
        t.first_seq = seq
    expected = t.first_seq + len(t.lsns)
    if seq < expected:
        return  # a damaged header that decoded to an earlier offset: keep the first
    if seq > expected:
        t.lose_until(seq, gap_at if gap_at is not None else t.lsns[-1] if t.lsns else lsn - ALIGN)
    t.lsns.append(lsn)
    t.nbytes += size
