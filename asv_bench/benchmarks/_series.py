"""Which series a benchmark's figures belong to, said on the dashboard.

asv's pages show a benchmark's ``pretty_name`` where they would show its name (its results stay
keyed by the name, so the history is kept; ``asv compare`` and ``asv continuous`` still print
the name). :func:`series` sets it to the series in brackets, first, so that the overview's
narrow tiles show it, then the class and method. The series are listed in
docs/benchmarks.md, and ``asv_bench/stability.py`` counts them apart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T", bound=type)

COUNTED = "counted"
"""Instructions (CPU-bound paths) or system calls (I/O-bound paths): the series to gate on."""
BASELINE = "counted baseline"
"""The same counts of a plain-Python baseline."""
IO_RATIO = "I/O ratio"
"""Walrus's time per durable write over the device's: the I/O-bound series to track."""
DEVICE = "device-bound"
"""The disk's fsync latency as a caller sees it, with its noise: context."""
WALL = "wall clock"
"""Time per entry of a CPU-bound path: the second series, context."""
MEMORY = "memory"


def series(tag: str, device_bound: str = "") -> Callable[[T], T]:
    """A class decorator: each ``track_``/``time_`` benchmark of the class labelled ``tag``
    (and, with ``device_bound``, the parameters under which its figures are device-bound),
    each ``peakmem_`` one labelled MEMORY."""

    def label(cls: T) -> T:
        for attr in dir(cls):
            if attr.startswith(("track_", "time_", "peakmem_")):
                text = MEMORY if attr.startswith("peakmem_") else tag
                if device_bound and not attr.startswith("peakmem_"):
                    text += f"; {DEVICE}: {device_bound}"
                getattr(cls, attr).pretty_name = f"[{text}] {cls.__name__}.{attr}"
        return cls

    return label
