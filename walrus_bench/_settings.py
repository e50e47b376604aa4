"""The resolved settings of one run: each benchmark's defaults, then variables, then flags."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping

import attrs

# The library's own parsers of these settings (private: walrus has no public parsing API), so
# that WALRUS_FSYNC and --fsync mean here what they mean to the walrus command line.
from walrus import FsyncSchedule, Schedule
from walrus._settings_parse import fsync_label, parse_backend, parse_fsync

from ._options import (
    parse_batch_size,
    parse_duration,
    parse_size,
    parse_thread_count,
    parse_threads,
    pick,
)

DEFAULT_FSYNC: Schedule = FsyncSchedule.Milliseconds(1000)


@attrs.frozen
class Defaults:
    """A benchmark's defaults, as in the original."""

    threads: tuple[int, int]
    duration: float
    batch_size: int = 0
    ranged: bool = False  # threads is a range to sweep (scaling) rather than one count


DEFAULTS = {
    "writes": Defaults((10, 10), 120.0),
    "reads": Defaults((5, 5), 60.0),
    "scaling": Defaults((1, 10), 30.0, ranged=True),
    "batch": Defaults((16, 16), 120.0, batch_size=2000),
    "batch-scaling": Defaults((1, 10), 30.0, batch_size=256, ranged=True),
}


@attrs.frozen
class Settings:
    """What a benchmark runs with; ``describe()`` goes into the summary."""

    threads: tuple[int, int]
    duration: float
    read_duration: float
    batch_size: int
    fsync: Schedule
    backend: str | None
    byte_budget: int | None

    def describe(self, benchmark: str) -> dict[str, object]:
        low, high = self.threads
        config: dict[str, object] = {
            "threads": f"{low}-{high}" if DEFAULTS[benchmark].ranged else high,
            "duration_s": self.duration, "fsync": fsync_label(self.fsync),
            "backend": self.backend or "auto",
        }
        if benchmark == "reads":
            config["read_duration_s"] = self.read_duration
        if self.batch_size:
            config["batch_size"] = self.batch_size
        return config


def _one_count(text: str) -> tuple[int, int]:
    count = parse_thread_count(text)
    return count, count


def _arg(args: argparse.Namespace, name: str) -> str | None:
    value = getattr(args, name, None)
    return None if value is None else str(value)


def resolve_settings(benchmark: str, args: argparse.Namespace,
                     environ: Mapping[str, str] | None = None) -> Settings:
    """Flags beat ``WALRUS_*`` variables, which beat the benchmark's defaults."""
    env = os.environ if environ is None else environ
    d = DEFAULTS[benchmark]

    def var(name: str) -> tuple[str, str | None]:
        return name, env.get(name)

    parse = parse_threads if d.ranged else _one_count
    threads = pick(parse, d.threads, ("--threads", _arg(args, "threads")), var("WALRUS_THREADS"))
    duration_flag = ("--duration", _arg(args, "duration"))
    write_sources = [("--write-duration", _arg(args, "write_duration")), duration_flag]
    if benchmark == "reads":
        write_sources.append(var("WALRUS_WRITE_DURATION"))
    duration = pick(parse_duration, d.duration, *write_sources, var("WALRUS_DURATION"))
    read_duration = pick(parse_duration, duration,
                         ("--read-duration", _arg(args, "read_duration")), duration_flag,
                         var("WALRUS_READ_DURATION"), var("WALRUS_DURATION"))
    batch_size = (pick(parse_batch_size, d.batch_size, ("--batch-size", _arg(args, "batch_size")),
                       var("WALRUS_BATCH_SIZE")) if d.batch_size else 0)
    fsync = pick(parse_fsync, DEFAULT_FSYNC, ("--fsync", _arg(args, "fsync")),
                 var("WALRUS_FSYNC"))
    backend = pick(parse_backend, None, ("--backend", _arg(args, "backend")),
                   var("WALRUS_BACKEND"))
    budget = pick(parse_size, None, ("--disk-budget", _arg(args, "disk_budget")))
    return Settings(threads, duration, read_duration, batch_size, fsync, backend, budget)
