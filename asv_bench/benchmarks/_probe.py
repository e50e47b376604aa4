"""One workload between two markers, run in a process of its own under a counting tool.

``python _probe.py OPERATION BACKEND ENTRIES`` opens a fresh walrus in a temporary folder,
prepares (fills the log for the reads) and warms up the operation, then calls ``getppid()``,
runs ``ENTRIES`` entries' worth of the operation, and calls ``getpgrp()``. The two system
calls are the markers: nothing else in walrus or CPython makes them, so the counting tool
(valgrind's callgrind for instructions, strace for system calls) counts only what lies
between them: the operation itself, not interpreter start-up, imports or preparation.

``python _probe.py ROW plain ENTRIES`` runs, between the same markers, the work one row of
``walrus bench targets`` times (a row of :data:`TARGET_ROWS`: a plain-Python baseline or a
walrus workload of that table), as that command runs it.
"""

from __future__ import annotations

import inspect
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from walrus import FsyncSchedule, ReadConsistency, Walrus, available_backends


def backends() -> list[str]:
    """The available backends; ``WALRUS_ASV_BACKENDS=mmap,pwrite`` keeps only those (a smoke
    run needs one)."""
    names = [b.name for b in available_backends() if b.available]
    keep = os.environ.get("WALRUS_ASV_BACKENDS")
    return [n for n in names if n in keep.split(",")] if keep else names


def smoke(full: int, small: int) -> int:
    """``small`` under ``WALRUS_ASV_SMOKE=1`` (the test suite's run of every benchmark, which
    checks that each runs, not what it measures; on 2 shared cores its full sizes made it the
    suite's longest test, 5-8 minutes), else ``full``."""
    return small if os.environ.get("WALRUS_ASV_SMOKE") == "1" else full


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


def _marked(count: int, work: Callable[[], object]) -> float:
    """What ``walrus bench targets`` times, between the markers instead."""
    os.getppid()
    work()
    os.getpgrp()
    return float(count)


TARGET_ROWS: dict[str, tuple[Callable[[Any], Any], int]] = {
    "mapping_loop": (lambda t: t.ceiling_mapping, 1),
    "read_loop": (lambda t: t.ceiling_read, 1),
    "joined_write": (lambda t: t.ceiling_joined, 1),
    "parse_loop": (lambda t: t.ceiling_parse, 1),
    "fdatasync_loop": (lambda t: t.ceiling_fdatasync, 1),
    "group_commit_4": (lambda t: t.group_commit(4), 4),
    "group_commit_1": (lambda t: t.group_commit(1), 1),
    "named_read_next": (lambda t: t.read_next_named, 1),
    "ms_append": (lambda t: t.append(FsyncSchedule.Milliseconds(1000)), 1),
    "durable_append_4_threads": (lambda t: t.threads(4, FsyncSchedule.SyncEach), 4),
    "durable_append_1_thread": (lambda t: t.threads(1, FsyncSchedule.SyncEach), 1),
    "append_4_threads": (lambda t: t.threads(4, FsyncSchedule.NoFsync), 4),
}
"""Rows of ``walrus bench targets`` (walrus_bench/_targets.py) by name: the function that
measures it (given that module), and its number of threads. A ceiling takes (folder,
sizes); the others (folder, backend, sizes)."""


def target_row(name: str, backend: str, entries: int) -> None:
    """Run one row's work as ``walrus bench targets`` does, its timed part between the
    markers (``ENTRIES`` entries; the thread rows split them between their threads)."""
    from walrus_bench import _targets

    _targets._rate = _marked  # type: ignore[assignment]
    factory, threads = TARGET_ROWS[name]
    sizes = _targets.Sizes(entries=entries, durable=entries,
                           threads_each=max(1, entries // threads))
    measure = factory(_targets)
    sys.setswitchinterval(60.0)
    folder = tempfile.mkdtemp(prefix="walrus-asv-probe-")
    try:
        if len(inspect.signature(measure).parameters) == 2:  # a ceiling: (folder, sizes)
            measure(Path(folder), sizes)
        else:
            measure(Path(folder), backend, sizes)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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
    if sys.argv[1] in TARGET_ROWS:
        target_row(sys.argv[1], sys.argv[2], int(sys.argv[3]))
    else:
        main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
