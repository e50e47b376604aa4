"""Cursor persistence per consistency mode, across clean closes and real process deaths.

A "crash" here is a child process that ends with ``os._exit`` (no close, no flush): what it
handed to the OS survives, what it kept in memory does not.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from walrus import FsyncSchedule, ReadConsistency

from .conftest import WalFactory, drain, run_child

CHILD = """
import json, os, sys
from walrus import Walrus, ReadConsistency, FsyncSchedule
path, backend, mode, schedule, plan = sys.argv[1:6]
consistency = (ReadConsistency.StrictlyAtOnce if mode == "strict"
               else ReadConsistency.AtLeastOnce(persist_every=int(mode)))
fsync = {"sync": FsyncSchedule.SyncEach, "none": FsyncSchedule.NoFsync,
         "ms": FsyncSchedule.Milliseconds(1000)}[schedule]
wal = Walrus(data_dir=path, backend=backend, consistency=consistency, fsync_schedule=fsync)
out = []
for step in json.loads(plan):
    op, topic, arg = step
    if op == "append":
        for i in range(arg):
            wal.append_for_topic(topic, b"%s-%d" % (topic.encode(), i))
    elif op == "read":
        for _ in range(arg):
            e = wal.read_next(topic)
            out.append(None if e is None else e.data.decode())
    elif op == "batch":
        out.append([e.data.decode() for e in wal.batch_read_for_topic(topic, arg)])
    elif op == "flush":
        wal.flush()
