"""``walrus bench targets``: the performance table, each row a ratio measured in one run.

What each row measures, and why medians of interleaved runs, is :data:`DESCRIPTION` (the
command's help). A row is one entry of ``ROWS``.
"""

from __future__ import annotations

import argparse
import csv
import json
import mmap
import os
import shutil
import statistics
import struct
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from walrus import FsyncSchedule, ReadConsistency, Walrus, available_backends

from ._compare_report import rate_text

PAYLOAD = b"x" * 100
PLAIN = "plain Python"
"""What the reference rows run on instead of a backend."""
HEADER = struct.Struct("<IIQ")
"""The ceilings' 16-byte record header: crc32, length, sequence number."""


@attrs.frozen
class Sizes:
    """How much work each measurement does."""

    entries: int = 300_000
    durable: int = 2_000
    threads_each: int = 600


QUICK = Sizes(entries=20_000, durable=200, threads_each=60)


Measure = Callable[[Path, str, Sizes], float]
"""Rate of a walrus workload on one backend (entries per second)."""


@attrs.frozen
class Row:
    name: str
    target: float | None
    """None: a plain-Python reference row (no walrus; measured once, not per backend)."""
    baseline: str
    measure: Measure
    ceiling: Callable[[Path, Sizes], float] | None = None
    """Rate of the plain-Python work the ratio divides by, measured in the same run."""
    relative: Measure | None = None
    """Or: another walrus workload on the same backend that the ratio divides by."""


