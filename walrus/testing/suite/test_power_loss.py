"""Simulated power loss, through a fault-injecting wrapper of the backend under test.

The wrapper sends every write and sync on to the backend and remembers which writes no sync
has covered yet. The power is cut at a random disk operation (inside an append, a segment
roll, the flusher or the indexer); the image a disk may hold afterwards (undurable writes
dropped, kept, torn or reordered per sector) is then recovered through the backend, and held
against what was acknowledged as durable: every append under ``SyncEach``, and under the other
schedules what a ``flush()`` that returned covered.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from walrus import FsyncSchedule, Schedule, Walrus

from .._faults import POLICIES, Machine, powered
from ._checks import SEGMENT, broke, entries, payload

SCHEDULES: dict[str, Schedule] = {
    "SyncEach": FsyncSchedule.SyncEach, "Milliseconds(3)": FsyncSchedule.Milliseconds(3),
    "NoFsync": FsyncSchedule.NoFsync}
TOPICS = ("a", "b")


class Ledger:
    """One topic's acknowledged appends."""

    def __init__(self) -> None:
        self.ends: list[int] = []
        """Entries written after each acknowledged append: where a recovered topic may end."""
        self.written = 0
        self.inflight = 0
        self.flushed = 0
        """Entries written before the last ``flush()`` that returned: durable under every
        schedule. (A background sync makes durable what its pass took in, which an observer
        of the disk cannot tell apart from writes it missed, so only flush() counts.)"""


def drive(wal: Walrus, m: Machine, rng: random.Random, ledgers: dict[str, Ledger],
          cut: tuple[int, int]) -> None:
    """Random appends, batches, flushes and pauses until the power goes at ``cut``."""
    for index in range(40):
        if index == cut[0]:
            m.cut_at = m.clock + cut[1]
        kind = rng.choice(("append", "append", "append", "batch", "batch", "flush", "sleep"))
        topic = rng.choice(TOPICS)
        led = ledgers[topic]
        try:
            if kind == "flush":
                wal.flush()
                for each in ledgers.values():
                    each.flushed = each.written
            elif kind == "sleep":
                time.sleep(rng.randint(0, 4) / 1000)
            else:
                n = 1 if kind == "append" else rng.randint(2, 20)
                data = [payload(topic, led.written + k) for k in range(n)]
                led.inflight = n
                if n == 1:
                    wal.append_for_topic(topic, data[0])
                else:
                    wal.batch_append_for_topic(topic, data)
                led.inflight = 0
                led.written += n
                led.ends.append(led.written)
        except OSError:
            if m.dead:
                return  # the power went during this call: it was never acknowledged
            raise


@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_a_power_cut_keeps_every_durable_entry(tmp_path: Path, fault_backend: str,
                                               walrus_backend: str, schedule: str,
                                               pytestconfig: pytest.Config) -> None:
    for n in range(pytestconfig.getoption("walrus_power_cuts")):
        rng = random.Random(f"{schedule}-{n}")
        policy = POLICIES[n % len(POLICIES)]
        live, image = tmp_path / f"live{n}", tmp_path / f"image{n}"
        live.mkdir()
        ledgers = {topic: Ledger() for topic in TOPICS}
        cut = (rng.randint(0, 40), rng.randint(1, 16))
        with powered() as m:
            m.watch(live)
            wal = None
            try:
                wal = Walrus(data_dir=live, backend=fault_backend, segment_size=SEGMENT,
                             fsync_schedule=SCHEDULES[schedule])
                drive(wal, m, rng, ledgers, cut)
            except OSError:
                if not m.dead:
                    raise
            m.cut()
            m.image(live, image, rng, policy)
            if wal is not None:
                try:
                    wal.close()
                except OSError:
                    pass  # it cannot flush without power
        what = (f"after a simulated power cut under {schedule} (disk image: {policy!r}, cut at "
                f"disk operation {cut[1]} of call {cut[0]})")
        with Walrus(data_dir=image, backend=walrus_backend, segment_size=SEGMENT) as after:
            for topic, led in ledgers.items():
                check(after, topic, led, schedule == "SyncEach", what)


def check(wal: Walrus, topic: str, led: Ledger, sync_each: bool, what: str) -> None:
    got = entries(wal, topic)  # a damaged entry fails: a power cut is not corruption
    required = led.written if sync_each else led.flushed
    if len(got) < required:
        broke(f"{what}, topic {topic!r} recovered {len(got)} entries, but {required} had been "
              f"made durable: the backend's write() or sync() did not put the bytes on disk "
              f"before they were acknowledged")
    whole = {0, *led.ends, led.written + led.inflight}
    if len(got) not in whole:
        broke(f"{what}, topic {topic!r} recovered {len(got)} entries: part of a batch (a "
              f"batch is all or nothing)")
    for seq, data in enumerate(got):
        if data != payload(topic, seq):
            broke(f"{what}, entry {seq} of topic {topic!r} came back with other bytes")
