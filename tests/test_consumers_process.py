"""Named consumers in other processes (SPEC section 7), with real processes: observers that
consume beside a live writer, one owner per consumer, registration racing reclamation, and
SIGKILL of consumers, of the writer, and of both, under each consistency mode."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from walrus import Walrus, WalrusLockedError
from walrus._consumers import DIRECTORY, decode_header

from ._crash_child import SCHEDULES
from ._forks import Forked, Zygote
from .test_consumers import as_version_1

ROUNDS = int(5 * float(os.environ.get("RELIABILITY_SCALE", "1")))
MODES = {"strict": None, "alo=4": 4}


def spawn(zygote: Zygote, *args: str) -> Forked:
    return zygote.start("tests._consumer_child", *args)


def lines(journal: Path) -> list[list[str]]:
    if not journal.exists():
        return []
    return [line.split() for line in journal.read_text().splitlines()]


def wait_for_line(journal: Path, first: str, count: int = 1, timeout: float = 60) -> None:
    """Wait until the journal holds ``count`` lines starting with ``first`` (a child's
    progress, not a timing assumption: the test fails only if it never comes)."""
    deadline = time.monotonic() + timeout
    while sum(1 for f in lines(journal) if f and f[0] == first) < count:
        assert time.monotonic() < deadline, f"{journal} never got {count} {first!r} lines"
        time.sleep(0.01)


def kill(proc: Forked) -> None:
    proc.kill()
    proc.wait()


def finish(proc: Forked) -> None:
    proc.wait(timeout=120)
    assert proc.returncode == 0, proc.stderr_text()


def delivered(journal: Path) -> tuple[list[list[int]], list[int]]:
    """(offsets of each acknowledged call, in order; offsets of the call in flight)."""
    calls: list[list[int]] = []
    inflight: list[int] = []
    for f in lines(journal):
        if f[0] == "B":
            inflight = []
        elif f[0] == "A":
            calls.append([int(x) for x in f[1:]])
    return calls, inflight


def check_rounds(rounds: list[list[list[int]]], persist_every: int | None, total: int) -> None:
    """Each round's acknowledged calls, in order, across SIGKILLs of the consumer."""
    seen: list[int] = []
    last_call = 0  # entries of the last acknowledged call that returned any
    for k, calls in enumerate(rounds):
        offsets = [o for call in calls for o in call]
        if offsets:  # within a process's life: every entry once, in order, no gap
            assert offsets == list(range(offsets[0], offsets[-1] + 1)), (k, offsets)
        if not offsets:
            continue
        if seen:
            last = seen[-1]
            if persist_every is None:
                # at most once: never an entry again; the call cut by the kill may be lost
                assert offsets[0] > last, (k, offsets[0], last)
            else:
                # at least once: never a skip; replay of at most N plus the last call's
                assert offsets[0] <= last + 1, (k, offsets[0], last)
                assert last + 1 - offsets[0] <= persist_every + last_call, (k, offsets[0], last)
        elif persist_every is not None:
            assert offsets[0] == 0
        seen += offsets
        last_call = next(len(c) for c in reversed(calls) if c)
    if persist_every is not None:
        assert sorted(set(seen)) == list(range(len(set(seen))))
    assert max(seen, default=-1) < total


