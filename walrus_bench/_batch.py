"""``walrus bench batch``: threads calling ``batch_append_for_topic`` back to back.

The original's ``multithreaded_benchmark_batch``: 16 threads on ``batch_topic_<i>``,
WALRUS_BATCH_SIZE entries per batch (2000), entry sizes ``500 + counter % 524``, no pause,
CSV ``batch_benchmark_throughput.csv``.
"""

from __future__ import annotations

from ._context import Run
from ._payloads import payloads, stepped_size
from ._runner import Tick, zero_tick
from ._settings import Settings
from ._workers import BatchAppender, until_stopped

CSV = "batch_benchmark_throughput.csv"
COLUMNS = ("timestamp", "elapsed_seconds", "batches_per_second", "entries_per_second",
           "bytes_per_second", "total_batches", "total_entries", "total_bytes",
           "dirty_pages_kb", "dirty_ratio_percent")
POOL = 4
"""Distinct prepared batches, shared by every thread (the payloads are immutable)."""


def row(tick: Tick) -> tuple[object, ...]:
    d, t = tick.delta, tick.totals
    return (tick.timestamp, tick.elapsed, tick.rate(d.ops), tick.rate(d.entries),
            tick.rate(d.bytes), t.ops, t.entries, t.bytes, tick.dirty_kb, tick.dirty_pct)


def batches(size: int, count: int = POOL) -> list[list[bytes]]:
    """``count`` batches of ``size`` entries of ``500 + counter % 524`` bytes."""
    size_of = stepped_size(500, 524)
    return [payloads(size, size_of, start=n * size) for n in range(count)]


def run(run: Run, settings: Settings) -> None:
    pool = batches(settings.batch_size)
    with run.open_wal("batch", settings.fsync, settings.backend) as wal:
        run.summary.config["backend"] = wal.backend
        workers = [until_stopped(BatchAppender(wal, f"batch_topic_{i}", pool).call)
                   for i in range(settings.threads[1])]
        with run.series(CSV, COLUMNS) as series:
            series.write(row(zero_tick(run.clock)))
            result = run.phase("batch", settings.duration, series, row).run(workers)
        run.summary.add("batch_append", result)