def _rate(count: int, work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return count / (time.perf_counter() - start)


def _run_all(workers: list[threading.Thread]) -> None:
    for w in workers:
        w.start()
    for w in workers:
        w.join()


def _calls(count: int, call: Callable[..., object], *args: Any) -> float:
    """Rate of ``count`` calls of ``call(*args)`` (one or two arguments), written as user code
    would write the loop; each result is dropped at once, as the ceilings drop theirs
    (keeping them all alive would time the garbage collector)."""
    if len(args) == 1:
        (a,) = args

        def work() -> None:
            for _ in range(count):
                call(a)
    else:
        a, b = args

        def work() -> None:
            for _ in range(count):
                call(a, b)

    return _rate(count, work)


def _open(path: Path, backend: str, **kwargs: Any) -> Walrus:
    return Walrus(data_dir=tempfile.mkdtemp(dir=path), backend=backend, **kwargs)


# --- ceilings ------------------------------------------------------------------------------


def _records(path: Path, n: int) -> Path:
    file = path / "ceiling.bin"
    with open(file, "wb") as f:
        for i in range(n):
            f.write(HEADER.pack(zlib.crc32(PAYLOAD), len(PAYLOAD), i))
            f.write(PAYLOAD)
    return file


def ceiling_write(path: Path, sizes: Sizes) -> float:
    n = sizes.entries

    def work() -> None:
        with open(path / "w.bin", "wb") as f:
            write, crc, pack = f.write, zlib.crc32, HEADER.pack
            for i in range(n):
                write(pack(crc(PAYLOAD), 100, i))
                write(PAYLOAD)

    return _rate(n, work)


def ceiling_mapping(path: Path, sizes: Sizes) -> float:
    """Plain-Python stores into a shared mapping of a preallocated file: per record, the
    payload, then its 16-byte header with the crc32 (what a writer that others read while
    it writes has to do at the least, without topics, locks or a durable point)."""
    n = sizes.entries
    size = n * (HEADER.size + len(PAYLOAD))
    with open(path / "m.bin", "w+b") as f:
        os.posix_fallocate(f.fileno(), 0, size)
        with mmap.mmap(f.fileno(), size) as mapped:

            def work() -> None:
                pack_into, crc, step = HEADER.pack_into, zlib.crc32, HEADER.size + len(PAYLOAD)
                pos = 0
                for i in range(n):
                    mapped[pos + 16:pos + step] = PAYLOAD
                    pack_into(mapped, pos, crc(PAYLOAD), 100, i)
                    pos += step

            return _rate(n, work)


def ceiling_joined(path: Path, sizes: Sizes) -> float:
    batches = max(1, sizes.entries // 2000)

    def work() -> None:
        with open(path / "j.bin", "wb") as f:
            crc, pack = zlib.crc32, HEADER.pack
            for _ in range(batches):
                parts = []
                for i in range(2000):
                    parts.append(pack(crc(PAYLOAD), 100, i))
                    parts.append(PAYLOAD)
                f.write(b"".join(parts))

    return _rate(batches * 2000, work)


def ceiling_read(path: Path, sizes: Sizes) -> float:
    n = sizes.entries
    file = _records(path, n)

    def work() -> None:
        with open(file, "rb") as f:
            read, crc, unpack = f.read, zlib.crc32, HEADER.unpack
            for _ in range(n):
                check, length, _seq = unpack(read(16))
                if crc(read(length)) != check:
                    raise ValueError("ceiling data damaged")

    return _rate(n, work)


def ceiling_parse(path: Path, sizes: Sizes) -> float:
    n = sizes.entries
    data = _records(path, n).read_bytes()

    def work() -> None:
        crc, unpack_from = zlib.crc32, HEADER.unpack_from
        out, pos = [], 0
        for _ in range(n):
            check, length, _seq = unpack_from(data, pos)
            payload = data[pos + 16:pos + 16 + length]
            if crc(payload) != check:
                raise ValueError("ceiling data damaged")
            out.append(payload)
            pos += 16 + length

    return _rate(n, work)


def ceiling_fdatasync(path: Path, sizes: Sizes) -> float:
    n = sizes.durable
    fd = os.open(path / "s.bin", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.posix_fallocate(fd, 0, (n + 1) * 116)
        os.fsync(fd)
        record = HEADER.pack(0, 100, 0) + PAYLOAD

        def work() -> None:
            for i in range(n):
                os.pwrite(fd, record, i * 116)
                os.fdatasync(fd)

        os.sync()
        return _rate(n, work)
    finally:
        os.close(fd)


def group_commit(count: int) -> Measure:
    """Plain Python, no walrus: ``count`` threads each write a record and wait until it is
    durable, with the simplest group commit (a writer that finds no sync running syncs for
    everyone written so far; the others wait on a condition). The most that Python threads
    get from group commit on this machine, for comparison with walrus's row."""
    def measure(path: Path, _backend: str, sizes: Sizes) -> float:
        each = sizes.threads_each
        fd = os.open(path / "g.bin", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        record = HEADER.pack(0, 100, 0) + PAYLOAD
        cond = threading.Condition()
        state = {"written": 0, "durable": 0, "busy": False}

        def worker() -> None:
            for _ in range(each):
                with cond:
                    pos = state["written"]
                    os.pwrite(fd, record, pos)
                    mine = state["written"] = pos + len(record)
                    while state["durable"] < mine:
                        if state["busy"]:
                            cond.wait()
                            continue
                        state["busy"] = True
                        covered = state["written"]
                        cond.release()
                        try:
                            os.fdatasync(fd)
                        finally:
                            cond.acquire()
                            state["busy"] = False
                        state["durable"] = covered
                        cond.notify_all()

        try:
            os.posix_fallocate(fd, 0, (count * each + 1) * len(record))
            os.fsync(fd)
            os.sync()
            workers = [threading.Thread(target=worker) for _ in range(count)]
            return _rate(count * each, lambda: _run_all(workers))
        finally:
            os.close(fd)

    return measure


# --- walrus workloads ----------------------------------------------------------------------


def append(schedule: Any) -> Callable[[Path, str, Sizes], float]:
    def measure(path: Path, backend: str, sizes: Sizes) -> float:
        durable = isinstance(schedule, type(FsyncSchedule.SyncEach))
        n = sizes.durable if durable else sizes.entries
        with _open(path, backend, fsync_schedule=schedule) as wal:
            put = wal.append_for_topic
            put("t", PAYLOAD)
            if durable:
                os.sync()
            return _calls(n, put, "t", PAYLOAD)

    return measure


def batch_append(path: Path, backend: str, sizes: Sizes) -> float:
    batches = max(1, sizes.entries // 2000)
    batch = [PAYLOAD] * 2000
    with _open(path, backend, fsync_schedule=FsyncSchedule.NoFsync) as wal:
        put = wal.batch_append_for_topic
        return _calls(batches, put, "t", batch) * 2000


def _filled(path: Path, backend: str, n: int, **kwargs: Any) -> Walrus:
    with _open(path, backend, fsync_schedule=FsyncSchedule.NoFsync) as wal:
        for _ in range(max(1, n // 2000)):
            wal.batch_append_for_topic("t", [PAYLOAD] * 2000)
        where = wal.data_dir
    return Walrus(data_dir=where, backend=backend, **kwargs)


def read_next_at_least_once(path: Path, backend: str, sizes: Sizes) -> float:
    n = max(1, sizes.entries // 2000) * 2000
    with _filled(path, backend, n, fsync_schedule=FsyncSchedule.NoFsync,
                 consistency=ReadConsistency.AtLeastOnce(persist_every=10_000)) as wal:
        get = wal.read_next
        return _calls(n, get, "t")


def read_next_named(path: Path, backend: str, sizes: Sizes) -> float:
    """``read_next_at_least_once`` at a named consumer's cursor instead of the shared one."""
    n = max(1, sizes.entries // 2000) * 2000
    with _filled(path, backend, n, fsync_schedule=FsyncSchedule.NoFsync,
                 consistency=ReadConsistency.AtLeastOnce(persist_every=10_000)) as wal:
        get = wal.read_next
        get("t", consumer="bench")  # takes the consumer: the loop measures the hot path

        def work() -> None:
            for _ in range(n - 1):
                get("t", consumer="bench")

        return _rate(n - 1, work)


def read_next_strict_sync_each(path: Path, backend: str, sizes: Sizes) -> float:
    n = sizes.durable
    with _filled(path, backend, 2000, fsync_schedule=FsyncSchedule.SyncEach,
                 consistency=ReadConsistency.StrictlyAtOnce) as wal:
        get = wal.read_next
        os.sync()
        return _calls(n, get, "t")


def batch_read(path: Path, backend: str, sizes: Sizes) -> float:
    n = max(1, sizes.entries // 2000) * 2000
    with _filled(path, backend, n, fsync_schedule=FsyncSchedule.NoFsync,
                 consistency=ReadConsistency.AtLeastOnce(persist_every=10_000)) as wal:
        def work() -> None:
            while wal.batch_read_for_topic("t", 1 << 20):
                pass

        return _rate(n, work)


def threads(count: int, schedule: Any, same_topic: bool = False
            ) -> Callable[[Path, str, Sizes], float]:
    def measure(path: Path, backend: str, sizes: Sizes) -> float:
        durable = isinstance(schedule, type(FsyncSchedule.SyncEach))
        each = sizes.threads_each if durable else sizes.entries // count
        with _open(path, backend, fsync_schedule=schedule) as wal:
            def worker(i: int) -> None:
                put, topic = wal.append_for_topic, "t" if same_topic else f"t{i}"
                for _ in range(each):
                    put(topic, PAYLOAD)

            for i in range(count):
                wal.append_for_topic("t" if same_topic else f"t{i}", PAYLOAD)
            workers = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
            if durable:
                os.sync()
            return _rate(count * each, lambda: _run_all(workers))

    return measure


ROWS = [
    Row("append_for_topic, NoFsync", 0.5, "buffered file write with crc32",
        append(FsyncSchedule.NoFsync), ceiling_write),
    Row("append_for_topic, NoFsync, against a shared mapping", 1.0,
        "plain-Python stores into a shared mapping (header + crc32 + payload per record)",
        append(FsyncSchedule.NoFsync), ceiling_mapping),
    Row("batch_append_for_topic, 2000 per batch, NoFsync", 0.5,
        "one joined write per 2000 records", batch_append, ceiling_joined),
    Row("read_next(checkpoint), AtLeastOnce(10000)", 1.0,
        "buffered sequential read + unpack + crc check", read_next_at_least_once,
        ceiling_read),
    Row("read_next(checkpoint) of a named consumer, AtLeastOnce(10000)", 0.9,
        "the shared cursor's read_next", read_next_named, relative=read_next_at_least_once),
    Row("batch_read_for_topic, 1 MiB cap", 0.5, "parsing the same records from memory",
        batch_read, ceiling_parse),
    Row("append, SyncEach", 0.8, "pwrite + fdatasync per record", append(FsyncSchedule.SyncEach),
        ceiling_fdatasync),
    Row("read_next(checkpoint), StrictlyAtOnce, SyncEach", 0.5,
        "pwrite + fdatasync per record", read_next_strict_sync_each, ceiling_fdatasync),
    Row("append, Milliseconds(1000)", 0.95, "append NoFsync",
        append(FsyncSchedule.Milliseconds(1000)), relative=append(FsyncSchedule.NoFsync)),
    Row("4 threads appending under SyncEach", 3.0, "one thread under SyncEach",
        threads(4, FsyncSchedule.SyncEach), relative=threads(1, FsyncSchedule.SyncEach)),
    Row("4 threads, plain-Python group commit (reference)", None, "one thread of it",
        group_commit(4), relative=group_commit(1)),
    Row("4 threads appending under SyncEach, against the plain-Python group commit", 1.1,
        "4 threads, plain-Python group commit", threads(4, FsyncSchedule.SyncEach),
        relative=group_commit(4)),
    Row("4 threads on 4 topics, NoFsync", 0.8, "one thread's total",
        threads(4, FsyncSchedule.NoFsync), relative=threads(1, FsyncSchedule.NoFsync)),
]


def _backends() -> list[str]:
    return [row.name for row in available_backends() if row.available]


@attrs.define
class Result:
    row: Row
    rates: dict[str, list[float]] = attrs.field(factory=dict)
    baselines: dict[str, list[float]] = attrs.field(factory=dict)
    ratios: dict[str, list[float]] = attrs.field(factory=dict)

    def best(self) -> tuple[str, float, float, float]:
        """(backend, median rate, median baseline, median ratio) of the fastest backend.

        The fastest, not the one with the best ratio: where the baseline is another walrus
        workload, a slow backend can hold a ratio against its own slowness."""
        name = max(self.rates, key=lambda b: statistics.median(self.rates[b]))
        return (name, statistics.median(self.rates[name]),
                statistics.median(self.baselines[name]), statistics.median(self.ratios[name]))


def _in_scratch(scratch: Path, work: Callable[..., float], *args: Any) -> float:
    """``work(folder, *args)`` in a fresh folder that is removed afterwards."""
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        return work(Path(tmp), *args)


def measure_all(scratch: Path, sizes: Sizes, repeats: int, backends: list[str],
                only: str | None = None) -> list[Result]:
    """Run every row ``repeats`` times, interleaved; each ratio uses its own run's baseline."""
    results = [Result(row) for row in ROWS if only is None or only in row.name]
    for _ in range(repeats):
        for result in results:
            row = result.row
            ceiling = _in_scratch(scratch, row.ceiling, sizes) if row.ceiling else 0.0
            for backend in backends if row.target is not None else [PLAIN]:
                rate = _in_scratch(scratch, row.measure, backend, sizes)
                base = ceiling
                if row.relative is not None:
                    base = _in_scratch(scratch, row.relative, backend, sizes)
                result.rates.setdefault(backend, []).append(rate)
                result.baselines.setdefault(backend, []).append(base)
                result.ratios.setdefault(backend, []).append(rate / base)
    return results


def _held(row: Row, ratio: float) -> str:
    if row.target is None:
        return "reference"
    return "yes" if ratio >= row.target else "NO"


def report(results: list[Result]) -> str:
    lines = ["| workload | baseline | target | walrus (best backend) | baseline rate | ratio "
             "| held |", "|---|---|---|---|---|---|---|"]
    for r in results:
        backend, rate, base, ratio = r.best()
        target = "-" if r.row.target is None else f">= {r.row.target:g}x"
        lines.append(f"| {r.row.name} | {r.row.baseline} | {target} | "
                     f"{rate_text(rate)} ({backend}) | {rate_text(base)} | {ratio:.2f}x | "
                     f"{_held(r.row, ratio)} |")
    return "\n".join(lines)


def write_files(results: list[Result], out: Path, repeats: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "targets.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["workload", "target", "backend", "repeat", "rate", "baseline_rate",
                         "ratio"])
        for r in results:
            for backend, rates in r.rates.items():
                for i, rate in enumerate(rates):
                    writer.writerow([r.row.name, r.row.target, backend, i, f"{rate:.1f}",
                                     f"{r.baselines[backend][i]:.1f}",
                                     f"{r.ratios[backend][i]:.4f}"])
    summary = []
    for r in results:
        backend, rate, base, ratio = r.best()
        summary.append({"workload": r.row.name, "baseline": r.row.baseline,
                        "target": r.row.target, "backend": backend, "rate": rate,
                        "baseline_rate": base, "ratio": ratio,
                        "held": None if r.row.target is None else ratio >= r.row.target,
                        "repeats": repeats})
    (out / "targets.json").write_text(json.dumps(summary, indent=2) + "\n")


DESCRIPTION = (
    "The performance targets of docs/performance.md, each row a ratio measured in one run: a "
    "walrus workload against the least a plain-Python program needs for the same work (the "
    "ceiling: 16-byte headers with a crc32, written or read sequentially; one fdatasync per "
    "durable record on a preallocated file), single thread, 100-byte entries. Rows run "
    "interleaved --repeats times and the medians are reported, because timings vary from run to "
    "run (by 20-35 % on the machine kind where docs/performance.md's figures were measured: 2 "
    "vCPUs, ext4 on a virtio disk, Linux 6.18, CPython 3.11.7). Each walrus row runs on every "
    "available backend; the table shows the best one, the CSV every one.")


def add_targets(sub: Any) -> None:
    p = sub.add_parser("targets", help="the performance targets table, as ratios",
                       description=DESCRIPTION)
    p.add_argument("--out", default="bench_results/targets", metavar="DIR",
                   help="folder for targets.csv and targets.json (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved runs (median reported)")
    p.add_argument("--quick", action="store_true", help="small workloads (a smoke test)")
    p.add_argument("--only", metavar="TEXT", help="only rows whose name contains TEXT")
    p.add_argument("--backend", action="append", help="backend(s) to run (default: all)")
    p.add_argument("--data-dir", metavar="DIR", help="scratch folder (default: system tmp)")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    sizes = QUICK if args.quick else Sizes()
    backends = args.backend or _backends()
    scratch = Path(tempfile.mkdtemp(prefix="walrus-targets-", dir=args.data_dir))
    try:
        results = measure_all(scratch, sizes, max(1, args.repeats), backends, args.only)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    write_files(results, Path(args.out), args.repeats)
    print(report(results))
    return 0