def test_an_observer_consumes_beside_a_live_writer(tmp_path: Path, zygote: Zygote) -> None:
    path = tmp_path / "w"
    with Walrus(path) as wal:
        wal.append_for_topic("t", b"first")
        journal = tmp_path / "c.log"
        child = spawn(zygote, "consumer", str(path), "ms5", "strict", "1", str(journal), "worker")
        try:
            wait_for_line(journal, "D")  # it read the first entry and found no more
            for i in range(200):
                wal.append_for_topic("t", b"%d" % i)
            deadline = time.monotonic() + 60
            while max((o for c in delivered(journal)[0] for o in c), default=-1) < 200:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            # a second live owner is refused, naming the first
            obs = Walrus(path, read_only=True)
            with pytest.raises(WalrusLockedError) as info:
                obs.read_next("t", consumer="worker")
            assert info.value.pid == child.pid
            assert str(child.pid) in str(info.value)
            with pytest.raises(WalrusLockedError):
                wal.read_next("t", consumer="worker")
            kill(child)
            # a dead owner's lock is free at once
            assert obs.read_next("t", consumer="worker") is None
            assert obs.consumers("t") == {"worker": 201}
            obs.close()
        finally:
            if child.poll() is None:
                kill(child)
        assert wal.read_next("t", consumer="worker") is None
        assert wal.get_topic_entry_count("t", consumer="worker") == 0
        assert wal.get_topic_entry_count("t") == 201


def test_registration_never_lands_in_a_reclaimed_segment(tmp_path: Path, zygote: Zygote) -> None:
    """The race: a writer deletes consumed segments as fast as it can while observers in
    other processes register consumers. Each must start at an entry that is still stored
    (the first it reads is where it was placed), and read on from there without a gap."""
    path = tmp_path / "w"
    wjournal = tmp_path / "writer.log"
    writer = spawn(zygote, "writer", str(path), "no_fsync", "churn", "1", str(wjournal))
    registrars = []
    try:
        wait_for_line(wjournal, "A", 50)
        for k in range(3):
            journal = tmp_path / f"r{k}.log"
            registrars.append((journal, spawn(zygote, "register", str(path), "no_fsync",
                                              "strict", "40", str(journal), f"r{k}")))
        for _, proc in registrars:
            finish(proc)
    finally:
        kill(writer)
        for _, proc in registrars:
            if proc.poll() is None:
                kill(proc)
    placed = 0
    for journal, _ in registrars:
        for f in lines(journal):
            assert f[0] != "E", " ".join(f)
            if f[0] == "R":
                placed += 1
                start = int(f[2])
            elif f[0] == "G":
                first, last, count, peeked = map(int, f[2:])
                assert first == start == peeked, f  # no entry before it was deleted under it
                assert last - first + 1 == count, f  # and none after it is missing
    assert placed == 120
    with Walrus(path) as wal:  # reclamation went on: the registrars deleted their consumers
        assert wal.consumers("t") == {}


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_consumer_killed_at_random_points(tmp_path: Path, mode: str, schedule: str,
                                         zygote: Zygote) -> None:
    path = tmp_path / "w"
    total = 3000
    with Walrus(path, segment_size=8192) as wal:
        for i in range(0, total, 100):
            wal.batch_append_for_topic("t", [b"%d" % j for j in range(i, i + 100)])
    rng = random.Random(f"{mode}/{schedule}")
    rounds = []
    with Walrus(path, segment_size=8192) as wal:  # a live writer beside the consumers
        for r in range(ROUNDS):
            journal = tmp_path / f"c{r}.log"
            child = spawn(zygote, "consumer", str(path), schedule, mode, str(r), str(journal), "w")
            wait_for_line(journal, "O")
            time.sleep(rng.uniform(0.0, 0.15))
            kill(child)
            rounds.append(delivered(journal)[0])
        wal.append_for_topic("t", b"more")
    check_rounds(rounds, MODES[mode], total)
    with Walrus(path, read_only=True) as obs:
        n = obs.consumers("t")["w"]
        seen = [o for calls in rounds for c in calls for o in c]
        if seen:
            if MODES[mode] is None:
                assert n >= seen[-1] + 1
            else:
                assert seen[-1] + 1 - MODES[mode] - max(map(len, rounds[-1]), default=0) <= n
                assert n <= seen[-1] + 1


