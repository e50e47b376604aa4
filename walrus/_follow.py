"""Following a live writer from a read-only observer: what the writer added since the last look.

A directory listing is not a snapshot: a segment created (or a spare stamped, or an old segment
deleted) while it runs may be missing from it. So the listing only tells where to start; the
log itself is followed backwards from the newest segment through each header's ``prev_end``,
opening every predecessor by name. A link that cannot be opened is either a segment the writer
reclaimed (gone: everything older is gone too) or a damaged one.

The active segment's unwritten end is zeros: a look walks the records from where the previous
one stopped and ends at the first position not written yet, so it costs what is new, not the
size of the segment.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from . import _codec
from ._codec import HEADER_SIZE, SEG_SHIFT
from ._segment import SPARE_PREV_END, Segment, segment_name
from .backends._base import Backend

log = logging.getLogger("walrus")

WINDOW = 64 << 10
"""What a look reads at a time from a backend without a mapping (grown for a large record)."""


class Listing:
    """The segment numbers in the directory, listed again only when it may have changed.

    A directory's modification time changes whenever a file is created or deleted in it; a
    change within the clock tick of the time last seen would not show, so that time is only
    trusted once it is ``SETTLED_NS`` old (as git does for its index)."""

    SETTLED_NS = 2_000_000_000

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.stamp = -1
        self.numbers: list[int] = []

    def get(self, list_now: Callable[[], list[int]]) -> list[int]:
        stamp = os.stat(self.directory).st_mtime_ns
        if stamp != self.stamp or time.time_ns() - stamp < self.SETTLED_NS:
            self.numbers, self.stamp = list_now(), stamp
        return self.numbers


class Chain:
    """The segments the writer added after the newest one known, in log order."""

    __slots__ = ("reclaimed", "segments")

    def __init__(self, segments: list[Segment], reclaimed: bool) -> None:
        self.segments = segments
        self.reclaimed = reclaimed
        """The first link's predecessor was deleted: the writer reclaimed every segment before
        it (only a prefix is ever deleted), including all those the observer knew."""


def follow(directory: str, backend: Backend, newest: int, numbers: list[int]) -> Chain:
    """The chain of segments after segment ``newest`` (0: none known), ``numbers`` being a
    directory listing; a segment not readable yet (being created, or a spare being stamped)
    at the head of the chain is left for the next look."""
    chain: list[Segment] = []
    try:
        reclaimed = _walk_back(backend, directory, newest, numbers, chain)
    except BaseException:
        for seg in chain:
            seg.close()
        raise
    chain.reverse()
    return Chain(chain, reclaimed)


def _walk_back(backend: Backend, directory: str, newest: int, numbers: list[int],
               chain: list[Segment]) -> bool:
    """Fill ``chain`` newest first; returns whether it ends at a reclaimed segment."""
    for number in reversed([n for n in numbers if n > newest]):
        head = _open(backend, directory, number)
        if head is not None:
            chain.append(head)
            break
    reclaimed = False
    while chain:
        previous = chain[-1].prev_end >> SEG_SHIFT
        if previous <= newest:
            break  # linked to what is known (lower: the writer dropped a never-durable tail)
        path = os.path.join(directory, segment_name(previous))
        try:
            seg = Segment.open(backend, path, writable=False)
            if seg.spare:
                seg.close()
                raise _codec.FormatError("a segment of the log reads as an unused spare")
        except FileNotFoundError:
            # Reclaimed, if what the observer knew is gone too (only a prefix is deleted);
            # otherwise lost some other way, and its entries count as damaged.
            reclaimed = newest == 0 or not os.path.exists(
                os.path.join(directory, segment_name(newest)))
            break
        except _codec.FormatError as exc:  # its successor exists, so it is really damaged
            log.error("skipping damaged segment %s (its entries are unreadable; "
                      "`walrus verify` lists them): %s", path, exc)
            break
        chain.append(seg)
    return reclaimed


def _open(backend: Backend, directory: str, number: int) -> Segment | None:
    """Segment ``number`` if it is part of the log now; None if it is gone, a spare, or its
    header is not readable (yet). The header is peeked at first: the writer's spare is there
    on most looks, and mapping it each time would cost more than the rest of the look."""
    path = os.path.join(directory, segment_name(number))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        header = _codec.decode_segment_header(os.pread(fd, _codec.SEGMENT_HEADER_SIZE, 0))
    except _codec.FormatError:
        return None
    finally:
        os.close(fd)
    if header.prev_end == SPARE_PREV_END:
        return None
    try:
        return Segment.open(backend, path, writable=False)
    except (FileNotFoundError, _codec.FormatError):
        return None


def written_end(seg: Segment, begin: int, limit: int) -> tuple[int, bool]:
    """How far the valid records from ``begin`` reach (a SEAL included, a MARK not), and
    whether what follows is still unwritten: zeros, or a record whose bytes are still
    arriving (zeros right after it). False means bytes that are neither: a header being
    written, or damage. Reads only what it walks (plus one window)."""
    pos = begin
    end = limit if seg.view is not None else min(limit, begin + WINDOW)
    while True:
        buf, base = seg.region(pos, end)
        while pos < end:
            status, record = _codec.check(buf, pos, end, seg.salt, seg.lsn_base, base)
            if status != _codec.OK:
                break
            assert record is not None
            if record.kind == _codec.MARK:  # where the writer stands: the next write goes here
                return pos, True
            pos = record.end
            if record.kind == _codec.SEAL:
                return pos, True
        if pos >= limit:
            return limit, True
        need = _needs(seg, buf, pos, base, end, limit)
        if end < limit and need > end:  # a record that does not fit in what was read
            end = min(limit, max(need, pos + WINDOW))
            continue
        return pos, _unwritten(buf, pos, base, end, seg)


def _needs(seg: Segment, buf: object, pos: int, base: int, end: int, limit: int) -> int:
    """How far to read to judge ``pos``: a plausible record that seems to start there and
    the bytes right after it."""
    if pos + HEADER_SIZE > end:
        return pos + HEADER_SIZE
    _, record = _codec.check(buf, pos, limit, seg.salt, seg.lsn_base, base)
    return end if record is None else record.end + _codec.ALIGN


def _unwritten(buf: object, pos: int, base: int, end: int, seg: Segment) -> bool:
    """Is ``pos`` the writer's frontier: zeros, or a plausible record with zeros after it?"""
    if _zeros(buf, pos, base, min(end, pos + HEADER_SIZE)):
        return True
    status, record = _codec.check(buf, pos, end, seg.salt, seg.lsn_base, base)
    return (status == _codec.BAD_CRC and record is not None
            and _zeros(buf, record.end, base, min(end, record.end + _codec.ALIGN)))


def _zeros(buf: object, begin: int, base: int, end: int) -> bool:
    return _codec.only_zeros(buf[begin - base:end - base])  # type: ignore[index]


def frontier(seg: Segment) -> bytes:
    """The bytes where the next look at the newest segment ``seg`` starts. The writer's next
    write lands there (an entry, a mark of the durable point, or the SEAL of a roll), so
    while they stay the same there is nothing new to look for: a cheap test for a waiting
    observer to make often."""
    end = min(seg.end, seg.size)
    stop = min(seg.size, end + HEADER_SIZE)
    buf, base = seg.region(end, stop)
    return bytes(buf[end - base:stop - base])  # type: ignore[index]
