"""Per-topic figures for the command line, including the offset range the public API omits.

``Walrus`` answers counts, sizes and clean flags; ``walrus topics`` and ``walrus tail`` also
need where a topic's retained entries start and end. This is the one module that reads those
from the engine's topic state, so the coupling stays in one place.
"""

from __future__ import annotations

import attrs

from ._walrus import Walrus


@attrs.frozen
class TopicStats:
    """What ``walrus topics`` shows for one topic."""

    name: str
    first_offset: int
    """Offset of the oldest entry still on disk (older ones were consumed and reclaimed)."""
    next_offset: int
    """Offset the next appended entry will get."""
    unconsumed: int
    size: int
    clean: bool

    @property
    def entries(self) -> int:
        """Entries still on disk."""
        return self.next_offset - self.first_offset


def topic_stats(wal: Walrus) -> list[TopicStats]:
    """Every topic, in creation order (an observer first picks up what the writer added)."""
    names = wal.topics()
    counts = wal.get_topic_entry_counts()
    stats = []
    for name in names:
        first, nxt = offset_range(wal, name)
        stats.append(TopicStats(name, first, nxt, counts.get(name, 0), wal.get_topic_size(name),
                                wal.topic_is_clean(name)))
    return stats


def offset_range(wal: Walrus, topic: str) -> tuple[int, int]:
    """(first retained offset, next offset) of ``topic``, as of the last refresh."""
    t = wal._wal.by_name.get(topic)
    if t is None:
        return 0, 0
    return t.first_seq, t.visible
