"""A data directory's files, opened the one way recovery and ``walrus verify`` share.

Listing the segments, opening each (a damaged header's salt recovered from the segment's index
file or its records; unfinished new segments told apart from lost ones), reading and checking
index files, and scanning a segment that a live writer may be writing. What the files say is
folded into topics by ``_recovery``; ``_verify`` checks it.
"""

from __future__ import annotations

import logging
import os

from . import _codec
from ._codec import SEG_SHIFT, SEGMENT_HEADER_SIZE, SegmentSummary
from ._damage import Damage
from ._segment import (
    INDEX_SUFFIX,
    SUFFIX,
    Segment,
    index_name,
    list_directory,
    parse_name,
    segment_name,
)
from .backends._base import Backend

log = logging.getLogger("walrus")


class Directory:
    """Opens a data directory's segments and index files, recording what it found damaged."""

    def __init__(self, directory: str, backend: Backend, read_only: bool) -> None:
        self.directory = directory
        self.backend = backend
        self.read_only = read_only
        """Change nothing on disk (observers, ``walrus verify``): a writer cleans up later."""
        self.max_number = 0
        """Highest segment number on disk, damaged files included (never reused)."""
        self.damage: list[Damage] = []
        """What recovery found damaged or lost (``Walrus.damage``)."""
        self.recovered: set[int] = set()
        """Segments whose header was damaged and whose salt was recovered."""
        self.blank: list[str] = []
        """Unfinished new segments a read-only look left in place (a writer removes them)."""

    def segment_numbers(self) -> list[int]:
        """The segment files' numbers, in order. A number that something other than a file
        has taken counts in ``max_number``, so the writer never tries to create it."""
        files, others = list_directory(self.directory)
        for name in others:
            self.max_number = max(self.max_number, parse_name(name) or 0)
        numbers = []
        for name in files:
            number = parse_name(name)
            if number is not None:
                numbers.append(number)
            elif name.endswith(".idx.tmp") and not self.read_only:
                unlink(os.path.join(self.directory, name))
        return sorted(numbers)

    def open_segments(self, numbers: list[int]) -> list[Segment]:
        """Open the segments ``numbers`` (a listing) and any the listing missed that the log
        links to (see :meth:`_open_unlisted`), in order."""
        opened = []
        blank: list[tuple[int, str, Exception]] = []
        for number in numbers:
            seg = self._open_one(number, blank)
            if seg is not None:
                opened.append(seg)
        self._open_unlisted(opened, blank, set(numbers))
        self._settle_blank(blank, opened)
        return opened

    def _open_one(self, number: int, blank: list[tuple[int, str, Exception]]) -> Segment | None:
        """Segment ``number``; None if it is gone, an unused spare, unfinished (noted in
        ``blank``) or damaged past recovery (recorded)."""
        self.max_number = max(self.max_number, number)
        path = os.path.join(self.directory, segment_name(number))
        try:
            seg = Segment.open(self.backend, path, writable=not self.read_only)
        except _codec.FormatError as exc:
            if all_zero(path, SEGMENT_HEADER_SIZE):
                blank.append((number, path, exc))
                return None
            return self._reopen_damaged(number, path, exc)
        except FileNotFoundError:
            return None  # deleted by a live writer while an observer looked
        if seg.spare:  # prepared ahead of need, never used
            seg.close()
            if not self.read_only:
                unlink(path)
            return None
        return seg

    def _open_unlisted(self, opened: list[Segment], blank: list[tuple[int, str, Exception]],
                       tried: set[int]) -> None:
        """Insert into ``opened`` the segments a listing missed between two it holds.

        A directory listing is not a snapshot: beside a live writer, a segment created while
        it runs may be missing from it while a later one is there. Folding what the later one
        holds after the one before the hole would take the missing segment's entries for
        lost. Each segment names the one before it (``prev_end``): a link to a number between
        it and the segment listed before it is opened by name. One that is not there (or not
        readable) stays missing, and its entries are reported lost as before. ``tried``: the
        numbers listed (one that did not open is not tried again: its damage is noted).
        """
        i = len(opened) - 1
        while i > 0:
            link = opened[i].prev_end >> SEG_SHIFT
            if opened[i - 1].number < link < opened[i].number and link not in tried:
                tried.add(link)
                # only a file: a number something else has taken is no segment of the log
                is_file = os.path.isfile(os.path.join(self.directory, segment_name(link)))
                seg = self._open_one(link, blank) if is_file else None
                if seg is not None:
                    opened.insert(i, seg)  # then follow its own link
                    continue
            i -= 1

    def _settle_blank(self, blank: list[tuple[int, str, Exception]],
                      opened: list[Segment]) -> None:
        """Segments with a bad header and nothing after it: a crash while one was created
        (or a spare was put to use) leaves them, and they never held anything; unless a later
        segment says the log went on in one, which then lost everything it held."""
        went_on_in = {seg.prev_end >> SEG_SHIFT for seg in opened}
        for number, path, exc in blank:
            if number in went_on_in:
                self.found(None, None, None, path,
                           f"bad segment header ({exc}) and nothing after it readable: "
                           "the entries it held are lost")
            elif self.read_only:
                self.blank.append(path)
            else:
                log.info("removing unfinished segment %s (%s)", path, exc)
                unlink(path)

    def _reopen_damaged(self, number: int, path: str, exc: Exception) -> Segment | None:
        """Open a segment whose header fails, with its salt recovered from its index file or
        its records (the number comes from the file name); None if neither gives it."""
        file = self.backend.open(path, writable=not self.read_only)
        try:
            salt = self._index_salt(number)
            if salt is None:
                buf = file.view if file.view is not None else file.read(0, file.size)
                salt = _codec.recover_salt(buf, SEGMENT_HEADER_SIZE,
                                           file.size - _codec.HEADER_SIZE, number << SEG_SHIFT)
            if salt is None:
                file.close()
                self.found(None, None, None, path,
                           f"bad segment header ({exc}) and no record in it readable: "
                           "the entries it held are lost")
                return None
        except BaseException:
            file.close()
            raise
        self.found(None, None, None, path,
                   f"bad segment header ({exc}); its records were recovered")
        self.recovered.add(number)
        return Segment(_codec.SegmentHeader(number, salt, 0), path, file)

    def _index_salt(self, number: int) -> int | None:
        """The salt a valid index file records for segment ``number``, if it has one."""
        index = self.usable_index(number)
        return None if index is None else index.salt

    def found(self, topic: str | None, first: int | None, last: int | None, path: str,
              reason: str) -> None:
        """Record damage (``damage``), and say so: it may have cost acknowledged data."""
        damage = Damage(topic, first, last, path, reason)
        self.damage.append(damage)
        log.warning("damage found on open: %s", damage.describe())

    def read_index(self, number: int, salt: int | None = None
                   ) -> tuple[SegmentSummary | None, str | None]:
        """Segment ``number``'s index file: (index, None) if it is valid and belongs to that
        segment (and ``salt``, when given); (None, why it cannot be used); (None, None) if
        there is none. Raises OSError when the file is there but cannot be read."""
        try:
            with open(os.path.join(self.directory, index_name(number)), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None, None
        try:
            index = _codec.decode_index(data)
        except _codec.FormatError as exc:
            return None, f"unreadable index: {exc}"
        if index.number != number or (salt is not None and index.salt != salt):
            return None, "index belongs to another segment"
        return index, None

    def usable_index(self, number: int) -> SegmentSummary | None:
        """Segment ``number``'s index file if it is valid and readable, else None."""
        try:
            index, _ = self.read_index(number)
        except OSError:
            return None
        return index


def scan_limit(seg: Segment, nxt: Segment | None) -> int:
    """Where a scan of ``seg`` stops: at the end of its room for records, or earlier where
    the segment after it (``nxt``) says the log went on in it."""
    limit = seg.size - _codec.HEADER_SIZE
    if nxt is not None and nxt.prev_end >> SEG_SHIFT == seg.number:
        limit = min(limit, nxt.prev_end & _codec.OFFSET_MASK)
    return limit


def settled_scan(seg: Segment, begin: int, limit: int, live: bool,
                 durable: int = 0) -> tuple[object, int, _codec.ScanResult]:
    """Scan ``seg`` from ``begin`` to ``limit``; returns the buffer scanned (with the file
    position in the file of its first byte) and the result.

    ``durable``: as for :func:`_codec.scan`, a position below which damage is corruption.

    ``live``: the segment may be written while we look (observers, ``walrus verify``). A record
    still being written then looks damaged while records after it, written once it was
    complete, already look whole. A second look sees it whole, so the scan is repeated until
    the damage stays where it was; only then is it real.
    """
    buf, base = seg.region(begin, limit)
    result = _codec.scan(buf, begin, limit, seg.salt, seg.lsn_base, durable, base)
    for _ in range(LIVE_RESCANS if live else 0):
        if not result.damaged:
            break
        buf, base = seg.region(begin, limit)
        again = _codec.scan(buf, begin, limit, seg.salt, seg.lsn_base, durable, base)
        same = [pos for pos, _ in again.damaged] == [pos for pos, _ in result.damaged]
        result = again
        if same:
            break
    return buf, base, result


LIVE_RESCANS = 5


def all_zero(path: str, start: int = 0) -> bool:
    """Does the file hold nothing but zeros from ``start`` on (a segment whose creation was
    interrupted)?"""
    with open(path, "rb") as f:
        f.seek(start)
        while chunk := f.read(1 << 20):
            if not _codec.only_zeros(chunk):
                return False
    return True


def unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def parse_index_name(name: str) -> int | None:
    """The segment number an index file's name stands for, or None if it is not one."""
    if not name.endswith(INDEX_SUFFIX):
        return None
    return parse_name(name[:-len(INDEX_SUFFIX)] + SUFFIX)
