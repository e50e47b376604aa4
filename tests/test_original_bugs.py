"""One test per bug of the Rust original (rust-original.md section 16): none exists here.

Bugs covered elsewhere are listed with the test that covers them.
"""

from __future__ import annotations

import errno
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from walrus import FsyncSchedule, ReadConsistency, StorageError, Walrus
from walrus.backends._base import create_file
from walrus.testing._faults import Machine, powered

from ._quiesce import quiesced
from .conftest import WalFactory, drain, peek_all, run_child

# 16.2  AtLeastOnce not persisted for tail or batch reads:
#       test_consistency.py::test_at_least_once_batch_reads_persist_too and
#       ::test_at_least_once_never_skips_and_replays_at_most_n_plus_last_call
# 16.3e/f  unvalidated headers, giant allocations: test_codec.py::test_any_bit_flip_*,
#       ::test_oversized_length_is_rejected_without_allocating,
#       test_recovery.py::test_reading_never_returns_wrong_data_under_random_damage
# 16.4  failed oversized append duplicates entries:
#       test_basic.py::test_entry_too_large_is_rejected_and_changes_nothing
# 16.6  concurrent read_next duplicates: test_concurrency.py::
#       test_concurrent_read_next_consumers_never_share_an_entry
# 16.7  stateless read moves the cursor: test_consistency.py::
#       test_stateless_read_never_moves_the_shared_cursor_in_any_mode
# 16.10 leftover tmp files: test_recovery.py::test_an_unfinished_segment_file_is_removed
# 16.14 "." / ".." keys escape: test_config.py::test_sanitize_hashes_keys_that_would_vanish_*
# 16.16 get_topic_size never shrinks: test_counts.py::test_topic_size_counts_headers_*


def test_16_1_batch_read_never_skips_entries(open_wal: WalFactory) -> None:
    wal = open_wal(segment_size=1 << 20)
    wal.append_for_topic("t", b"X" * (2 << 20))  # a big entry in a sealed segment
    wal.append_for_topic("t", b"A" * 100)
    wal.append_for_topic("t", b"B" * 100)
    wal.append_for_topic("t", b"P" * (1 << 20))  # forces the next ones into a new segment
    wal.read_next("t")
    got = [e.data[:1] for e in wal.batch_read_for_topic("t", 150)]
    assert got == [b"A"]
    rest = []
    while batch := wal.batch_read_for_topic("t", 150):
        rest += [e.data[:1] for e in batch]
    assert rest == [b"B", b"P"] and wal.get_topic_entry_count("t") == 0


CRASHER = """
import os, sys
from walrus import Walrus, FsyncSchedule, EntryTooLargeError, MAX_ENTRY_BYTES
wal = Walrus(data_dir=sys.argv[1], backend=sys.argv[2], fsync_schedule=FsyncSchedule.SyncEach,
             segment_size=4 << 20)
try:
    wal.append_for_topic("a", memoryview(bytearray(MAX_ENTRY_BYTES + 1)))
except EntryTooLargeError:
    pass
wal.append_for_topic("big-first", b"Z" * (25 << 20))
for i in range(5):
    wal.append_for_topic("b", b"small-%d" % i)
    wal.append_for_topic("big-first", b"after-%d" % i)
os._exit(0)
"""


def test_16_3ab_recovery_keeps_data_after_failed_topics_and_big_entries(
        tmp_path: Path, backend: str, open_wal: WalFactory) -> None:
    run_child(CRASHER, str(tmp_path / "w"), backend)
    wal = open_wal(tmp_path / "w", segment_size=4 << 20)
    assert wal.topics() == ["big-first", "b"]  # the failed append created nothing
    assert drain(wal, "b") == [b"small-%d" % i for i in range(5)]
    assert drain(wal, "big-first") == [b"Z" * (25 << 20)] + [b"after-%d" % i for i in range(5)]


def test_16_3c_no_duplicates_after_restart_around_big_entries(
        tmp_path: Path, backend: str) -> None:
    run_child("""
        import os, sys
        from walrus import Walrus
        wal = Walrus(data_dir=sys.argv[1], backend=sys.argv[2], segment_size=1 << 20)
        for i in range(6):
            wal.append_for_topic("t", bytes([i]) * (3 << 20 if i % 2 else 10))
        for _ in range(3):
            wal.read_next("t")
        os._exit(0)
    """, str(tmp_path / "w"), backend)
    with Walrus(data_dir=tmp_path / "w", backend=backend, segment_size=1 << 20) as wal:
        assert [e[0] for e in drain(wal, "t")] == [3, 4, 5]


