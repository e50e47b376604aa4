"""What :meth:`Walrus.topic_info` returns: one topic's offsets, counts, size and clean flag."""

from __future__ import annotations

import attrs


@attrs.frozen
class TopicInfo:
    """A snapshot of one topic, taken at once (a later append or read does not change it).

    The entries still on disk have the offsets ``first_offset .. next_offset - 1``: a batch
    read with ``start_offset`` in that range works. An unknown topic reads as an empty one
    (every field 0, clean), as the other queries treat it.
    """

    topic: str
    """The topic's name, as asked for."""
    first_offset: int
    """Offset of the oldest entry still on disk; older ones were consumed and their space
    reclaimed."""
    next_offset: int
    """Offset the next appended entry will get: one past the newest entry readers can see."""
    unconsumed: int
    """Entries not yet consumed by the shared cursor (``get_topic_entry_count``)."""
    size: int
    """Bytes the entries on disk occupy, headers included (``get_topic_size``)."""
    clean: bool
    """No append since ``mark_topic_clean`` (``topic_is_clean``)."""

    @property
    def entries(self) -> int:
        """Entries still on disk."""
        return self.next_offset - self.first_offset
