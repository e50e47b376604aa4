"""The ``mmap`` backend: a shared mapping of each file; appends are memcpy.

Files are allocated at full size before they are mapped, so a write can never touch a page
past the end of the file (SIGBUS) or fail for lack of disk space.

Syncs use ``os.fdatasync`` on the file rather than ``mmap.flush()``: on Linux both write the
pages dirtied through the mapping, but ``mmap.flush()`` holds the GIL for the whole msync
(measured: every other thread stalled for the full 90 ms of a large sync), which would stop
appenders during each flusher tick and defeat group commit.
"""

from __future__ import annotations

import mmap
import os
import threading
from typing import Any

from .._native import prefault, speedups
from ._base import Availability, Backend, Buffer, File, create_file, open_file

_ffi, _lib, _ = speedups()
_prefault, _ = prefault()
PAGE = mmap.PAGESIZE


def address_of(view: Any) -> Any:
    """A C pointer into a writable mapping, for the engine's C encoder; or None.

    The pointer pins the mapping (``mmap.close`` refuses while it lives), so a segment's
    writes can never land in unmapped memory; :func:`unpin` releases it before the close.
    """
    if _ffi is None or view is None:
        return None
    try:
        return _ffi.from_buffer(view, require_writable=True)
    except (TypeError, BufferError):  # a read-only mapping
        return None


def unpin(address: Any) -> None:
    """Release a pointer made by :func:`address_of`."""
    if address is not None:
        _ffi.release(address)


def populate(view: Any, start: int = 0, end: int | None = None, writable: bool = False) -> None:
    """Pre-fault a mapping's pages in ``[start, end)``, so the writer stalls on them less.

    ``writable`` maps them writable too (the cheapest appends), but marks every page dirty:
    a sync that runs before the data arrives writes them back as zeros. Read-populating
    still saves about a third of the fault cost. Populating never changes a byte, so it may
    race a writer. Best effort: without the C extension or on older kernels nothing happens.
    """
    if _lib is None:
        return
    start &= ~(PAGE - 1)
    end = len(view) if end is None else min(end, len(view))
    if start >= end:
        return
    with _ffi.from_buffer(view, require_writable=True) as addr:
        _lib.walrus_populate(addr + start, end - start, 1 if writable else 0)


def release_pages(view: Any) -> None:
    """Unmap a mapping's pages from this process, leaving them to the page cache.

    For a segment that is no longer written: its pages stop counting in the process's RSS,
    and a later read maps them again from the page cache (a minor fault per page). Dropping
    a shared file mapping's pages never loses a byte: a dirty page stays dirty in the page
    cache, and the next sync writes it. Without the GIL when the C extension is there.
    """
    if _lib is not None:
        with _ffi.from_buffer(view) as addr:
            _lib.walrus_madvise(addr, len(view), mmap.MADV_DONTNEED)
    else:
        view.madvise(mmap.MADV_DONTNEED)


class MmapFile(File):
    """A file seen through one shared mapping, plus a descriptor for fdatasync while it is
    synced.

    The mapping holds a descriptor of its own. The one for syncs is kept from the start only
    for a file just created (it is about to be written and synced); any other file gets it
    at its first sync, and gives it back once settled. So opening a log with many segments
    takes one descriptor for each, as keeping them does.
    """

    def __init__(self, path: str, fd: int, writable: bool, keep_fd: bool = False) -> None:
        self.path = path
        self._fd = fd
        try:
            self.size = os.fstat(fd).st_size
            access = mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ
            self.view = mmap.mmap(fd, self.size, access=access) if self.size else None
        except BaseException:
            os.close(fd)
            raise
        if not keep_fd and self.view is not None:
            os.close(fd)
            self._fd = -1
        self.address = address_of(self.view)
        self._mapping_lock = threading.Lock()
        """Held while another thread pre-faults the mapping, which must not close meanwhile."""

    def write(self, pos: int, data: Buffer) -> None:
        if self.view is None or pos + len(data) > self.size:
            raise OSError(28, f"write past the end of {self.path}")
        self.view[pos:pos + len(data)] = data

    def read(self, pos: int, size: int) -> bytes:
        if self.view is None:
            return b""
        return bytes(self.view[pos:pos + size])

    def sync(self) -> None:
        fd = self._fd
        if fd < 0 and self.view is not None:  # the first sync since opened or settled
            with self._mapping_lock:
                if self._fd < 0 and self.view is not None:
                    self._fd = open_file(self.path, writable=True)
                fd = self._fd
        os.fdatasync(fd)

    def prefault(self, start: int, end: int | None = None, writable: bool = False) -> None:
        """Pre-fault the pages of ``[start, end)`` of a writable mapping (see :func:`populate`).

        Safe from any thread: a file closed meanwhile is left alone.
        """
        with self._mapping_lock:
            if self.view is not None and self.address is not None:
                populate(self.view, start, end, writable)

    def release_pages(self) -> None:
        """Unmap the pages of a file no longer written (see :func:`release_pages`)."""
        with self._mapping_lock:
            if self.view is not None:
                release_pages(self.view)

    def settle(self) -> None:
        """Close the descriptor kept for syncs: the mapping holds one of its own, so a writer
        retaining many segments needs one descriptor for each, as an observer does."""
        with self._mapping_lock:
            if self.view is not None:
                fd, self._fd = self._fd, -1
                if fd >= 0:
                    os.close(fd)

    def close(self) -> None:
        with self._mapping_lock:
            view, self.view = self.view, None
            address, self.address = self.address, None
            unpin(address)
            if view is not None:
                if _prefault is not None:  # a native prefaulter thread lets go of it first
                    _prefault.retire(view)
                view.close()
            fd, self._fd = self._fd, -1
            if fd >= 0:
                os.close(fd)


class MmapBackend(Backend):
    """Shared memory mappings: the fastest appends and reads from Python."""

    name = "mmap"

    def open(self, path: str, *, size: int = 0, create: bool = False,
             writable: bool = True) -> File:
        fd = create_file(path, size) if create else open_file(path, writable)
        try:
            return MmapFile(path, fd, writable or create, create)  # closes fd if it fails
        except BaseException:
            if create:  # mapping it failed (no descriptor or memory left): leave no file
                os.unlink(path)
            raise


def probe() -> Availability:
    if not hasattr(mmap, "mmap") or not hasattr(os, "posix_fallocate"):
        return Availability(False, "mmap or posix_fallocate is missing on this platform")
    return Availability(True, "shared mappings, memcpy appends, fdatasync")
