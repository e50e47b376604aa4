"""Batch appends and batch reads (ported from the original's batch_writes/batch_read tests)."""

from __future__ import annotations

import random
import threading

import pytest

import walrus
from walrus import BatchTooLargeError, FsyncSchedule, InvalidArgumentError

from .conftest import WalFactory, drain, peek_all


def test_batch_write_basic(open_wal: WalFactory) -> None:
    wal = open_wal()
    wal.batch_append_for_topic("b", [b"one", b"two", b"three"])
    assert drain(wal, "b") == [b"one", b"two", b"three"]


def test_batch_after_consumed_entry(open_wal: WalFactory) -> None:
    wal = open_wal()
    wal.append_for_topic("b", b"first")
    assert wal.read_next("b").data == b"first"  # type: ignore[union-attr]
    wal.batch_append_for_topic("b", [b"x", b"y"])
    wal.append_for_topic("b", b"z")
    assert drain(wal, "b") == [b"x", b"y", b"z"]


def test_empty_batch_is_a_no_op(open_wal: WalFactory) -> None:
    wal = open_wal()
    wal.batch_append_for_topic("new", [])
    assert wal.topics() == [] and wal.topic_is_clean("new")
    wal.append_for_topic("old", b"a")
    wal.mark_topic_clean("old")
    wal.batch_append_for_topic("old", [])
    assert wal.topic_is_clean("old") and wal.get_topic_entry_count("old") == 1


def test_batch_over_entry_limit_changes_nothing(open_wal: WalFactory) -> None:
    wal = open_wal()
    wal.append_for_topic("b", b"keep")
    with pytest.raises(BatchTooLargeError, match="2001"):
        wal.batch_append_for_topic("b", [b"x"] * 2001)
    with pytest.raises(BatchTooLargeError):
        wal.batch_append_for_topic("fresh", [b"x"] * 2001)
    assert wal.get_topic_entry_count("b") == 1 and wal.topics() == ["b"]
    wal.batch_append_for_topic("b", [b"y"] * 2000)
    assert wal.get_topic_entry_count("b") == 2001


def test_batch_over_byte_limit_changes_nothing(open_wal: WalFactory) -> None:
    """11 x 1 GiB, without allocating 11 GiB: the views share one buffer."""
    wal = open_wal()
    one_gib = memoryview(bytearray(walrus.MAX_ENTRY_BYTES))
    with pytest.raises(BatchTooLargeError, match="MAX_BATCH_BYTES"):
        wal.batch_append_for_topic("b", [one_gib] * 11)
    assert wal.topics() == [] and wal.batch_read_for_topic("b", 1 << 40) == []


@pytest.mark.parametrize("entries", [b"bytes", "text", 5, None, {b"a"}])
def test_batch_argument_must_be_a_sequence_of_bytes(open_wal: WalFactory,
                                                    entries: object) -> None:
    wal = open_wal()
    with pytest.raises(InvalidArgumentError):
        wal.batch_append_for_topic("b", entries)  # type: ignore[arg-type]
    assert wal.topics() == []


def test_batch_spans_segments(open_wal: WalFactory) -> None:
    wal = open_wal(segment_size=8 << 20)
    entries = [bytes([i]) * (5 << 20) for i in range(10)]
    wal.batch_append_for_topic("big", entries)
    wal.append_for_topic("big", b"tail")
    wal.close()
    wal = open_wal(segment_size=8 << 20)
    assert drain(wal, "big") == [*entries, b"tail"]


def test_batch_with_varying_entry_sizes(open_wal: WalFactory) -> None:
    sizes = [100, 1 << 20, 10 << 20, 500, 50 << 20, 0]
    entries = [random.Random(s).randbytes(s) for s in sizes]
    wal = open_wal(segment_size=16 << 20)
    wal.batch_append_for_topic("v", entries)
    assert [e.data for e in peek_all(wal, "v")] == entries
    assert drain(wal, "v") == entries


def test_zero_length_entries_in_batch(open_wal: WalFactory) -> None:
    wal = open_wal()
    batch = [b"", b"normal", b"", b"", b"another", b""]
    wal.batch_append_for_topic("z", batch)
    assert [e.data for e in wal.batch_read_for_topic("z", 1000, checkpoint=False)] == batch
    assert drain(wal, "z") == batch


def test_alternating_tiny_and_huge_batches(open_wal: WalFactory) -> None:
    wal = open_wal(segment_size=4 << 20)
    expected = []
    for round_ in range(6):
        tiny = [f"t{round_}".encode()]
        huge = [bytes([round_]) * (3 << 20) for _ in range(3)]
        wal.batch_append_for_topic("mix", tiny)
        wal.batch_append_for_topic("mix", huge)
        expected += tiny + huge
    assert drain(wal, "mix") == expected


