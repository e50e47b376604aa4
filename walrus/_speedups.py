"""The record codec's per-record loops: in C when the extension is built, else in Python.

Chosen once at import; the reason is logged and exposed as ``REASON``. ``WALRUS_PURE_PYTHON``
forces the Python path (the test suite runs both). Both paths produce and accept exactly the
same bytes (``walrus/_codec.py`` is the definition).
"""

from __future__ import annotations

import logging
from array import array
from collections.abc import Sequence
from typing import Any

from . import _codec
from ._codec import ENTRY, HEADER_SIZE, OFFSET_MASK, SEG_SHIFT
from ._config import MAX_ENTRY_BYTES
from ._native import hot, speedups

log = logging.getLogger("walrus")

STOP_COUNT, STOP_BUDGET, STOP_DAMAGED, STOP_BUFFER, STOP_SEGMENT = range(5)
"""Why :func:`verify_entries` stopped before the end of its run."""

_ffi, _lib, REASON = speedups()
ACCELERATED = _lib is not None
log.debug("record codec loops: %s", REASON)

_hot, HOT_REASON = hot()
log.debug("per-call hot paths: %s", HOT_REASON)

hot_append: Any = None if _hot is None else _hot.append
"""``hot_append(log, slow, topic, data)``: ``Log.append`` in C for its common case, else
``slow(log, topic, data)`` (see ``walrus/_native/hot.c``). None without the extension."""
hot_read_next: Any = None if _hot is None else _hot.read_next
"""``hot_read_next(cursor, slow, topic, ...)``: ``Cursor.read_next`` likewise."""
hot_entries: Any = None if _hot is None else _hot.entries
"""``hot_entries(payloads, first, topic, Entry)``: the Entry tuples of a run, built in C."""
hot_slices: Any = None if _hot is None else _hot.slices
"""``hot_slices(buf, starts, ends)``: the payloads ``buf[starts[i]:ends[i]]`` as bytes."""
hot_sync_pass: Any = None if _hot is None else _hot.sync_pass
"""``hot_sync_pass(durability, lsn)``: ``Durability.wait``'s lone writer's pass in C (True: done;
None: the Python wait decides)."""
hot_use_durability: Any = None if _hot is None else _hot.use_durability
"""``hot_use_durability(globals, Backend.sync_files, {File class: sync}, Log._announce)``: what
``hot_sync_pass`` needs of the Python side."""
hot_use_pending: Any = None if _hot is None else _hot.use_pending
"""``hot_use_pending(cls)``: the class of the pending write ``hot_append`` makes for a SyncEach
append (``_syncbook.PendingEntries``); until told, SyncEach appends take ``Log.append``."""
hot_fallbacks: Any = None if _hot is None else _hot.fallbacks
"""``hot_fallbacks() -> {reason: count}``: the appends ``hot_append`` handed to ``Log.append``
since the import, by reason ("lock held", "room", ...): to see which path a workload takes."""

_crc32 = __import__("zlib").crc32

encode_entry: Any = None if _lib is None else _lib.walrus_encode_entry
"""``encode_entry(address, pos, data, n, tid, seq, durable, salt) -> end``: one ENTRY record
written at ``address + pos`` (``address``: a writable mapping's ``File.address``). None
without the C extension: the caller packs the record in Python then."""

_unpack_from = _codec.RECORD.unpack_from


def encode_entries(buf: Any, pos: int, payloads: Sequence[Any], tid: int, first_left: int,
                   first_seq: int, durable: int, salt: int,
                   lsn_base: int) -> tuple[int, array[int]]:
    """Encode ENTRY records of one batch back to back into ``buf`` from ``pos``.

    Returns the end offset and the LSN of each record (``lsn_base + its offset in buf``).
    """
    count = len(payloads)
    if _lib is not None:
        lengths = array("Q", map(len, payloads))
        joined = payloads[0] if count == 1 else b"".join(payloads)
        lsns = array("Q", bytes(8 * count))
        with _ffi.from_buffer(buf, require_writable=True) as dst:
            end = _lib.walrus_encode_entries(
                dst, pos, _ffi.from_buffer(joined), _ffi.from_buffer("uint64_t[]", lengths),
                count, tid, first_left, first_seq, durable, salt, lsn_base,
                _ffi.from_buffer("uint64_t[]", lsns))
        return int(end), lsns
    lsns = array("Q")
    encode = _codec.encode_into
    for i, data in enumerate(payloads):
        lsns.append(lsn_base + pos)
        pos = encode(buf, pos, ENTRY, tid, first_left - i, first_seq + i, durable, data, salt)
    return pos, lsns


