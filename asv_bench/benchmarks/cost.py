"""Deterministic costs: the series that regression checks read (lower is better).

Wall-clock time on a shared 2-core machine moves by 2x with whatever else runs; what the code
does per entry does not. So each figure here is counted, not timed, in a process of its own
(``_probe.py``), and only between two markers around the operation:

* ``Instructions`` (CPU-bound paths): machine instructions per entry, user space, all threads,
  counted by valgrind's callgrind, the way CodSpeed measures. Run to run they agree within
  about 1 %, on a busy machine too. Needs ``valgrind`` (Debian: ``apt-get install valgrind``);
  without it these benchmarks are skipped.
* ``Syscalls`` (I/O-bound paths): the write, sync and io_uring system calls per entry, counted
  by strace. A durable append's time is the device's fsync latency, which no code change here
  moves and which swings tenfold on a shared disk; what the code controls is how many writes
  and syncs it asks for, and that is exact. Needs ``strace``.

Their timed twins are in ``durable`` (I/O, wall clock, with asv's noise statistics) and
``wal`` (wall clock of everything): a second series for context, not for verdicts.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from ._probe import backends

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


def count_syscalls(operation: str, backend: str, entries: int) -> float:
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


class Instructions:
    """CPU-bound paths (no fsync), deterministic: instructions per entry (valgrind)."""

    params = (BACKENDS,)
    param_names = ("backend",)
    timeout = 600
    unit = "instructions/entry"

    def setup(self, backend: str) -> None:
        if shutil.which("valgrind") is None:
            raise NotImplementedError("valgrind is not installed")  # asv: skipped

    def track_append(self, backend: str) -> float:
        """``append_for_topic`` of 100 bytes."""
        return count_instructions("append", backend, 2000)

    def track_batch_append(self, backend: str) -> float:
        """``batch_append_for_topic`` of 2000 x 100 bytes, per entry."""
        return count_instructions("batch_append", backend, 4000)

    def track_read_next(self, backend: str) -> float:
        """``read_next`` under AtLeastOnce(10000)."""
        return count_instructions("read_next", backend, 2000)

    def track_batch_read(self, backend: str) -> float:
        """``batch_read_for_topic`` with a 1 MiB cap, per entry."""
        return count_instructions("batch_read", backend, 4000)

    def track_durable_append(self, backend: str) -> float:
        """``append_for_topic`` under SyncEach: walrus's own CPU on the durable path."""
        return count_instructions("durable_append", backend, 200)



class Syscalls:
    """I/O-bound paths, deterministic: storage system calls per entry (strace)."""

    params = (BACKENDS,)
    param_names = ("backend",)
    timeout = 300
    unit = "syscalls/entry"

    def setup(self, backend: str) -> None:
        if shutil.which("strace") is None:
            raise NotImplementedError("strace is not installed")  # asv: skipped

    def track_durable_append(self, backend: str) -> float:
        """``append_for_topic`` under SyncEach: writes and syncs asked of the kernel."""
        return count_syscalls("durable_append", backend, 200)

    def track_durable_read_next(self, backend: str) -> float:
        """``read_next`` under StrictlyAtOnce (SyncEach): the cursor persisted per read."""
        return count_syscalls("durable_read_next", backend, 200)

