"""``walrus bench writes``: threads appending 500-1024-byte entries in growing bursts.

The original's ``multithreaded_benchmark_writes``: one topic per thread (``topic_<i>``),
bursts of 50k, 100k ... 500k appends per thread with 500 ms pauses between them,
AtLeastOnce(5000), CSV ``benchmark_throughput.csv``.
"""

from __future__ import annotations

import threading

from ._context import Run
from ._payloads import chunks, uniform_size
from ._runner import Tick, Worker, zero_tick
from ._sampling import Tally
from ._settings import Settings
from ._workers import Appender

CSV = "benchmark_throughput.csv"
COLUMNS = ("timestamp", "elapsed_seconds", "writes_per_second", "bytes_per_second",
           "total_writes", "total_bytes", "dirty_pages_kb", "dirty_ratio_percent")
BURST_START = 50_000
BURST_STEP = 50_000
BURST_MAX = 500_000
BURST_PAUSE = 0.5
ENTRY_MIN, ENTRY_MAX = 500, 1024


def row(tick: Tick) -> tuple[object, ...]:
    return (tick.timestamp, tick.elapsed, tick.rate(tick.delta.ops), tick.rate(tick.delta.bytes),
            tick.totals.ops, tick.totals.bytes, tick.dirty_kb, tick.dirty_pct)


def bursts(appender: Appender) -> Worker:
    """Bursts growing by 50k appends up to 500k, with a 500 ms pause after each."""

    def work(tally: Tally, stop: threading.Event) -> None:
        burst = BURST_START
        while not stop.is_set():
            done = 0
            while done < burst and not stop.is_set():
                done += appender.chunk(tally)
            burst = min(burst + BURST_STEP, BURST_MAX)
            stop.wait(BURST_PAUSE)

    return work


def run(run: Run, settings: Settings) -> None:
    with run.open_wal("writes", settings.fsync, settings.backend) as wal:
        run.summary.config["backend"] = wal.backend
        workers = [bursts(Appender(wal, f"topic_{i}",
                                   chunks(uniform_size(ENTRY_MIN, ENTRY_MAX, seed=i))))
                   for i in range(settings.threads[1])]
        with run.series(CSV, COLUMNS) as series:
            series.write(row(zero_tick(run.clock)))
            result = run.phase("writes", settings.duration, series, row).run(workers)
        run.summary.add("append", result)
