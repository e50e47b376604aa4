"""``walrus bench wakeup``: how soon a waiting read sees an append, and what asyncio costs.

What it measures is :data:`DESCRIPTION` (the command's help).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from walrus import FsyncSchedule, Walrus
from walrus.aio import AsyncWalrus

DESCRIPTION = """\
How soon a waiting read returns an entry after its append, and whether asyncio stays
responsive. Four measurements:

1. threads: one thread appends (NoFsync), another waits in read_next(timeout=None); the
   latency from the append call to the read's return (target: p99 <= 1 ms).
2. processes: a writer process appends (NoFsync) at random intervals of 2-20 ms; an observer
   process (read_only=True) follows the topic; the latency from the append to the entry in
   the observer (target: p99 <= 20 ms). Both clocks are CLOCK_MONOTONIC (one per machine).
3. asyncio lag: in one event loop, 100 tasks append under SyncEach and 100 others wait on
   reads of those topics; a probe task sleeps 1 ms at a time and records how late it wakes
   (target: p99 <= 5 ms).
4. asyncio throughput: SyncEach appends per second from 100 tasks in one loop, against 4
   threads appending through the blocking API (target: at least as many).
"""

STAMP = struct.Struct("<q")
"""An entry's payload starts with the monotonic time of its append, in nanoseconds."""
PADDING = b"w" * 100


def add_wakeup(sub: Any) -> None:
    p = sub.add_parser("wakeup", help="wake-up latency of waiting reads; asyncio loop lag",
                       description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, default=2000,
                   help="appends timed in the thread and process measurements "
                        "(default %(default)s)")
    p.add_argument("--duration", type=float, default=5.0,
                   help="seconds of each asyncio measurement (default %(default)s)")
    p.add_argument("--backend", help="backend name, fallback list or auto")
    p.add_argument("--dir", help="where to make the data directories (default: a temporary "
                                 "directory)")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    if args.count < 10 or args.duration <= 0:
        raise SystemExit("walrus bench wakeup: --count must be >= 10, --duration > 0")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        rows = [
            ("threads: append -> waiting read_next", "ms",
             _thread_latency(root / "threads", args.backend, args.count), 1.0),
            ("processes: writer -> waiting observer", "ms",
             _process_latency(root / "processes", args.backend, args.count), 20.0),
        ]
        lag, async_rate = asyncio.run(_loop_lag(root / "lag", args.backend, args.duration))
        rows.append(("asyncio loop lag, 100 appending + 100 waiting", "ms", lag, 5.0))
        threads_rate = _thread_rate(root / "rate", args.backend, args.duration)
    print(f"{'measurement':48} {'p50':>8} {'p99':>8} {'max':>8}  target")
    for name, unit, samples, target in rows:
        p50, p99 = _percentiles(samples)
        verdict = "ok" if p99 <= target else "MISSED"
        print(f"{name:48} {p50:8.3f} {p99:8.3f} {max(samples):8.3f}  p99 <= {target:g} {unit}: "
              f"{verdict}")
    verdict = "ok" if async_rate >= threads_rate else "MISSED"
    print(f"SyncEach appends/s: asyncio, 100 tasks {async_rate:,.0f}; 4 threads "
          f"{threads_rate:,.0f} (ratio {async_rate / threads_rate:.2f}, target >= 1: {verdict})")
    print(f"({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; "
          f"{args.count} appends timed, {args.duration:g} s per asyncio run)")
    return 0


def _percentiles(samples: Sequence[float]) -> tuple[float, float]:
    """The median and the 99th percentile. A lone sample is both: on a busy machine a short
    asyncio run can hold a single wake of its probe (one late wake outlasting the run)."""
    if len(samples) == 1:
        return float(samples[0]), float(samples[0])
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return float(statistics.median(samples)), q[98]


def _stamped() -> bytes:
    return STAMP.pack(time.monotonic_ns()) + PADDING


