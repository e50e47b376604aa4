"""One log segment: a preallocated file of records, opened through a backend."""

from __future__ import annotations

import os
import time

from . import _codec
from ._codec import SEGMENT_HEADER_SIZE, SegmentHeader
from .backends._base import Backend, File

SPARE_PREV_END = (1 << 64) - 1
"""The ``prev_end`` of a segment prepared ahead of need and not yet part of the log."""
WINDOW = 256 << 10
"""Read-ahead of backends without a memory mapping: one read serves many small entries."""
SUFFIX = ".wal"
INDEX_SUFFIX = ".idx"
STATE_ROOM = 256 << 10
"""Room each segment keeps past its entries for state records (cursors, marks), used only
when no next segment can be made (a full disk): consumers can still consume, so that space
is reclaimed. 8192 records (0.4 % of a 64 MiB segment); at most a quarter of a small one.
Segment files are made that much larger than the configured size (see ``size_for``)."""


def state_room(size: int) -> int:
    """The room kept for state records in a segment of ``size`` bytes (8-aligned)."""
    return min(STATE_ROOM, size // 4) & ~7


def size_for(room: int) -> int:
    """The size of a segment that keeps at least ``room`` bytes (SEAL included) for entries."""
    return (room + min(STATE_ROOM, room // 3 + 8) + 7) & ~7


def segment_name(number: int) -> str:
    return f"{number:016x}{SUFFIX}"


def index_name(number: int) -> str:
    return f"{number:016x}{INDEX_SUFFIX}"


def list_directory(directory: str) -> tuple[list[str], list[str]]:
    """The names in a data directory: (regular files, everything else).

    The log is made of files only: a folder named like one of them (a key folder made by an
    older version, whose key looked like a segment) is never taken for it.
    """
    files: list[str] = []
    others: list[str] = []
    with os.scandir(directory) as entries:
        for entry in entries:
            try:
                is_file = entry.is_file()
            except OSError:
                is_file = False
            (files if is_file else others).append(entry.name)
    return files, others


def parse_name(name: str) -> int | None:
    """The segment number a file name stands for, or None if it is not a segment."""
    if not name.endswith(SUFFIX) or len(name) != 16 + len(SUFFIX):
        return None
    try:
        return int(name[:16], 16)
    except ValueError:
        return None


class Segment:
    """A segment file and what the engine knows about it."""

    __slots__ = (
        "_window",
        "address",
        "check_at",
        "end",
        "file",
        "header",
        "limit",
        "lsn_base",
        "number",
        "path",
        "prev_end",
        "salt",
        "sealed",
        "size",
        "state_limit",
        "view",
    )

    def __init__(self, header: SegmentHeader, path: str, file: File) -> None:
        self.header = header
        self.number = header.number
        self.salt = header.salt
        self.prev_end = header.prev_end
        self.path = path
        self.file = file
        self.view = file.view
        self.address = file.address
        """A C pointer into a writable mapping, for the one-call append (else None)."""
        self.size = file.size
        self.lsn_base = header.number << _codec.SEG_SHIFT
        self.end = SEGMENT_HEADER_SIZE
        """Where this segment's records end (the write position while it is active)."""
        self.state_limit = self.size - _codec.HEADER_SIZE
        """Records may be written up to here (room stays for the SEAL)."""
        self.limit = self.state_limit - state_room(self.size)
        """Entries may be written up to here (room stays for state records, see
        ``state_room``); 0 once abandoned."""
        self.check_at = self.limit
        """A write ending past here takes the slow path (``Log.make_room``): at ``limit``,
        or before it when the writer tells a prefaulter how far it got."""
        self.sealed = False
        self._window: tuple[int, bytes] | None = None

    @classmethod
    def create(cls, backend: Backend, directory: str, number: int, size: int, prev_end: int,
               flags: int = 0, prev_durable: int = 0) -> Segment:
        """Create, allocate and stamp a new segment file (the caller syncs the directory)."""
        header = SegmentHeader(number, _codec.new_salt(), prev_end, time.time_ns(), flags,
                               prev_durable)
        path = os.path.join(directory, segment_name(number))
        file = backend.open(path, size=size, create=True)
        try:
            file.write(0, _codec.encode_segment_header(header))
            file.sync()
        except BaseException:
            file.close()
            os.unlink(path)
            raise
        return cls(header, path, file)

    @classmethod
    def open(cls, backend: Backend, path: str, writable: bool) -> Segment:
        """Open an existing segment; raises ``FormatError`` if its header is not valid."""
        file = backend.open(path, writable=writable)
        try:
            header = _codec.decode_segment_header(file.read(0, SEGMENT_HEADER_SIZE))
            if parse_name(os.path.basename(path)) != header.number:
                raise _codec.FormatError(f"{path} holds segment {header.number}")
        except BaseException:
            file.close()
            raise
        return cls(header, path, file)

    @property
    def spare(self) -> bool:
        """Prepared ahead of need and never used: not part of the log."""
        return self.prev_end == SPARE_PREV_END

    def activate(self, prev_end: int, flags: int, prev_durable: int) -> None:
        """Make a spare the next segment of the log: stamp where the previous one ended.

        Durable with the segment's first sync; until then nothing in it is durable either.
        """
        header = SegmentHeader(self.number, self.salt, prev_end, time.time_ns(), flags,
                               prev_durable)
        self.file.write(0, _codec.encode_segment_header(header))
        self.header = header
        self.prev_end = prev_end

    def locate(self, pos: int, size: int) -> tuple[object, int]:
        """A buffer holding bytes [pos, pos + size) and the file offset of its first byte."""
        view = self.view
        if view is not None:
            return view, 0
        window = self._window
        if window is not None and window[0] <= pos and pos + size <= window[0] + len(window[1]):
            return window[1], window[0]
        data = self.file.read(pos, max(size, min(WINDOW, self.end - pos)))
        self._window = (pos, data)
        return data, pos

    def region(self, begin: int, limit: int) -> tuple[object, int]:
        """A buffer holding bytes [begin, limit) and the file offset of its first byte.

        A mapped file is its own buffer; otherwise only that range is read (observers scan
        a segment's tail on every look, so reading the whole file each time would not do).
        """
        if self.view is not None:
            return self.view, 0
        return self.file.read(begin, max(0, limit - begin)), begin

    def whole(self) -> object:
        """The whole file as one buffer (recovery scans it)."""
        if self.view is not None:
            return self.view
        return self.file.read(0, self.size)

    def populate(self, start: int, end: int | None = None, writable: bool = False) -> None:
        """Pre-fault the pages of ``[start, end)`` if the backend maps them
        (``File.prefault``). Safe from any thread: a segment closed meanwhile is left alone."""
        self.file.prefault(start, end, writable)

    def retire(self) -> None:
        """A sealed segment whose every byte is durable and indexed: from now on it is only
        read. Give back its pages if the backend maps them (``File.release_pages``), so a
        log nobody consumes does not grow the process's RSS, and what only writing needs
        (``File.settle``), so a log keeping many segments holds fewer descriptors."""
        self.file.release_pages()
        self.file.settle()

    def close(self) -> None:
        self._window = None
        self.view = None
        self.address = None  # the file releases it
        self.file.close()
