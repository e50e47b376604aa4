"""The record codec as a pure function: bytes in, records out (no files)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from walrus import _codec
from walrus._codec import (
    ALIGN,
    CURSOR,
    ENTRY,
    HEADER_SIZE,
    SEAL,
    SEGMENT_HEADER_SIZE,
    TOPIC,
    FormatError,
    SegmentHeader,
    SegmentSummary,
    TopicSummary,
)

SALT = 0x5EED
SEG = 3
BASE = SEG << _codec.SEG_SHIFT

payloads = st.binary(max_size=300)
# A log: a list of batches; each batch is a list of payloads for one topic.
batches = st.lists(st.tuples(st.integers(1, 4), st.lists(payloads, min_size=1, max_size=5)),
                   max_size=12)


def build(log: list[tuple[int, list[bytes]]], claims: bool = False,
          size: int | None = None) -> tuple[bytearray, list[tuple[int, int, bytes, int]]]:
    """Encode batches into a segment-sized buffer; returns it and (offset, tid, data, seq)."""
    need = SEGMENT_HEADER_SIZE + sum(
        _codec.record_size(len(p)) for _, batch in log for p in batch) + HEADER_SIZE
    buf = bytearray(size or need)
    pos = SEGMENT_HEADER_SIZE
    seqs: dict[int, int] = {}
    written = []
    for tid, batch in log:
        for i, data in enumerate(batch):
            seq = seqs.get(tid, 0)
            seqs[tid] = seq + 1
            durable = BASE | pos if claims else 0
            end = _codec.encode_into(buf, pos, ENTRY, tid, len(batch) - 1 - i, seq, durable, data,
                                     SALT)
            written.append((pos, tid, data, seq))
            pos = end
    return buf, written


def scanned(buf: bytes | bytearray, limit: int | None = None) -> list[tuple[int, int, bytes, int]]:
    result = _codec.scan(buf, SEGMENT_HEADER_SIZE, limit or len(buf), SALT, BASE)
    return [(r.pos, r.topic_id, bytes(buf[r.payload_pos:r.payload_pos + r.length]),
             r.seq) for r in result.records]


@given(batches)
def test_round_trip(log: list[tuple[int, list[bytes]]]) -> None:
    buf, written = build(log)
    assert scanned(buf) == written
    for offset, tid, data, seq in written:
        assert _codec.decode_entry(buf, offset, SALT) == (tid, seq, data)


@given(batches, st.data())
def test_any_truncation_yields_whole_batches_only(log: list[tuple[int, list[bytes]]],
                                                  data: st.DataObject) -> None:
    buf, written = build(log)
    cut = data.draw(st.integers(SEGMENT_HEADER_SIZE, len(buf)))
    damaged = bytes(buf[:cut]) + bytes(len(buf) - cut)  # the rest never reached the disk
    got = scanned(damaged)
    assert got == written[:len(got)]
    # Complete batches only: the scan ends on a batch boundary.
    boundaries = {0}
    count = 0
    for _, batch in log:
        count += len(batch)
        boundaries.add(count)
    assert len(got) in boundaries
    # And it keeps every batch that was completely written before the cut.
    whole = [w for w in written if w[0] + _codec.record_size(len(w[2])) <= cut]
    assert len(got) >= max(b for b in boundaries if b <= len(whole))


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(batches.filter(bool), st.data())
def test_any_bit_flip_is_never_returned_as_data(log: list[tuple[int, list[bytes]]],
                                                data: st.DataObject) -> None:
    buf, written = build(log, claims=data.draw(st.booleans()))
    bit = data.draw(st.integers(SEGMENT_HEADER_SIZE * 8, len(buf) * 8 - 1))
    buf[bit // 8] ^= 1 << (bit % 8)
    for record in scanned(buf):
        assert record in written  # byte-identical to something that was written
    for offset, tid, payload, seq in written:
        decoded = _codec.decode_entry(buf, offset, SALT)
        assert decoded is None or decoded == (tid, seq, payload)


def test_zeros_are_not_records() -> None:
    buf = bytearray(4096)
    result = _codec.scan(buf, SEGMENT_HEADER_SIZE, len(buf), SALT, BASE)
    assert result.records == [] and result.end == SEGMENT_HEADER_SIZE and not result.torn


def test_salt_separates_generations() -> None:
    """Records written under another salt (an older file's bytes) never validate."""
    buf, _ = build([(1, [b"old"])])
    result = _codec.scan(buf, SEGMENT_HEADER_SIZE, len(buf), SALT + 1, BASE)
    assert result.records == []


def test_unfinished_batch_at_the_end_is_cut() -> None:
    buf, written = build([(1, [b"a"]), (2, [b"b", b"c", b"d"])])
    last = written[-1][0]
    buf[last:last + HEADER_SIZE] = bytes(HEADER_SIZE)
    result = _codec.scan(buf, SEGMENT_HEADER_SIZE, len(buf), SALT, BASE)
    assert [r.pos for r in result.records] == [written[0][0]]
    assert result.end == written[1][0]


def test_damage_covered_by_a_durable_claim_is_corruption_not_a_tail() -> None:
    """With claims, a damaged record in the middle keeps what follows it."""
    buf, written = build([(1, [b"a" * 40]), (1, [b"b" * 40]), (1, [b"c" * 40])], claims=True)
    middle = written[1][0]
    buf[middle + HEADER_SIZE] ^= 0xFF  # payload of b
    result = _codec.scan(buf, SEGMENT_HEADER_SIZE, len(buf), SALT, BASE)
    assert [r.pos for r in result.records] == [written[0][0], written[2][0]]
    assert [offset for offset, _ in result.damaged] == [middle]
    summary = _codec.summarize(SEG, SALT, result, buf)
    lsns = list(summary.topics[1].lsns)
    assert lsns[1] & _codec.DAMAGED and not lsns[0] & _codec.DAMAGED
    assert not lsns[2] & _codec.DAMAGED


def test_damage_without_a_claim_is_a_torn_tail() -> None:
    buf, written = build([(1, [b"a" * 40]), (1, [b"b" * 40]), (1, [b"c" * 40])], claims=False)
    buf[written[1][0] + HEADER_SIZE] ^= 0xFF
    result = _codec.scan(buf, SEGMENT_HEADER_SIZE, len(buf), SALT, BASE)
    assert [r.pos for r in result.records] == [written[0][0]]
    assert result.end == written[1][0] and result.torn


def test_damaged_header_is_skipped_when_durable_data_follows() -> None:
    buf, written = build([(1, [b"a" * 40]), (1, [b"b" * 40]), (1, [b"c" * 40])], claims=True)
    middle = written[1][0]
    buf[middle:middle + HEADER_SIZE] = bytes(HEADER_SIZE)
    result = _codec.scan(buf, SEGMENT_HEADER_SIZE, len(buf), SALT, BASE)
    assert [r.pos for r in result.records] == [written[0][0], written[2][0]]
    summary = _codec.summarize(SEG, SALT, result, buf)
    lsns = list(summary.topics[1].lsns)  # the skipped offset is filled in, flagged damaged
    assert len(lsns) == 3 and lsns[1] & _codec.DAMAGED


def test_seal_ends_the_segment() -> None:
    buf, written = build([(1, [b"a"])], size=4096)
    end = written[0][0] + _codec.record_size(1)
    _codec.encode_into(buf, end, SEAL, 0, 0, 0, 0, b"", SALT)
    _codec.encode_into(buf, end + HEADER_SIZE, ENTRY, 1, 0, 1, 0, b"after the seal", SALT)
    result = _codec.scan(buf, SEGMENT_HEADER_SIZE, len(buf), SALT, BASE)
    assert result.sealed and result.end == end
    assert [r.kind for r in result.records] == [ENTRY, SEAL]


def test_topic_record_heads_a_batch() -> None:
    buf = bytearray(4096)
    pos = _codec.encode_into(buf, SEGMENT_HEADER_SIZE, TOPIC, 7, 2, 0, 0, b"events", SALT)
    pos = _codec.encode_into(buf, pos, ENTRY, 7, 1, 0, 0, b"x", SALT)
    _codec.encode_into(buf, pos, ENTRY, 7, 0, 1, 0, b"y", SALT)
    summary = _codec.summarize(SEG, SALT, _codec.scan(buf, SEGMENT_HEADER_SIZE, len(buf), SALT,
                                                      BASE), buf)
    assert summary.topics[7].name == "events" and len(summary.topics[7].lsns) == 2


def test_header_encoding_matches_in_place_encoding() -> None:
    """Backends without a mapping write header + payload; the bytes are the same."""
    buf = bytearray(256)
    end = _codec.encode_into(buf, 0, ENTRY, 5, 0, 9, 17, b"payload", SALT)
    record = _codec.encode_record(ENTRY, 5, 0, 9, 17, b"payload", SALT)
    assert bytes(buf[:end]) == record and len(record) % ALIGN == 0


def test_oversized_length_is_rejected_without_allocating() -> None:
    buf, written = build([(1, [b"a"])], size=4096)
    buf[written[0][0] + 4:written[0][0] + 8] = (0xFFFFFFF0).to_bytes(4, "little")
    assert _codec.check(buf, written[0][0], len(buf), SALT, BASE)[0] == _codec.BAD_HEADER
    assert _codec.decode_entry(buf, written[0][0], SALT) is None


@given(st.integers(1, 2**40), st.integers(0, 2**32 - 1), st.integers(0, 2**60))
def test_segment_header_round_trip(number: int, salt: int, prev_end: int) -> None:
    header = SegmentHeader(number, salt, prev_end, 123)
    assert _codec.decode_segment_header(_codec.encode_segment_header(header)) == header


@given(st.integers(0, SEGMENT_HEADER_SIZE * 8 - 1))
def test_segment_header_bit_flip_is_detected(bit: int) -> None:
    data = bytearray(_codec.encode_segment_header(SegmentHeader(1, 2, 3, 4)))
    data[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(FormatError):
        _codec.decode_segment_header(bytes(data))


def _summary() -> SegmentSummary:
    summary = SegmentSummary(4, 99, 5000, True)
    summary.topics[1] = TopicSummary("events", 10, 3, _codec.array("Q", [BASE | 64, BASE | 128]),
                                     2, -2, 200)
    summary.topics[2] = TopicSummary(None, 0, -1, _codec.array("Q"), 7, -1, 0)
    return summary


def test_index_round_trip() -> None:
    summary = _summary()
    assert _codec.decode_index(_codec.encode_index(summary)) == summary


@given(st.data())
def test_index_damage_is_detected(data: st.DataObject) -> None:
    raw = bytearray(_codec.encode_index(_summary()))
    bit = data.draw(st.integers(0, len(raw) * 8 - 1))
    raw[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(FormatError):
        _codec.decode_index(bytes(raw))


def test_state_records_fold_into_the_summary() -> None:
    buf = bytearray(4096)
    pos = _codec.encode_into(buf, SEGMENT_HEADER_SIZE, TOPIC, 2, 0, 5, 0, b"t", SALT)
    pos = _codec.encode_into(buf, pos, CURSOR, 2, 0, 3, 0, b"", SALT)
    pos = _codec.encode_into(buf, pos, CURSOR, 2, 0, 4, 0, b"", SALT)
    pos = _codec.encode_into(buf, pos, _codec.CLEAN, 2, 0, 5, 0, b"", SALT)
    summary = _codec.summarize(SEG, SALT, _codec.scan(buf, SEGMENT_HEADER_SIZE, len(buf), SALT,
                                                      BASE), buf)
    topic = summary.topics[2]
    assert (topic.name, topic.next_seq, topic.cursor, topic.mark) == ("t", 5, 4, 5)


@pytest.mark.parametrize("size", [0, 1, 7, 4096, (1 << 20) - 1, 1 << 20, (1 << 20) + 1,
                                  (3 << 20) + 5])
def test_only_zeros_finds_a_single_nonzero_byte_anywhere(size: int) -> None:
    """Scans skip unwritten space with ``only_zeros``: one set bit anywhere, in any buffer
    type, a chunk boundary included, makes it false."""
    import mmap

    assert _codec.only_zeros(bytes(size))
    places = sorted({p for p in (0, size // 2, (1 << 20) - 1, 1 << 20, size - 1) if 0 <= p < size})
    for place in places:
        data = bytearray(size)
        data[place] = 0x80
        with mmap.mmap(-1, size) as mapped:
            mapped[:] = data
            for form in (bytes(data), data, memoryview(data), mapped[:]):
                assert not _codec.only_zeros(form), (place, type(form))
            with memoryview(mapped) as view:
                assert not _codec.only_zeros(view[place:])
                assert _codec.only_zeros(view[:place])
