"""I/O-bound paths: what a durable write costs a caller, in two series.

Under SyncEach an append waits for the device's fsync: on a shared virtio disk its latency
moves tenfold within minutes with what else writes, and no change to walrus moves it. So:

* ``Overhead`` (the I/O series to track): walrus's time per durable entry over the
  device's, measured in the same process, rounds of walrus and of a plain-Python ``pwrite``
  + ``fdatasync`` loop interleaved. What walrus adds over the device; the device divides out.
* ``SyncEach`` (device-bound, for context): the raw latency of one durable append, as asv
  ``time_`` benchmarks: many samples (each a run of durable appends), the median shown, and
  asv's spread statistics kept with it (``asv compare`` prints them as ``±``; ``asv show``
  gives the quartiles). Read them as a range: they say how the disk was that minute.

The system calls these appends make are counted in ``cost.Syscalls``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable

from walrus import Consistency, FsyncSchedule, ReadConsistency, Walrus
from walrus_bench._targets import HEADER

from . import _series
from ._probe import backends, smoke

BACKENDS = backends()
PAYLOAD = b"w" * 100


_OPEN: dict[str, Walrus] = {}


def _wal(backend: str) -> Walrus:
    """One walrus per backend for the life of the benchmark's process, opened on first use.

    Not in ``setup``: asv re-runs setup hooks before every timed call, which would time a
    fresh log (its first segment) each call and leave the previous one open."""
    wal = _OPEN.get(backend)
    if wal is None:
        folder = tempfile.mkdtemp(prefix="walrus-asv-")
        wal = _OPEN[backend] = Walrus(data_dir=folder, backend=backend,
                                      fsync_schedule=FsyncSchedule.SyncEach)
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        atexit.register(wal.close)  # runs first: atexit is last in, first out
    return wal


@_series.series(_series.DEVICE)
class SyncEach:
    """Durable appends (FsyncSchedule.SyncEach), 100 bytes, wall clock per call."""

    params = (BACKENDS,)
    param_names = ("backend",)
    number = 20  # calls per sample: asv divides, so the figure is per call
    repeat = (20, 60, 30.0)  # 20 to 60 samples a round, at most 30 s
    rounds = 2
    warmup_time = 0.0
    timeout = 300

    def time_append(self, backend: str) -> None:
        """One durable ``append_for_topic``: mostly the device's fsync latency."""
        _wal(backend).append_for_topic("t", PAYLOAD)

    def time_append_4_threads(self, backend: str) -> None:
        """Four threads each making one durable append at once (group commit shares syncs)."""
        append = _wal(backend).append_for_topic
        workers = [threading.Thread(target=append, args=(f"t{i}", PAYLOAD)) for i in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()


class DeviceFile:
    """The plain-Python durable write walrus is measured against, as ``walrus bench
    targets``' ``fdatasync_loop`` ceiling writes it: a record (16-byte header and the
    payload) ``pwrite`` at the next offset of a preallocated, synced file, then
    ``fdatasync``. What a durable write costs with no walrus in the way."""

    def __init__(self, folder: str, records: int) -> None:
        self.record = HEADER.pack(0, len(PAYLOAD), 0) + PAYLOAD
        self.records, self.next = records, 0
        self.fd = os.open(os.path.join(folder, "device.bin"),
                          os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        os.posix_fallocate(self.fd, 0, (records + 1) * len(self.record))
        os.fsync(self.fd)

    def write(self, count: int) -> None:
        """``count`` durable records (after the last preallocated one, from the first again)."""
        for _ in range(count):
            os.pwrite(self.fd, self.record, self.next * len(self.record))
            os.fdatasync(self.fd)
            self.next = (self.next + 1) % self.records

    def close(self) -> None:
        os.close(self.fd)


def interleaved_ratio(walrus_round: Callable[[], None], device_round: Callable[[], None],
                      pairs: int, warmup: int) -> float:
    """The median over ``pairs`` of (time of ``walrus_round``) / (time of ``device_round``),
    the two run back to back in alternating order, after ``warmup`` untimed pairs.

    Both rounds make the same number of durable writes, so a pair's ratio is walrus's time
    per durable entry over the device's. The fsync latency moves tenfold within minutes on a
    shared disk, but little within one pair (a fraction of a millisecond), so the ratio keeps
    what walrus adds and divides out what the disk does; the median, so that a pair in which
    one fsync waited behind another writer's flush does not move it."""
    for _ in range(warmup):
        walrus_round()
        device_round()
    ratios = []
    for p in range(pairs):
        order = (walrus_round, device_round) if p % 2 == 0 else (device_round, walrus_round)
        spent = []
        for run in order:
            start = time.perf_counter_ns()
            run()
            spent.append(time.perf_counter_ns() - start)
        walrus_ns, device_ns = spent if p % 2 == 0 else spent[::-1]
        ratios.append(walrus_ns / max(1, device_ns))
    return statistics.median(ratios)


PAIRS, WARMUP_PAIRS = smoke(3000, 30), smoke(50, 5)
"""A pair is one durable write on either side: interleaved that finely, both see the disk in
the same mood. Measured on this 2-core machine kind with others' tests beside it (load average
2-5), in fresh processes: 2,000 to 5,000 pairs, the figure moved by 0-12 % from process to
process (io_uring, whose writes a kernel thread makes, the most); 60 pairs of five writes each,
by up to 30 %."""


def _appends(wal: Walrus) -> Callable[[], None]:
    """A round: one durable append."""

    def round_() -> None:
        wal.append_for_topic("t", PAYLOAD)

    return round_


def _strict_reads(wal: Walrus) -> Callable[[], None]:
    """A round: one ``read_next`` under StrictlyAtOnce (the cursor made durable per read),
    from a log filled beforehand with every round's entry."""
    total = PAIRS + WARMUP_PAIRS
    for start in range(0, total, 2000):
        wal.batch_append_for_topic("t", [PAYLOAD] * min(2000, total - start))

    def round_() -> None:
        if wal.read_next("t") is None:
            raise RuntimeError("the log ran dry")

    return round_


def _overhead(rounds: Callable[[Walrus], Callable[[], None]], consistency: Consistency,
              doc: str) -> Callable[[Overhead, str], float]:
    """A ``track_*`` figure of ``Overhead``: walrus's rounds from ``rounds`` against the
    device's, on a fresh log under SyncEach."""

    def track(self: Overhead, backend: str) -> float:
        with Walrus(data_dir=os.path.join(self.folder, "wal"), backend=backend,
                    fsync_schedule=FsyncSchedule.SyncEach, consistency=consistency) as wal:
            return interleaved_ratio(rounds(wal), lambda: self.device.write(1), PAIRS,
                                     WARMUP_PAIRS)

    track.__doc__ = doc
    return track


@_series.series(_series.IO_RATIO)
class Overhead:
    """I/O-bound paths, the series to track: walrus's time per durable entry over the
    device's (a plain ``pwrite`` + ``fdatasync`` per record), interleaved in one process.
    1.0 is the device's own cost; what lies above it is walrus's."""

    params = (BACKENDS,)
    param_names = ("backend",)
    unit = "ratio"
    timeout = 300

    def setup(self, backend: str) -> None:
        self.folder = tempfile.mkdtemp(prefix="walrus-asv-")
        self.device = DeviceFile(self.folder, PAIRS + WARMUP_PAIRS)
        os.sync()  # nothing else's dirty pages left for the first fsyncs to write

    def teardown(self, backend: str) -> None:
        self.device.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    track_append = _overhead(_appends, ReadConsistency.AtLeastOnce(10000),
                             "``append_for_topic`` under SyncEach, over the device.")
    track_read_next = _overhead(_strict_reads, ReadConsistency.StrictlyAtOnce,
                                "``read_next`` under StrictlyAtOnce (its cursor made durable "
                                "per read), over the device.")

