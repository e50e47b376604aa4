"""What the public API returns: appends give the new entries' offsets, and ``topic_info`` a
topic's offset range, counts, size and clean flag (the command line uses nothing else)."""

from __future__ import annotations

import ast
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs
import pytest

from walrus import (
    FsyncSchedule,
    InvalidTopicError,
    OffsetOutOfRangeError,
    TopicInfo,
    Walrus,
    WalrusClosedError,
)
from walrus._config import Schedule

from .conftest import ROOT, WalFactory, drain, peek_all

SCHEDULES = [FsyncSchedule.NoFsync, FsyncSchedule.Milliseconds(1000), FsyncSchedule.SyncEach]
"""Each takes its own path: NoFsync and Milliseconds the log's bound hot path, SyncEach the
facade that waits for the sync."""


def _reclaim(wal: Walrus) -> None:
    """Delete the segments every cursor has passed, now (the background does it later)."""
    wal.flush()
    wal._background.run_once()  # type: ignore[union-attr]


def _all(wal: Walrus, topic: str) -> dict[int, bytes]:
    return {e.offset: e.data for e in peek_all(wal, topic)}


# --- appends return offsets --------------------------------------------------------------------

@pytest.mark.parametrize("schedule", SCHEDULES, ids=repr)
def test_append_returns_the_new_entrys_offset(open_wal: WalFactory, schedule: Schedule) -> None:
    wal = open_wal(fsync_schedule=schedule)
    assert wal.append_for_topic("a", b"first") == 0  # the append that creates the topic
    assert wal.append_for_topic("a", bytearray(b"second")) == 1
    assert wal.append_for_topic("b", memoryview(b"other")) == 0  # offsets are per topic
    assert wal.append_for_topic("a", b"third") == 2
    assert _all(wal, "a") == {0: b"first", 1: b"second", 2: b"third"}


@pytest.mark.parametrize("schedule", SCHEDULES, ids=repr)
def test_batch_append_returns_the_first_offset(open_wal: WalFactory, schedule: Schedule) -> None:
    wal = open_wal(fsync_schedule=schedule)
    assert wal.batch_append_for_topic("t", [b"a", b"b", b"c"]) == 0  # creates the topic
    assert wal.batch_append_for_topic("t", [b"d", b"e"]) == 3
    assert wal.append_for_topic("t", b"f") == 5
    assert wal.batch_append_for_topic("t", []) == 6  # empty: the next offset; writes nothing
    assert wal.batch_append_for_topic("unknown", []) == 0
    assert wal.topics() == ["t"]
    assert wal.batch_append_for_topic("t", [b"g"]) == 6
    assert _all(wal, "t") == dict(enumerate([b"a", b"b", b"c", b"d", b"e", b"f", b"g"]))


def test_offsets_go_on_after_a_reopen(open_wal: WalFactory, tmp_path: Path) -> None:
    wal = open_wal(tmp_path / "w")
    wal.batch_append_for_topic("t", [b"x"] * 5)
    wal.close()
    wal = open_wal(tmp_path / "w")
    assert wal.append_for_topic("t", b"y") == 5
    assert wal.batch_append_for_topic("t", [b"z", b"z"]) == 6


@pytest.mark.parametrize(("schedule", "per_thread"), [
    (FsyncSchedule.NoFsync, 2000), (FsyncSchedule.SyncEach, 100)], ids=["NoFsync", "SyncEach"])
def test_concurrent_appends_each_get_their_own_entrys_offset(
        open_wal: WalFactory, schedule: Schedule, per_thread: int) -> None:
    """The offset an append returns is that of the entry it wrote, not a neighbour's."""
    wal = open_wal(fsync_schedule=schedule)
    wal.append_for_topic("t", b"start")
    got: dict[bytes, int] = {}

    def writer(n: int) -> None:
        mine = {}
        for i in range(per_thread):
            data = b"%d-%d" % (n, i)
            if i % 10 == 0:
                mine[data] = wal.batch_append_for_topic("t", [data, data + b"+"])
                mine[data + b"+"] = mine[data] + 1
            else:
                mine[data] = wal.append_for_topic("t", data)
        got.update(mine)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(writer, range(4)))  # re-raises what a writer raised
    stored = _all(wal, "t")
    assert len(stored) == len(got) + 1
    assert {offset: data for data, offset in got.items()} == {
        offset: data for offset, data in stored.items() if offset != 0}


# --- topic_info --------------------------------------------------------------------------------

