"""Ported scenarios of the original's unit and integration tests, on every backend."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import walrus
from walrus import FsyncSchedule, InvalidArgumentError, InvalidTopicError, Walrus

from .conftest import WalFactory, drain, peek_all


def test_basic_roundtrip_single_topic(open_wal: WalFactory) -> None:
    wal = open_wal()
    for i in range(5):
        wal.append_for_topic("t", f"msg-{i}".encode())
    assert drain(wal, "t") == [f"msg-{i}".encode() for i in range(5)]
    assert wal.read_next("t") is None


def test_basic_roundtrip_multi_topic_isolation(open_wal: WalFactory) -> None:
    wal = open_wal()
    for i in range(20):
        wal.append_for_topic(f"topic-{i % 4}", f"{i}".encode())
    for k in range(4):
        assert drain(wal, f"topic-{k}") == [f"{i}".encode() for i in range(k, 20, 4)]


def test_entries_carry_offsets_and_topic(open_wal: WalFactory) -> None:
    wal = open_wal()
    wal.append_for_topic("a", b"x")
    wal.batch_append_for_topic("a", [b"y", b"z"])
    entries = [wal.read_next("a") for _ in range(3)]
    assert [(e.data, e.offset, e.topic) for e in entries if e] == [
        (b"x", 0, "a"), (b"y", 1, "a"), (b"z", 2, "a")]


def test_read_next_without_checkpoint_does_not_advance(open_wal: WalFactory) -> None:
    wal = open_wal()
    wal.append_for_topic("t", b"a")
    wal.append_for_topic("t", b"b")
    first = wal.read_next("t", checkpoint=False)
    assert first is not None and first.data == b"a"
    again = wal.read_next("t", checkpoint=False)
    assert again == first
    assert wal.read_next("t").data == b"a"  # type: ignore[union-attr]
    assert wal.read_next("t").data == b"b"  # type: ignore[union-attr]
    assert wal.read_next("t") is None


def test_persists_read_offsets_across_restart(open_wal: WalFactory, tmp_path: Path) -> None:
    wal = open_wal()
    wal.append_for_topic("t", b"a")
    wal.append_for_topic("t", b"b")
    assert wal.read_next("t").data == b"a"  # type: ignore[union-attr]
    wal.close()
    wal = open_wal()
    assert wal.read_next("t").data == b"b"  # type: ignore[union-attr]
    assert wal.read_next("t") is None


def test_unknown_topic(open_wal: WalFactory) -> None:
    wal = open_wal()
    assert wal.read_next("nope") is None
    assert wal.read_next("nope", checkpoint=False) is None
    assert wal.batch_read_for_topic("nope", 100) == []
    assert wal.get_topic_entry_count("nope") == 0
    assert wal.get_topic_size("nope") == 0
    assert wal.topic_is_clean("nope")
    assert wal.topics() == []


def test_write_after_read_exhaustion(open_wal: WalFactory) -> None:
    wal = open_wal()
    assert wal.read_next("t") is None
    wal.append_for_topic("t", b"late")
    assert drain(wal, "t") == [b"late"]
    wal.append_for_topic("t", b"later")
    assert drain(wal, "t") == [b"later"]


def test_zero_length_entries(open_wal: WalFactory) -> None:
    wal = open_wal()
    wal.append_for_topic("t", b"")
    wal.append_for_topic("t", b"x")
    wal.append_for_topic("t", b"")
    assert drain(wal, "t") == [b"", b"x", b""]


SIZES = [0, 1, 7, 8, 9, 63, 64, 65, 1023, 1024, 1025, 4095, 4096, 4097, (1 << 20) + 1]


def test_boundary_sizes_round_trip_and_survive_restart(open_wal: WalFactory) -> None:
    wal = open_wal(segment_size=1 << 20)
    payloads = [bytes(random.Random(n).randbytes(n)) for n in SIZES]
    for data in payloads:
        wal.append_for_topic("t", data)
    assert [e.data for e in peek_all(wal, "t")] == payloads
    wal.close()
    wal = open_wal(segment_size=1 << 20)
    assert drain(wal, "t") == payloads


@pytest.mark.parametrize("pattern", ["zeros", "ones", "alternating", "sequential", "lcg"])
def test_data_integrity_patterns(open_wal: WalFactory, pattern: str) -> None:
    n = 10_000
    data = {
        "zeros": bytes(n),
        "ones": b"\xff" * n,
        "alternating": b"\xaa\x55" * (n // 2),
        "sequential": bytes(i % 256 for i in range(n)),
        "lcg": bytes((i * 1103515245 + 12345) >> 16 & 0xFF for i in range(n)),
    }[pattern]
    wal = open_wal()
    wal.append_for_topic("p", data)
    wal.close()
    assert open_wal().read_next("p").data == data  # type: ignore[union-attr]


def test_large_entries_force_segment_rolls(open_wal: WalFactory) -> None:
    wal = open_wal(segment_size=4 << 20)
    entries = [bytes([i]) * (9 << 20) for i in range(3)]
    for data in entries:
        wal.append_for_topic("big", data)
    wal.append_for_topic("big", b"small after big")
    wal.close()
    wal = open_wal(segment_size=4 << 20)
    assert drain(wal, "big") == [*entries, b"small after big"]


@pytest.mark.slow
def test_massive_single_entry(open_wal: WalFactory) -> None:
    data = random.Random(1).randbytes(100 << 20)
    wal = open_wal()
    wal.append_for_topic("m", data)
    wal.close()
    assert open_wal().read_next("m").data == data  # type: ignore[union-attr]


@pytest.mark.slow
@pytest.mark.xdist_group("max-entry")  # 1 GiB of disk and 2 of memory: one at a time
def test_entry_of_exactly_max_entry_bytes(open_wal: WalFactory) -> None:
    data = bytearray(walrus.MAX_ENTRY_BYTES)
    data[0], data[-1] = 1, 2
    wal = open_wal()
    wal.append_for_topic("max", data)
    wal.append_for_topic("max", b"next")
    wal.close()
    wal = open_wal()
    first = wal.read_next("max")
    assert first is not None and len(first.data) == walrus.MAX_ENTRY_BYTES
    assert first.data[0] == 1 and first.data[-1] == 2
    assert wal.read_next("max").data == b"next"  # type: ignore[union-attr]


def test_entry_too_large_is_rejected_and_changes_nothing(open_wal: WalFactory) -> None:
    wal = open_wal()
    wal.append_for_topic("t", b"one")
    too_big = memoryview(bytearray(walrus.MAX_ENTRY_BYTES + 1))
    with pytest.raises(walrus.EntryTooLargeError):
        wal.append_for_topic("t", too_big)
    with pytest.raises(walrus.EntryTooLargeError):
        wal.append_for_topic("fresh", too_big)
    assert wal.topics() == ["t"]
    wal.append_for_topic("t", b"two")
    assert drain(wal, "t") == [b"one", b"two"]  # original bug 16.4: no duplicate "one"


@pytest.mark.parametrize("data", [bytearray(b"ba"), memoryview(b"mv"), memoryview(b"abcd")[::2],
                                  memoryview(bytearray(b"wxyz")).cast("H")])
def test_bytes_like_payloads(open_wal: WalFactory, data: object) -> None:
    wal = open_wal()
    wal.append_for_topic("t", data)  # type: ignore[arg-type]
    wal.batch_append_for_topic("t", [data])  # type: ignore[list-item]
    expected = bytes(memoryview(data))  # type: ignore[arg-type]
    assert drain(wal, "t") == [expected, expected]


@pytest.mark.parametrize("data", ["text", 5, None, [b"x"], 1.5, object()])
def test_non_bytes_payloads_are_rejected(open_wal: WalFactory, data: object) -> None:
    wal = open_wal()
    with pytest.raises(InvalidArgumentError, match="bytes-like"):
        wal.append_for_topic("t", data)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        wal.batch_append_for_topic("t", [b"ok", data])  # type: ignore[list-item]
    assert wal.topics() == []


@pytest.mark.parametrize("topic", ["", "a\0b", "x" * 256, "é" * 128, "\ud800", b"bytes", 7,
                                   None])
def test_invalid_topics(open_wal: WalFactory, topic: object) -> None:
    wal = open_wal()
    calls = [
        lambda: wal.append_for_topic(topic, b"x"),  # type: ignore[arg-type]
        lambda: wal.batch_append_for_topic(topic, [b"x"]),  # type: ignore[arg-type]
        lambda: wal.read_next(topic),  # type: ignore[arg-type]
        lambda: wal.batch_read_for_topic(topic, 10),  # type: ignore[arg-type]
        lambda: wal.get_topic_entry_count(topic),  # type: ignore[arg-type]
        lambda: wal.get_topic_size(topic),  # type: ignore[arg-type]
        lambda: wal.topic_is_clean(topic),  # type: ignore[arg-type]
        lambda: wal.mark_topic_clean(topic),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises(InvalidTopicError):
            call()
    assert wal.topics() == []


@pytest.mark.parametrize("topic", ["a", "x" * 255, "é" * 127, "dots.and-dashes_ok", "日本語",
                                   "with space", "../../etc/passwd", "CASE", "case"])
def test_valid_topic_names(open_wal: WalFactory, topic: str) -> None:
    wal = open_wal()
    wal.append_for_topic(topic, topic.encode())
    wal.close()
    wal = open_wal()
    assert wal.topics() == [topic]
    assert drain(wal, topic) == [topic.encode()]


def test_many_topics_fifo(open_wal: WalFactory) -> None:
    wal = open_wal()
    for round_ in range(20):
        for k in range(200):
            wal.append_for_topic(f"t{k}", f"{k}:{round_}".encode())
    wal.close()
    wal = open_wal()
    for k in range(200):
        assert drain(wal, f"t{k}") == [f"{k}:{r}".encode() for r in range(20)]


def test_extreme_topic_count_with_sync_each(open_wal: WalFactory) -> None:
    wal = open_wal(fsync_schedule=FsyncSchedule.SyncEach)
    names = [f"topic-{i}" for i in range(3000)]
    for name in names:
        wal.append_for_topic(name, name.encode())
    wal.close()
    wal = open_wal()
    random.Random(3).shuffle(names)
    for name in names:
        assert wal.read_next(name).data == name.encode()  # type: ignore[union-attr]


def test_rapid_write_read_cycles(open_wal: WalFactory) -> None:
    wal = open_wal(segment_size=64 << 10)
    rng = random.Random(7)
    for i in range(3000):
        data = rng.randbytes(rng.randrange(0, 600))
        wal.append_for_topic("cycle", data)
        entry = wal.read_next("cycle")
        assert entry is not None and entry.data == data and entry.offset == i


def test_interleaved_write_read_across_restarts(open_wal: WalFactory) -> None:
    expected: list[bytes] = []
    got: list[bytes] = []
    for cycle in range(5):
        wal = open_wal(segment_size=64 << 10)
        for i in range(300):
            data = f"{cycle}-{i}".encode()
            wal.append_for_topic("x", data)
            expected.append(data)
        for _ in range(150):
            entry = wal.read_next("x")
            assert entry is not None
            got.append(entry.data)
        wal.close()
    got.extend(drain(open_wal(segment_size=64 << 10), "x"))
    assert got == expected


def test_default_constructor_uses_wal_files(tmp_path: Path, backend: str) -> None:
    with Walrus(backend=backend) as wal:
        wal.append_for_topic("events", b"hello walrus")
        entry = wal.read_next("events", checkpoint=True)
        assert entry is not None and entry.data == b"hello walrus"
        assert wal.data_dir == Path("wal_files")
    assert (tmp_path / "wal_files").is_dir()
