"""Power loss, simulated, for named consumers: a consumer's position survives a cut exactly as
the fsync schedule promises, and a torn position write keeps the previous one.

Like tests/test_power_loss.py: a run drives a log and a named consumer through the
``faults-*`` backends, cuts the power at a random disk operation, writes the image a disk may
hold afterwards (the consumer files' folder too), and recovers it with a real backend.
"""

from __future__ import annotations

import os
import random
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from walrus_faults import POLICIES, powered

from walrus import FsyncSchedule, ReadConsistency, Walrus
from walrus._config import Consistency
from walrus._consumers import (
    DIRECTORY,
    SLOT_AT,
    Registry,
    decode_header,
    file_name,
    newest_slot,
    read_state,
)

from ._workload import FIGURES, Ledger, payload
from .conftest import BACKENDS, FAULT_BACKENDS

SCALE = float(os.environ.get("RELIABILITY_SCALE", "1"))
FIXED = not os.environ.get("RELIABILITY_RANDOM")
SCHEDULES = {"sync_each": FsyncSchedule.SyncEach, "ms3": FsyncSchedule.Milliseconds(3),
             "no_fsync": FsyncSchedule.NoFsync}
TOPIC, NAME = "a", "billing"

_OP = {
    "append": st.tuples(st.just("append")),
    "batch": st.tuples(st.just("batch"), st.integers(1, 20)),
    "read": st.tuples(st.just("read")),
    "bread": st.tuples(st.just("bread"), st.integers(0, 2000)),
    "seek": st.tuples(st.just("seek"), st.integers(0, 40)),
    "flush": st.tuples(st.just("flush")),
}
_WEIGHTS = ["append"] * 4 + ["batch"] * 2 + ["read"] * 5 + ["bread"] * 3 + ["seek", "flush"]
OPS = st.lists(st.sampled_from(_WEIGHTS).flatmap(_OP.__getitem__), min_size=10, max_size=60)


def drive(wal: Walrus, m: Any, ops: list[tuple[Any, ...]], led: Ledger, named: Ledger,
          persist_every: int | None, cut: tuple[int, int]) -> tuple[list[int], bool]:
    """Run ``ops`` until they end or the power goes; returns the named positions persisted
    since the last acknowledged flush, that one included (under Milliseconds and NoFsync
    the disk may hold any of them: a seek back may be what reached it), and whether a call
    that used the consumer was acknowledged."""
    since = [0]
    used = False
    for index, op in enumerate(ops):
        if index == cut[0]:
            m.cut_at = m.clock + cut[1]
        kind = op[0]
        try:
            if kind in ("append", "batch"):
                led.append(wal, TOPIC, 1 if kind == "append" else op[1], kind == "batch", m.now)
            elif kind in ("read", "bread"):
                named.reading = True
                if kind == "read":
                    e = wal.read_next(TOPIC, consumer=NAME)
                    got = [] if e is None else [e]
                else:
                    got = wal.batch_read_for_topic(TOPIC, op[1], consumer=NAME)
                named.reading = False
                used = True
                for i, e in enumerate(got):
                    assert (e.offset, e.data) == (named.delivered + i,
                                                  payload(TOPIC, named.delivered + i))
                if got:
                    named.read(named.delivered, len(got), m.now(), persist_every)
                    since.append(named.persisted)
            elif kind == "seek":
                to = min(op[1], led.written)
                named.reading, named.seeking = True, to
                wal.seek(TOPIC, to, consumer=NAME)
                named.reading, named.seeking = False, None
                used = True
                named.delivered = named.persisted = to
                named.reads.append((m.now(), to, to))
                since.append(to)
            else:
                named.flushing = True
                wal.flush()
                named.flushing = False
                named.flushed(m.now())
                since = [named.persisted]
        except OSError:
            if m.dead:
                return since, used
            raise
    return since, used


@pytest.mark.slow
@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("faulty", FAULT_BACKENDS)
@settings(max_examples=int(60 * SCALE), deadline=None, derandomize=FIXED, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=OPS, data=st.data(), policy=st.sampled_from(POLICIES),
       seed=st.integers(0, 2**32 - 1), strict=st.booleans(),
       recover_with=st.sampled_from(BACKENDS))
