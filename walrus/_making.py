"""Making the log's next segment: the spare made ahead of need, the numbers, the sizes.

A roll must not wait for a file to be created and allocated (slow on some file systems), so
the background worker makes the next segment ahead of need (the *spare*) and a roll only
stamps it. :class:`SegmentMaker` owns that spare, the numbering of new segments and the file
a roll is making; the log owns a segment once a roll has switched to it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from contextlib import nullcontext
from typing import TYPE_CHECKING

from ._codec import CLEAN, CURSOR, HEADER_SIZE, SEGMENT_HEADER_SIZE, TOPIC, record_size
from ._errors import storage_error
from ._records import Record, Write, write_records
from ._reserve import DescriptorReserve
from ._segment import SPARE_PREV_END, Segment, segment_name, size_for
from ._topics import Topic

if TYPE_CHECKING:
    from ._log import Log
    from .backends._base import Backend

logger = logging.getLogger("walrus")

SEAL_ROOM = HEADER_SIZE
"""Every segment keeps room for its SEAL record."""


class SegmentMaker:
    """Makes the segments a roll switches to, and the spare ahead of need.

    Fields, all guarded by the log's append lock, ``_lock`` (the log calls in holding it;
    :meth:`prepare_spare` takes it itself): ``_spare`` (a segment made ready in the
    background for the next roll), ``_next_number`` (no new segment gets a lower number:
    numbers of damaged files and of reserved spares are never reused) and ``_making`` (the
    file the current roll is making, discarded if the roll fails; reset by the next roll).

    The log never tells it that a roll switched to a segment it made: a roll's switch is plain
    stores, with no call an interrupt could stop halfway (see ``Log._roll``). It learns it from
    the active segment the log shows it at every call instead: a spare numbered at or below
    the active segment is in use, and the next number is above the active segment's.
    """

    __slots__ = ("_backend", "_directory", "_lock", "_making", "_next_number", "_reserve",
                 "_segment_size", "_spare")

    def __init__(self, directory: str, backend: Backend, lock: threading.Lock,
                 segment_size: int, next_number: int) -> None:
        self._directory = directory
        self._lock = lock
        """The log's append lock: it guards the fields below."""
        self._backend = backend
        self._segment_size = size_for(segment_size)
        """Bytes of a new segment file: the configured size for entries, plus the room kept
        for state records (see ``state_room``), so that the room costs no entry capacity."""
        self._next_number = next_number
        self._spare: Segment | None = None
        self._making: Segment | None = None
        self._reserve: DescriptorReserve | None = None
        """The descriptors the worker holds back (writers): asked before each new file."""

    def keep_descriptors(self, reserve: DescriptorReserve) -> None:
        """Make no file while ``reserve`` is lent out, and tell it when one fails for want
        of a descriptor (see ``_reserve.py``)."""
        self._reserve = reserve

    def _made(self, number: int, size: int, prev_end: int, flags: int = 0,
              durable: int = 0) -> Segment:
        """A new segment file, whole and named durably (``Segment.create``, then the
        directory's sync), as the descriptor reserve allows; nothing stays if it fails."""
        reserve = self._reserve
        with nullcontext() if reserve is None else reserve.making():
            seg = Segment.create(self._backend, self._directory, number, size, prev_end,
                                 flags, durable)
            try:
                sync_directory(self._directory)
            except BaseException:
                discard(seg)
                raise
        return seg

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

    def next(self, active: Segment, records: list[Record], need: int, minimum: int | None,
             prev_end: int, flags: int, durable: int, write: Write) -> Segment:
        """The segment to follow ``active``, whole: the spare stamped (or else a new file),
        opened by the state ``records``; ``need`` and ``minimum`` as for :meth:`size`.

        Nothing of the log changes, and whatever goes wrong (a full disk, an interrupt), no
        segment the log does not know stays behind: a crash would find it naming where the
        log ended.
        """
        size = self.size(sum(record_size(len(r[4])) for r in records), need, minimum)
        self._making = None
        try:
            new = self._stamp(active, size, prev_end, flags, durable)
            new.end = write_records(new, new.end, records, durable, write)
        except BaseException as exc:
            made, self._making = self._making, None
            if made is not None:
                if made is self._spare:
                    self._spare = None
                discard(made)
            if isinstance(exc, OSError):
                raise storage_error(exc, "starting the next segment") from exc
            raise
        return new

    def _stamp(self, active: Segment, size: int, prev_end: int, flags: int,
               durable: int) -> Segment:
        """The spare, stamped as the segment after ``active``, or else a new file; noted in
        ``_making`` before anything is written to it."""
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
                new = self._made(number, size, prev_end, flags, durable)
            except FileExistsError:
                os.unlink(os.path.join(self._directory, segment_name(number)))
                new = self._made(number, size, prev_end, flags, durable)
        except OSError as exc:
            raise storage_error(exc, f"creating segment {number}") from exc
        self._making = new
        return new

    def lost(self, seg: Segment) -> None:
        """Delete ``seg``, a segment of the log that a failed sync undid (it holds nothing
        durable); its number is not reused, and if it was the spare, it is one no more."""
        self._next_number = max(self._next_number, seg.number + 1)
        if seg is self._spare:
            self._spare = None
        seg.close()
        try:
            os.unlink(seg.path)
        except OSError:
            pass

    def prepare_spare(self, log: Log) -> None:
        """Create, allocate and pre-fault the next segment ahead of need (background); the
        slow part runs without the append lock."""
        with self._lock:
            if log.closed or self._unused_spare(log.active) is not None:
                return
            if self._reserve is not None and self._reserve.starved:
                return  # the pass due first frees descriptors; a roll makes its own file
            active = log.active
            number = (max(self._next_number, active.number + 1) if active is not None
                      else self._next_number)
            self._next_number = number + 1
        seg = self._made(number, self._segment_size, SPARE_PREV_END)
        seg.populate(0)
        with self._lock:
            active = log.active
            keep = not log.closed and self._unused_spare(active) is None and (
                active is None or active.number <= number)
            if keep:
                self._spare = seg
        if not keep:
            discard(seg)

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
