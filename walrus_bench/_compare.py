"""``walrus bench compare``: single-thread workloads on walrus, baselines and peers.

Every figure is a rate measured in this run; ratios divide by the baseline system
(``python-file-crc32`` unless told otherwise) measured in the same run, since timings vary
from run to run (20-35 % on the machine kind of docs/performance.md). Repeats are interleaved
across systems and the median kept.

A workload is one entry in :data:`WORKLOADS`: a sync mode to open the store with and a
function that drives it for the given seconds. Adding a row (one of the performance targets,
say) means adding an entry here, and a method to :class:`~._stores.Store` if it needs a new
operation.
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs

from ._peers import peer_systems
from ._rust_peer import RustSystem, Unsupported
from ._stores import Store, System, baseline_systems, walrus_systems

CHUNK = 1000
SYNC_CHUNK = 10
PREFILL_MAX = 2_000_000
BATCH_READ_BYTES = 1 << 20
UNSUPPORTED = "unsupported"
"""The error text of a cell whose system has no operation for the workload."""

Step = Callable[[], int]
Drive = Callable[[Store, list[bytes], float], tuple[int, float]]
"""Runs a workload on an open store for some seconds; returns (entries, seconds)."""


def all_systems() -> list[System]:
    """Walrus on each backend, the baselines, sqlite3, and the peers that are installed."""
    return [*walrus_systems(), *baseline_systems(), *peer_systems()]


def timed(step: Step, seconds: float) -> tuple[int, float]:
    """Repeat ``step`` (returning entries done, 0 when nothing is left) for ``seconds``."""
    ops, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        done = step()
        ops += done
        now = time.perf_counter()
        if not done or now >= deadline:
            return ops, now - start


@attrs.frozen
class Workload:
    name: str
    title: str
    durable: bool
    drive: Drive


def _repeat(*operations: Callable[[Store, list[bytes]], None]) -> Drive:
    """A workload that does ``operations`` on the chunk of payloads, over and over."""

    def drive(store: Store, payloads: list[bytes], seconds: float) -> tuple[int, float]:
        def step() -> int:
            for operation in operations:
                operation(store, payloads)
            return len(payloads)

        return timed(step, seconds)

    return drive


def _each(store: Store, payloads: list[bytes]) -> None:
    store.append_each(payloads)


def _batch(store: Store, payloads: list[bytes]) -> None:
    store.append_batch(payloads)


def _sync(store: Store, payloads: list[bytes]) -> None:
    store.sync()


_append = _repeat(_each)


def _prefill(store: Store, payloads: list[bytes], seconds: float) -> None:
    """Untimed: as many entries as ``seconds`` allow (at most PREFILL_MAX), then a sync."""
    filled = [0]

    def fill() -> int:
        if filled[0] >= PREFILL_MAX:
            return 0
        store.append_batch(payloads)
        filled[0] += len(payloads)
        return len(payloads)

    timed(fill, seconds)
    store.sync()


def _consume(store: Store, payloads: list[bytes], seconds: float) -> tuple[int, float]:
    _prefill(store, payloads, seconds)
    return timed(lambda: store.consume(CHUNK), seconds)


def _batch_read(store: Store, payloads: list[bytes], seconds: float) -> tuple[int, float]:
    """Batches of up to 1 MiB of entries: walrus's and the original's batch read; the
    others' consume of as many entries as fit in 1 MiB (their natural loop)."""
    _prefill(store, payloads, seconds)
    read_batch = getattr(store, "read_batch", None)
    if read_batch is not None:
        return timed(lambda: int(read_batch(BATCH_READ_BYTES)), seconds)
    count = max(1, BATCH_READ_BYTES // max(1, len(payloads[0])))
    return timed(lambda: store.consume(count), seconds)


def _sync_each(store: Store, payloads: list[bytes], seconds: float) -> tuple[int, float]:
    return _append(store, payloads[:SYNC_CHUNK], seconds)


WORKLOADS = {w.name: w for w in (
    Workload("append", "append, no sync", False, _append),
    Workload("append_sync1000", "append, fsync per 1000", False, _repeat(_each, _sync)),
    Workload("consume", "consume, persisted cursor", False, _consume),
    Workload("batch1000", "batch of 1000", False, _repeat(_batch)),
    Workload("sync_each", "fsync each append", True, _sync_each),
    Workload("batch_read", "batch read, 1 MiB", False, _batch_read),
)}


@attrs.define
class Cell:
    """One system on one workload: a rate per repeat, or the error that stopped it."""

    system: System | RustSystem
    workload: Workload
    rates: list[float] = attrs.Factory(list)
    error: str | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.rates) if self.rates and self.error is None else None


def measure(systems: Sequence[System | RustSystem], workloads: Sequence[Workload], seconds: float,
            repeat: int, entry_size: int, scratch: Path,
            progress: Callable[[str], None]) -> list[Cell]:
    """Every system on every workload, ``repeat`` times, interleaved; medians kept per cell.

    Cells are returned system by system, in the order given.
    """
    payloads = [bytes([i % 256]) * entry_size for i in range(CHUNK)]
    cells = [Cell(s, w) for s in systems for w in workloads]
    # Workload-major order: the systems on one workload run back to back, so each sees the
    # same disk state (fsync-bound cells suffer behind the writeback of a bulk workload).
    order = sorted(cells, key=lambda c: workloads.index(c.workload))
    for rep in range(repeat):
        for cell in order:
            if cell.error is not None:
                continue
            progress(f"compare: run {rep + 1}/{repeat} {cell.system.name} {cell.workload.name}")
            folder = scratch / f"{cell.system.name}-{cell.workload.name}-{rep}"
            os.sync()  # start each cell on a quiet disk, not behind the last one's writeback
            try:
                cell.rates.append(_once(cell, folder, payloads, seconds))
            except Unsupported:
                cell.error = UNSUPPORTED
            except Exception as exc:
                cell.error = f"{type(exc).__name__}: {exc}"
            finally:
                shutil.rmtree(folder, ignore_errors=True)
    return cells


def _once(cell: Cell, folder: Path, payloads: list[bytes], seconds: float) -> float:
    if isinstance(cell.system, RustSystem):  # a program of its own runs the workload
        return cell.system.run(cell.workload.name, folder, len(payloads[0]), seconds)
    store = cell.system.open(folder, cell.workload.durable)
    try:
        ops, elapsed = cell.workload.drive(store, payloads, seconds)
    finally:
        store.close()
    if not ops:
        raise RuntimeError("did no work")
    return ops / elapsed
