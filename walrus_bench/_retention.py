"""``walrus bench retention``: what retention costs appends and reads, and whether the disk
bound holds at full append speed.

What it measures, and why so, is :data:`DESCRIPTION` (the command's help).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from typing import Any

from walrus import FsyncSchedule, Walrus
from walrus._segment import size_for
from walrus._settings_parse import parse_duration, parse_size, size_label

DESCRIPTION = """\
What does retention cost, and does the disk stay bounded? In one process, one thread, one
topic of 512-byte entries that nobody consumes (Milliseconds(1000), the default schedule):

1. appends for --duration seconds with no retention, then with --max-bytes, alternating
   round by round on fresh directories (so drifts hit both alike), in entries per second;
   meanwhile a sampler thread measures the data directory a hundred times a second, and
   the largest size and number of segment files seen are reported beside the bound the
   documentation gives (the limit in segments, rounded up, plus four segment files, each
   with its index file);
2. read_next draining 100,000 entries with no retention and with a limit larger than the
   topic (nothing expires while reading: what is measured is the read path itself).

Each cell is the median of the rounds. --bound-only runs one append run with the limit
for --duration (e.g. 60s at full speed) and reports the disk bound alone.

A run shorter than the page cache takes to fill (the time to write a fifth of the
memory at the append rate) compares the page cache with the disk: without retention nothing
waits for the disk yet, with it expired segments are synced and deleted as the writer goes.
--duration 60s gives the rates a producer sees in the long run.
"""

PAYLOAD = b"x" * 512


def add_retention(sub: Any) -> None:
    p = sub.add_parser("retention", help="appends and reads with retention on and off, and "
                       "the disk bound", description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=parse_duration, default=10.0,
                   help="append time per round and side, <n>s, <n>m or seconds "
                        "(default %(default)s)")
    p.add_argument("--max-bytes", type=parse_size, default=64 << 20,
                   help="the limit, e.g. 64MiB (default 64MiB)")
    p.add_argument("--segment-size", type=parse_size, default=8 << 20,
                   help="segment size, e.g. 8MiB (default 8MiB)")
    p.add_argument("--reads", type=int, default=100_000,
                   help="entries drained by the read measurement (default %(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="rounds (default %(default)s)")
    p.add_argument("--dir", default=None, help="where to write (default: a temporary folder)")
    p.add_argument("--bound-only", action="store_true",
                   help="only the disk bound: one run of --duration with the limit")
    p.set_defaults(func=_main)


INDEX_ALLOWANCE = 4096
"""Bytes allowed per segment for its index file (a few hundred with one topic) and for the
directory's small state files."""


def dir_usage(path: str) -> tuple[int, int]:
    """The directory's bytes, and its number of segment files."""
    total = segments = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:  # deleted meanwhile
                continue
            segments += name.endswith(".wal")
    return total, segments


def bound(limit: int, segment: int) -> tuple[int, int]:
    """The documented disk bound of one topic with ``max_bytes=limit``: segment files, and
    bytes (each file with its index file)."""
    files = -(-limit // segment) + 4
    return files, files * (size_for(segment) + INDEX_ALLOWANCE)


def _open(path: str, segment: int) -> Walrus:
    return Walrus(path, segment_size=segment, fsync_schedule=FsyncSchedule.Milliseconds(1000))


def append_rate(path: str, duration: float, segment: int,
                limit: int | None) -> tuple[float, tuple[int, int]]:
    """Entries per second appended for ``duration``, and the largest directory size and
    number of segment files seen."""
    peak = [(0, 0)]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            size, files = dir_usage(path)
            peak[0] = max(peak[0][0], size), max(peak[0][1], files)

    with _open(path, segment) as wal:
        wal.append_for_topic("t", PAYLOAD)
        if limit is not None:
            wal.set_retention("t", max_bytes=limit)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        append = wal.append_for_topic
        n = 0
        start = time.perf_counter()
        end = start + duration
        while True:
            for _ in range(1000):
                append("t", PAYLOAD)
            n += 1000
            if time.perf_counter() >= end:
                break
        elapsed = time.perf_counter() - start
        done.set()
        sampler.join()
        size, files = dir_usage(path)
    return n / elapsed, (max(peak[0][0], size), max(peak[0][1], files))


def read_rate(path: str, entries: int, segment: int, limit: int | None) -> float:
    with _open(path, segment) as wal:
        for at in range(0, entries, 2000):
            wal.batch_append_for_topic("t", [PAYLOAD] * min(2000, entries - at))
        if limit is not None:
            wal.set_retention("t", max_bytes=limit)
        read = wal.read_next
        start = time.perf_counter()
        n = 0
        while read("t") is not None:
            n += 1
        return n / (time.perf_counter() - start)


def measure(base: str, args: argparse.Namespace) -> dict[str, Any]:
    limit, segment = args.max_bytes, args.segment_size
    appends: tuple[list[float], list[float]] = ([], [])
    reads: tuple[list[float], list[float]] = ([], [])
    peak = (0, 0)
    big = args.reads * 1024 + (1 << 30)  # more than the topic: nothing expires
    for r in range(args.rounds):
        for side, lim in ((0, None), (1, limit)):
            rate, (size, files) = append_rate(os.path.join(base, f"a{r}-{side}"),
                                              args.duration, segment, lim)
            appends[side].append(rate)
            if side:
                peak = max(peak[0], size), max(peak[1], files)
        for side, lim in ((0, None), (1, big)):
            reads[side].append(read_rate(os.path.join(base, f"r{r}-{side}"), args.reads,
                                         segment, lim))
    return {"appends": tuple(map(statistics.median, appends)),
            "reads": tuple(map(statistics.median, reads)),
            "peak": peak, "bound": bound(limit, segment)}


def report_bound(args: argparse.Namespace, peak: tuple[int, int]) -> bool:
    """Print the largest directory beside the bound; True if it held."""
    files, size = bound(args.max_bytes, args.segment_size)
    held = peak[0] <= size and peak[1] <= files
    print(f"largest data directory with --max-bytes {size_label(args.max_bytes)}: "
          f"{peak[0]:,} bytes, {peak[1]} segment files (bound: {size:,} bytes, {files} "
          f"segment files, {'held' if held else 'EXCEEDED'})")
    return held


def _main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(dir=args.dir) as base:
        if args.bound_only:
            rate, peak = append_rate(os.path.join(base, "a"), args.duration,
                                     args.segment_size, args.max_bytes)
            print(f"appends with --max-bytes {size_label(args.max_bytes)} for "
                  f"{args.duration:g} s: {rate:,.0f} entries/s "
                  f"({rate * (len(PAYLOAD) + 32) / 1e6:,.0f} MB/s)")
            return 0 if report_bound(args, peak) else 1
        got = measure(base, args)
    print(f"{'workload':34} {'no retention':>14} {'retention':>14} {'ratio':>7}")
    for what, key in (("appends (entries/s)", "appends"), ("read_next (entries/s)", "reads")):
        off, on = got[key]
        print(f"{what:34} {off:>14,.0f} {on:>14,.0f} {on / off:>7.2f}")
    return 0 if report_bound(args, got["peak"]) else 1
