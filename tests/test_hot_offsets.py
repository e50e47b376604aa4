"""The C hot paths' cached field offsets (``walrus/_native/hot.c``) follow the class: a class
attribute set after the offsets were cached, or a slot descriptor of another class, is what
the attribute look-up obeys, so the C path must too; the ints it reads without the general
conversion are read right at the edges of CPython's 30-bit digits; and only an exact
array('Q') has an LSN written straight into its room."""

from __future__ import annotations

import mmap
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from walrus import (
    Entry,
    FsyncSchedule,
    ReadConsistency,
    Walrus,
    WalrusClosedError,
    _codec,
    _speedups,
)
from walrus._cursors import Cursor
from walrus._log import Log
from walrus.backends._mmap import address_of, unpin

needs_hot = pytest.mark.skipif(_speedups.hot_append is None, reason=_speedups.HOT_REASON)


@pytest.fixture
def wal(tmp_path: Path) -> Iterator[Walrus]:
    w = Walrus(data_dir=str(tmp_path / "d"), backend="mmap",
               fsync_schedule=FsyncSchedule.NoFsync,
               consistency=ReadConsistency.AtLeastOnce(persist_every=10_000))
    w.append_for_topic("t", b"first")
    _speedups.hot_append(w._log, Log.append, "t", b"second")  # the offsets are cached now
    yield w
    w.close()


@needs_hot
def test_a_class_attribute_set_after_the_offsets_were_cached_is_obeyed(
        wal: Walrus, monkeypatch: pytest.MonkeyPatch) -> None:
    """``Log.closed`` replaced on the class: every look-up says closed, so no append."""
    log = wal._log
    t = log.by_name["t"]
    with monkeypatch.context() as m:
        m.setattr(Log, "closed", property(lambda self: True))
        assert log.closed is True
        with pytest.raises(WalrusClosedError):
            _speedups.hot_append(log, Log.append, "t", b"after")
    assert t.next_seq == 2 and len(t.lsns) == 2


@needs_hot
def test_a_slot_descriptor_of_another_class_is_not_read_at_its_offset(
        wal: Walrus, monkeypatch: pytest.MonkeyPatch) -> None:
    """A member descriptor of another class (here one laid out as Log is) refuses a Log
    (TypeError); the C path must not read the Log at that class's offset instead."""
    log = wal._log
    t = log.by_name["t"]
    other = type("Other", (), {"__slots__": Log.__slots__})
    with monkeypatch.context() as m:
        m.setattr(Log, "_sync_each", other.__dict__["_sync_each"])
        with pytest.raises(TypeError):
            log._sync_each  # noqa: B018
        with pytest.raises(TypeError):
            _speedups.hot_append(log, Log.append, "t", b"after")
    assert t.next_seq == 2 and len(t.lsns) == 2


EDGES = [0, 1, 2**30 - 1, 2**30, 2**30 + 1, 2**60 - 1, 2**60, 2**62 + 12345]


@needs_hot
@pytest.mark.parametrize("value", EDGES)
def test_ints_at_the_digit_edges_are_read_whole(wal: Walrus, value: int) -> None:
    """An entry's offset and a topic's size of one, two and three 30-bit digits."""
    log = wal._log
    t = log.by_name["t"]
    t.next_seq = t.visible = value
    nbytes = t.nbytes
    t.nbytes = value
    assert _speedups.hot_append(log, Log.append, "t", b"x") == value
    assert (t.next_seq, t.visible) == (value + 1, value + 1)
    assert t.nbytes - value == 40  # one 8-aligned record of 32 + 1 bytes
    t.nbytes = nbytes + 40


@needs_hot
@pytest.mark.parametrize("value", [-1, -(2**30 - 1), -(2**30), -(2**30) - 1, -(2**61)])
def test_negative_ints_are_read_with_their_sign(wal: Walrus, value: int) -> None:
    """A negative size (one digit, two, three) is read as the same negative number."""
    log = wal._log
    t = log.by_name["t"]
    nbytes = t.nbytes
    t.nbytes = value
    assert _speedups.hot_append(log, Log.append, "t", b"x") == 2
    assert t.nbytes - value == 40
    t.nbytes = nbytes + 40