def test_topic_info_of_a_topic(open_wal: WalFactory) -> None:
    wal = open_wal()
    wal.batch_append_for_topic("t", [b"a" * 10] * 5)
    wal.read_next("t")
    wal.read_next("t")
    info = wal.topic_info("t")
    assert info == TopicInfo(topic="t", first_offset=0, next_offset=5, unconsumed=3,
                             size=wal.get_topic_size("t"), clean=False)
    assert info.size > 50 and info.entries == 5
    assert info.unconsumed == wal.get_topic_entry_count("t")
    wal.mark_topic_clean("t")
    assert wal.topic_info("t").clean
    assert not info.clean  # a snapshot: later calls do not change it


def test_topic_info_is_frozen(open_wal: WalFactory) -> None:
    info = open_wal().topic_info("t")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        info.next_offset = 3  # type: ignore[misc]


def test_an_unknown_topic_reads_as_empty(open_wal: WalFactory) -> None:
    wal = open_wal()
    assert wal.topic_info("nothing") == TopicInfo("nothing", 0, 0, 0, 0, True)
    assert wal.topics() == []  # asking does not create it


def test_topic_info_checks_its_argument_and_the_instance(open_wal: WalFactory) -> None:
    wal = open_wal()
    with pytest.raises(InvalidTopicError):
        wal.topic_info("")
    wal.close()
    with pytest.raises(WalrusClosedError):
        wal.topic_info("t")


def test_first_offset_is_where_reclaimed_entries_end(open_wal: WalFactory) -> None:
    wal = open_wal(segment_size=16 << 10)
    for i in range(1000):
        wal.append_for_topic("t", b"%05d" % i * 8)
    for _ in range(900):
        wal.read_next("t")
    _reclaim(wal)
    info = wal.topic_info("t")
    assert 0 < info.first_offset <= 900 and info.next_offset == 1000
    assert info.unconsumed == 100 and info.entries == 1000 - info.first_offset
    first = wal.batch_read_for_topic("t", 10, checkpoint=False, start_offset=info.first_offset)
    assert first[0].offset == info.first_offset
    with pytest.raises(OffsetOutOfRangeError):
        wal.batch_read_for_topic("t", 10, checkpoint=False, start_offset=info.first_offset - 1)


def test_an_observer_sees_the_writers_offsets(open_wal: WalFactory, tmp_path: Path) -> None:
    writer = open_wal(tmp_path / "w", fsync_schedule=FsyncSchedule.SyncEach)
    writer.batch_append_for_topic("t", [b"x"] * 3)
    observer = open_wal(tmp_path / "w", read_only=True)
    assert observer.topic_info("t").next_offset == 3
    assert writer.append_for_topic("t", b"y") == 3
    assert observer.topic_info("t").next_offset == 4
    assert observer.topic_info("t") == writer.topic_info("t")


def test_next_offset_follows_each_acknowledged_append(open_wal: WalFactory) -> None:
    wal = open_wal(fsync_schedule=FsyncSchedule.SyncEach)
    for _ in range(3):
        offset = wal.append_for_topic("t", b"x")
        assert wal.topic_info("t").next_offset == offset + 1
    drain(wal, "t")
    assert wal.topic_info("t").unconsumed == 0


# --- the command line uses the public API ------------------------------------------------------

CLI_MODULES = [*sorted((ROOT / "walrus" / "_commands").glob("*.py")),
               *sorted((ROOT / "walrus").glob("_cli*.py"))]
PRIVATE_STATE = {"_wal", "_topics", "_fast_topics", "_rebuilder", "_durability", "_background"}
"""The state behind ``Walrus``: the engine's, which only the facade (``_walrus.py``) touches."""


def _walrus_imports(path: Path) -> set[Path]:
    """The modules of the walrus package that ``path`` imports from (relative imports)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            base = path.parent
            for _ in range(node.level - 1):
                base = base.parent
            target = base.joinpath(*(node.module or "").split("."))
            for candidate in (target.with_suffix(".py"), target / "__init__.py"):
                if candidate.is_file():
                    found.add(candidate)
    return found


@pytest.mark.parametrize("path", CLI_MODULES, ids=lambda p: p.name)
def test_the_command_line_reads_no_private_state(path: Path) -> None:
    """Neither the commands nor the helpers they import reach behind ``Walrus``."""
    helpers = {p for p in _walrus_imports(path) if p.name != "_walrus.py"}
    for module in (path, *sorted(helpers)):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        touched = {node.attr for node in ast.walk(tree)
                   if isinstance(node, ast.Attribute) and node.attr in PRIVATE_STATE}
        assert touched == set(), f"{module.name} reads {touched}: use Walrus.topic_info"
