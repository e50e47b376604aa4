"""Process crashes: SIGKILL a producer/consumer at random points, then hold recovery to SPEC 2.

Each test runs rounds on one directory: a child (tests/_crash_child.py) opens the log and
appends and reads at random, journaling every call; the parent kills it at a random moment
(during its recovery in some rounds), reopens the log and checks that no acknowledged entry
was lost, nothing unacknowledged but the call in flight appeared (whole or not at all), every
entry is exactly what was written, and the cursor obeys the consistency mode.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from walrus import Walrus

from ._crash_child import SCHEDULES, SEGMENT, consistency
from ._forks import Zygote
from ._workload import FIGURES, TOPICS, Ledger, check_content, recovered

ROUNDS = int(6 * float(os.environ.get("RELIABILITY_SCALE", "1")))
MODES = ["strict", "alo=4"]


class Journal:
    """What one child's journal says happened, per topic."""

    def __init__(self, start: dict[str, tuple[int, int]]) -> None:
        self.ledgers = {t: Ledger(written=w, delivered=c, persisted=c)
                        for t, (w, c) in start.items()}
        self.last_read = dict.fromkeys(start, 0)
        self.opened = self.recovered = False
        self.in_call = False

    def replay(self, text: str, persist_every: int | None) -> None:
        pending: list[str] | None = None
        for tick, line in enumerate(text.splitlines()):
            fields = line.split()
            if fields == ["O"]:
                self.opened = True
            elif fields == ["P"]:
                self.recovered = True
            elif fields[0] == "X":
                raise AssertionError(f"the child read a wrong entry: {line}")
            elif fields[0] == "B":
                pending = fields
            else:
                assert fields[0] == "A" and pending is not None and fields[1:3] == pending[1:3]
                kind, topic, n = fields[1], TOPICS[int(fields[2])], int(fields[3])
                led = self.ledgers[topic]
                if kind == "append":
                    led.appended(n, tick)
                elif kind == "read":
                    if n:
                        led.read(led.delivered, n, tick, persist_every)
                    self.last_read[topic] = n
                else:
                    for each in self.ledgers.values():
                        each.flushed(tick)
                pending = None
        if pending is not None:  # the call the kill interrupted
            self.in_call = True
            kind, topic = pending[1], TOPICS[int(pending[2])]
            if kind == "append":
                self.ledgers[topic].inflight = int(pending[3])
            elif kind == "read":
                self.ledgers[topic].reading = True


def kill_child(zygote: Zygote, args: list[str], journal: Path, log: Path,
               rng: random.Random) -> None:
    """Start the child and SIGKILL it at a random moment (sometimes while it recovers)."""
    during_recovery = rng.random() < 0.25
    marker = b"O\n" if during_recovery else b"P\n"
    delay = rng.uniform(0, 0.004) if during_recovery else rng.uniform(0, 0.25)
    child = zygote.start("tests._crash_child", *args, out=log)
    try:
        deadline = time.monotonic() + 60
        while marker not in (journal.read_bytes() if journal.exists() else b""):
            assert child.poll() is None, f"child died on its own:\n{log.read_text()}"
            assert time.monotonic() < deadline, "child never got going"
            time.sleep(0.001)
        time.sleep(delay)
        assert child.poll() is None, f"child died on its own:\n{log.read_text()}"
    finally:
        child.kill()
        child.wait()


def check_round(wal: Walrus, journal: Journal,
                persist_every: int | None) -> dict[str, tuple[int, int]]:
    """SPEC 2 after a process crash; returns each topic's (next offset, cursor)."""
    state = {}
    for topic, led in journal.ledgers.items():
        got = recovered(wal, topic)
        check_content(topic, got)
        assert not got.damaged, f"{topic!r}: damaged after a process crash: {got.damaged}"
        count = got.count
        assert set(got.entries) == set(range(got.first, count)) and got.end == count
        # No acknowledged entry lost; the interrupted append is all there or not at all.
        assert count in (led.written, led.written + led.inflight), \
            f"{topic!r}: {count} entries, acknowledged {led.written} (+{led.inflight} in flight)"
        cursor = got.cursor
        if persist_every is None:  # StrictlyAtOnce: never re-deliver
            assert cursor == led.delivered or (led.reading and led.delivered <= cursor <= count), \
                f"{topic!r}: cursor {cursor}, delivered {led.delivered}"
        else:  # AtLeastOnce(N): never skip; replay at most N plus the last call's entries
            assert led.persisted <= cursor <= led.delivered, \
                f"{topic!r}: cursor {cursor} outside [{led.persisted}, {led.delivered}]"
            replay = led.delivered - cursor
            assert replay <= persist_every + journal.last_read[topic]
            FIGURES["entries replayed after a kill (AtLeastOnce)"] += replay
        FIGURES["entries checked after a kill"] += count - got.first
        state[topic] = (count, cursor)
    return state


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_sigkill_at_random_points_loses_nothing_acknowledged(
        tmp_path: Path, backend: str, schedule: str, mode: str, zygote: Zygote) -> None:
    rng = random.Random(f"{backend}-{schedule}-{mode}")
    path = tmp_path / "w"
    persist_every = None if mode == "strict" else int(mode.split("=")[1])
    state = {t: (0, 0) for t in TOPICS}
    for round_ in range(ROUNDS):
        journal_path = tmp_path / f"journal-{round_}"
        args = [str(path), backend, schedule, mode, str(rng.randrange(1 << 30)),
                str(journal_path),
                ",".join(f"{i}:{w}:{c}" for i, (w, c) in enumerate(state.values()))]
        kill_child(zygote, args, journal_path, tmp_path / "child.log", rng)
        journal = Journal(state)
        journal.replay(journal_path.read_text(), persist_every)
        FIGURES["process kills"] += 1
        FIGURES["process kills during recovery"] += journal.opened and not journal.recovered
        FIGURES["process kills inside a call"] += journal.in_call
        with Walrus(data_dir=path, backend=backend, segment_size=SEGMENT,
                    consistency=consistency(mode)) as wal:
            state = check_round(wal, journal, persist_every)
