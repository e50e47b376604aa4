"""Which series a benchmark's figures belong to, said on the dashboard.

asv shows a benchmark's ``pretty_name`` where it would show its name (its results stay keyed
by the name, so the history is kept); :func:`series` sets it to the name followed by the
series in brackets. The series are listed in docs/benchmarks.md, and
``asv_bench/stability.py`` counts them apart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T", bound=type)

COUNTED_CPU = "counted: instructions, CPU-bound path; the series to gate on"
COUNTED_IO = "counted: system calls, I/O-bound path; the series to gate on"
BASELINE = "counted: plain-Python baseline"
IO_RATIO = "I/O-bound: walrus time / device time; the I/O series to track"
DEVICE = "device-bound: fsync latency, with its noise; context"
WALL = "wall clock, second series"
MEMORY = "memory"


def series(tag: str, device_bound: str = "") -> Callable[[T], T]:
    """A class decorator: each ``track_``/``time_`` benchmark of the class labelled ``tag``
    (and, with ``device_bound``, the parameters under which it waits for the device), each
    ``peakmem_`` one labelled MEMORY."""

    def label(cls: T) -> T:
        module = cls.__module__.rsplit(".", 1)[-1]
        for attr in dir(cls):
            if attr.startswith(("track_", "time_", "peakmem_")):
                text = MEMORY if attr.startswith("peakmem_") else tag
                if device_bound and not attr.startswith("peakmem_"):
                    text += f"; device-bound under {device_bound}"
                getattr(cls, attr).pretty_name = f"{module}.{cls.__name__}.{attr} [{text}]"
        return cls

    return label