def record_bytes(buf: Any, lsns: array[int]) -> int:
    """Bytes the records at ``lsns`` occupy in ``buf`` (a whole segment), padding included.

    Damaged entries (flagged LSNs) count nothing: their size is unknown.
    """
    if _lib is not None:
        with _ffi.from_buffer(buf) as src:
            return int(_lib.walrus_record_bytes(src, len(buf),
                                                _ffi.from_buffer("uint64_t[]", lsns), len(lsns)))
    total = 0
    size = len(buf)
    for lsn in lsns:
        off = lsn & OFFSET_MASK
        if not lsn & 7 and off + HEADER_SIZE <= size:
            total += _codec.record_size(_unpack_from(buf, off)[1])
    return total


def verify_entries(buf: Any, base: int, lsns: array[int], segment: int, tid: int,
                   first_seq: int, salt: int, budget: int,
                   first_free: bool) -> tuple[Sequence[int], Sequence[int], int]:
    """Check the ENTRY records at ``lsns`` (entries ``first_seq``, ``first_seq + 1``, ...).

    ``buf`` holds the segment's bytes from offset ``base``. Stops at the first record that
    is damaged, lies in another segment, runs past ``buf``, or would take the payload total
    past ``budget`` (the first one is always taken when ``first_free``). Returns where the
    payloads of the records that passed start and end in ``buf`` (so the caller slices them
    out in one C-level loop) and why it stopped.
    """
    count = len(lsns)
    if _lib is not None:
        starts = array("Q", bytes(8 * count))
        ends = array("Q", bytes(8 * count))
        stop = _ffi.new("int *")
        with _ffi.from_buffer(buf) as src:
            n = _lib.walrus_verify_entries(src, len(buf), base,
                                           _ffi.from_buffer("uint64_t[]", lsns), count,
                                           segment, tid, first_seq, salt, budget,
                                           1 if first_free else 0,
                                           _ffi.from_buffer("uint64_t[]", starts),
                                           _ffi.from_buffer("uint64_t[]", ends), stop)
        if n < count:
            del starts[n:], ends[n:]
        return starts, ends, int(stop[0])
    out_starts: list[int] = []
    out_ends: list[int] = []
    total = 0
    size = len(buf)
    for i, lsn in enumerate(lsns):
        if lsn >> SEG_SHIFT != segment:
            return out_starts, out_ends, STOP_SEGMENT
        if lsn & 7:
            return out_starts, out_ends, STOP_DAMAGED
        off = (lsn & OFFSET_MASK) - base
        if off < 0 or off + HEADER_SIZE > size:
            return out_starts, out_ends, STOP_BUFFER
        crc, n, rtid, kind, _left, seq, _durable = _unpack_from(buf, off)
        if n > MAX_ENTRY_BYTES or rtid != tid or kind != ENTRY or seq != first_seq + i:
            return out_starts, out_ends, STOP_DAMAGED
        if (i or not first_free) and total + n > budget:
            return out_starts, out_ends, STOP_BUDGET
        end = off + HEADER_SIZE + n
        if end > size:
            return out_starts, out_ends, STOP_BUFFER
        if _crc32(buf[off + 4:end], salt) != crc:
            return out_starts, out_ends, STOP_DAMAGED
        total += n
        out_starts.append(off + HEADER_SIZE)
        out_ends.append(end)
    return out_starts, out_ends, STOP_COUNT