def test_power_cut_keeps_named_positions(tmp_path_factory: pytest.TempPathFactory,
                                         faulty: str, schedule: str,
                                         ops: list[tuple[Any, ...]], data: st.DataObject,
                                         policy: str, seed: int, strict: bool,
                                         recover_with: str) -> None:
    cut = (data.draw(st.integers(0, len(ops)), label="cut call"),
           data.draw(st.integers(1, 16), label="cut depth"))
    cut_and_check(tmp_path_factory.mktemp("cut"), faulty, schedule, strict, ops, cut, policy,
                  seed, recover_with)


CUT_INTO = {
    "flush": [("append",)] * 7 + [("read",), ("flush",), ("append",)],
    "seek back": [("batch", 10), ("bread", 2000), ("flush",), ("seek", 5), ("append",)],
}
"""Calls that persist a named position and then do more disk work, each the third from the
end, after calls that move the persisted position elsewhere."""


@pytest.mark.parametrize("call", list(CUT_INTO))
@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize("faulty", FAULT_BACKENDS)
def test_a_cut_inside_a_call_may_keep_the_position_it_persisted(tmp_path: Path, faulty: str,
                                                                schedule: str,
                                                                call: str) -> None:
    """flush() persists and syncs the consumer's exact position before it syncs the log; a
    seek persists its target before it returns: a cut after that leaves the new position on
    disk, though the call failed. Every depth of the cut into the call (and into the append
    after it) is tried."""
    ops = CUT_INTO[call]
    for depth in range(1, 17):
        for policy in ("keep_all", "lose_all"):
            cut_and_check(tmp_path / f"{policy}-{depth}", faulty, schedule, False, ops,
                          (len(ops) - 2, depth), policy, depth, faulty.removeprefix("faults-"))


def cut_and_check(base: Path, faulty: str, schedule: str, strict: bool,
                  ops: list[tuple[Any, ...]], cut: tuple[int, int], policy: str, seed: int,
                  recover_with: str) -> None:
    """Drive ``ops`` with the power cut ``cut[1]`` disk operations into call ``cut[0]``,
    write the image the disk may hold (``policy``, ``seed``), and check it."""
    live, image = base / "live", base / "image"
    (live / DIRECTORY).mkdir(parents=True)
    consistency = (ReadConsistency.StrictlyAtOnce if strict
                   else ReadConsistency.AtLeastOnce(persist_every=3))
    persist_every = None if strict else 3
    led, named = Ledger(), Ledger()
    rng = random.Random(seed)
    with powered() as m:
        m.watch(live)
        m.watch(live / DIRECTORY)
        wal = Walrus(data_dir=live, backend=faulty, segment_size=8192,
                     fsync_schedule=SCHEDULES[schedule], consistency=consistency)
        since, used = drive(wal, m, ops, led, named, persist_every, cut)
        m.cut()
        m.image(live, image, rng, policy)
        m.image(live / DIRECTORY, image / DIRECTORY, rng, policy)
        try:
            wal.close()
        except OSError:
            pass
    check_recovered(image, recover_with, consistency, schedule, led, named, since, used)


