"""The lag of ``walrus forward`` while a writer appends at a fixed rate (``bench forward``).

The forwarder runs as it would in production: ``walrus forward`` in its own process,
following the log. This process appends singles at the chosen rate and samples the lag ten
times a second: entries appended so far minus the position of the forwarder's named consumer
(which moves only to what the stream acknowledged).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from walrus import Walrus

SAMPLE_EVERY = 0.1
"""Seconds between two lag samples."""
TICK = 0.005
"""Seconds between two rounds of appends: each appends what the rate owes by then."""
DRAIN_BOUND = 60.0
"""Seconds the forwarder may take to catch up after the writer stops before the run fails."""


@attrs.frozen
class LagResult:
    """What one lag run saw."""

    rate: float
    """Entries per second the writer actually appended."""
    appended: int
    max_lag: int
    p99_lag: int
    end_lag: int
    """The lag in the last sample before the writer stopped."""
    drain: float
    """Seconds from the writer's stop until the stream acknowledged everything."""

    def line(self) -> str:
        return (f"lag while a writer appends {self.rate:,.0f}/s for {self.appended:,} entries: "
                f"max {self.max_lag:,}, p99 {self.p99_lag:,}, at the end {self.end_lag:,} "
                f"entries; caught up {self.drain:.2f} s after the writer stopped")


def _percentile(samples: list[int], share: float) -> int:
    """The nearest-rank percentile: the smallest sample at or above ``share`` of them."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def measure_lag(data_dir: Path, urls: str, prefix: str, rate: float, seconds: float,
                size: int) -> LagResult:
    """Append singles of ``size`` bytes to topic ``t`` of a new log at ``rate`` per second for
    ``seconds`` while ``walrus forward`` follows it into stream ``prefix.upper()``."""
    import walrus

    consumer = f"forward:{prefix.upper()}"
    payload = b"l" * size
    with walrus.Walrus(data_dir) as wal:
        wal.append_for_topic("t", payload)  # the forwarder finds the topic and holds it
        wal.flush()
        forwarder = subprocess.Popen(
            [sys.executable, "-m", "walrus", "forward", str(data_dir), "--to", urls,
             "--subject-prefix", prefix, "--quiet"], stdout=subprocess.DEVNULL)
        try:
            _wait_position(wal, consumer, 1, forwarder)
            appended, samples, end_lag = 1, [], 0
            start = time.perf_counter()
            next_sample = start
            while (now := time.perf_counter()) < start + seconds:
                due = 1 + int((now - start) * rate)
                for _ in range(due - appended):
                    wal.append_for_topic("t", payload)
                appended = due
                if now >= next_sample:
                    end_lag = appended - wal.consumers("t").get(consumer, 0)
                    samples.append(end_lag)
                    next_sample += SAMPLE_EVERY
                time.sleep(TICK)
            spent = time.perf_counter() - start
            wal.flush()
            stopped = time.perf_counter()
            _wait_position(wal, consumer, appended, forwarder)
            drain = time.perf_counter() - stopped
        finally:
            if forwarder.poll() is None:
                os.kill(forwarder.pid, signal.SIGTERM)
                forwarder.wait(DRAIN_BOUND)
    return LagResult((appended - 1) / spent, appended, max(samples),
                     _percentile(samples, 0.99), end_lag, drain)


def _wait_position(wal: Walrus, consumer: str, position: int,
                   forwarder: subprocess.Popen[bytes]) -> None:
    """Wait until the forwarder's consumer stands at ``position`` (polled, bounded)."""
    deadline = time.monotonic() + DRAIN_BOUND
    while wal.consumers("t").get(consumer, 0) < position:
        if forwarder.poll() is not None:
            raise SystemExit(f"walrus forward exited with status {forwarder.returncode}")
        if time.monotonic() > deadline:
            raise SystemExit(f"the forwarder did not reach offset {position} within "
                             f"{DRAIN_BOUND} s")
        time.sleep(0.01)
