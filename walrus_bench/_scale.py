"""``walrus bench scale``: do costs stay flat as topics and entries grow, and how fast is reopening?

What it measures is :data:`DESCRIPTION` (the command's help).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import walrus
from walrus import FsyncSchedule, ReadConsistency, Walrus

PAYLOAD = b"x" * 100
SAMPLE = 100_000
"""Operations timed at each point."""
SETTLE = 1.0
"""Seconds the background worker gets after a fill (several of its 0.25 s ticks)."""


def _ns_per_op(call: Any, args: list[tuple[Any, ...]], slices: int = 5) -> float:
    """ns per ``call(*a)`` over ``args``: the median of ``slices`` consecutive slices, so a
    background tick that lands in one slice does not move the figure."""
    per_slice = []
    size = max(1, len(args) // slices)
    for first in range(0, len(args), size):
        part = args[first:first + size]
        start = time.perf_counter()
        for a in part:
            call(*a)
        per_slice.append((time.perf_counter() - start) / len(part) * 1e9)
    return statistics.median(per_slice)


def _fill(wal: Walrus, topic: str, count: int) -> None:
    for _ in range(count // 2000):
        wal.batch_append_for_topic(topic, [PAYLOAD] * 2000)
    if count % 2000:
        wal.batch_append_for_topic(topic, [PAYLOAD] * (count % 2000))


def _settle(wal: Walrus) -> None:
    """Let the background worker digest a fill before timing (the same for every point).

    Right after a burst of up to 1.4 GB it is still indexing the segments the burst sealed,
    checkpointing and preparing the next segment; timing then would measure that work, which
    follows the size of the burst, not the size of the topic.
    """
    wal.flush()
    time.sleep(SETTLE)


def entries(root: Path, backend: str | None, points: list[int]) -> list[dict[str, Any]]:
    """ns per append and per read_next with ``point`` entries already in the topic."""
    rows = []
    path = root / "entries"
    consistency = ReadConsistency.AtLeastOnce(persist_every=10_000)
    with Walrus(data_dir=path, backend=backend, fsync_schedule=FsyncSchedule.NoFsync,
                consistency=consistency) as wal:
        have = 0
        appends = [("t", PAYLOAD)] * SAMPLE
        reads = [("t",)] * SAMPLE
        for point in points:
            _fill(wal, "t", point - have)
            _settle(wal)
            have = point + SAMPLE
            append_ns = _ns_per_op(wal.append_for_topic, appends)
            while have - wal.get_topic_entry_count("t") < point:  # move the cursor there
                if not wal.batch_read_for_topic("t", 1 << 30):
                    break
            read_ns = _ns_per_op(wal.read_next, reads)
            rows.append({"entries_in_topic": point, "append_ns": round(append_ns),
                         "read_next_ns": round(read_ns)})
    shutil.rmtree(path, ignore_errors=True)
    return rows


def topics(root: Path, backend: str | None, counts: list[int]) -> list[dict[str, Any]]:
    """ns per round-robin append and read over ``count`` topics."""
    rows = []
    for count in counts:
        path = root / f"topics-{count}"
        names = [f"topic-{i}" for i in range(count)]
        with Walrus(data_dir=path, backend=backend, fsync_schedule=FsyncSchedule.NoFsync,
                    consistency=ReadConsistency.AtLeastOnce(persist_every=10_000)) as wal:
            for name in names:
                wal.append_for_topic(name, PAYLOAD)
            _settle(wal)
            order = [names[i % count] for i in range(SAMPLE)]
            append_ns = _ns_per_op(wal.append_for_topic, [(n, PAYLOAD) for n in order])
            for name in names:
                wal.read_next(name)
            read_ns = _ns_per_op(wal.read_next, [(n,) for n in order])
            rows.append({"topics": count, "append_ns": round(append_ns),
                         "read_next_ns": round(read_ns)})
        shutil.rmtree(path, ignore_errors=True)
    return rows


_CRASH = """
import os, sys, time
from walrus import Walrus, FsyncSchedule
wal = Walrus(data_dir=sys.argv[1], backend=sys.argv[2] or None,
             fsync_schedule=FsyncSchedule.NoFsync)
