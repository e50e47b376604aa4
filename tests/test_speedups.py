"""The C accelerators and the pure-Python path agree byte for byte and verdict for verdict.

``walrus/_codec.py`` defines the format; these tests hold ``walrus._speedups`` (C when built)
to it, so a record written by one path always reads with the other.
"""

from __future__ import annotations

import contextlib
import mmap
import threading
from array import array
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from walrus import _codec, _speedups
from walrus._codec import HEADER_SIZE, SEG_SHIFT, record_size
from walrus.backends._mmap import address_of, unpin

needs_c = pytest.mark.skipif(not _speedups.ACCELERATED, reason=_speedups.REASON)

payloads = st.lists(st.binary(max_size=300), min_size=1, max_size=20)
u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**63 - 1)


@contextlib.contextmanager
def pure_python() -> Iterator[None]:
    """Route ``walrus._speedups`` through its pure-Python path for the block."""
    saved, _speedups._lib = _speedups._lib, None
    try:
        yield
    finally:
        _speedups._lib = saved


@needs_c
@given(data=st.binary(max_size=5000), tid=u32, seq=u64, durable=u64, salt=u32,
       pos=st.integers(0, 64).map(lambda p: p * 8))
@settings(max_examples=300)
def test_encode_entry_writes_the_codec_record(data: bytes, tid: int, seq: int, durable: int,
                                              salt: int, pos: int) -> None:
    size = pos + record_size(len(data))
    expected = bytearray(size)
    end = _codec.encode_into(expected, pos, _codec.ENTRY, tid, 0, seq, durable, data, salt)
    with mmap.mmap(-1, size) as view:
        address = address_of(view)
        try:
            got_end = _speedups.encode_entry(address, pos, data, len(data), tid, seq, durable,
                                             salt)
        finally:
            unpin(address)
        assert got_end == size
        assert view[pos:end] == expected[pos:end]
        assert view[end:size] == bytes(size - end)  # the padding is zeroed
        record = _codec.decode_entry(view, pos, salt, len(data))
        assert record is not None and record[2] == data


@needs_c
def test_every_small_length_sums_as_zlib_does() -> None:
    """Small records take the C slice-by-8 CRC, larger ones zlib: both sides of the switch."""
    with mmap.mmap(-1, 1 << 16) as view:
        address = address_of(view)
        try:
            for n in range(0, 1100):
                data = bytes((i * 31 + n) & 0xFF for i in range(n))
                salt = (n * 2654435761) & 0xFFFFFFFF
                _speedups.encode_entry(address, 8, data, n, 3, n, 0, salt)
                expected = bytearray(record_size(n) + 8)
                end = _codec.encode_into(expected, 8, _codec.ENTRY, 3, 0, n, 0, data, salt)
                assert view[8:end] == expected[8:end], n
        finally:
            unpin(address)


@needs_c
def test_a_pinned_mapping_cannot_be_closed_until_released() -> None:
    view = mmap.mmap(-1, 4096)
    address = address_of(view)
    with pytest.raises(BufferError):
        view.close()
    unpin(address)
    view.close()
    assert address_of(mmap.mmap(-1, 4096, access=mmap.ACCESS_READ)) is None


@needs_c
def test_a_large_payload_is_encoded_without_holding_the_gil() -> None:
    """Another thread runs while a 256 MiB record is copied and summed."""
    data = bytes(256 << 20)
    ticks = 0
    done = threading.Event()

    def count() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1

    with mmap.mmap(-1, record_size(len(data))) as view:
        address = address_of(view)
        counter = threading.Thread(target=count)
        counter.start()
        try:
            before = ticks
            _speedups.encode_entry(address, 0, data, len(data), 1, 0, 0, 7)
            during = ticks - before
        finally:
            done.set()
            counter.join()
            unpin(address)
    assert during > 1000


@needs_c
@given(items=payloads, tid=u32, first_seq=u64, durable=u64, salt=u32, pos=st.integers(0, 8))
@settings(max_examples=200)
def test_batch_encoding_is_the_same_on_both_paths(items: list[bytes], tid: int, first_seq: int,
                                                  durable: int, salt: int, pos: int) -> None:
    pos *= 8
    size = pos + sum(record_size(len(d)) for d in items)
    fast = bytearray(size)
    end_fast, lsns_fast = _speedups.encode_entries(fast, pos, items, tid, len(items) - 1,
                                                   first_seq, durable, salt, 5 << SEG_SHIFT)
    with pure_python():
        slow = bytearray(size)
        end_slow, lsns_slow = _speedups.encode_entries(slow, pos, items, tid, len(items) - 1,
                                                       first_seq, durable, salt, 5 << SEG_SHIFT)
    assert (end_fast, list(lsns_fast)) == (end_slow, list(lsns_slow))
    assert fast == slow


@needs_c
@given(items=payloads, salt=u32, budget=st.integers(0, 2000), first_free=st.booleans(),
       damage=st.lists(st.integers(0, 10_000), max_size=3), window=st.integers(0, 6000))
@settings(max_examples=300)
def test_verification_gives_the_same_verdict_on_both_paths(
        items: list[bytes], salt: int, budget: int,
        first_free: bool, damage: list[int], window: int) -> None:
    segment, tid, first_seq = 3, 9, 100
    buf = bytearray(sum(record_size(len(d)) for d in items))
    _, lsns = _speedups.encode_entries(buf, 0, items, tid, 0, first_seq, 0, salt,
                                       segment << SEG_SHIFT)
    for at in damage:  # flip bits anywhere: headers, payloads, padding
        buf[at % len(buf)] ^= 0x41
    base = min(window, len(buf)) & ~7  # the buffer may start part way into the segment
    view = bytes(buf[base:])
    fast = _speedups.verify_entries(view, base, lsns, segment, tid, first_seq, salt, budget,
                                    first_free)
    with pure_python():
        slow = _speedups.verify_entries(view, base, lsns, segment, tid, first_seq, salt,
                                        budget, first_free)
    assert (list(fast[0]), list(fast[1]), fast[2]) == (list(slow[0]), list(slow[1]), slow[2])
    for start, end, data in zip(fast[0], fast[1], items, strict=False):
        assert view[start:end] == data  # what passed is exactly what was written
    if not damage and base == 0 and first_free and budget >= sum(map(len, items)):
        assert len(fast[0]) == len(items)


def test_verification_stops_at_another_segment() -> None:
    buf = bytearray(2 * record_size(3))
    _, lsns = _speedups.encode_entries(buf, 0, [b"abc", b"def"], 1, 1, 0, 0, 5, 2 << SEG_SHIFT)
    lsns = array("Q", [lsns[0], (3 << SEG_SHIFT) | (lsns[1] & ((1 << SEG_SHIFT) - 1))])
    starts, ends, stop = _speedups.verify_entries(bytes(buf), 0, lsns, 2, 1, 0, 5, 1 << 20, True)
    assert (list(starts), list(ends), stop) == ([HEADER_SIZE], [HEADER_SIZE + 3],
                                                _speedups.STOP_SEGMENT)
