"""``walrus bench scaling`` and ``batch-scaling``: throughput against the number of threads.

For each thread count N (WALRUS_THREADS, default 1..10) a fresh instance gets N threads on N
topics for the duration (30 s). ``scaling`` appends 500-1024-byte entries one by one after a
ramp-up (a per-append delay falling from 50 ms to 0 over the first 15 %) with a 50 us pause
every 100k appends; ``batch-scaling`` appends batches of WALRUS_BATCH_SIZE (256).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from walrus import Walrus

from ._context import Run
from ._payloads import chunks, payloads, uniform_size
from ._runner import PhaseResult, Worker
from ._sampling import Tally
from ._settings import Settings
from ._summary import MIB
from ._workers import Appender, BatchAppender, until_stopped

SCALING_CSV = "scaling_results.csv"
SCALING_LIVE_CSV = "scaling_results_live.csv"
SCALING_COLUMNS = ("threads", "throughput")
BATCH_CSV = "batch_scaling_results.csv"
BATCH_COLUMNS = ("threads", "entries_per_second", "mb_per_second", "batches_per_second")
RAMP_SHARE = 0.15
RAMP_MAX_DELAY_MS = 50.0
PAUSE_EVERY = 100_000
PAUSE_SECONDS = 50e-6
ENTRY_MIN, ENTRY_MAX = 500, 1024
BATCH_POOL = 4
"""Distinct prepared batches shared by the threads."""

WorkersFor = Callable[[Walrus, int], list[Worker]]
Row = Callable[[int, PhaseResult], tuple[object, ...]]


def ramped(appender: Appender, duration: float) -> Worker:
    """The original's pacing: slow single appends during the ramp, then full speed."""
    ramp = duration * RAMP_SHARE

    def work(tally: Tally, stop: threading.Event) -> None:
        start = time.perf_counter()
        while not stop.is_set():
            elapsed = time.perf_counter() - start
            if elapsed >= ramp:
                break
            delay_ms = RAMP_MAX_DELAY_MS * (1.0 - elapsed / ramp)
            if delay_ms > 0.1:
                time.sleep(int(delay_ms) / 1000.0)
            appender.one(tally)
        since_pause = 0
        while not stop.is_set():
            since_pause += appender.chunk(tally)
            if since_pause >= PAUSE_EVERY:
                since_pause -= PAUSE_EVERY
                time.sleep(PAUSE_SECONDS)

    return work


def sweep(run: Run, settings: Settings, name: str, label: str, workers_for: WorkersFor,
          row: Row) -> list[tuple[object, ...]]:
    """One fresh instance and phase per thread count; a row for each as it completes."""
    low, high = settings.threads
    rows = []
    for n in range(low, high + 1):
        with run.open_wal(f"{name}-{n}", settings.fsync, settings.backend) as wal:
            run.summary.config["backend"] = wal.backend
            result = run.phase(f"{name} x{n}", settings.duration).run(workers_for(wal, n))
        run.summary.add(f"{label} x{n}", result)
        rows.append(row(n, result))
        if result.errors:
            break
    return rows


def run_scaling(run: Run, settings: Settings) -> None:
    def workers_for(wal: Walrus, n: int) -> list[Worker]:
        return [ramped(Appender(wal, f"topic_{i}",
                                chunks(uniform_size(ENTRY_MIN, ENTRY_MAX, seed=i))),
                       settings.duration) for i in range(n)]

    with run.series(SCALING_LIVE_CSV, SCALING_COLUMNS) as live:
        def row(n: int, result: PhaseResult) -> tuple[object, ...]:
            values = (n, round(result.totals.ops / result.seconds))
            live.write(values)
            return values

        rows = sweep(run, settings, "scaling", "append", workers_for, row)
    with run.series(SCALING_CSV, SCALING_COLUMNS) as final:
        for values in rows:
            final.write(values)


def run_batch_scaling(run: Run, settings: Settings) -> None:
    size_of = uniform_size(ENTRY_MIN, ENTRY_MAX, seed=0)
    pool = [payloads(settings.batch_size, size_of, start=k * settings.batch_size)
            for k in range(BATCH_POOL)]

    def workers_for(wal: Walrus, n: int) -> list[Worker]:
        return [until_stopped(BatchAppender(wal, f"batch_topic_{i}", pool).call)
                for i in range(n)]

    def row(n: int, result: PhaseResult) -> tuple[object, ...]:
        seconds, t = result.seconds, result.totals
        return (n, t.entries / seconds, t.bytes / seconds / MIB, t.ops / seconds)

    rows = sweep(run, settings, "batch-scaling", "batch_append", workers_for, row)
    with run.series(BATCH_CSV, BATCH_COLUMNS) as final:
        for values in rows:
            final.write(values)