bursts = list(map(int, sys.argv[3:]))
for i, count in enumerate(bursts):
    if i:
        time.sleep(1.5)  # the worker checkpoints the burst, up to its last 8 MiB step
    for _ in range(count // 2000):
        wal.batch_append_for_topic("t", [b"y" * 100] * 2000)
os._exit(0)
"""


def _crash_reopen(path: Path, backend: str | None, *bursts: int) -> tuple[float, int]:
    """Write ``bursts`` in a child that dies without closing; time the reopen."""
    env = dict(os.environ, PYTHONPATH=str(Path(walrus.__file__).resolve().parents[1]))
    subprocess.run([sys.executable, "-c", _CRASH, str(path), backend or "",
                    *map(str, bursts)], check=True, env=env)
    start = time.perf_counter()
    with Walrus(data_dir=path, backend=backend) as wal:
        # Bytes recovery scanned: an internal figure, read on purpose (no public name has it).
        return time.perf_counter() - start, wal._rebuilder.scanned


def reopen(root: Path, backend: str | None, gib: float) -> dict[str, Any]:
    """Seconds to reopen ~``gib`` GiB after a clean close and after a crash."""
    path = root / "reopen"
    count = int(gib * (1 << 30)) // 136
    with Walrus(data_dir=path, backend=backend, fsync_schedule=FsyncSchedule.NoFsync) as wal:
        _fill(wal, "t", count)
    size = sum(f.stat().st_size for f in path.glob("*.wal"))
    start = time.perf_counter()
    with Walrus(data_dir=path, backend=backend) as wal:
        clean = time.perf_counter() - start
        clean_scanned = wal._rebuilder.scanned  # internal on purpose, as in _crash_reopen
        assert wal.get_topic_entry_count("t") == count // 2000 * 2000 + count % 2000
    burst, after = 200_000, 20_000
    crash_burst = _crash_reopen(path, backend, burst)  # dies right after a burst
    crash_quiet = _crash_reopen(path, backend, burst, after)  # a checkpoint, then a little
    shutil.rmtree(path, ignore_errors=True)
    return {"directory_bytes": size, "entries": count,
            "clean_reopen_s": round(clean, 3), "clean_scanned_bytes": clean_scanned,
            "crash_after_burst_reopen_s": round(crash_burst[0], 3),
            "crash_after_burst_scanned_bytes": crash_burst[1],
            "crash_after_burst_unindexed_bytes": burst * 136,
            "crash_after_pause_reopen_s": round(crash_quiet[0], 3),
            "crash_after_pause_scanned_bytes": crash_quiet[1],
            "crash_after_pause_unindexed_bytes": after * 136}


DESCRIPTION = (
    "Do costs stay flat as topics and entries grow, and how fast is reopening? Entries: the "
    "cost of single appends and of read_next near the start of a topic and after 1 million and "
    "--entries entries (filled in between with batch appends). Topics: the cost of round-robin "
    "appends and reads over 1, 100 and --topics topics. Reopen: the time to reopen a cleanly "
    "closed directory of --reopen-gib GiB (nothing sealed and indexed is rescanned), and after "
    "a crash (only what was written since the last index).")


def add_scale(sub: Any) -> None:
    p = sub.add_parser("scale", help="costs against entry and topic counts; reopen times",
                       description=DESCRIPTION)
    p.add_argument("--out", default="bench_results/scale", metavar="DIR",
                   help="folder for scale.json (default: %(default)s)")
    p.add_argument("--entries", type=int, default=10_000_000,
                   help="largest topic size measured (default %(default)s)")
    p.add_argument("--topics", type=int, default=10_000,
                   help="largest topic count measured (default %(default)s)")
    p.add_argument("--reopen-gib", type=float, default=1.0,
                   help="size of the directory to reopen, in GiB (default %(default)s)")
    p.add_argument("--backend", help="backend (default: auto)")
    p.add_argument("--data-dir", metavar="DIR", help="scratch folder (default: system tmp)")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    root = Path(tempfile.mkdtemp(prefix="walrus-scale-", dir=args.data_dir))
    try:
        points = sorted({0, min(1_000_000, args.entries), args.entries})
        counts = sorted({1, min(100, args.topics), args.topics})
        result: dict[str, Any] = {"entries": entries(root, args.backend, points),
                  "topics": topics(root, args.backend, counts),
                  "reopen": reopen(root, args.backend, args.reopen_gib)}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scale.json").write_text(json.dumps(result, indent=2) + "\n")
    print("entries in topic | ns/append | ns/read_next")
    for row in result["entries"]:
        print(f"{row['entries_in_topic']:>16,} | {row['append_ns']:>9} | {row['read_next_ns']:>12}")
    print("topics | ns/append | ns/read_next")
    for row in result["topics"]:
        print(f"{row['topics']:>6,} | {row['append_ns']:>9} | {row['read_next_ns']:>12}")
    r = result["reopen"]
    print(f"reopen {r['directory_bytes'] / 2**30:.2f} GiB cleanly closed: "
          f"{r['clean_reopen_s']} s, scanned {r['clean_scanned_bytes']:,} B")
    for case in ("burst", "pause"):
        print(f"reopen after a crash following a {case}: {r[f'crash_after_{case}_reopen_s']} s, "
              f"scanned {r[f'crash_after_{case}_scanned_bytes']:,} B "
              f"(written since the last checkpoint: at most "
              f"{r[f'crash_after_{case}_unindexed_bytes']:,} B plus what preceded the pause)")
    return 0