def check_recovered(image: Path, recover_with: str, consistency: Consistency,
                    schedule: str, led: Ledger, named: Ledger, since: list[int],
                    used: bool) -> None:
    """The named consumer's position in the image lies where the schedule, the reads and
    the flushes acknowledged before the cut (and the call in flight) allow, and reading on
    from it skips nothing."""
    FIGURES["named power cuts"] += 1
    stored = {n: p for _t, n, p, _path in Registry(str(image), None).list()}  # type: ignore[arg-type]
    if used:
        # made durable whole before its first use returned, with its folder entry; a torn
        # slot write later never costs the position
        assert stored.get(NAME) is not None, "the consumer's position was lost"
    with Walrus(data_dir=image, backend=recover_with, segment_size=8192,
                consistency=consistency) as after:
        position = after.consumers(TOPIC).get(NAME, 0)
        next_offset = after.topic_info(TOPIC).next_offset
        if schedule == "sync_each":
            want = ceiling = named.persisted
        else:
            want, ceiling = min(since), max(since)
        if named.seeking is not None:  # a seek in flight may have persisted its target
            want = min(want, named.seeking)
        want = min(want, next_offset)  # entries lost with the cut are not there to pass
        if named.reading:  # a read (or seek) in flight may have persisted, then died
            ceiling = max(ceiling, led.written + led.inflight)
        if named.flushing:  # a flush in flight may have persisted (and synced) the exact
            ceiling = max(ceiling, named.delivered)  # position before the cut stopped it
        assert want <= position <= max(ceiling, want), (want, position, ceiling)
        FIGURES["named power-cut positions checked"] += 1
        # The offsets the cut took back go to new entries. Once the topic is past every
        # position the consumer ever had, it still reads on from there (its file, which a
        # later open places it by, must not say it passed them), with nothing skipped.
        more = max(1, max(ceiling, position) + 3 - next_offset)
        after.batch_append_for_topic(TOPIC, [b"after the cut"] * more)
    with Walrus(data_dir=image, backend=recover_with, segment_size=8192,
                consistency=consistency) as again:
        got = again.batch_read_for_topic(TOPIC, 1 << 20, consumer=NAME)
        assert got and got[0].offset == position, (position, got[:1])
        assert [e.offset for e in got] == list(range(position, next_offset + more))


def flushed_once(m: Any, live: Path, faulty: str) -> Walrus:
    """A log at ``live`` on ``faulty`` (StrictlyAtOnce, NoFsync) with ten entries, whose
    consumer read one and was flushed: position 1 is synced."""
    (live / DIRECTORY).mkdir(parents=True)
    m.watch(live / DIRECTORY)
    wal = Walrus(live, backend=faulty, fsync_schedule=FsyncSchedule.NoFsync)
    wal.batch_append_for_topic(TOPIC, [b"x"] * 10)
    wal.read_next(TOPIC, consumer=NAME)
    wal.flush()
    return wal


def newest_in(live: Path) -> tuple[int, int, int]:
    """(slot, generation, position) of the newest valid slot of the consumer's file."""
    data = (live / DIRECTORY / file_name(TOPIC, NAME)).read_bytes()
    newest = newest_slot(data, decode_header(data)[2])
    assert newest is not None
    return newest


def unsynced_writes(m: Any) -> set[int]:
    """The file offsets of the consumer file's writes no sync has made durable yet."""
    [state] = [st for path, st in m.files.items() if path.endswith(file_name(TOPIC, NAME))]
    return {w.pos for w in state.pending}


def cut_after_reads(tmp_path: Path, faulty: str, reads: int, policy: str,
                    seed: int) -> tuple[int, set[int], int | None, int]:
    """Read once and flush, read ``reads`` times more (StrictlyAtOnce under NoFsync: each
    read writes its position, none syncs it), cut the power and image the consumer files.

    Returns the flushed position, the file offsets of the writes not synced at the cut, the
    position the image holds, and the file offset of the slot holding the flushed position."""
    live = tmp_path / "live"
    with powered() as m:
        wal = flushed_once(m, live, faulty)
        before = wal.consumers(TOPIC)[NAME]
        index, _, position = newest_in(live)
        assert position == before
        synced_at = SLOT_AT[index]
        for _ in range(reads):
            wal.read_next(TOPIC, consumer=NAME)
        unsynced = unsynced_writes(m)
        m.cut()
        image = tmp_path / f"img-{policy}-{reads}-{seed}"
        m.image(live / DIRECTORY, image, random.Random(seed), policy)
        try:
            wal.close()
        except OSError:
            pass
    shutil.rmtree(live)
    (path,) = image.iterdir()
    return before, unsynced, read_state(str(path))[2], synced_at


