"""Per-thread tallies and latency samples, published once per chunk of operations.

Workers never share a counter on the hot path: each owns a :class:`Tally` that the monitor
reads without a lock (a torn read under the GIL is at worst one chunk stale).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable

import attrs


class Tally:
    """What one worker has done so far."""

    __slots__ = ("bytes", "entries", "error", "ops", "samples")

    def __init__(self) -> None:
        self.ops = 0
        self.entries = 0
        self.bytes = 0
        self.samples = array("q")  # nanoseconds of the timed calls
        self.error: str | None = None


@attrs.frozen
class Totals:
    """The sum of many tallies at one moment."""

    ops: int = 0
    entries: int = 0
    bytes: int = 0

    @classmethod
    def of(cls, tallies: Iterable[Tally]) -> Totals:
        ops = entries = size = 0
        for t in tallies:
            ops += t.ops
            entries += t.entries
            size += t.bytes
        return cls(ops, entries, size)


@attrs.frozen
class Latency:
    """Percentiles of sampled call latencies, in microseconds."""

    samples: int
    p50: float
    p90: float
    p99: float
    p99_9: float
    max: float

    @classmethod
    def of(cls, tallies: Iterable[Tally]) -> Latency | None:
        merged = sorted(x for t in tallies for x in t.samples)
        if not merged:
            return None
        n = len(merged)

        def pct(q: float) -> float:
            return merged[min(n - 1, max(0, math.ceil(q * n) - 1))] / 1000.0

        return cls(n, pct(0.50), pct(0.90), pct(0.99), pct(0.999), merged[-1] / 1000.0)

    def as_dict(self) -> dict[str, float]:
        return {"samples": self.samples, "p50": self.p50, "p90": self.p90, "p99": self.p99,
                "p99.9": self.p99_9, "max": self.max}
