"""The engine on the backend: every public call, batches, large and empty entries, many
topics, observers, and reopening under each fsync schedule."""

from __future__ import annotations

from pathlib import Path

import pytest

from walrus import FsyncSchedule, ReadConsistency, Schedule

from .._instances import WalrusFactory
from ._checks import SEGMENT, broke, entries, expect_entries, first_difference_index, payload

SCHEDULES: dict[str, Schedule] = {
    "SyncEach": FsyncSchedule.SyncEach, "Milliseconds(5)": FsyncSchedule.Milliseconds(5),
    "NoFsync": FsyncSchedule.NoFsync}


@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_appends_and_batches_survive_reopening(open_walrus: WalrusFactory, tmp_path: Path,
                                               schedule: str) -> None:
    wal = open_walrus(segment_size=SEGMENT, fsync_schedule=SCHEDULES[schedule])
    for seq in range(60):
        offset = wal.append_for_topic("a", payload("a", seq))
        if offset != seq:
            broke(f"append number {seq} got offset {offset}")
    first = wal.batch_append_for_topic("b", [payload("b", seq) for seq in range(40)])
    if first != 0:
        broke(f"the first batch of a new topic starts at offset {first}, not 0")
    wal.batch_append_for_topic("b", [payload("b", seq) for seq in range(40, 45)])
    expect_entries(wal, "a", 60, f"while open under {schedule}")
    expect_entries(wal, "b", 45, f"while open under {schedule}")
    wal.close()
    if len(list((tmp_path / "wal").glob("*.wal"))) < 3:
        broke("the workload should have rolled over several segment files")
    again = open_walrus(segment_size=SEGMENT)
    expect_entries(again, "a", 60, f"after a clean close and reopen (written under {schedule})")
    expect_entries(again, "b", 45, f"after a clean close and reopen (written under {schedule})")


def test_large_and_empty_entries(open_walrus: WalrusFactory) -> None:
    wal = open_walrus(segment_size=SEGMENT)
    big = bytes(range(256)) * (3 * SEGMENT // 256)  # larger than a segment
    sizes = [b"", big, b"", b"x", big[: SEGMENT - 100], b""]
    for data in sizes:
        wal.append_for_topic("t", data)
    wal.batch_append_for_topic("t", [big[:5000], b"", big[:5000]])
    want = [*sizes, big[:5000], b"", big[:5000]]
    for attempt in ("while open", "after reopening"):
        got = entries(wal, "t")
        if got != want:
            bad = first_difference_index(got, want)
            broke(f"entry {bad} of sizes {[len(d) for d in want]} came back as "
                  f"{len(got[bad]) if bad < len(got) else 'missing'} bytes {attempt}")
        wal.close()
        wal = open_walrus(segment_size=SEGMENT)


def test_many_topics(open_walrus: WalrusFactory) -> None:
    wal = open_walrus(segment_size=SEGMENT, fsync_schedule=FsyncSchedule.NoFsync)
    names = [f"topic-{i}" for i in range(150)]
    for round_ in range(3):
        for name in names:
            wal.append_for_topic(name, payload(name, round_))
    if sorted(wal.topics()) != sorted(names):
        broke(f"topics() lists {len(wal.topics())} topics; 150 were written")
    wal.close()
    wal = open_walrus(segment_size=SEGMENT)
    if wal.get_topic_entry_counts() != dict.fromkeys(names, 3):
        broke("after reopening, the entry counts of 150 topics are not 3 each")
    for name in names[::17]:
        expect_entries(wal, name, 3, "after reopening")


def test_every_reading_and_marking_call(open_walrus: WalrusFactory) -> None:
    wal = open_walrus(segment_size=SEGMENT, consistency=ReadConsistency.StrictlyAtOnce)
    wal.batch_append_for_topic("r", [payload("r", seq) for seq in range(30)])
    first = wal.read_next("r")
    if first is None or (first.offset, first.data, first.topic) != (0, payload("r", 0), "r"):
        broke(f"read_next returned {first!r}; expected entry 0 of topic 'r'")
    peek = wal.read_next("r", checkpoint=False)
    if peek is None or peek.offset != 1 or wal.read_next("r", checkpoint=False) != peek:
        broke("read_next(checkpoint=False) moved the cursor or returned the wrong entry")
    batch = wal.batch_read_for_topic("r", 2000)
    if not batch or [e.offset for e in batch] != list(range(1, 1 + len(batch))):
        broke(f"batch_read_for_topic returned offsets {[e.offset for e in batch]}")
    for entry in batch:
        if entry.data != payload("r", entry.offset):
            broke(f"batch_read_for_topic returned wrong bytes for entry {entry.offset}")
    consumed = 1 + len(batch)
    if wal.get_topic_entry_count("r") != 30 - consumed:
        broke(f"get_topic_entry_count says {wal.get_topic_entry_count('r')} unread; "
              f"{30 - consumed} are")
    info = wal.topic_info("r")
    if (info.topic, info.next_offset, info.unconsumed) != ("r", 30, 30 - consumed):
        broke(f"topic_info describes another state: {info}")
    if wal.get_topic_size("r") <= 0:
        broke("get_topic_size says an unread topic takes no space")
    wal.mark_topic_clean("r")
    if not wal.topic_is_clean("r"):
        broke("mark_topic_clean did not mark the topic clean")
    wal.flush()
    if wal.damage():
        broke(f"damage() reports {wal.damage()} on an undamaged log")
    wal.close()
    wal = open_walrus(segment_size=SEGMENT, consistency=ReadConsistency.StrictlyAtOnce)
    if not wal.topic_is_clean("r"):
        broke("the clean mark did not survive reopening")
    wal.mark_topic_dirty("r")
    nxt = wal.read_next("r")
    if nxt is None or nxt.offset != consumed:
        broke(f"after reopening, the cursor resumed at {nxt and nxt.offset}; {consumed} "
              f"entries had been consumed")
    if wal.topic_is_clean("r"):
        broke("mark_topic_dirty did not clear the clean mark")


def test_an_observer_follows_the_writer(open_walrus: WalrusFactory) -> None:
    """A read-only instance (files opened with ``writable=False``) sees what the writer adds."""
    wal = open_walrus(segment_size=SEGMENT, fsync_schedule=FsyncSchedule.NoFsync)
    wal.batch_append_for_topic("o", [payload("o", seq) for seq in range(10)])
    observer = open_walrus(read_only=True, segment_size=SEGMENT)
    expect_entries(observer, "o", 10, "in a read-only observer")
    for seq in range(10, 80):
        wal.append_for_topic("o", payload("o", seq))
    expect_entries(observer, "o", 80, "in a read-only observer that followed the writer")