@pytest.mark.parametrize("faulty", FAULT_BACKENDS)
def test_a_torn_position_write_keeps_the_previous_position(tmp_path: Path,
                                                           faulty: str) -> None:
    """Position writes go to the slot not holding the newest synced one: a cut that tears
    them leaves the position before them."""
    for policy in ("random", "lose_all", "keep_all"):
        for k in range(8):
            reads = k % 3 + 1
            before, _, position, _ = cut_after_reads(tmp_path, faulty, reads, policy, k)
            assert position is not None
            assert before <= position <= before + reads
            if policy == "lose_all":
                assert position == before
            if policy == "keep_all":
                assert position == before + reads


@pytest.mark.parametrize("faulty", FAULT_BACKENDS)
def test_unsynced_position_writes_never_touch_the_synced_one(tmp_path: Path,
                                                             faulty: str) -> None:
    """Under NoFsync many position writes may be in the page cache when the power goes, and
    any of them may be torn: none goes to the slot holding the last synced position, so that
    one is always left whole (with two slots written in turn, the second write would
    overwrite it before it is durable)."""
    for reads in range(1, 5):
        for seed in range(4):
            before, unsynced, position, synced_at = cut_after_reads(tmp_path, faulty, reads,
                                                                    "tear", seed)
            assert synced_at not in unsynced, (synced_at, unsynced)
            assert len(unsynced) == min(reads, 2), unsynced
            assert position is not None
            assert before <= position <= before + reads


@pytest.mark.parametrize("faulty", FAULT_BACKENDS)
def test_an_interrupted_position_write_keeps_the_last_position(tmp_path: Path,
                                                               faulty: str) -> None:
    """A position write cut short (a failed write; or a process killed while it copies the
    slot into a mapping) leaves the slot it wrote torn. The position before it must still be
    the newest readable one, not the last synced one: the calls between them were answered,
    and an owner reading again from the synced position would hand their entries out twice."""
    path = tmp_path / "w"
    with powered() as m:
        wal = flushed_once(m, path, faulty)  # position 1 is synced
        for i in range(1, 4):  # positions 2, 3, 4: written, not synced
            assert wal.read_next(TOPIC, consumer=NAME).offset == i
        m.arm("write", 5, times=1, short=True)
        with pytest.raises(OSError):
            wal.read_next(TOPIC, consumer=NAME)
        m.disarm()
        wal.close()
    for backend in BACKENDS:
        with Walrus(path, backend=backend, read_only=True,
                    consistency=ReadConsistency.StrictlyAtOnce) as obs:
            assert obs.consumers(TOPIC)[NAME] == 4, backend
    with Walrus(path, consistency=ReadConsistency.StrictlyAtOnce) as wal:
        assert wal.read_next(TOPIC, consumer=NAME).offset == 4


@pytest.mark.parametrize("faulty", FAULT_BACKENDS)
def test_positions_written_during_a_sync_leave_alone_what_it_syncs(tmp_path: Path,
                                                                  faulty: str) -> None:
    """The consumers' syncer thread syncs a file while reads go on storing positions. The
    position written last before the sync began must be durable when it ends: no write
    made meanwhile goes to its slot (one would leave it torn by a power loss, and with it
    every sync's progress while reads never pause)."""
    live = tmp_path / "live"
    with powered() as m:
        wal = flushed_once(m, live, faulty)  # position 1 is synced
        wal.read_next(TOPIC, consumer=NAME)
        wal.read_next(TOPIC, consumer=NAME)  # position 3, written before the sync below
        newest = newest_in(live)
        assert newest[2] == 3
        cf = wal._consumers.owned[(NAME, TOPIC)].file  # type: ignore[attr-defined]
        gate = m.hold("sync")
        syncer = threading.Thread(target=cf.sync)  # what the syncer thread runs
        syncer.start()
        deadline = time.monotonic() + 30
        while "sync" in m.gates:  # until it waits at the gate, the sync begun
            assert time.monotonic() < deadline
            time.sleep(0.001)
        for i in range(3, 6):  # positions 4, 5, 6 while it runs
            assert wal.read_next(TOPIC, consumer=NAME).offset == i
        gate.set()
        syncer.join()
        unsynced = unsynced_writes(m)
        assert SLOT_AT[newest[0]] not in unsynced, unsynced
        assert len(unsynced) == 2, unsynced
        m.cut()
        for seed in range(20):
            image = tmp_path / f"img-{seed}"
            m.image(live / DIRECTORY, image, random.Random(seed), "tear")
            (path,) = image.iterdir()
            assert read_state(str(path))[2] in (3, 4, 5, 6), seed
        try:
            wal.close()
        except OSError:
            pass


