"""``walrus bench backends``: the same workloads on every available backend, in one run.

    walrus bench backends [--rounds 3] [--quick] [--dir PATH] [--backends a,b]

What it prints is :data:`DESCRIPTION` (the command's help). :func:`measure` and
:func:`format_table` are what a bench tool can call.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from walrus import FsyncSchedule, ReadConsistency, Walrus, available_backends, backend_spec

from ._compare_report import rate_text

PAYLOAD = b"x" * 100
BATCH = [PAYLOAD] * 2000
BASELINE = "pwrite"


@attrs.frozen
class Scale:
    batches_nofsync: int = 100
    batches_synceach: int = 25
    appends_per_thread: int = 250
    flushes: int = 40
    read_entries: int = 200_000
    file_syncs: int = 20


QUICK = Scale(20, 5, 40, 8, 40_000, 5)


@attrs.define
class Row:
    workload: str
    unit: str
    rates: dict[str, list[float]] = attrs.field(factory=dict)

    def median(self, backend: str) -> float | None:
        values = self.rates.get(backend)
        return statistics.median(values) if values else None


Workload = Callable[[str, Path, Scale], float]


def _open(backend: str, path: Path, schedule: Any,
          consistency: Any = ReadConsistency.StrictlyAtOnce) -> Walrus:
    return Walrus(data_dir=path, backend=backend, fsync_schedule=schedule,
                  consistency=consistency)


def batch_append(schedule: Any, count: Callable[[Scale], int]) -> Workload:
    """2000 x 100 B batches into one topic; entries per second."""

    def run(backend: str, path: Path, scale: Scale) -> float:
        n = count(scale)
        with _open(backend, path, schedule) as wal:
            wal.batch_append_for_topic("t", BATCH)  # creates the topic outside the timing
            start = time.perf_counter()
            for _ in range(n):
                wal.batch_append_for_topic("t", BATCH)
            return n * len(BATCH) / (time.perf_counter() - start)

    return run


def threaded_sync_each(backend: str, path: Path, scale: Scale) -> float:
    """4 threads, one topic each, single 100 B appends under SyncEach; appends per second."""
    with _open(backend, path, FsyncSchedule.SyncEach) as wal:
        for i in range(4):
            wal.append_for_topic(f"t{i}", PAYLOAD)
        go = threading.Barrier(5)

        def worker(topic: str) -> None:
            go.wait()
            for _ in range(scale.appends_per_thread):
                wal.append_for_topic(topic, PAYLOAD)

        threads = [threading.Thread(target=worker, args=(f"t{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        go.wait()
        start = time.perf_counter()
        for t in threads:
            t.join()
        return 4 * scale.appends_per_thread / (time.perf_counter() - start)


def flush_dirty_topics(backend: str, path: Path, scale: Scale) -> float:
    """One 100 B append to each of 100 topics, then ``flush()``; flushes per second."""
    with _open(backend, path, FsyncSchedule.Milliseconds(3_600_000)) as wal:
        topics = [f"topic-{i}" for i in range(100)]
        for topic in topics:
            wal.append_for_topic(topic, PAYLOAD)
        wal.flush()
        spent = 0.0
        for _ in range(scale.flushes):
            for topic in topics:
                wal.append_for_topic(topic, PAYLOAD)
            start = time.perf_counter()
            wal.flush()
            spent += time.perf_counter() - start
        return scale.flushes / spent


def batch_read(backend: str, path: Path, scale: Scale) -> float:
    """``batch_read_for_topic`` (1 MiB cap) through a reopened log; entries per second."""
    with _open(backend, path, FsyncSchedule.NoFsync) as wal:
        for _ in range(scale.read_entries // len(BATCH)):
            wal.batch_append_for_topic("t", BATCH)
    with _open(backend, path, FsyncSchedule.NoFsync, ReadConsistency.AtLeastOnce(1 << 30)) as wal:
        start = time.perf_counter()
        got = 0
        while batch := wal.batch_read_for_topic("t", 1 << 20):
            got += len(batch)
        spent = time.perf_counter() - start
    if got != scale.read_entries // len(BATCH) * len(BATCH):
        raise AssertionError(f"{backend}: read {got} entries")
    return got / spent


def sync_100_files(backend: str, path: Path, scale: Scale) -> float:
    """The contract alone: ``Backend.sync_files`` over 100 files, each with a fresh 100 B write.

    The engine keeps every topic in one log, so its passes sync one or two files; this row
    shows what overlapping syncs are worth to a layout with many files.
    """
    impl = backend_spec(backend).factory()
    path.mkdir()
    files = [impl.open(str(path / f"{i}.dat"), size=1 << 20, create=True) for i in range(100)]
    try:
        impl.sync_files(files)
        spent = 0.0
        for round_ in range(scale.file_syncs):
            for f in files:
                f.write(round_ * 128, PAYLOAD)
            start = time.perf_counter()
            impl.sync_files(files)
            spent += time.perf_counter() - start
        return scale.file_syncs / spent
    finally:
        for f in files:
            f.close()
        impl.close()


WORKLOADS: list[tuple[str, str, Workload]] = [
    ("batch append 2000 x 100 B, NoFsync", "entries/s",
     batch_append(FsyncSchedule.NoFsync, lambda s: s.batches_nofsync)),
    ("batch append 2000 x 100 B, SyncEach", "entries/s",
     batch_append(FsyncSchedule.SyncEach, lambda s: s.batches_synceach)),
    ("single appends, SyncEach, 4 threads", "appends/s", threaded_sync_each),
    ("flush() of 100 dirty topics", "flushes/s", flush_dirty_topics),
    ("batch reads, 1 MiB cap", "entries/s", batch_read),
    ("sync_files() of 100 files (backend only)", "passes/s", sync_100_files),
]


def measure(backends: list[str] | None = None, rounds: int = 3, quick: bool = False,
            directory: str | None = None,
            progress: Callable[[str], None] | None = None) -> list[Row]:
    """Run every workload ``rounds`` times on each backend; returns one row per workload."""
    names = backends or [r.name for r in available_backends() if r.available]
    scale = QUICK if quick else Scale()
    rows = [Row(title, unit) for title, unit, _ in WORKLOADS]
    base = Path(tempfile.mkdtemp(prefix="walrus-backends-", dir=directory))
    try:
        for r in range(rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for row, (_, _, workload) in zip(rows, WORKLOADS, strict=True):
                for name in order:
                    path = base / f"{name}-{r}-{len(row.rates.get(name, []))}"
                    rate = workload(name, path, scale)
                    shutil.rmtree(path, ignore_errors=True)
                    row.rates.setdefault(name, []).append(rate)
                    if progress is not None:
                        progress(f"round {r + 1}/{rounds} {row.workload} {name}: {rate:,.0f}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return rows


def _ratio(row: Row, name: str) -> str:
    """The median over rounds of ``name`` / ``pwrite`` within each round, with its range."""
    ratios = sorted(a / b for a, b in zip(row.rates.get(name, []), row.rates.get(BASELINE, []),
                                          strict=False) if b)
    if not ratios:
        return "-"
    return f"{statistics.median(ratios):.2f} ({ratios[0]:.2f}-{ratios[-1]:.2f})"


def format_table(rows: list[Row]) -> str:
    """Markdown: each backend's median, and its ratio to ``pwrite`` in the same round (median
    and range over rounds)."""
    names = list(dict.fromkeys(n for row in rows for n in row.rates))
    others = [n for n in names if n != BASELINE]
    head = ["workload", "unit", *names] + [f"{n} / {BASELINE}" for n in others]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row.workload, row.unit,
                 *(rate_text(row.median(n), missing="-", per="") for n in names)]
        cells += [_ratio(row, n) for n in others]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _filesystem(path: str) -> str:
    best, kind = "", "?"
    real = os.path.realpath(path)
    with open("/proc/mounts", encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            mount = parts[1]
            inside = real == mount or real.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) > len(best):
                best, kind = mount, parts[2]
    return kind


DESCRIPTION = (
    "The same workloads on every available backend, in one run. Prints a Markdown table of "
    "medians (higher is better) and each backend's ratio to pwrite measured in the same round "
    "(median and range over rounds): absolute figures differ between machines and runs, ratios "
    "much less. Rounds rotate the order of the backends so that drifting disk latency hits each "
    "alike.")


def add_backends(sub: Any) -> None:
    p = sub.add_parser("backends", help="the backends side by side (docs/backends.md's table)",
                       description=DESCRIPTION)
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds; medians and ranges are over rounds (default %(default)s)")
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    p.add_argument("--dir", default=".", help="where to write (default: here)")
    p.add_argument("--backends", help="comma-separated names (default: all available)")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    names = args.backends.split(",") if args.backends else None
    rows = measure(names, args.rounds, args.quick, args.dir,
                   progress=lambda line: print(line, flush=True))
    print(f"\n{platform.node()}: Linux {platform.release()}, {os.cpu_count()} CPUs, "
          f"{_filesystem(args.dir)}, Python {platform.python_version()}, "
          f"medians of {args.rounds} rounds\n")
    print(format_table(rows))
    return 0
