"""Per-topic state: where each entry lives, how far the shared cursor has read, the clean mark."""

from __future__ import annotations

import threading
from array import array
from bisect import bisect_left
from collections.abc import Sequence

from ._codec import DAMAGED, NO_MARK, SEG_SHIFT, extend_lost, lost
from ._entry import Entry
from ._speedups import record_bytes


class Topic:
    """Everything the engine knows about one topic.

    Entries ``first_seq .. next_seq - 1`` are retained on disk; ``lsns[i]`` is the LSN of
    entry ``first_seq + i``. Readers see entries below ``visible`` (under ``SyncEach`` an
    entry becomes visible once durable; otherwise as soon as it is written).
    """

    __slots__ = (
        "ahead",
        "ahead_seq",
        "cursor",
        "first_seq",
        "lsns",
        "mark",
        "name",
        "nbytes",
        "next_seq",
        "persisted",
        "read_lock",
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
        self.mark = NO_MARK
        """The next offset when ``mark_topic_clean`` was called, or NO_MARK/MARKED_DIRTY."""
        self.nbytes = 0
        """Bytes the retained entries occupy on disk (headers and padding included)."""
        self.read_lock = threading.Lock()
        """Serialises consumers of this topic (and reclamation of its index)."""
        self.ahead: list[Entry] = []
        """Entries decoded ahead of the cursor: ``ahead_seq, ahead_seq + 1, ...`` (entries
        never change once visible, so this only needs the offsets to match)."""
        self.ahead_seq = 0

    @property
    def clean(self) -> bool:
        return self.mark == self.next_seq

    @property
    def size(self) -> int:
        return self.nbytes

    @property
    def cursor_floor(self) -> int:
        """The lowest place the shared cursor may stand: entries below the persisted cursor
        were consumed for good, and those before ``first_seq`` are gone."""
        return max(self.persisted, self.first_seq)

    def place_cursor(self, at: int) -> None:
        """Put the shared cursor at ``at``, or as near to it as it may stand: never below
        ``cursor_floor``, never past the next offset."""
        self.cursor = min(max(self.cursor_floor, at), self.next_seq)

    def rewind_cursor(self) -> None:
        """A cursor write was undone (``persisted`` is back to what it was): a cursor that
        went past the floor goes back to it, so the entries after it are delivered again."""
        self.cursor = min(self.cursor, self.cursor_floor)

    def lose_until(self, end: int, lsn: int) -> bool:
        """Offsets up to ``end`` (excluded) were lost to damage at ``lsn`` (``extend_lost``)."""
        return extend_lost(self, end, lsn)

    def lose_from(self, start: int, lsn: int) -> None:
        """Offsets from ``start`` up to the first known entry were lost to damage at ``lsn``:
        the index starts at ``start`` (entries are only reclaimed once consumed, so unconsumed
        offsets before the first entry found cannot have been)."""
        if start < self.first_seq:
            self.lsns[0:0] = lost(lsn, self.first_seq - start)
            self.first_seq = start

    def lsn_range(self, segment: int, end: int | None = None) -> tuple[int, int]:
        """Indexes into ``lsns`` of this topic's entries in ``segment`` (before ``end``)."""
        lo = bisect_left(self.lsns, segment << SEG_SHIFT)
        limit = (segment + 1) << SEG_SHIFT if end is None else (segment << SEG_SHIFT) | end
        hi = bisect_left(self.lsns, limit, lo)
        return lo, hi

    def first_unconsumed_lsn(self, cursor: int) -> int | None:
        """LSN of the entry at ``cursor``, or None when everything is consumed."""
        i = cursor - self.first_seq
        if 0 <= i < len(self.lsns):
            return self.lsns[i] & ~DAMAGED
        return None

    def stored_from(self, segment: int,
                    closing: Sequence[tuple[int, object]]) -> tuple[int, int]:
        """Where the topic would start once segments older than ``segment`` are gone (being
        deleted or closed), and the bytes of its entries in ``closing`` (number and contents
        of each segment): what :meth:`Log.trim` takes off. The caller holds ``read_lock``."""
        nbytes = 0
        for number, buf in closing:
            lo, hi = self.lsn_range(number)
            if hi > lo:
                nbytes += record_bytes(buf, self.lsns[lo:hi])
        return self.first_seq + bisect_left(self.lsns, segment << SEG_SHIFT), nbytes

    def expire_before(self, seq: int, nbytes: int) -> None:
        """The entries before ``seq`` (``nbytes`` on disk) are no longer stored (retention
        expired them, or reclamation deleted their segments), and the shared cursor stands
        no lower. The caller holds ``read_lock`` and has persisted the cursor at ``seq`` or
        beyond (reclamation: every cursor has passed them already). In a process that
        appends, only through :meth:`Log.trim` (under the append lock)."""
        n = seq - self.first_seq
        if n > 0:
            del self.lsns[:n]
            self.first_seq = seq
            self.nbytes -= nbytes
        if self.cursor < seq:
            self.cursor = seq