class CountedArray(array):  # type: ignore[type-arg]
    """An LSN array whose append is its own: the C path must call it."""

    appended: list[int]

    def append(self, value: int) -> None:
        self.appended.append(value)
        super().append(value)


@needs_hot
@pytest.mark.parametrize("kind", ["a subclass", "float items"])
def test_only_an_exact_array_of_8_byte_unsigned_items_is_written_in_place(
        wal: Walrus, kind: str) -> None:
    """Any other LSN table goes through its own append: a subclass's override is called, and
    the LSN is stored as an item of the table's own type (never its 8 bytes as a double)."""
    log = wal._log
    t = log.by_name["t"]
    lsns = list(t.lsns)
    table: Any
    if kind == "a subclass":
        table = CountedArray("Q", lsns)
        table.appended = []
    else:
        table = array("d", lsns)
    table.extend(table[:1])  # room to spare: an in-place write would not need to grow it
    del table[-1]
    t.lsns = table
    assert _speedups.hot_append(log, Log.append, "t", b"x") == 2
    assert len(table) == 3 and table[:2] == array(table.typecode, lsns)
    assert table[2] == log.active.lsn_base | (log.active.end - 40)  # type: ignore[union-attr]
    if isinstance(table, CountedArray):
        assert table.appended == [table[2]]
    t.lsns = array("Q", map(int, table))  # as it was, for close()


@needs_hot
def test_a_remembered_named_position_is_that_consumers_on_that_topic(wal: Walrus) -> None:
    """Reads that alternate between consumers and topics each get their own entry: the C
    read's remembered Position is used only for the same consumer and the same topic."""
    wal.batch_append_for_topic("u", [b"u0", b"u1", b"u2", b"u3"])
    for name in ("a", "b"):  # each consumer's Positions come into being, read-aheads filled
        assert wal.read_next("t", consumer=name) == Entry(b"first", 0, "t")
        assert wal.read_next("u", consumer=name) == Entry(b"u0", 0, "u")
    cursor = wal._cursor
    got = [(name, topic, _speedups.hot_read_next(cursor, Cursor.read_next, topic,
                                                 consumer=name))
           for name, topic in [("a", "u"), ("a", "t"), ("b", "u"), ("a", "u"), ("b", "u")]]
    assert got == [("a", "u", Entry(b"u1", 1, "u")), ("a", "t", Entry(b"second", 1, "t")),
                   ("b", "u", Entry(b"u1", 1, "u")), ("a", "u", Entry(b"u2", 2, "u")),
                   ("b", "u", Entry(b"u2", 2, "u"))]


@pytest.mark.skipif(not _speedups.ACCELERATED, reason=_speedups.REASON)
def test_the_c_crc_reads_payloads_at_any_alignment() -> None:
    """Records written at every offset mod 16 (the CRC's 16-byte loads unaligned) and at
    lengths around its 64-byte and 16-byte steps: the same bytes as the Python codec's."""
    sizes = [0, 1, 15, 16, 31, 32, 33, 47, 48, 63, 64, 65, 95, 96, 97, 111, 127, 128, 200, 4097]
    with mmap.mmap(-1, 1 << 16) as view:
        address = address_of(view)
        try:
            for pos in range(1, 17):
                for n in sizes:
                    data = bytes((i * 7 + n + pos) & 0xFF for i in range(n))
                    salt = (n * 2654435761 + pos) & 0xFFFFFFFF
                    _speedups.encode_entry(address, pos, data, n, 5, n, 0, salt)
                    expected = bytearray(_codec.record_size(n) + pos + 8)
                    end = _codec.encode_into(expected, pos, _codec.ENTRY, 5, 0, n, 0, data, salt)
                    assert view[pos:end] == expected[pos:end], (pos, n)
        finally:
            unpin(address)