print(json.dumps(out))
sys.stdout.flush()
os._exit(0)
"""


def crash_run(path: Path, backend: str, mode: str, plan: list[list[object]],
              schedule: str = "none") -> list[object]:
    """Run ``plan`` in a child that dies without closing; return what its reads returned."""
    result = run_child(CHILD, str(path), backend, mode, schedule, json.dumps(plan))
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def mode_of(consistency: str) -> ReadConsistency:
    if consistency == "strict":
        return ReadConsistency.StrictlyAtOnce  # type: ignore[return-value]
    return ReadConsistency.AtLeastOnce(persist_every=int(consistency))  # type: ignore[return-value]


@pytest.mark.parametrize("schedule", ["none", "ms", "sync"])
def test_strictly_at_once_never_redelivers_after_a_crash(tmp_path: Path, backend: str,
                                                         open_wal: WalFactory,
                                                         schedule: str) -> None:
    path = tmp_path / "wal"
    got = crash_run(path, backend, "strict", [["append", "t", 5], ["read", "t", 2]], schedule)
    assert got == ["t-0", "t-1"]
    wal = open_wal(path)
    assert drain(wal, "t") == [b"t-2", b"t-3", b"t-4"]


def test_strictly_at_once_batch_reads_survive_a_crash(tmp_path: Path, backend: str,
                                                      open_wal: WalFactory) -> None:
    path = tmp_path / "wal"
    got = crash_run(path, backend, "strict",
                    [["append", "t", 50], ["batch", "t", 30], ["batch", "t", 30]])
    assert [len(x) for x in got] == [10, 7]  # type: ignore[arg-type]  # 3- then 4-byte entries
    wal = open_wal(path)
    assert drain(wal, "t") == [b"t-%d" % i for i in range(17, 50)]


def test_exactly_once_delivery_after_clean_close(open_wal: WalFactory) -> None:
    wal = open_wal()
    for i in range(10):
        wal.append_for_topic("e", b"%d" % i)
    assert [wal.read_next("e").data for _ in range(5)] == [b"%d" % i for i in range(5)]  # type: ignore[union-attr]
    wal.close()
    assert drain(open_wal(), "e") == [b"%d" % i for i in range(5, 10)]


def test_at_least_once_replays_after_a_crash(tmp_path: Path, backend: str,
                                             open_wal: WalFactory) -> None:
    """AtLeastOnce(3): two reads, crash, and both entries come back."""
    path = tmp_path / "wal"
    assert crash_run(path, backend, "3", [["append", "t", 6], ["read", "t", 2]]) == ["t-0", "t-1"]
    # The fourth read persists the position reached by the first three.
    got = crash_run(path, backend, "3", [["read", "t", 4]])
    assert got == ["t-0", "t-1", "t-2", "t-3"]
    wal = open_wal(path, consistency=ReadConsistency.AtLeastOnce(persist_every=3))
    assert drain(wal, "t") == [b"t-3", b"t-4", b"t-5"]


@pytest.mark.parametrize("n", [1, 2, 5, 10])
def test_at_least_once_never_skips_and_replays_at_most_n_plus_last_call(
        tmp_path: Path, backend: str, open_wal: WalFactory, n: int) -> None:
    path = tmp_path / "wal"
    crash_run(path, backend, str(n), [["append", "t", 40]])
    delivered: list[str] = []
    for reads in (7, 3, 11, 1, 9):
        got = crash_run(path, backend, str(n), [["read", "t", reads]])
        assert all(isinstance(x, str) for x in got)
        if delivered and got:
            # Replay starts no earlier than the last persisted position: at most n entries
            # plus the previous call's (one entry) come again, and never a skip.
            last = int(delivered[-1].split("-")[1])
            first = int(str(got[0]).split("-")[1])
            assert last + 1 - (n + 1) <= first <= last + 1
        delivered += [str(x) for x in got]
    wal = open_wal(path, consistency=ReadConsistency.AtLeastOnce(persist_every=n))
    rest = [x.decode() for x in drain(wal, "t")]
    seen = {int(x.split("-")[1]) for x in delivered + rest}
    assert seen == set(range(40))


def test_at_least_once_batch_reads_persist_too(tmp_path: Path, backend: str,
                                               open_wal: WalFactory) -> None:
    """Original bug 16.2: batch reads in AtLeastOnce never persisted at all."""
    path = tmp_path / "wal"
    crash_run(path, backend, "5", [["append", "t", 40]])
    got = crash_run(path, backend, "5", [["batch", "t", 24], ["batch", "t", 24],
                                         ["batch", "t", 24]])
    # 3-byte then 4-byte payloads: the calls return offsets 0-7, 8-13 and 14-19.
    assert [len(x) for x in got] == [8, 6, 6]  # type: ignore[arg-type]
    wal = open_wal(path, consistency=ReadConsistency.AtLeastOnce(persist_every=5))
    first = wal.read_next("t")
    assert first is not None and first.offset == 14  # the third call persisted 14, not 20


def test_at_least_once_multiple_topics_replay(tmp_path: Path, backend: str,
                                              open_wal: WalFactory) -> None:
    path = tmp_path / "wal"
    crash_run(path, backend, "2", [["append", "a", 3], ["append", "b", 3], ["read", "a", 1],
                                   ["read", "b", 1]])
    wal = open_wal(path, consistency=ReadConsistency.AtLeastOnce(persist_every=2))
    assert wal.read_next("a").data == b"a-0"  # type: ignore[union-attr]
    assert wal.read_next("b").data == b"b-0"  # type: ignore[union-attr]


def test_flush_persists_at_least_once_cursors(tmp_path: Path, backend: str,
                                              open_wal: WalFactory) -> None:
    path = tmp_path / "wal"
    crash_run(path, backend, "1000", [["append", "t", 5], ["read", "t", 2], ["flush", "t", 0]])
    wal = open_wal(path, consistency=ReadConsistency.AtLeastOnce(persist_every=1000))
    assert wal.read_next("t").data == b"t-2"  # type: ignore[union-attr]


def test_close_persists_at_least_once_cursor_exactly(open_wal: WalFactory) -> None:
    consistency = ReadConsistency.AtLeastOnce(persist_every=1000)
    wal = open_wal(consistency=consistency)
    for i in range(5):
        wal.append_for_topic("t", b"%d" % i)
    wal.read_next("t")
    assert len(wal.batch_read_for_topic("t", 2)) == 2  # two 1-byte entries
    wal.close()
    wal = open_wal(consistency=consistency)
    assert wal.read_next("t").data == b"3"  # type: ignore[union-attr]


def test_persist_every_zero_behaves_like_one(tmp_path: Path, backend: str,
                                             open_wal: WalFactory) -> None:
    assert ReadConsistency.AtLeastOnce(persist_every=0).persist_every == 1
    path = tmp_path / "wal"
    crash_run(path, backend, "0", [["append", "t", 5], ["read", "t", 3]])
    wal = open_wal(path, consistency=ReadConsistency.AtLeastOnce(persist_every=0))
    assert wal.read_next("t").data == b"t-2"  # type: ignore[union-attr]  # only the last read


def test_stateless_read_never_moves_the_shared_cursor_in_any_mode(open_wal: WalFactory) -> None:
    """Original bug 16.7: a start_offset read with checkpoint moved the AtLeastOnce cursor."""
    for consistency in (ReadConsistency.StrictlyAtOnce, ReadConsistency.AtLeastOnce(2)):
        wal = open_wal(consistency=consistency)
        topic = f"s{id(consistency)}"
        wal.batch_append_for_topic(topic, [b"0", b"1", b"2", b"3"])
        wal.read_next(topic)
        wal.batch_read_for_topic(topic, 100, checkpoint=True, start_offset=3)
        assert wal.read_next(topic).data == b"1"  # type: ignore[union-attr]
        wal.close()


def test_cursor_durability_follows_the_schedule(open_wal: WalFactory) -> None:
    """Under SyncEach a checkpointing read is durable before it returns."""
    wal = open_wal(fsync_schedule=FsyncSchedule.SyncEach)
    wal.append_for_topic("t", b"x")
    wal.read_next("t")
    log = wal._log
    assert log.durable >= log.active.lsn_base | log.active.end  # type: ignore[union-attr]
