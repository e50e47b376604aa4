"""``walrus bench consumers``: do named consumers read as fast as the shared cursor?

What it measures, and why so, is :data:`DESCRIPTION` (the command's help).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from walrus import FsyncSchedule, ReadConsistency, Walrus

DESCRIPTION = """\
Do named consumers read as fast as the shared cursor? In one process, on one topic of
100-byte entries (Milliseconds(1000), the default schedule):

1. read_next until the topic is drained, at the shared cursor and at a named consumer,
   under StrictlyAtOnce and AtLeastOnce(1000);
2. batch reads of 64 KiB, at the shared cursor and at a named consumer;
3. 64 named consumers draining the topic one after the other, against one alone (the
   rate of each, as a ratio of one consumer's).

Shared and named runs alternate round by round on fresh copies of the same log, so drifts
hit both alike; each cell is the median of the rounds, in entries per second.
"""

Drain = Callable[[Walrus, str | None], int]


def add_consumers(sub: Any) -> None:
    p = sub.add_parser("consumers", help="named consumers against the shared cursor",
                       description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--entries", type=int, default=200_000,
                   help="entries in the topic (default %(default)s)")
    p.add_argument("--rounds", type=int, default=5, help="rounds (default %(default)s)")
    p.add_argument("--dir", default=None, help="where to write (default: a temporary folder)")
    p.set_defaults(func=_main)


def _fill(path: str, entries: int) -> None:
    with Walrus(path) as wal:
        payload = b"x" * 100
        for start in range(0, entries, 2000):
            wal.batch_append_for_topic("t", [payload] * min(2000, entries - start))


def _read_next(wal: Walrus, consumer: str | None) -> int:
    n = 0
    read = wal.read_next
    while read("t", consumer=consumer) is not None:
        n += 1
    return n


def _batches(wal: Walrus, consumer: str | None) -> int:
    n = 0
    while batch := wal.batch_read_for_topic("t", 64 << 10, consumer=consumer):
        n += len(batch)
    return n


def _rate(path: str, consistency: Any, drain: Drain, consumers: list[str | None]) -> float:
    """Entries per second of each consumer (the median), draining one after the other."""
    rates = []
    with Walrus(path, consistency=consistency,
                fsync_schedule=FsyncSchedule.Milliseconds(1000)) as wal:
        for consumer in consumers:
            if consumer is not None:  # created outside the timing, as a worker does once
                wal.read_next("t", checkpoint=False, consumer=consumer)
            start = time.perf_counter()
            n = drain(wal, consumer)
            rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


def measure(base: str, entries: int, rounds: int) -> list[tuple[str, float, float]]:
    """(what, shared or one consumer's rate, named or 64 consumers' rate), medians."""
    strict = ReadConsistency.StrictlyAtOnce
    alo = ReadConsistency.AtLeastOnce(persist_every=1000)
    # (what, consistency, how to drain, left consumers, right consumers, entries each side:
    # batch reads are some ten times faster, so they get more to stay measurable; the 64
    # consumers read an eighth each, to keep the run short)
    cases: list[tuple[str, Any, Drain, list[str | None], list[str | None], tuple[int, int]]] = [
        ("read_next, StrictlyAtOnce", strict, _read_next, [None], ["named"],
         (entries, entries)),
        ("read_next, AtLeastOnce(1000)", alo, _read_next, [None], ["named"],
         (entries, entries)),
        ("batch reads of 64 KiB, StrictlyAtOnce", strict, _batches, [None], ["named"],
         (entries * 8, entries * 8)),
        ("64 consumers against one (read_next)", strict, _read_next, ["one"],
         [f"c{i}" for i in range(64)], (entries, entries // 8)),
    ]
    rows: list[tuple[str, float, float]] = []
    for what, consistency, drain, left, right, sizes in cases:
        got: tuple[list[float], list[float]] = ([], [])
        for r in range(rounds):
            for side, consumers in ((0, left), (1, right)):
                path = os.path.join(base, f"r{r}-{side}-{len(rows)}")
                _fill(path, sizes[side])
                got[side].append(_rate(path, consistency, drain, consumers))
        rows.append((what, statistics.median(got[0]), statistics.median(got[1])))
    return rows


def _main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(dir=args.dir) as base:
        rows = measure(base, args.entries, args.rounds)
    print(f"{'workload':40} {'shared / one':>14} {'named / each':>14} {'ratio':>7}")
    for what, left, right in rows:
        ratio = right / left  # two decimals, or two digits below 0.01: never a false 0.00
        shown = f"{ratio:.2f}" if ratio >= 0.01 else f"{ratio:.2g}"
        print(f"{what:40} {left:>14,.0f} {right:>14,.0f} {shown:>7}")
    return 0
