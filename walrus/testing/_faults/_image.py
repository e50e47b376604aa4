"""What a disk may hold after a power cut, given the writes it had not made durable yet.

Pure functions, no files. A write that no successful sync covered may reach the platter
whole, partly or not at all, and writes may land out of order. The model works per 512-byte
sector: bytes that no undurable write touched are exactly as they were (a disk does not
damage data at rest), while each touched sector ends up in one of the states the page cache
held for it (after the first k of the writes that touched it, for any k), and may be torn at
any byte between two such states. Different sectors of one page or one write choose
independently, which gives torn pages and reordered writes.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import NamedTuple

SECTOR = 512
POLICIES = ("random", "lose_all", "keep_all", "in_order", "tear")
"""How undurable writes fare: each sector at random; all dropped; all kept; a prefix of the
writes in issue order (a crash without reordering); every touched sector torn."""


class Write(NamedTuple):
    """One write that is not durable yet: the bytes it replaced and the bytes it wrote."""

    tick: int
    pos: int
    old: bytes
    new: bytes


def crash_image(current: bytes, writes: Sequence[Write], rng: random.Random,
                policy: str = "random") -> bytes:
    """The bytes a file may hold after a power cut.

    ``current`` is what the file holds now (every write applied), ``writes`` the writes no
    sync made durable, oldest first.
    """
    if not writes or policy == "keep_all":
        return current
    image = bytearray(current)
    for w in reversed(writes):  # back to the durable state
        image[w.pos:w.pos + len(w.old)] = w.old
    if policy == "lose_all":
        return bytes(image)
    touching: dict[int, list[int]] = {}
    for i, w in enumerate(writes):
        for sector in range(w.pos // SECTOR, (w.pos + len(w.new) - 1) // SECTOR + 1):
            touching.setdefault(sector, []).append(i)
    prefix = rng.randint(0, len(writes))
    for sector, indexes in touching.items():
        if policy == "in_order":
            keep = sum(1 for i in indexes if i < prefix)
        else:
            keep = rng.randint(0, len(indexes))
        versions = _versions(image, sector, [writes[i] for i in indexes])
        state = versions[keep]
        if policy == "tear" or (policy == "random" and rng.random() < 0.1):
            other = versions[rng.randint(0, len(indexes))]
            cut = rng.randrange(1, SECTOR)
            state = state[:cut] + other[cut:] if rng.random() < 0.5 else other[:cut] + state[cut:]
        start = sector * SECTOR
        image[start:start + len(state)] = state
    return bytes(image)


def _versions(durable: bytearray, sector: int, writes: Sequence[Write]) -> list[bytes]:
    """The sector's contents after 0, 1, ... of ``writes`` (all of which touch it)."""
    start = sector * SECTOR
    end = min(start + SECTOR, len(durable))
    state = bytearray(durable[start:end])
    out = [bytes(state)]
    for w in writes:
        lo, hi = max(start, w.pos), min(end, w.pos + len(w.new))
        state[lo - start:hi - start] = w.new[lo - w.pos:hi - w.pos]
        out.append(bytes(state))
    return out