def test_16_3d_cursor_after_reclamation_and_crash_never_skips(tmp_path: Path,
                                                               backend: str) -> None:
    run_child("""
        import os, sys
        from walrus import Walrus
        wal = Walrus(data_dir=sys.argv[1], backend=sys.argv[2], segment_size=16384)
        for i in range(2000):
            wal.append_for_topic("t", b"%05d" % i * 4)
        for _ in range(1500):
            wal.read_next("t")
        wal.flush()
        wal._background.run_once()
        os._exit(0)
    """, str(tmp_path / "w"), backend)
    assert len(list((tmp_path / "w").glob("*.wal"))) < 10  # older segments are gone
    with Walrus(data_dir=tmp_path / "w", backend=backend, segment_size=16384) as wal:
        assert [int(x[:5]) for x in drain(wal, "t")] == list(range(1500, 2000))


def test_16_8_instances_share_no_state(tmp_path: Path, backend: str) -> None:
    a = Walrus(data_dir=tmp_path / "a", backend=backend, segment_size=8192)
    b = Walrus(data_dir=tmp_path / "b", backend=backend, segment_size=8192)
    for i in range(300):
        a.append_for_topic("t", b"a%d" % i)
    b.append_for_topic("t", b"b0")
    a.close()
    assert drain(b, "t") == [b"b0"]  # closing one instance changes nothing for the other
    b.close()


def test_16_9_segments_from_earlier_runs_are_reclaimed(tmp_path: Path, backend: str) -> None:
    path = tmp_path / "w"
    with Walrus(data_dir=path, backend=backend, segment_size=16384) as wal:
        for i in range(1000):
            wal.append_for_topic("t", b"%04d" % i * 8)
    before = set(path.glob("*.wal"))
    assert len(before) > 3
    with Walrus(data_dir=path, backend=backend, segment_size=16384) as wal:
        assert len(drain(wal, "t")) == 1000
        wal.flush()
        wal._background.run_once()  # type: ignore[union-attr]
    assert not before & set(path.glob("*.wal"))


def test_16_11_milliseconds_flusher_really_syncs(open_wal: WalFactory) -> None:
    wal = open_wal(fsync_schedule=FsyncSchedule.Milliseconds(20))
    wal.append_for_topic("t", b"x")
    log = wal._log
    target = log.active.lsn_base | log.active.end  # type: ignore[union-attr]
    deadline = __import__("time").monotonic() + 60  # only bounds a failure
    while log.durable < target:
        assert __import__("time").monotonic() < deadline, "the flusher never synced"
        __import__("time").sleep(0.01)


def test_16_12_batch_read_memory_is_bounded_by_what_it_returns(open_wal: WalFactory) -> None:
    wal = open_wal(segment_size=64 << 20)
    for i in range(4):
        wal.append_for_topic("big", bytes([i]) * (30 << 20))
    # tracemalloc counts every thread's allocations: the background worker's indexing (a whole
    # segment read with the pwrite and io_uring backends) must stay out of the window.
    with quiesced(wal):
        tracemalloc.start()
        try:
            batch = wal.batch_read_for_topic("big", 1)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert len(batch) == 1 and peak < 2 * (30 << 20)
        tracemalloc.start()
        try:
            batch = wal.batch_read_for_topic("big", 50 << 20)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert len(batch) == 1 and peak < 3 * (30 << 20)  # the one that would not fit is not copied


def test_16_14_segment_files_are_never_truncated_on_creation(tmp_path: Path) -> None:
    path = tmp_path / "f.wal"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        create_file(str(path), 4096)
    assert path.read_bytes() == b"precious"


# --- I/O faults (16.5, 16.10): the walrus_faults plugin (tests/plugins) fails on command ---


@pytest.fixture
def faulty() -> Iterator[Machine]:
    """The simulated machine; tests open ``FAULTY`` (faults over pwrite) to use it."""
    with powered() as m:
        yield m


FAULTY = "faults-pwrite"


