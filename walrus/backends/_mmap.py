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

from ._base import Availability, Backend, Buffer, File, create_file, open_file


class MmapFile(File):
    """A file seen through one shared mapping, plus its descriptor for fdatasync."""

    def __init__(self, path: str, fd: int, writable: bool) -> None:
        self.path = path
        self._fd = fd
        try:
            self.size = os.fstat(fd).st_size
            access = mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ
            self.view = mmap.mmap(fd, self.size, access=access) if self.size else None
        except BaseException:
            os.close(fd)
            raise
        if not writable and self.view is not None:
            # Never synced, and the mapping holds its own descriptor: an observer of a log
            # with many segments needs one descriptor each, not two.
            os.close(fd)
            self._fd = -1

    def write(self, pos: int, data: Buffer) -> None:
        if self.view is None or pos + len(data) > self.size:
            raise OSError(28, f"write past the end of {self.path}")
        self.view[pos:pos + len(data)] = data

    def read(self, pos: int, size: int) -> bytes:
        if self.view is None:
            return b""
        return bytes(self.view[pos:pos + size])

    def sync(self) -> None:
        os.fdatasync(self._fd)

    def close(self) -> None:
        view, self.view = self.view, None
        if view is not None:
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
        return MmapFile(path, fd, writable or create)


def probe() -> Availability:
    if not hasattr(mmap, "mmap") or not hasattr(os, "posix_fallocate"):
        return Availability(False, "mmap or posix_fallocate is missing on this platform")
    return Availability(True, "shared mappings, memcpy appends, fdatasync")
