"""Entry counts, topic sizes and clean markers (the original's in-library tests)."""

from __future__ import annotations

from pathlib import Path

from walrus import ReadConsistency, _codec

from .conftest import WalFactory, run_child


def test_counts_increment_immediately_single_and_batch(open_wal: WalFactory) -> None:
    wal = open_wal()
    wal.append_for_topic("t", b"a")
    assert wal.get_topic_entry_count("t") == 1
    wal.append_for_topic("t", b"b")
    wal.batch_append_for_topic("t", [b"c", b"d", b"e"])
    assert wal.get_topic_entry_count("t") == 5


def test_counts_are_per_topic(open_wal: WalFactory) -> None:
    wal = open_wal()
    for topic in ("t1", "t1", "t2", "t2"):
        wal.append_for_topic(topic, b"x")
    assert wal.get_topic_entry_counts() == {"t1": 2, "t2": 2}
    assert wal.get_topic_entry_count("missing") == 0


def test_counts_decrement_only_on_checkpointing_reads(open_wal: WalFactory) -> None:
    wal = open_wal()
    wal.batch_append_for_topic("t", [b"1", b"2", b"3"])
    wal.read_next("t", checkpoint=False)
    wal.batch_read_for_topic("t", 10, checkpoint=False)
    wal.batch_read_for_topic("t", 10, checkpoint=True, start_offset=0)
    assert wal.get_topic_entry_count("t") == 3
    wal.read_next("t")
    assert wal.get_topic_entry_count("t") == 2
    wal.batch_read_for_topic("t", 10)
    assert wal.get_topic_entry_count("t") == 0
    wal.read_next("t")
    assert wal.get_topic_entry_count("t") == 0  # never below zero


def test_counts_survive_restart_strict(open_wal: WalFactory) -> None:
    wal = open_wal()
    for topic in ("a", "b"):
        for i in range(4):
            wal.append_for_topic(topic, b"%d" % i)
    wal.read_next("a")
    wal.read_next("b")
    wal.read_next("b")
    wal.close()
    wal = open_wal()
    assert wal.get_topic_entry_counts() == {"a": 3, "b": 2}
    wal.batch_read_for_topic("a", 1000)
    wal.close()
    assert open_wal().get_topic_entry_counts() == {"a": 0, "b": 2}


def test_counts_in_at_least_once_mode(open_wal: WalFactory) -> None:
    wal = open_wal(consistency=ReadConsistency.AtLeastOnce(persist_every=3))
    wal.batch_append_for_topic("t", [b"x"] * 10)
    wal.read_next("t")
    wal.batch_read_for_topic("t", 4)
    assert wal.get_topic_entry_count("t") == 5


def test_topic_size_counts_headers_and_shrinks_when_space_is_reclaimed(
        open_wal: WalFactory) -> None:
    wal = open_wal(segment_size=64 << 10)
    payloads = [b"x" * n for n in (0, 1, 100, 1000)]
    for data in payloads:
        wal.append_for_topic("s", data)
    assert wal.get_topic_size("s") == sum(_codec.record_size(len(d)) for d in payloads)
    for _ in range(2000):
        wal.append_for_topic("s", b"y" * 200)
    big = wal.get_topic_size("s")
    while wal.batch_read_for_topic("s", 1 << 20):
        pass
    wal.flush()
    wal._background.run_once()  # type: ignore[union-attr]
    assert wal.get_topic_size("s") < big // 4


def test_append_marks_topic_dirty_and_mark_clean_survives_restart(open_wal: WalFactory) -> None:
    wal = open_wal()
    assert wal.topic_is_clean("t")
    wal.append_for_topic("t", b"x")
    assert not wal.topic_is_clean("t")
    wal.mark_topic_clean("t")
    assert wal.topic_is_clean("t")
    wal.close()
    wal = open_wal()
    assert wal.topic_is_clean("t")
    wal.append_for_topic("t", b"y")
    assert not wal.topic_is_clean("t")
    wal.close()
    wal = open_wal()
    assert not wal.topic_is_clean("t")
    wal.mark_topic_clean("t")
    wal.mark_topic_dirty("t")
    assert not wal.topic_is_clean("t")
    wal.close()
    assert not open_wal().topic_is_clean("t")


def test_marking_never_creates_a_topic(open_wal: WalFactory) -> None:
    wal = open_wal()
    wal.mark_topic_clean("ghost")
    wal.mark_topic_dirty("ghost")
    assert wal.topics() == [] and wal.topic_is_clean("ghost")


def test_clean_mark_survives_a_crash(tmp_path: Path, backend: str, open_wal: WalFactory) -> None:
    run_child("""
        import os, sys
        from walrus import Walrus, FsyncSchedule
        wal = Walrus(data_dir=sys.argv[1], backend=sys.argv[2],
                     fsync_schedule=FsyncSchedule.NoFsync)
        wal.append_for_topic("c", b"x")
        wal.mark_topic_clean("c")
        wal.append_for_topic("d", b"x")
        os._exit(0)
    """, str(tmp_path / "wal"), backend)
    wal = open_wal(tmp_path / "wal")
    assert wal.topic_is_clean("c") and not wal.topic_is_clean("d")


def test_topics_lists_creation_order(open_wal: WalFactory) -> None:
    wal = open_wal()
    for topic in ("zeta", "alpha", "mid"):
        wal.append_for_topic(topic, b"x")
    assert wal.topics() == ["zeta", "alpha", "mid"]
    wal.close()
    assert open_wal().topics() == ["zeta", "alpha", "mid"]