@pytest.mark.parametrize("mode", sorted(MODES))
def test_writer_and_consumers_killed(tmp_path: Path, mode: str, zygote: Zygote) -> None:
    """The writer is killed while two observers consume; then the writer and both consumers
    together. Every acknowledged append reaches each consumer: exactly once under
    StrictlyAtOnce (bar the call a kill cut), at least once under AtLeastOnce."""
    path = tmp_path / "w"
    rng = random.Random(mode)
    rounds: dict[str, list[list[list[int]]]] = {"a": [], "b": []}
    appended: list[int] = []
    for r in range(ROUNDS):
        wj = tmp_path / f"w{r}.log"
        writer = spawn(zygote, "writer", str(path), "ms5", mode, str(r), str(wj))
        wait_for_line(wj, "A", 20)
        consumers = {}
        for name in rounds:
            cj = tmp_path / f"{name}{r}.log"
            consumers[name] = (cj, spawn(zygote, "consumer", str(path), "ms5", mode, str(r),
                                         str(cj), name))
        for cj, _ in consumers.values():
            wait_for_line(cj, "O")
        time.sleep(rng.uniform(0.0, 0.1))
        kill(writer)
        if r % 2:  # consumers go on after the writer died, then are killed too
            time.sleep(rng.uniform(0.0, 0.1))
        for name, (cj, proc) in consumers.items():
            kill(proc)
            rounds[name].append(delivered(cj)[0])
        acked = [int(f[1]) for f in lines(wj) if f[0] == "A"]
        # a killed writer's acknowledged appends survive it: never handed out again
        assert not set(acked) & set(appended), (r, sorted(set(acked) & set(appended))[:10])
        appended += acked
    # one last clean pass: a writer that appends nothing more, consumers that drain
    with Walrus(path) as wal:
        total = wal.topic_info("t").next_offset
    assert total >= len(appended)
    for name in rounds:
        cj = tmp_path / f"{name}-last.log"
        proc = spawn(zygote, "consumer", str(path), "ms5", mode, "99", str(cj), name)
        wait_for_line(cj, "D")
        kill(proc)
        rounds[name].append(delivered(cj)[0])
        check_rounds(rounds[name], MODES[mode], total)
        seen = {o for calls in rounds[name] for c in calls for o in c}
        # every acknowledged append was delivered, bar the calls a kill cut (at most once)
        missing = set(appended) - seen
        if MODES[mode] is not None:
            assert not missing, sorted(missing)[:10]


def test_processes_racing_for_a_version_1_consumer(tmp_path: Path, zygote: Zygote) -> None:
    """Three observers, started together, ask for a consumer whose file is of the two-slot
    format: the first owns it and writes the file anew (renamed over the old one); the others
    are refused while it lives, by the old file's lock or the new one's (one that comes after
    it was killed finds nothing left). The entries go out once each, from the position the
    old file held."""
    path = tmp_path / "w"
    with Walrus(path) as wal:
        wal.batch_append_for_topic("t", [b"%d" % i for i in range(300)])
        assert [wal.read_next("t", consumer="c").offset for _ in range(5)] == list(range(5))
    (file,) = (path / DIRECTORY).glob("*.cur")
    as_version_1(file, 5)
    racers = [(tmp_path / f"r{k}.log", spawn(zygote, "consumer", str(path), "ms5", "strict",
                                             str(k), str(tmp_path / f"r{k}.log"), "c"))
              for k in range(3)]

    def read() -> dict[Path, list[int]]:
        return {journal: [o for call in delivered(journal)[0] for o in call]
                for journal, _ in racers}

    deadline = time.monotonic() + 60
    while max(max(got, default=-1) for got in read().values()) < 299:
        assert time.monotonic() < deadline, read()
        time.sleep(0.01)
    for _, proc in racers:
        kill(proc)
    got = {journal: offsets for journal, offsets in read().items() if offsets}
    assert len(got) == 1, got  # one owner: the others' first read was refused
    assert next(iter(got.values())) == list(range(5, 300))
    assert decode_header(file.read_bytes())[3] == 2
    assert not list((path / DIRECTORY).glob("*.tmp"))
    with Walrus(path, read_only=True) as obs:
        assert obs.consumers("t") == {"c": 300}
