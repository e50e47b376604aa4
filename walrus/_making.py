"""Making the log's next segment: the spare made ahead of need, the numbers, the sizes.

A roll must not wait for a file to be created and allocated (slow on some file systems), so
the background worker makes the next segment ahead of need (the *spare*) and a roll only
stamps it. :class:`SegmentMaker` owns that spare, the numbering of new segments and the file
a roll is making; the log owns a segment once a roll has switched to it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ._codec import CLEAN, CURSOR, HEADER_SIZE, SEGMENT_HEADER_SIZE, TOPIC
from ._errors import storage_error
from ._records import Record
from ._segment import SPARE_PREV_END, Segment, segment_name, size_for
from ._topics import Topic

if TYPE_CHECKING:
    from .backends._base import Backend

logger = logging.getLogger("walrus")

SEAL_ROOM = HEADER_SIZE
"""Every segment keeps room for its SEAL record."""


class SegmentMaker:
    """Makes the segments a roll switches to, and the spare ahead of need.

    Fields, all guarded by the log's append lock (the log calls in holding it, except for
    :meth:`make_spare`, which touches no field): ``_spare`` (a segment made ready in the
    background for the next roll), ``_next_number`` (no new segment gets a lower number:
    numbers of damaged files and of reserved spares are never reused) and ``_making`` (the
    file the current roll is making, discarded if the roll fails).

    The log never tells it that a roll switched to a segment it made: a roll's switch is plain
    stores, with no call an interrupt could stop halfway (see ``Log._roll``). It learns it from
    the active segment the log shows it at every call instead: a spare numbered at or below
    the active segment is in use, and the next number is above the active segment's.
    """

    __slots__ = ("_backend", "_directory", "_making", "_next_number", "_segment_size",
                 "_spare")

    def __init__(self, directory: str, backend: Backend, segment_size: int,
                 next_number: int) -> None:
        self._directory = directory
        self._backend = backend
        self._segment_size = size_for(segment_size)
        """Bytes of a new segment file: the configured size for entries, plus the room kept
        for state records (see ``state_room``), so that the room costs no entry capacity."""
        self._next_number = next_number
        self._spare: Segment | None = None
        self._making: Segment | None = None

    def spare(self, active: Segment | None) -> Segment | None:
        """The spare, unless a roll has switched to it (safe without the lock: a hint)."""
        spare = self._spare
        if spare is None or (active is not None and spare.number <= active.number):
            return None
        return spare

    def _unused_spare(self, active: Segment | None) -> Segment | None:
        """The spare, forgotten (not deleted: it is the log's now) if a roll switched to it."""
        spare = self.spare(active)
        self._spare = spare
        return spare

    def size(self, preamble: int, need: int, minimum: int | None = None) -> int:
        """Bytes of the next segment, whose preamble takes ``preamble`` bytes and whose
        first write takes ``need`` (at least ``minimum``, else the configured size).

        Room for at least as many bytes of entries as the preamble takes: the preamble
        repeats every topic's state, and with many topics of long names it could fill a
        whole segment, so every append would roll and write it again. This way it takes at
        most half of any segment's entries, and costs at most one byte written per byte of
        entries.
        """
        return max(self._segment_size if minimum is None else minimum,
                   size_for(SEGMENT_HEADER_SIZE + preamble + max(need, preamble) + SEAL_ROOM))

    def next(self, active: Segment, size: int, prev_end: int, flags: int,
             durable: int) -> Segment:
        """The segment to follow ``active``: the spare, stamped, or else a new file; noted
        as the one being made before anything is written to it (see :meth:`unmake`)."""
        self._making = None
        spare = self._unused_spare(active)
        if spare is not None and spare.size >= size:
            self._making = spare
            try:
                spare.activate(prev_end, flags, durable)
                return spare
            except OSError as exc:
                logger.warning("cannot use the prepared segment %s: %s", spare.path, exc)
        if spare is not None:
            self._making = self._spare = None
            discard(spare)
        return self._create(max(self._next_number, active.number + 1), size, prev_end, flags,
                            durable)

    def _create(self, number: int, size: int, prev_end: int, flags: int,
                durable: int) -> Segment:
        """Create segment ``number`` as the next one; nothing of the log changes.

        The log does not know the number yet, so a file already there is one an interrupted
        roll left half made: it is removed and made again.
        """
        try:
            try:
                new = Segment.create(self._backend, self._directory, number, size, prev_end,
                                     flags, durable)
            except FileExistsError:
                os.unlink(os.path.join(self._directory, segment_name(number)))
                new = Segment.create(self._backend, self._directory, number, size, prev_end,
                                     flags, durable)
        except OSError as exc:
            raise storage_error(exc, f"creating segment {number}") from exc
        self._making = new
        sync_directory(self._directory)
        return new

    def unmake(self, active: Segment) -> None:
        """A roll from ``active`` failed: delete what it made (never part of the log: a
        crash would find it naming where the log ended)."""
        made, self._making = self._making, None
        if made is not None and made.number > active.number:
            if made is self._spare:
                self._spare = None
            discard(made)

    def lost(self, seg: Segment) -> None:
        """``seg``, a segment of the log, was deleted (a failed sync undid it): its number
        is not reused, and it is no spare."""
        self._next_number = max(self._next_number, seg.number + 1)
        if seg is self._spare:
            self._spare = None
        if seg is self._making:
            self._making = None

    def reserve(self, active: Segment | None) -> int | None:
        """The number for a new spare, unless one is ready."""
        if self._unused_spare(active) is not None:
            return None
        number = max(self._next_number, active.number + 1) if active else self._next_number
        self._next_number = number + 1
        return number

    def make_spare(self, number: int) -> Segment:
        """Create, allocate and pre-fault spare ``number`` (slow: without the lock)."""
        seg = Segment.create(self._backend, self._directory, number, self._segment_size,
                             SPARE_PREV_END)
        sync_directory(self._directory)
        seg.populate(0)
        return seg

    def offer(self, seg: Segment, active: Segment | None) -> bool:
        """Keep ``seg`` as the spare; False if there is one already or the log moved past
        its number (the caller then discards it, outside the lock)."""
        if self._unused_spare(active) is not None or (
                active is not None and active.number > seg.number):
            return False
        self._spare = seg
        return True

    def drop_spare(self, active: Segment | None) -> None:
        """Delete the spare (never part of the log): the log is closing."""
        spare = self._unused_spare(active)
        if spare is not None:
            self._spare = None
            discard(spare)


def preamble(topics: Iterable[Topic]) -> list[Record]:
    """State records that open a segment, so that older segments can be deleted."""
    records: list[Record] = []
    for t in topics:
        records.append((TOPIC, t.tid, 0, t.next_seq, t.name.encode("utf-8", "surrogatepass")))
        if t.persisted:
            records.append((CURSOR, t.tid, 0, t.persisted, b""))
        if t.mark >= 0:
            records.append((CLEAN, t.tid, 0, t.mark, b""))
    return records


def discard(seg: Segment) -> None:
    """Close and delete a segment that never became part of the log.

    Never raises for the deletion: a leftover is harmless (recovery removes unused spares),
    while an error here would abort a roll or a close halfway.
    """
    seg.close()
    try:
        os.unlink(seg.path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        logger.warning("could not remove the unused segment %s: %s", seg.path, exc)


def sync_directory(path: str) -> None:
    """fsync a directory so that files created or renamed in it survive a power loss."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
