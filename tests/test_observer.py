"""Read-only observers (SPEC section 1): beside a live writer, no partial entry, none missed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import walrus
from walrus import ReadOnlyError, StorageError, Walrus

from ._quiesce import quiesced
from .cli_support import (
    quiet_isolated_env,
    run_python,
    start_python,
    tree_state,
)

__all__ = ["quiet_isolated_env"]

BACKENDS = [row.name for row in walrus.available_backends()
            if row.available and row.plugin == "builtin"]
"""The built-in backends (test plugins registered in this process do not exist in children)."""

PAYLOAD = """
import hashlib
def payload(i):
    # Sizes from 0 to ~70 KiB, content tied to the offset: a torn or shifted entry cannot pass.
    size = (i * 7919) % 3000 if i % 50 else 70_000 + i
    seed = hashlib.sha256(str(i).encode()).digest()
    return (seed * (size // 32 + 1))[:size]
"""

WRITER = PAYLOAD + """
import sys, time
from walrus import Walrus, FsyncSchedule
data_dir, backend, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
with Walrus(data_dir=data_dir, backend=backend, segment_size=256 << 10,
            fsync_schedule=FsyncSchedule.NoFsync) as wal:
    i = 0
    while i < total:
        if i % 3 == 0:  # batches of up to 7 entries, the rest single appends
            n = min(1 + i % 7, total - i)
            wal.batch_append_for_topic("events", [payload(k) for k in range(i, i + n)])
            i += n
        else:
            wal.append_for_topic("events", payload(i))
            i += 1
        if i % 97 == 0:
            time.sleep(0.002)
"""

OBSERVER = PAYLOAD + """
import json, sys, time
from walrus import Walrus, StorageError
data_dir, total = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 60
while True:
    try:
        wal = Walrus(data_dir=data_dir, read_only=True)
        break
    except StorageError:  # the writer has not created the directory yet
        time.sleep(0.01)
seen, polls, bad = 0, 0, []
while seen < total and time.monotonic() < deadline:
    batch = wal.batch_read_for_topic("events", 1 << 20, checkpoint=False, start_offset=seen)
    polls += 1
    for entry in batch:
        if entry.offset != seen or entry.data != payload(seen):
            bad.append((seen, entry.offset, len(entry.data)))
        seen = entry.offset + 1
    if not batch:
        time.sleep(0.001)
wal.close()
print(json.dumps({"seen": seen, "polls": polls, "bad": bad[:5]}))
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_observer_process_follows_live_writer_process(tmp_path: Path, backend: str) -> None:
    total = 6000
    data_dir = str(tmp_path / "wal")
    observer = start_python(OBSERVER, data_dir, str(total))
    writer = start_python(WRITER, data_dir, backend, str(total))
    _, writer_err = writer.communicate(timeout=120)
    assert writer.returncode == 0, writer_err.decode()
    out, err = observer.communicate(timeout=120)
    assert observer.returncode == 0, err.decode()
    report = json.loads(out)
    assert report["bad"] == []
    assert report["seen"] == total
    assert report["polls"] > 10  # it really followed the writer, not read a finished log
    assert len(list((tmp_path / "wal").glob("*.wal"))) > 3  # and across segment rolls


def test_observer_takes_no_lock_and_writes_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "wal"
    with Walrus(data_dir=data_dir) as writer:
        writer.append_for_topic("t", b"one")
        writer.flush()
        with quiesced(writer):  # the writer's own background work is no observer's doing
            before = tree_state(data_dir)
            observe_without_writing(data_dir)
            assert tree_state(data_dir) == before
        writer.append_for_topic("t", b"two")  # the writer is unaffected
        assert writer.read_next("t") == (b"one", 0, "t")


def observe_without_writing(data_dir: Path) -> None:
    """Every call an observer refuses or makes without writing."""
    with Walrus(data_dir=data_dir, read_only=True) as observer:
        assert observer.topics() == ["t"]
        assert observer.read_next("t", checkpoint=False) == (b"one", 0, "t")
        with pytest.raises(ReadOnlyError):
            observer.append_for_topic("t", b"two")
        with pytest.raises(ReadOnlyError):
            observer.batch_append_for_topic("t", [b"two"])
        with pytest.raises(ReadOnlyError):
            observer.read_next("t")
        with pytest.raises(ReadOnlyError):
            observer.batch_read_for_topic("t", 100)
        with pytest.raises(ReadOnlyError):
            observer.mark_topic_clean("t")
        observer.flush()


def test_observer_of_missing_directory_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        Walrus(data_dir=tmp_path / "absent", read_only=True)
    assert not (tmp_path / "absent").exists()


def test_observer_sees_first_entry_of_a_new_topic(tmp_path: Path) -> None:
    """A topic's first append is a batch headed by its TOPIC record; scans must keep it."""
    with Walrus(data_dir=tmp_path) as writer, Walrus(data_dir=tmp_path, read_only=True) as obs:
        writer.append_for_topic("a", b"x")
        assert obs.get_topic_entry_counts() == {"a": 1}
        assert obs.read_next("a", checkpoint=False) == (b"x", 0, "a")


def test_observer_queries_topics_created_after_it_opened(tmp_path: Path) -> None:
    with Walrus(data_dir=tmp_path) as writer:
        writer.append_for_topic("a", b"x")
        with Walrus(data_dir=tmp_path, read_only=True) as obs:
            assert obs.topics() == ["a"]
            writer.append_for_topic("b", b"y" * 100)
            writer.mark_topic_clean("a")
            assert obs.topics() == ["a", "b"]
            assert obs.get_topic_size("b") > 100
            assert obs.get_topic_entry_count("b") == 1
            assert not obs.topic_is_clean("b")
            assert obs.topic_is_clean("a")
            assert obs.read_next("b", checkpoint=False) == (b"y" * 100, 0, "b")


def test_observer_follows_the_shared_cursor(tmp_path: Path) -> None:
    with Walrus(data_dir=tmp_path) as writer, Walrus(data_dir=tmp_path, read_only=True) as obs:
        writer.batch_append_for_topic("t", [b"0", b"1", b"2"])
        assert obs.get_topic_entry_count("t") == 3
        assert writer.read_next("t") is not None
        assert obs.get_topic_entry_count("t") == 2
        assert obs.read_next("t", checkpoint=False) == (b"1", 1, "t")


@pytest.mark.parametrize("schedule", ["SyncEach", "NoFsync"])
def test_observer_after_writer_crash_sees_every_acknowledged_entry(tmp_path: Path,
                                                                  schedule: str) -> None:
    run_python(f"""
        import os
        from walrus import Walrus, FsyncSchedule
        wal = Walrus(data_dir={str(tmp_path)!r}, fsync_schedule=FsyncSchedule.{schedule})
        wal.append_for_topic("new", b"first")
        wal.batch_append_for_topic("other", [b"a", b"b"])
        os._exit(0)
    """)
    with Walrus(data_dir=tmp_path, read_only=True) as obs:
        assert obs.get_topic_entry_counts() == {"new": 1, "other": 2}
        assert obs.read_next("new", checkpoint=False) == (b"first", 0, "new")
    with Walrus(data_dir=tmp_path) as wal:  # and so does recovery
        assert wal.read_next("new") == (b"first", 0, "new")


def test_observer_is_closed_cleanly_and_idempotently(tmp_path: Path) -> None:
    with Walrus(data_dir=tmp_path) as writer:
        writer.append_for_topic("t", b"x")
    obs = Walrus(data_dir=tmp_path, read_only=True)
    obs.close()
    obs.close()
    with pytest.raises(walrus.WalrusClosedError):
        obs.topics()
    assert os.listdir(tmp_path)  # nothing removed either


def test_an_idle_observer_poll_is_cheap(tmp_path: Path) -> None:
    """``walrus tail`` polls an observer; the unwritten end of a 64 MiB segment must not cost
    a full scan each time (it took about 0.6 s a poll with a regular-expression scan)."""
    import time

    with Walrus(data_dir=tmp_path) as writer, Walrus(data_dir=tmp_path, read_only=True) as obs:
        writer.append_for_topic("t", b"x")
        assert obs.read_next("t", checkpoint=False) is not None
        polls = 10
        start = time.thread_time()  # this thread's CPU: what other processes take is not its
        for _ in range(polls):
            assert obs.batch_read_for_topic("t", 1 << 20, checkpoint=False,
                                            start_offset=1) == []
        per_poll = (time.thread_time() - start) / polls
    assert per_poll < 0.2, f"{per_poll * 1000:.0f} ms of CPU per idle poll"


def test_an_observer_releases_segments_the_writer_reclaimed(tmp_path: Path) -> None:
    """A long ``walrus tail`` beside a busy writer must not hold every deleted segment open
    (file descriptors, mappings and the disk space of deleted files)."""

    with Walrus(data_dir=tmp_path, segment_size=64 << 10) as writer, \
            Walrus(data_dir=tmp_path, read_only=True) as observer:
        writer.append_for_topic("t", b"x")
        seen = 0
        for _ in range(20):
            writer.batch_append_for_topic("t", [b"y" * 1000] * 60)  # about one segment
            while writer.read_next("t") is not None:
                pass  # consumed: the writer reclaims the segment
            writer._background.run_once()  # type: ignore[union-attr]  # deletes them now
            seen += len(observer.batch_read_for_topic("t", 1 << 30, checkpoint=False,
                                                      start_offset=seen))
        on_disk = len(list(tmp_path.glob("*.wal")))
        assert seen == 1 + 20 * 60
        assert on_disk <= 3
        assert len(observer._log.segments) <= on_disk + 1
