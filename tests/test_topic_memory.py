"""Memory per topic stays small however many topics a consumer reads a little of.

Counted with tracemalloc on a quiesced log (no background work while measuring), so the
figures are exact and the same on every run: no timing, no RSS.
"""

from __future__ import annotations

import threading
import tracemalloc
from pathlib import Path

import pytest

from walrus import FsyncSchedule, ReadConsistency, Walrus
from walrus._ahead import AHEAD_TOTAL, ENTRY_COST, AheadBudget

from ._quiesce import quiesced
from .conftest import BACKENDS

TOPIC_BYTES = 4096
"""The bound per topic: its own structures and its share of the read-ahead budget."""
TOPICS = 1000
"""A twentieth of the 20,000 topics the budget is sized for, with a twentieth of it: each
topic's share is what it is at 20,000 (docs/performance.md has the full-size figures)."""


@pytest.mark.parametrize("backend", BACKENDS)
def test_many_topics_read_a_little_each_cost_under_4_kib_each(tmp_path: Path,
                                                              backend: str) -> None:
    """Topics of 20 entries, one read from each: each read keeps the rest of its run ahead
    (about 5 KiB of entries per topic) unless one budget bounds them all."""
    payload = b"p" * 100
    with Walrus(data_dir=tmp_path, backend=backend, fsync_schedule=FsyncSchedule.NoFsync,
                consistency=ReadConsistency.AtLeastOnce(1000)) as wal, quiesced(wal):
        wal._cursor.ahead_budget.total = AHEAD_TOTAL * TOPICS // 20_000
        names = [f"topic-{i}" for i in range(TOPICS)]
        batch = [payload] * 20
        tracemalloc.start()
        try:
            for name in names:
                wal.batch_append_for_topic(name, batch)
            for name in names:
                entry = wal.read_next(name)
                assert entry is not None and entry.offset == 0 and entry.data == payload
            del entry, batch
            used = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        assert used / TOPICS < TOPIC_BYTES, f"{used / TOPICS:.0f} bytes per topic"
        for name in names[:3] + names[-3:]:  # what was dropped is read again, in order
            assert [e.offset for e in wal.batch_read_for_topic(name, 1 << 20)] == \
                list(range(1, 20))


class _Cursor:
    __slots__ = ("ahead", "ahead_seq", "read_lock")

    def __init__(self) -> None:
        self.ahead: list[object] = [object()]
        self.ahead_seq = 7
        self.read_lock = threading.Lock()


def test_the_oldest_read_ahead_goes_first_unless_its_cursor_is_reading() -> None:
    budget = AheadBudget(total=10 * (ENTRY_COST + 100))
    cursors = [_Cursor() for _ in range(3)]
    run = [b"x" * 100] * 4
    budget.charge(cursors[0], run, 400)
    budget.charge(cursors[1], run, 400)
    assert budget.share(1 << 16) == budget.total // 3
    with cursors[0].read_lock:  # in a read: not dropped now, and stays the oldest
        budget.charge(cursors[2], run, 400)
    assert [c.ahead_seq for c in cursors] == [7, 0, 7] and cursors[1].ahead == []
    cursors[1].ahead, cursors[1].ahead_seq = [object()], 9  # refilled
    budget.charge(cursors[1], run, 400)  # over again: the oldest, free now, goes
    assert [c.ahead_seq for c in cursors] == [0, 9, 7]
    assert budget.held == 2 * 4 * (ENTRY_COST + 100) <= budget.total < AHEAD_TOTAL
