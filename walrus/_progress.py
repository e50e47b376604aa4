"""How far the writer got: the cue a prefaulter waits for.

A write that ends past its segment's ``check_at`` takes the log's slow path. Without a
watcher, ``check_at`` is the segment's limit (the slow path is a roll); with one, it is set
``step`` bytes ahead of the writer, so the slow path also tells the watcher it moved on.
"""

from __future__ import annotations

from collections.abc import Callable

from ._segment import Segment


class ProgressCue:
    """Who watches the writer, and how often it is told.

    Fields ``step`` (0: nobody watches) and ``_callback``: set by :meth:`watch` and read by
    the writer, both under the log's append lock.
    """

    __slots__ = ("_callback", "step")

    def __init__(self) -> None:
        self.step = 0
        self._callback: Callable[[], None] | None = None

    def watch(self, step: int, callback: Callable[[], None] | None) -> None:
        """Call ``callback`` each time the writer passes ``step`` more bytes (0, None: stop)."""
        self.step, self._callback = step, callback

    def check_at(self, seg: Segment, pos: int) -> None:
        """The writer is at ``pos`` of ``seg``: set where it next takes the slow path."""
        seg.check_at = min(seg.limit, pos + self.step) if self.step else seg.limit

    def moved(self) -> None:
        """The writer took the slow path: tell the watcher, if any."""
        if self._callback is not None:
            self._callback()
