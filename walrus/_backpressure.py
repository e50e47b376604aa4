"""Backpressure at a roll: a writer that outruns the background worker lets retention catch
up before it starts another segment, so that a topic with ``max_bytes`` stays within its disk
bound at any append speed (the way RocksDB stalls writes when compaction falls behind).

A segment may expire, and be deleted, only once it is sealed, synced and indexed; that is the
background worker's work, about 35 ms per 8 MiB segment on a small cloud disk (two fsyncs and
an unlink), and one thread appending from a tight loop fills a segment faster. Without a brake
the directory then grows past the bound for as long as the writer keeps going.

The brake is applied only at a roll (the append path pays nothing else), and only when all of
these hold, so that waiting always has work to wait for:

- a segment sealed earlier is still waiting for the worker (the worker is behind), and
- a topic with ``max_bytes`` holds more than ``max_bytes`` plus one segment: expiry then drops
  at least one slice as soon as that segment is indexed.

The writer then does the worker's pending work itself (index, expire, reclaim; the worker's
``work`` lock keeps the two from overlapping) outside the append lock, and writes again. It
does so once per roll: a segment that nothing can free (a topic without retention that nobody
consumes holds it, or another process holds the consumer registry for a moment) costs the
writer that work, never a wait without end. A directory where no topic has ``max_bytes`` never
stalls, and a state record (a cursor, a mark, expiry's own record) never waits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only types: the log sits below this module
    from ._log import Log
    from ._retention import Settings
    from ._segment import Segment

logger = logging.getLogger("walrus")


class Stall(Exception):
    """Raised by ``Log.make_room`` under the append lock, before anything was written: the
    writer must relieve the worker (outside the lock) and then write again. It never leaves
    the log's write methods."""

    def __init__(self, segment: Segment) -> None:
        super().__init__(segment)
        self.segment = segment
        """The segment whose roll waits."""


class Throttle:
    """Decides, at each roll, whether the writer must first do the worker's pending work."""

    def __init__(self, log: Log, settings: Settings, segment_size: int,
                 work: Callable[[], None]) -> None:
        self.log = log
        self.settings = settings
        self.segment_size = segment_size
        self.work = work
        """Indexes the sealed segments, expires and reclaims (the worker's ``run_once``)."""
        self.relieved: Segment | None = None
        """The segment whose roll was relieved last: its roll waits no more."""

    def due(self) -> bool:
        """Whether the roll about to happen must wait (under the append lock: reads only)."""
        log = self.log
        if not log.to_index or log.active is self.relieved:
            return False
        for name, limits in self.settings.limits.items():
            if limits.max_bytes is None:
                continue
            t = log.by_name.get(name)
            if t is not None and t.nbytes > limits.max_bytes + self.segment_size:
                return True
        return False

    def relieve(self, stall: Stall) -> None:
        """Do the pending work (outside the append lock); the stalled roll then goes on. A
        failure of that work is the worker's, not the append's (nothing of the append was
        written yet): logged, as the worker logs its own, and the append goes on."""
        try:
            self.work()
        except Exception:
            logger.exception("walrus: retention work at a segment roll failed")
        finally:
            self.relieved = stall.segment