def consumer_past_the_end(tmp_path: Path, backend: str) -> Path:
    """The image a power cut may leave under NoFsync: the log kept entries 0-4 of 10, but the
    consumer file, synced before the log (as ``flush`` does), says 10."""
    kept, ahead = tmp_path / "kept", tmp_path / "ahead"
    for path, count in ((kept, 5), (ahead, 10)):
        with Walrus(data_dir=path, backend=backend, fsync_schedule=FsyncSchedule.NoFsync) as w:
            w.batch_append_for_topic(TOPIC, [b"old"] * count)
            if path == ahead:
                assert len(w.batch_read_for_topic(TOPIC, 1 << 20, consumer=NAME)) == 10
    shutil.copytree(ahead / DIRECTORY, kept / DIRECTORY, dirs_exist_ok=True)
    return kept


def stored_position(path: Path) -> int | None:
    [(_topic, _name, position, _path)] = Registry(str(path), None).list()  # type: ignore[arg-type]
    return position


def test_a_consumer_past_the_end_is_set_back_on_disk_when_a_writer_opens(
        tmp_path: Path, backend: str) -> None:
    """Else the offsets the cut took back, handed out again to new entries, are skipped by
    the consumer (placed by its file once the topic is past 10) and may be reclaimed before
    it reads them (reclamation reads the files)."""
    image = consumer_past_the_end(tmp_path, backend)
    with Walrus(data_dir=image, backend=backend) as wal:
        assert stored_position(image) == 5
        assert wal.consumers(TOPIC) == {NAME: 5}
        wal.batch_append_for_topic(TOPIC, [b"new"] * 10)
    with Walrus(data_dir=image, backend=backend) as wal:
        got = wal.batch_read_for_topic(TOPIC, 1 << 20, consumer=NAME)
        assert [(e.offset, e.data) for e in got] == [(i, b"new") for i in range(5, 15)]


def test_a_consumer_past_the_end_is_set_back_on_disk_by_an_observer_taking_it(
        tmp_path: Path, backend: str) -> None:
    """An observer may take the consumer before any writer opens (the writer then leaves a
    consumer another process owns alone): it sets it back itself, before the writer's
    reclamation can read the file."""
    image = consumer_past_the_end(tmp_path, backend)
    with Walrus(data_dir=image, backend=backend, read_only=True) as observer:
        assert observer.read_next(TOPIC, consumer=NAME) is None
        assert stored_position(image) == 5
        with Walrus(data_dir=image, backend=backend) as writer:
            assert stored_position(image) == 5
            writer.batch_append_for_topic(TOPIC, [b"new"] * 10)
        entry = observer.read_next(TOPIC, consumer=NAME)
        assert entry is not None and (entry.offset, entry.data) == (5, b"new")


def test_a_writer_opens_while_another_process_holds_the_consumer_registry(
        tmp_path: Path, backend: str) -> None:
    """Setting back the consumers past the end needs no registry lock: a writer's open must
    not wait for a process that holds it (registering a consumer, or stopped)."""
    import fcntl

    image = consumer_past_the_end(tmp_path, backend)
    opened: list[int | None] = []

    def open_writer() -> None:
        with Walrus(data_dir=image, backend=backend) as wal:
            opened.append(wal.consumers(TOPIC).get(NAME))

    opener = threading.Thread(target=open_writer)
    held = os.open(image / DIRECTORY, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a process registering a consumer holds it
        opener.start()
        opener.join(60)  # a bound on blocking for good, not a measure of speed
        assert not opener.is_alive(), "the writer's open waits for the registry lock"
        assert opened == [5] and stored_position(image) == 5
    finally:
        os.close(held)
        if opener.is_alive():
            opener.join()