def _since(data: bytes) -> float:
    """Milliseconds since the append that wrote ``data``."""
    sent: int = STAMP.unpack_from(data)[0]
    return (time.monotonic_ns() - sent) / 1e6


def _thread_latency(path: Path, backend: str | None, count: int) -> list[float]:
    samples: list[float] = []
    with Walrus(path, backend=backend, fsync_schedule=FsyncSchedule.NoFsync) as wal:
        def read() -> None:
            for _ in range(count):
                entry = wal.read_next("t", timeout=None)
                assert entry is not None
                samples.append(_since(entry.data))

        reader = threading.Thread(target=read)
        reader.start()
        for _ in range(count):
            time.sleep(random.uniform(0.0002, 0.002))  # the reader waits (or sleeps) by then
            wal.append_for_topic("t", _stamped())
        reader.join()
    return samples


WRITER = r"""
import random, struct, sys, time
from walrus import FsyncSchedule, Walrus
count = int(sys.argv[2])
with Walrus(sys.argv[1], backend=sys.argv[3] or None,
            fsync_schedule=FsyncSchedule.NoFsync) as wal:
    print("ready", flush=True)
    sys.stdin.readline()
    for _ in range(count):
        time.sleep(random.uniform(0.002, 0.020))
        wal.append_for_topic("t", struct.pack("<q", time.monotonic_ns()) + b"w" * 100)
"""


def _process_latency(path: Path, backend: str | None, count: int) -> list[float]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(count),
                               backend or ""], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              env=env, text=True)
    samples: list[float] = []
    try:
        assert writer.stdin is not None and writer.stdout is not None
        assert writer.stdout.readline() == "ready\n"
        with Walrus(path, backend=backend, read_only=True) as observer:
            writer.stdin.write("go\n")
            writer.stdin.flush()
            for entry in observer.follow("t", checkpoint=False):
                samples.append(_since(entry.data))
                if len(samples) == count:
                    break
        writer.wait(60)
    finally:
        writer.kill()
        writer.wait()
    return samples


async def _loop_lag(path: Path, backend: str | None, duration: float) -> tuple[list[float], float]:
    """Loop lag samples (ms) and the appenders' rate while 100 tasks append under SyncEach
    and 100 wait on reads."""
    lags: list[float] = []
    appended = 0
    async with AsyncWalrus(path, backend=backend, fsync_schedule=FsyncSchedule.SyncEach) as wal:
        await asyncio.sleep(0.5)  # the next segment prepared, as in a running service
        end = time.monotonic() + duration

        async def append(topic: str) -> None:
            nonlocal appended
            while time.monotonic() < end:
                await wal.append_for_topic(topic, PADDING)
                appended += 1

        async def read(topic: str) -> None:
            while time.monotonic() < end:
                await wal.read_next(topic, timeout=max(0.0, end - time.monotonic()))

        async def probe() -> None:
            while time.monotonic() < end:
                start = time.perf_counter()
                await asyncio.sleep(0.001)
                lags.append(max(0.0, (time.perf_counter() - start - 0.001) * 1000))

        started = time.monotonic()
        await asyncio.gather(probe(), *(append(f"t{i}") for i in range(100)),
                             *(read(f"t{i}") for i in range(100)))
        rate = appended / (time.monotonic() - started)
    return lags, rate


def _thread_rate(path: Path, backend: str | None, duration: float) -> float:
    """SyncEach appends per second from 4 threads through the blocking API."""
    counts = [0] * 4
    with Walrus(path, backend=backend, fsync_schedule=FsyncSchedule.SyncEach) as wal:
        time.sleep(0.5)
        end = time.monotonic() + duration

        def work(i: int) -> Callable[[], None]:
            def run() -> None:
                while time.monotonic() < end:
                    wal.append_for_topic(f"t{i}", PADDING)
                    counts[i] += 1
            return run

        started = time.monotonic()
        threads = [threading.Thread(target=work(i)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sum(counts) / (time.monotonic() - started)
