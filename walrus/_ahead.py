"""One memory bound for the read-ahead of every cursor of an instance.

``read_next`` checks a run of entries at once and keeps the rest for the next calls (the
read-ahead, up to 64 KiB of payloads per cursor). Kept per topic without a common bound,
20,000 topics that a consumer reads a little of each held 20,000 read-aheads: over 100 KiB
each. The budget bounds them together (:data:`AHEAD_TOTAL`): each refill is charged, the
cursors whose read-ahead was refilled longest ago give theirs up when the total is over,
and when many cursors hold one, each refill gets a smaller share, so that reading round-robin
over many topics still finds a few entries ahead in each instead of refilling every call.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Protocol

AHEAD_TOTAL = 8 << 20
"""Bytes (payloads and their objects) the read-ahead of all cursors may hold together."""
ENTRY_COST = 120
"""What an entry kept ahead costs beside its payload: the ``Entry`` tuple, the ``bytes``
object's header and its list slot (measured with tracemalloc: 105-120 bytes)."""
MIN_SHARE = 256
"""The least a refill asks for when many cursors share the budget (the first entry is
always read, whatever its size)."""


def payload_bound(payloads: list[bytes], asked: int) -> int:
    """The payload bytes of a run read with a budget of ``asked``, without a pass over it
    (a ``sum`` over 500 payloads would add to every ``read_next`` a tenth of its cost):
    exact for entries of one size, never below the truth by more than the run's middle
    entries' excess over its first and last. A run stops before the budget unless its
    first entry alone is over it."""
    if not payloads:
        return 0
    first, last = len(payloads[0]), len(payloads[-1])
    return min(len(payloads) * max(first, last), max(asked, first))


class Holder(Protocol):
    """A cursor with a read-ahead (a topic's shared cursor, or a named consumer)."""

    ahead: list[Any]
    ahead_seq: int
    read_lock: threading.Lock


class AheadBudget:
    """The read-ahead bytes every cursor of one instance holds, oldest refill first."""

    def __init__(self, total: int = AHEAD_TOTAL) -> None:
        self.total = total
        self.held = 0
        self._by_cursor: OrderedDict[Holder, int] = OrderedDict()
        self._lock = threading.Lock()

    def share(self, most: int) -> int:
        """The payload bytes the next refill may ask for (at most ``most``): an equal share
        of the budget among the cursors that hold a read-ahead and the one refilling."""
        return max(MIN_SHARE, min(most, self.total // (len(self._by_cursor) + 1)))

    def charge(self, cursor: Holder, payloads: list[bytes], asked: int) -> None:
        """``cursor``'s read-ahead is now ``payloads``, read with a budget of ``asked`` bytes
        (called under its read lock). Older read-aheads are dropped while the total is over
        the budget; one whose cursor is in a read right now is left to a later charge (never
        waited for: the caller holds a read lock of its own)."""
        cost = ENTRY_COST * len(payloads) + payload_bound(payloads, asked)
        with self._lock:
            by_cursor = self._by_cursor
            self.held += cost - by_cursor.pop(cursor, 0)
            by_cursor[cursor] = cost
            busy: list[tuple[Holder, int]] = []
            while self.held > self.total and len(by_cursor) > 1:
                old, old_cost = by_cursor.popitem(last=False)
                if old is cursor:  # the newest: it is charged last, never dropped here
                    by_cursor[old] = old_cost
                    break
                if old.read_lock.acquire(blocking=False):
                    try:
                        old.ahead, old.ahead_seq = [], 0
                    finally:
                        old.read_lock.release()
                    self.held -= old_cost
                else:
                    busy.append((old, old_cost))
            for old, old_cost in reversed(busy):  # still held: oldest again
                by_cursor[old] = old_cost
                by_cursor.move_to_end(old, last=False)
