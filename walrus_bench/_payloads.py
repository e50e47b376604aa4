"""Payloads made before the clock starts, so the hot loops only call walrus.

The original fills each entry with ``counter % 256`` at a random size; building bytes per call
would cost more than an append in Python, so a pool of chunks is cycled instead.
"""

from __future__ import annotations

import random
from collections.abc import Callable

CHUNK = 64
"""Appends per chunk: the last one of each chunk is timed (1 in 64 sampled)."""

Chunk = tuple[tuple[bytes, ...], bytes, int]
"""``(untimed payloads, the timed payload, total bytes of the chunk)``."""


def uniform_size(low: int, high: int, seed: int) -> Callable[[int], int]:
    """Sizes drawn uniformly from low..high inclusive (the writes and scaling workloads)."""
    rng = random.Random(seed)
    return lambda _counter: rng.randint(low, high)


def stepped_size(base: int, span: int) -> Callable[[int], int]:
    """``base + counter % span`` (the batch workload: 500 + counter % 524)."""
    return lambda counter: base + counter % span


def payloads(count: int, size_of: Callable[[int], int], start: int = 0) -> list[bytes]:
    """``count`` payloads, entry ``i`` filled with ``i % 256``."""
    return [bytes([i % 256]) * size_of(i) for i in range(start, start + count)]


def chunks(size_of: Callable[[int], int], count: int = 16) -> list[Chunk]:
    """``count`` chunks of CHUNK payloads each, ready to cycle through."""
    out: list[Chunk] = []
    for n in range(count):
        batch = payloads(CHUNK, size_of, n * CHUNK)
        out.append((tuple(batch[:-1]), batch[-1], sum(map(len, batch))))
    return out
