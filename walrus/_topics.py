"""Per-topic state: where each entry lives, how far the shared cursor has read, the clean mark."""

from __future__ import annotations

import threading
from array import array
from bisect import bisect_left

from ._codec import SEG_SHIFT

DAMAGED = 1
"""Low bit set on an LSN in a topic's index: the entry's record is damaged on disk.

Records are 8-aligned, so real LSNs have the low bits clear and flagged values still sort
between their neighbours (the index stays ordered for bisection)."""
NEVER_MARKED = -1
MARKED_DIRTY = -2


class Topic:
    """Everything the engine knows about one topic.

    Entries ``first_seq .. next_seq - 1`` are retained on disk; ``lsns[i]`` is the LSN of
    entry ``first_seq + i``. Readers see entries below ``visible`` (under ``SyncEach`` an
    entry becomes visible once durable; otherwise as soon as it is written).
    """

    __slots__ = (
        "cursor",
        "first_seq",
        "lsns",
        "mark",
        "marks",
        "name",
        "nbytes",
        "next_seq",
        "persisted",
        "read_lock",
        "reclaimed",
        "seg",
        "tid",
        "visible",
    )

    def __init__(self, tid: int, name: str, next_seq: int = 0) -> None:
        self.tid = tid
        self.name = name
        self.next_seq = next_seq
        self.visible = next_seq
        self.first_seq = next_seq
        self.lsns = array("Q")
        self.cursor = 0
        """The shared cursor: entries below it are consumed."""
        self.persisted = 0
        """The cursor value last written to the log."""
        self.mark = NEVER_MARKED
        """The next offset when ``mark_topic_clean`` was called, or NEVER_MARKED/MARKED_DIRTY."""
        self.nbytes = 0
        """Bytes of every entry ever indexed (headers and padding included)."""
        self.reclaimed = 0
        """Bytes of entries whose segments were deleted."""
        self.seg = -1
        """Segment of the newest entry."""
        self.marks: list[tuple[int, int]] = []
        """(segment, nbytes before the topic's first entry in it), oldest first."""
        self.read_lock = threading.Lock()
        """Serialises consumers of this topic (and reclamation of its index)."""

    def enter_segment(self, segment: int) -> None:
        """Called before the first entry this topic writes into ``segment``."""
        self.marks.append((segment, self.nbytes))
        self.seg = segment

    @property
    def clean(self) -> bool:
        return self.mark == self.next_seq

    @property
    def size(self) -> int:
        return self.nbytes - self.reclaimed

    def bytes_in(self, segment: int) -> int:
        """Bytes of this topic's entries in ``segment``."""
        for i, (number, before) in enumerate(self.marks):
            if number == segment:
                after = self.marks[i + 1][1] if i + 1 < len(self.marks) else self.nbytes
                return after - before
        return 0

    def lsn_range(self, segment: int) -> tuple[int, int]:
        """Indexes into ``lsns`` of this topic's entries in ``segment`` (damaged ones aside)."""
        lo = bisect_left(self.lsns, segment << SEG_SHIFT)
        hi = bisect_left(self.lsns, (segment + 1) << SEG_SHIFT, lo)
        return lo, hi

    def first_unconsumed_lsn(self, cursor: int) -> int | None:
        """LSN of the entry at ``cursor``, or None when everything is consumed."""
        i = cursor - self.first_seq
        if 0 <= i < len(self.lsns):
            return self.lsns[i] & ~DAMAGED
        return None

    def drop_before(self, segment: int) -> None:
        """Forget entries stored in segments older than ``segment`` (they were deleted)."""
        lo = bisect_left(self.lsns, segment << SEG_SHIFT)
        if lo:
            del self.lsns[:lo]
            self.first_seq += lo
        while self.marks and self.marks[0][0] < segment:
            self.marks.pop(0)
        self.reclaimed = self.marks[0][1] if self.marks else self.nbytes
