"""Running worker threads for a phase while the main thread samples them every 0.5 s.

The main thread is the monitor: it writes the CSV rows, drives the progress line, and stops
the workers at the deadline, at the disk budget, or at the first error.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import attrs

from ._progress import Progress
from ._resources import dirty_pages
from ._sampling import Tally, Totals
from ._series import Series

TICK_SECONDS = 0.5
"""The original samples every 500 ms ..."""
ALWAYS_EVERY = 4
"""... and writes a row when something changed, or at least every 2 s."""

Worker = Callable[[Tally, threading.Event], None]
"""Does operations until the event is set (or its work runs out), counting into the tally."""


@attrs.frozen
class Tick:
    """One sample of the running phase, handed to a row maker."""

    timestamp: float
    elapsed: float
    interval: float
    totals: Totals
    delta: Totals
    dirty_kb: int
    dirty_pct: float

    def rate(self, value: int) -> float:
        return value / self.interval if self.interval > 0 else 0.0


RowMaker = Callable[[Tick], Sequence[object]]


@attrs.frozen
class PhaseResult:
    """What a phase did: per-worker tallies, wall time, and why it stopped."""

    tallies: list[Tally]
    seconds: float
    totals: Totals
    stopped_by: str
    errors: list[str]


class RunClock:
    """Elapsed time since the start of a whole run, across its phases."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def zero_tick(clock: RunClock) -> Tick:
    """The original's first row: all zeros at the start."""
    kb, pct = dirty_pages()
    return Tick(time.time(), clock.elapsed(), 0.0, Totals(), Totals(), kb, pct)


@attrs.define
class Phase:
    """Settings for one phase; ``run`` executes it."""

    label: str
    duration: float
    clock: RunClock
    progress: Progress
    series: Series | None = None
    row: RowMaker | None = None
    byte_budget: int | None = None

    def run(self, workers: Sequence[Worker]) -> PhaseResult:
        tallies = [Tally() for _ in workers]
        stop = threading.Event()
        finished = threading.Event()
        remaining = [len(workers)]
        lock = threading.Lock()

        def body(work: Worker, tally: Tally) -> None:
            try:
                work(tally, stop)
            except Exception as exc:  # reported in the summary, stops the phase
                tally.error = f"{type(exc).__name__}: {exc}"
                stop.set()
            finally:
                with lock:
                    remaining[0] -= 1
                    if remaining[0] == 0:
                        finished.set()

        threads = [threading.Thread(target=body, args=(w, t), name=f"{self.label}-{i}",
                                    daemon=True)
                   for i, (w, t) in enumerate(zip(workers, tallies, strict=True))]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        stopped_by = self._monitor(tallies, stop, finished, start)
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - start
        errors = [t.error for t in tallies if t.error]
        return PhaseResult(tallies, seconds, Totals.of(tallies),
                           "error" if errors else stopped_by, errors)

    def _monitor(self, tallies: list[Tally], stop: threading.Event, finished: threading.Event,
                 start: float) -> str:
        deadline = start + self.duration
        previous, last_time, ticks = Totals(), start, 0
        stopped_by = "done"
        while True:
            now = time.perf_counter()
            next_tick = last_time + TICK_SECONDS
            wake = next_tick if stop.is_set() else min(next_tick, deadline)
            if finished.wait(max(0.0, wake - now)):
                break
            now = time.perf_counter()
            if now >= deadline and not stop.is_set():
                stop.set()
                stopped_by = "duration"
            if now >= next_tick:
                ticks += 1
                previous = self._sample(tallies, previous, now - last_time, ticks)
                last_time = now
                if self.byte_budget is not None and previous.bytes >= self.byte_budget:
                    if not stop.is_set():
                        stopped_by = "disk budget"
                    stop.set()
        self._sample(tallies, previous, time.perf_counter() - last_time, ALWAYS_EVERY)
        self.progress.close()
        return stopped_by

    def _sample(self, tallies: list[Tally], previous: Totals, interval: float,
                tick: int) -> Totals:
        totals = Totals.of(tallies)
        delta = Totals(totals.ops - previous.ops, totals.entries - previous.entries,
                       totals.bytes - previous.bytes)
        kb, pct = dirty_pages()
        sample = Tick(time.time(), self.clock.elapsed(), interval, totals, delta, kb, pct)
        if self.series is not None and self.row is not None and (
                delta.ops or tick % ALWAYS_EVERY == 0):
            self.series.write(self.row(sample))
        self.progress.show(
            f"{self.label}: {self.clock.elapsed():6.1f} s  "
            f"{sample.rate(delta.entries):>12,.0f} entries/s  "
            f"{sample.rate(delta.bytes) / 2**20:>9,.1f} MiB/s  total {totals.entries:,}")
        return totals
