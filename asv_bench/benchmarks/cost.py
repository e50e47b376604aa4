"""Deterministic costs: the series that regression checks read (lower is better).

Wall-clock time on a shared 2-core machine moves by 2x with whatever else runs; what the code
does per entry does not. So each figure here is counted, not timed, in a process of its own
(``_probe.py``), and only between two markers around the operation:

* ``Instructions`` (CPU-bound paths): machine instructions per entry, user space, all threads,
  counted by valgrind's callgrind, the way CodSpeed measures. Run to run they agree within
  2 %, on a busy machine too. Needs ``valgrind`` (Debian: ``apt-get install valgrind``);
  without it these benchmarks are skipped.
* ``Syscalls`` (I/O-bound paths): the write, sync and io_uring system calls per entry, counted
  by strace. A durable append's time is the device's fsync latency, which no code change here
  moves and which swings tenfold on a shared disk; what the code controls is how many writes
  and syncs it asks for. That count is exact for the caller's thread; the background
  threads' few calls depend on timing and move it by up to 3 %. Needs ``strace``.

Their timed twins are in ``durable`` (I/O, wall clock, with asv's noise statistics) and
``wal`` (wall clock of everything): a second series for context, not for verdicts.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from . import _series
from ._probe import backends, smoke

PROBE = str(Path(__file__).resolve().parent / "_probe.py")
BACKENDS = backends()
IO_CALLS = ("write", "pwrite64", "writev", "pwritev", "pwritev2", "fsync", "fdatasync",
            "sync_file_range", "msync", "io_uring_enter", "fallocate", "ftruncate", "openat")
"""The system calls that move data to storage or make it durable (and open segments)."""


def _probe_env() -> dict[str, str]:
    """A fixed hash seed: dict layouts, and so instruction counts, do not vary run to run."""
    return {**os.environ, "PYTHONHASHSEED": "0"}


def count_instructions(operation: str, backend: str, entries: int) -> float:
    """Instructions per entry of ``operation``, from callgrind's dump at the end marker."""
    with tempfile.TemporaryDirectory(prefix="walrus-asv-cg-") as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(
            ["valgrind", "--tool=callgrind", "--zero-before=getppid", "--dump-before=getpgrp",
             f"--callgrind-out-file={out}", sys.executable, PROBE, operation, backend,
             str(entries)],
            check=True, env=_probe_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # The first dump holds what ran between the markers (the final file what followed).
        text = (Path(tmp) / "callgrind.out.1").read_text()
    found = re.search(r"^summary:\s+(\d+)", text, re.MULTILINE)
    if found is None:
        raise RuntimeError("callgrind wrote no summary")
    return int(found.group(1)) / entries


SHARED_SYNCS = ("durable_append_4_threads", "group_commit_4")
"""Operations whose count depends on timing: how many of four threads' entries a sync covers
depends on when each thread gets the GIL back. Of 80 processes of the four-thread append
(2026-12-05), 3 made 1.5-2x the median's ``fdatasync`` calls; so these figures are the median
of :data:`PROCESSES` processes, which such a process does not move."""
PROCESSES = smoke(5, 1)


def count_syscalls(operation: str, backend: str, entries: int) -> float:
    """Storage system calls per entry of ``operation`` (the median of :data:`PROCESSES`
    processes for :data:`SHARED_SYNCS`, else one)."""
    runs = PROCESSES if operation in SHARED_SYNCS else 1
    return statistics.median(_count_syscalls_once(operation, backend, entries)
                             for _ in range(runs))


def _count_syscalls_once(operation: str, backend: str, entries: int) -> float:
    """Storage system calls per entry of ``operation``, from strace's log between markers."""
    with tempfile.TemporaryDirectory(prefix="walrus-asv-st-") as tmp:
        log = Path(tmp) / "strace.log"
        subprocess.run(
            ["strace", "-f", "-qq", "-o", str(log), "-e",
             "trace=getppid,getpgrp," + ",".join(IO_CALLS), sys.executable, PROBE, operation,
             backend, str(entries)],
            check=True, env=_probe_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        lines = log.read_text().splitlines()
    calls, inside = 0, False
    for line in lines:
        if "resumed>" in line:  # the second half of a call strace split across threads
            continue
        if "getppid(" in line:
            inside = True
        elif "getpgrp(" in line:
            return calls / entries
        elif inside:
            calls += 1
    raise RuntimeError("the probe's end marker is missing from strace's log")


class _Counted:
    """One figure per backend, from a tool that may be missing (then asv skips it)."""

    params = (BACKENDS,)
    param_names = ("backend",)
    timeout = 600
    tool = ""

    def setup(self, backend: str) -> None:
        if shutil.which(self.tool) is None:
            raise NotImplementedError(f"{self.tool} is not installed")  # asv: skipped


def _track(count: Callable[[str, str, int], float], operation: str, entries: int,
           doc: str) -> Callable[[_Counted, str], float]:
    """A ``track_*`` benchmark: ``count`` per entry of ``operation`` over ``entries``."""

    def track(self: _Counted, backend: str) -> float:
        return count(operation, backend, entries)

    track.__doc__ = doc
    return track


INSTRUCTIONS: dict[str, tuple[str, int, str]] = {
    "append": ("append", 2000, "``append_for_topic`` of 100 bytes."),
    "batch_append": ("batch_append", 4000, "``batch_append_for_topic`` of 2000 x 100 bytes, "
                     "per entry."),
    "read_next": ("read_next", 2000, "``read_next`` under AtLeastOnce(10000)."),
    "batch_read": ("batch_read", 4000, "``batch_read_for_topic`` with a 1 MiB cap, per entry."),
    "durable_append": ("durable_append", 200, "``append_for_topic`` under SyncEach: walrus's "
                       "own CPU on the durable path."),
    "named_read_next": ("named_read_next", 2000, "``read_next(consumer=...)`` of a named "
                        "consumer under AtLeastOnce(10000), as ``walrus bench targets`` runs "
                        "it (its baseline: ``track_read_next``)."),
    "ms_append": ("ms_append", 2000, "``append_for_topic`` under Milliseconds(1000), as "
                  "``walrus bench targets`` runs it (its baseline: ``track_append``)."),
    "threads4_append": ("append_4_threads", 2000, "4 threads appending to 4 topics, NoFsync, "
                        "per entry, as ``walrus bench targets`` runs it."),
}
"""``Instructions.track_<key>``: instructions per entry of that operation of ``_probe.py``
over that many entries. Tables, so that a figure is one row (the names are asv's keys, which
its history follows: never rename one)."""

SYSCALLS: dict[str, tuple[str, int, str]] = {
    "durable_append": ("durable_append", 200, "``append_for_topic`` under SyncEach: writes "
                       "and syncs asked of the kernel."),
    "durable_read_next": ("durable_read_next", 200, "``read_next`` under StrictlyAtOnce "
                          "(SyncEach): the cursor persisted per read."),
    "durable_append_4_threads": ("durable_append_4_threads", 200, "4 threads appending under "
                                 "SyncEach, per entry, as ``walrus bench targets`` runs it: "
                                 "group commit's share of a sync (depends on timing)."),
}
"""``Syscalls.track_<key>``: storage system calls per entry, likewise."""


def _tracks(count: Callable[[str, str, int], float], table: dict[str, tuple[str, int, str]]
            ) -> Callable[[type[_Counted]], type[_Counted]]:
    """A class decorator: a ``track_<key>`` figure for each row of ``table``."""

    def declare(cls: type[_Counted]) -> type[_Counted]:
        for key, (operation, entries, doc) in table.items():
            setattr(cls, f"track_{key}", _track(count, operation, entries, doc))
        return cls

    return declare


@_series.series(_series.COUNTED)
@_tracks(count_instructions, INSTRUCTIONS)
class Instructions(_Counted):
    """CPU-bound paths (no fsync), deterministic: instructions per entry (valgrind)."""

    tool = "valgrind"
    unit = "instructions/entry"


@_series.series(_series.COUNTED)
@_tracks(count_syscalls, SYSCALLS)
class Syscalls(_Counted):
    """I/O-bound paths, deterministic: storage system calls per entry (strace)."""

    tool = "strace"
    unit = "syscalls/entry"


BASELINES: dict[str, tuple[Callable[[str, str, int], float], int, str, str]] = {
    "mapping_loop": (count_instructions, 2000, "Stores into a shared mapping (header + crc32 "
                     "+ payload per record)", "Instructions.track_append"),
    "read_loop": (count_instructions, 2000, "Buffered sequential read + unpack + crc check",
                  "Instructions.track_read_next"),
    "joined_write": (count_instructions, 4000, "One joined write per 2000 records",
                     "Instructions.track_batch_append"),
    "parse_loop": (count_instructions, 4000, "Parsing the same records from memory",
                   "Instructions.track_batch_read"),
    "fdatasync_loop": (count_syscalls, 200, "pwrite + fdatasync per record into a "
                       "preallocated, synced file", "Syscalls.track_durable_append"),
    "group_commit_4": (count_syscalls, 200, "4 threads, the plain-Python leader/follower group "
                       "commit (depends on timing)", "Syscalls.track_durable_append_4_threads"),
}
"""The plain-Python baselines of ``walrus bench targets`` (``_probe.TARGET_ROWS``): how they
are counted, over how many entries, what they are, and whose baseline each is."""


def _baseline(operation: str) -> Callable[[_Counted, str], float]:
    count, entries, what, whose = BASELINES[operation]
    return _track(count, operation, entries, f"{what}: ``{whose}``'s baseline.")


class _Plain(_Counted):
    """The plain-Python baselines: no walrus, no backend."""

    params = (["plain"],)


@_series.series(_series.BASELINE)
class InstructionsBaselines(_Plain):
    """The CPU-bound rows' baselines, counted as ``Instructions`` counts walrus (named so
    that ``--bench '^cost\\.Instructions\\.'`` selects walrus's series only)."""

    tool = "valgrind"
    unit = "instructions/entry"
    track_mapping_loop = _baseline("mapping_loop")
    track_read_loop = _baseline("read_loop")
    track_joined_write = _baseline("joined_write")
    track_parse_loop = _baseline("parse_loop")


@_series.series(_series.BASELINE)
class SyscallsBaselines(_Plain):
    """The I/O-bound rows' baselines, counted as ``Syscalls`` counts walrus."""

    tool = "strace"
    unit = "syscalls/entry"
    track_fdatasync_loop = _baseline("fdatasync_loop")
    track_group_commit_4 = _baseline("group_commit_4")
