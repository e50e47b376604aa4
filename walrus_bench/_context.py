"""One benchmark run: its output folder, scratch data directory, clock and summary."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import attrs

from walrus import Consistency, ReadConsistency, Schedule, Walrus

from ._progress import Progress
from ._resources import Usage
from ._runner import Phase, RowMaker, RunClock
from ._series import Series
from ._summary import Summary

ORIGINAL_CONSISTENCY = ReadConsistency.AtLeastOnce(5000)
"""What the original's benchmarks open their instance with."""
BUDGET_CAP = 16 << 30
"""Default disk budget: at most 16 GiB ..."""
BUDGET_SHARE = 0.5
"""... and at most half the free space where the data goes."""


def data_base(data_dir: str | None) -> Path:
    """Where scratch data goes: ``--data-dir``, else ``$WALRUS_DATA_DIR``, else ``./wal_files``."""
    return Path(data_dir or os.environ.get("WALRUS_DATA_DIR") or "wal_files")


def default_budget(base: Path) -> int:
    """Bytes a run may write before its writers stop early, so a long run cannot fill the disk."""
    return min(BUDGET_CAP, int(shutil.disk_usage(base).free * BUDGET_SHARE))


@attrs.define
class Run:
    """Shared plumbing of every benchmark command."""

    out: Path
    scratch: Path
    summary: Summary
    progress: Progress
    byte_budget: int
    clock: RunClock = attrs.Factory(RunClock)
    usage_start: Usage = attrs.Factory(Usage.now)

    def series(self, name: str, columns: Sequence[str]) -> Series:
        self.summary.files.append(name)
        return Series(self.out / name, columns)

    def phase(self, label: str, duration: float, series: Series | None = None,
              row: RowMaker | None = None, budget: bool = True) -> Phase:
        return Phase(label, duration, self.clock, self.progress, series, row,
                     self.byte_budget if budget else None)

    def open_wal(self, name: str, fsync: Schedule, backend: str | None,
                 consistency: Consistency = ORIGINAL_CONSISTENCY,
                 key: str | None = None) -> Walrus:
        """A fresh instance in its own scratch folder (the original starts from empty)."""
        return Walrus(data_dir=self.scratch / name, key=key, consistency=consistency,
                      fsync_schedule=fsync, backend=backend)

    def finish(self) -> int:
        """Write summary.json, print the table; exit status 1 if any worker failed."""
        self.summary.usage = Usage.now().since(self.usage_start)
        self.summary.files.append("summary.json")
        self.summary.write(self.out)
        print(self.summary.table())
        print(f"results in {self.out}/")
        return 1 if self.summary.errors else 0


def add_common(parser: argparse.ArgumentParser) -> None:
    """Options every measuring subcommand has: where :func:`start_run` puts its files."""
    parser.add_argument("--out", default="bench_results", metavar="DIR",
                        help="folder for the CSV files and summary.json (default: %(default)s)")
    parser.add_argument("--data-dir", metavar="DIR",
                        help="where scratch data goes (default: $WALRUS_DATA_DIR or ./wal_files); "
                             "a fresh subfolder is made and removed afterwards")
    parser.add_argument("--keep-data", action="store_true", help="keep the scratch data")


@contextmanager
def start_run(benchmark: str, out: str, data_dir: str | None, keep_data: bool,
              byte_budget: int | None, config: Mapping[str, object]) -> Iterator[Run]:
    """Create the folders, yield the run, remove the scratch data afterwards."""
    out_path = Path(out)
    out_path.mkdir(parents=True, exist_ok=True)
    base = data_base(data_dir)
    made_base = not base.exists()
    base.mkdir(parents=True, exist_ok=True)
    budget = byte_budget if byte_budget is not None else default_budget(base)
    scratch = Path(tempfile.mkdtemp(prefix=f"bench-{benchmark}-", dir=base))
    summary = Summary(benchmark, {**config, "disk_budget_bytes": budget})
    try:
        yield Run(out_path, scratch, summary, Progress(sys.stderr), budget)
    finally:
        if keep_data:
            print(f"data kept in {scratch}/")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
            if made_base:
                with contextlib.suppress(OSError):
                    base.rmdir()  # only if nothing else is in it
