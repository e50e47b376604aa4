"""CSV time series in the original's file names and columns."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType


class Series:
    """One CSV file: the header on open, a row per call, flushed so a live plot can follow."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.path = path
        self.columns = tuple(columns)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("w", newline="")
        self._writer = csv.writer(self._file)
        self._writer.writerow(self.columns)
        self._file.flush()

    def write(self, values: Sequence[object]) -> None:
        if len(values) != len(self.columns):
            raise ValueError(f"{self.path.name}: {len(values)} values for "
                             f"{len(self.columns)} columns")
        self._writer.writerow([_cell(v) for v in values])
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Series:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _cell(value: object) -> object:
    """Floats rounded for reading; everything else as is."""
    return round(value, 4) if isinstance(value, float) else value