def test_readers_at_different_positions_during_batch(open_wal: WalFactory) -> None:
    wal = open_wal()
    for i in range(5):
        wal.append_for_topic("p", f"initial_{i}".encode())
    for _ in range(3):
        wal.read_next("p")
    wal.batch_append_for_topic("p", [f"batch_{i}".encode() for i in range(4)])
    assert drain(wal, "p") == [b"initial_3", b"initial_4", b"batch_0", b"batch_1", b"batch_2",
                               b"batch_3"]


def test_sequential_batches_survive_reopen_cycles(open_wal: WalFactory) -> None:
    for cycle in range(5):
        wal = open_wal(fsync_schedule=FsyncSchedule.SyncEach)
        wal.batch_append_for_topic("c", [f"{cycle}-a".encode(), f"{cycle}-b".encode()])
        wal.close()
    assert drain(open_wal(), "c") == [f"{c}-{x}".encode() for c in range(5) for x in "ab"]


def test_concurrent_batches_are_each_contiguous(open_wal: WalFactory) -> None:
    """No WouldBlock in Python: racing batches both land, each in one piece."""
    wal = open_wal(segment_size=1 << 20)
    barrier = threading.Barrier(8)

    def writer(w: int) -> None:
        barrier.wait()
        for b in range(25):
            wal.batch_append_for_topic("race", [f"{w}:{b}:{i}".encode() for i in range(10)])

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = [e.data.decode() for e in peek_all(wal, "race")]
    assert len(got) == 8 * 25 * 10
    for start in range(0, len(got), 10):
        group = [g.rsplit(":", 1) for g in got[start:start + 10]]
        assert len({prefix for prefix, _ in group}) == 1
        assert [int(i) for _, i in group] == list(range(10))


# --- batch reads -------------------------------------------------------------------------------


def test_batch_read_spans_segments(open_wal: WalFactory) -> None:
    wal = open_wal(segment_size=16 << 20)
    entries = [bytes([i]) * (8 << 20) for i in range(3)]
    for data in entries:
        wal.append_for_topic("s", data)
    assert [e.data for e in wal.batch_read_for_topic("s", 30 << 20)] == entries
    assert wal.batch_read_for_topic("s", 30 << 20) == []


def test_batch_read_stops_mid_block_in_chunks(open_wal: WalFactory) -> None:
    wal = open_wal()
    for i in range(100):
        wal.append_for_topic("c", b"%010d" % i)
    seen = []
    while batch := wal.batch_read_for_topic("c", 100):
        assert len(batch) == 10
        seen += [e.data for e in batch]
    assert seen == [b"%010d" % i for i in range(100)]


def test_batch_read_crosses_sealed_to_active(open_wal: WalFactory) -> None:
    wal = open_wal(segment_size=1 << 20)
    wal.append_for_topic("x", b"B" * (9 << 20))
    for i in range(10):
        wal.append_for_topic("x", b"%d" % i)
    batch = wal.batch_read_for_topic("x", 20 << 20)
    assert [len(e.data) for e in batch] == [9 << 20] + [1] * 10


def test_batch_read_respects_entry_cap(open_wal: WalFactory) -> None:
    wal = open_wal()
    wal.batch_append_for_topic("cap", [b"e"] * 2000)
    wal.batch_append_for_topic("cap", [b"e"] * 2000)
    assert len(wal.batch_read_for_topic("cap", 1 << 62)) == 2000
    assert len(wal.batch_read_for_topic("cap", 1 << 62)) == 2000
    assert wal.batch_read_for_topic("cap", 1 << 62) == []


def test_batch_read_without_checkpoint(open_wal: WalFactory) -> None:
    wal = open_wal()
    wal.batch_append_for_topic("p", [b"1", b"2", b"3"])
    first = wal.batch_read_for_topic("p", 100, checkpoint=False)
    assert first == wal.batch_read_for_topic("p", 100, checkpoint=False)
    assert wal.batch_read_for_topic("p", 100) == first
    assert wal.batch_read_for_topic("p", 100) == []


@pytest.mark.parametrize("budget, count", [(300, 3), (500, 5), (1, 1), (350, 3), (0, 1),
                                           (99, 1), (100, 1), (101, 1), (1000, 10)])
def test_batch_read_exact_budget_boundary(open_wal: WalFactory, budget: int, count: int) -> None:
    wal = open_wal()
    wal.batch_append_for_topic("b", [bytes([i]) * 100 for i in range(10)])
    assert len(wal.batch_read_for_topic("b", budget)) == count