def test_16_5_a_failed_batch_write_leaves_nothing_visible(faulty: Machine,
                                                          tmp_path: Path) -> None:
    with Walrus(data_dir=tmp_path, backend=FAULTY) as wal:
        wal.append_for_topic("t", b"before")
        faulty.arm("write", errno.ENOSPC)
        with pytest.raises(StorageError) as info:
            wal.batch_append_for_topic("t", [b"x" * 100] * 50)
        assert info.value.errno == errno.ENOSPC and "injected write failure" in str(info.value)
        assert wal.get_topic_entry_count("t") == 1
        with pytest.raises(StorageError):
            wal.append_for_topic("t", b"still full")
        faulty.disarm()
        wal.append_for_topic("t", b"after")  # usable again once the fault clears
        assert [e.data for e in peek_all(wal, "t")] == [b"before", b"after"]
    with Walrus(data_dir=tmp_path, backend="mmap") as wal:
        assert drain(wal, "t") == [b"before", b"after"]


def test_16_10_a_failed_sync_is_raised_and_nothing_unacknowledged_survives(
        faulty: Machine, tmp_path: Path) -> None:
    with Walrus(data_dir=tmp_path, backend=FAULTY,
                fsync_schedule=FsyncSchedule.SyncEach) as wal:
        wal.append_for_topic("t", b"durable")
        faulty.arm("sync", errno.EIO)
        with pytest.raises(StorageError) as info:
            wal.append_for_topic("t", b"not acknowledged")
        assert info.value.errno == errno.EIO
        assert wal.get_topic_entry_count("t") == 1
        assert drain(wal, "t", checkpoint=False) == [b"durable"]
        faulty.disarm()
        wal.append_for_topic("t", b"later")
        assert [e.data for e in peek_all(wal, "t")] == [b"durable", b"later"]
    with Walrus(data_dir=tmp_path, backend="pwrite") as wal:
        assert [e.data for e in peek_all(wal, "t")] == [b"durable", b"later"]


def test_a_failed_background_sync_is_raised_by_the_next_flush(faulty: Machine,
                                                              tmp_path: Path) -> None:
    with Walrus(data_dir=tmp_path, backend=FAULTY,
                fsync_schedule=FsyncSchedule.Milliseconds(10)) as wal:
        faulty.arm("sync", errno.EIO)
        wal.append_for_topic("t", b"acknowledged before the failure")
        log = wal._log
        deadline = __import__("time").monotonic() + 60  # only bounds a failure
        while wal._durability.error is None:
            assert __import__("time").monotonic() < deadline
            __import__("time").sleep(0.01)
        faulty.disarm()
        with pytest.raises(StorageError, match="may not be durable"):
            wal.flush()
        wal.append_for_topic("t", b"after")
        wal.flush()  # reported once; later data syncs normally
        assert log.durable >= log.active.lsn_base | log.active.end  # type: ignore[union-attr]
        assert wal.get_topic_entry_count("t") == 2


def test_a_failed_segment_creation_is_reported_and_retried(faulty: Machine,
                                                           tmp_path: Path) -> None:
    with Walrus(data_dir=tmp_path, backend=FAULTY, segment_size=8192) as wal:
        faulty.arm("create", errno.EMFILE)
        with pytest.raises(StorageError, match="creating segment"):
            for i in range(1000):
                wal.append_for_topic("t", b"%d" % i * 20)
        written = wal.get_topic_entry_count("t")
        faulty.disarm()
        wal.append_for_topic("t", b"next")
        assert wal.get_topic_entry_count("t") == written + 1
    with Walrus(data_dir=tmp_path, backend="mmap", segment_size=8192) as wal:
        assert len(drain(wal, "t")) == written + 1


def test_concurrent_consumers_with_strict_sync_each(open_wal: WalFactory) -> None:
    """Original 16.6 under the most durable mode: readers share fsyncs, never entries."""
    wal = open_wal(fsync_schedule=FsyncSchedule.SyncEach,
                   consistency=ReadConsistency.StrictlyAtOnce)
    wal.batch_append_for_topic("q", [b"%d" % i for i in range(400)])
    got: list[int] = []
    lock = threading.Lock()

    def reader() -> None:
        while (entry := wal.read_next("q")) is not None:
            with lock:
                got.append(int(entry.data))

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(400))
