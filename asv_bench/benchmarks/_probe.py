"""One workload between two markers, run in a process of its own under a counting tool.

``python _probe.py OPERATION BACKEND ENTRIES`` opens a fresh walrus in a temporary folder,
prepares (fills the log for the reads) and warms up the operation, then calls ``getppid()``,
runs ``ENTRIES`` entries' worth of the operation, and calls ``getpgrp()``. The two system
calls are the markers: nothing else in walrus or CPython makes them, so the counting tool
(valgrind's callgrind for instructions, strace for system calls) counts only what lies
between them: the operation itself, not interpreter start-up, imports or preparation.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable

from walrus import FsyncSchedule, ReadConsistency, Walrus, available_backends


def backends() -> list[str]:
    """The available backends; ``WALRUS_ASV_BACKENDS=mmap,pwrite`` keeps only those (a smoke
    run needs one)."""
    names = [b.name for b in available_backends() if b.available]
    keep = os.environ.get("WALRUS_ASV_BACKENDS")
    return [n for n in names if n in keep.split(",")] if keep else names


PAYLOAD = b"w" * 100
BATCH = [PAYLOAD] * 2000
TOPIC = "asv"
WARMUP = 200
"""Entries run before the first marker: first-call costs (a segment's creation, lazy
imports, cached lookups) are not the steady cost per entry."""


def _append(wal: Walrus, n: int) -> None:
    for _ in range(n):
        wal.append_for_topic(TOPIC, PAYLOAD)


def _batch_append(wal: Walrus, n: int) -> None:
    for start in range(0, n, len(BATCH)):
        wal.batch_append_for_topic(TOPIC, BATCH[: min(len(BATCH), n - start)])


def _read_next(wal: Walrus, n: int) -> None:
    for _ in range(n):
        if wal.read_next(TOPIC) is None:
            raise RuntimeError("the log ran dry")


def _batch_read(wal: Walrus, n: int) -> None:
    got = 0
    while got < n:
        entries = wal.batch_read_for_topic(TOPIC, 1 << 20)
        if not entries:
            raise RuntimeError("the log ran dry")
        got += len(entries)


LOOSE, STRICT = ReadConsistency.AtLeastOnce(10000), ReadConsistency.StrictlyAtOnce
# name: (fsync schedule, read consistency, fills the log first, the operation)
OPERATIONS: dict[str, tuple[object, object, bool, Callable[[Walrus, int], None]]] = {
    "append": (FsyncSchedule.NoFsync, LOOSE, False, _append),
    "batch_append": (FsyncSchedule.NoFsync, LOOSE, False, _batch_append),
    "read_next": (FsyncSchedule.NoFsync, LOOSE, True, _read_next),
    "batch_read": (FsyncSchedule.NoFsync, LOOSE, True, _batch_read),
    "durable_append": (FsyncSchedule.SyncEach, LOOSE, False, _append),
    "durable_read_next": (FsyncSchedule.SyncEach, STRICT, True, _read_next),
}


def main(operation: str, backend: str, entries: int) -> None:
    # No time-sliced GIL hand-offs: under a slow counting tool their number would depend on
    # the clock, not on the code. Background threads still run whenever this one blocks.
    sys.setswitchinterval(60.0)
    schedule, consistency, fill, run = OPERATIONS[operation]
    folder = tempfile.mkdtemp(prefix="walrus-asv-probe-")
    try:
        wal = Walrus(data_dir=folder, backend=backend, fsync_schedule=schedule,  # type: ignore[arg-type]
                     consistency=consistency)  # type: ignore[arg-type]
        try:
            if fill:
                _batch_append(wal, WARMUP + entries + len(BATCH))
            run(wal, WARMUP)
            os.getppid()
            run(wal, entries)
            os.getpgrp()
        finally:
            wal.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