def test_empty_entries_past_the_budget_wait_for_the_next_read(open_wal: WalFactory) -> None:
    # Found by the state machine test on pwrite: the read window, cached before b"" was
    # appended, ended after the first entry; the next round was given max(0, budget - total)
    # and took b"" as fitting in 0 bytes although the free first entry was over the budget.
    wal = open_wal()
    wal.append_for_topic("a", b"")
    wal.batch_append_for_topic("b", [b"\x00"])
    assert wal.read_next("a", checkpoint=False) is not None  # caches a window on pwrite
    wal.append_for_topic("b", b"")
    assert [e.data for e in wal.batch_read_for_topic("b", 0)] == [b"\x00"]
    assert [e.data for e in wal.batch_read_for_topic("b", 0)] == [b""]


def test_batch_read_mixed_sizes_in_order(open_wal: WalFactory) -> None:
    sizes = [5, 50, 500, 5000, 50000, 2_000_000, 7, 70, 700, 7000, 70000, 13, 130, 1300, 13000,
             130000, 1_300_000, 1, 10, 100]
    entries = [random.Random(s).randbytes(s) for s in sizes]
    wal = open_wal(segment_size=2 << 20)
    for data in entries:
        wal.append_for_topic("m", data)
    got: list[bytes] = []
    while batch := wal.batch_read_for_topic("m", 600_000):
        got += [e.data for e in batch]
        assert len(batch) == 1 or sum(len(e.data) for e in batch) <= 600_000
    assert got == entries


def test_interleaved_single_and_batch_reads(open_wal: WalFactory) -> None:
    wal = open_wal()
    for i in range(100):
        wal.append_for_topic("i", b"%03d" % i)
    got = []
    while True:
        entry = wal.read_next("i")
        if entry is None:
            break
        got.append(entry.data)
        got += [e.data for e in wal.batch_read_for_topic("i", 15)]
    assert got == [b"%03d" % i for i in range(100)]


def test_concurrent_batch_reads_get_disjoint_entries(open_wal: WalFactory) -> None:
    wal = open_wal()
    for i in range(500):
        wal.append_for_topic("q", b"%d" % i)
    results: list[list[bytes]] = [[] for _ in range(5)]

    def reader(k: int) -> None:
        while batch := wal.batch_read_for_topic("q", 64):
            results[k] += [e.data for e in batch]

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [x for r in results for x in r]
    assert sorted(everything, key=int) == [b"%d" % i for i in range(500)]
    assert len(set(everything)) == 500


def test_start_offset_reads_do_not_touch_cursor_or_counts(open_wal: WalFactory) -> None:
    wal = open_wal()
    wal.batch_append_for_topic("s", [b"%d" % i for i in range(10)])
    wal.read_next("s")
    for checkpoint in (True, False):
        batch = wal.batch_read_for_topic("s", 1000, checkpoint=checkpoint, start_offset=4)
        assert [e.offset for e in batch] == list(range(4, 10))
        assert wal.get_topic_entry_count("s") == 9
    assert wal.batch_read_for_topic("s", 1000, start_offset=0)[0].data == b"0"
    assert wal.batch_read_for_topic("s", 1000, start_offset=10) == []
    assert wal.batch_read_for_topic("s", 1000, start_offset=99) == []
    assert wal.read_next("s").offset == 1  # type: ignore[union-attr]


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_batch_read_argument_errors(open_wal: WalFactory, bad: object) -> None:
    wal = open_wal()
    wal.append_for_topic("s", b"x")
    with pytest.raises(InvalidArgumentError):
        wal.batch_read_for_topic("s", bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        wal.batch_read_for_topic("s", 10, start_offset=bad)  # type: ignore[arg-type]
    assert wal.get_topic_entry_count("s") == 1


def test_batch_read_during_concurrent_batch_writes(open_wal: WalFactory) -> None:
    wal = open_wal(segment_size=256 << 10)
    done = threading.Event()

    def writer(w: int) -> None:
        for b in range(40):
            wal.batch_append_for_topic("live", [f"{w}-{b}-{i}".encode() for i in range(25)])

    writers = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    seen: list[bytes] = []

    def reader() -> None:
        while not done.is_set() or wal.get_topic_entry_count("live"):
            seen.extend(e.data for e in wal.batch_read_for_topic("live", 4096))

    r = threading.Thread(target=reader)
    r.start()
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    done.set()
    r.join()
    assert len(seen) == len(set(seen)) == 3 * 40 * 25
