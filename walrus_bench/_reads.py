"""``walrus bench reads``: a write phase of big batches, then a read phase draining them.

The original's ``multithreaded_benchmark_reads``: 5 threads on ``topic_0..4`` under the
instance key ``benchmark-reads``, AtLeastOnce(5000); writes are batches of 2000 x 100 KiB,
reads are ``batch_read_for_topic(topic, 5 GiB)`` with a checkpoint. Here a reader stops when
its topic is drained instead of spinning on empty reads until the clock runs out.
"""

from __future__ import annotations

from ._context import Run
from ._runner import RowMaker, Tick, zero_tick
from ._settings import Settings
from ._summary import MIB
from ._workers import BatchAppender, BatchReader, until_stopped

CSV = "read_benchmark_throughput.csv"
COLUMNS = ("timestamp", "elapsed_seconds", "phase", "write_mb_per_sec", "read_mb_per_sec",
           "total_write_mb", "total_read_mb", "dirty_pages_kb", "dirty_ratio_percent")
ENTRY_BYTES = 100 * 1024
BATCH_ENTRIES = 2000
READ_CAP = 5 << 30
KEY = "benchmark-reads"


def write_row(tick: Tick) -> tuple[object, ...]:
    return (tick.timestamp, tick.elapsed, "write", tick.rate(tick.delta.bytes) / MIB, 0.0,
            tick.totals.bytes / MIB, 0.0, tick.dirty_kb, tick.dirty_pct)


def read_row(written: int) -> RowMaker:
    def row(tick: Tick) -> tuple[object, ...]:
        return (tick.timestamp, tick.elapsed, "read", 0.0, tick.rate(tick.delta.bytes) / MIB,
                written / MIB, tick.totals.bytes / MIB, tick.dirty_kb, tick.dirty_pct)

    return row


def run(run: Run, settings: Settings) -> None:
    threads = settings.threads[1]
    topics = [f"topic_{i}" for i in range(threads)]
    batch = [bytes([i % 256]) * ENTRY_BYTES for i in range(BATCH_ENTRIES)]
    with run.open_wal("reads", settings.fsync, settings.backend, key=KEY) as wal:
        run.summary.config["backend"] = wal.backend
        with run.series(CSV, COLUMNS) as series:
            series.write(write_row(zero_tick(run.clock)))
            wrote = run.phase("write phase", settings.duration, series, write_row).run(
                [until_stopped(BatchAppender(wal, topic, [batch]).call) for topic in topics])
            run.summary.add("batch_append", wrote)
            if wrote.errors:
                return
            series.write(read_row(wrote.totals.bytes)(zero_tick(run.clock)))  # phase start
            read = run.phase("read phase", settings.read_duration, series,
                             read_row(wrote.totals.bytes), budget=False).run(
                [until_stopped(BatchReader(wal, topic, READ_CAP).call) for topic in topics])
        run.summary.add("batch_read", read)
