"""The ``pwrite`` backend: positioned writes and reads on file descriptors.

One system call per append (``os.pwritev`` of header and payload), one per coalesced batch,
``os.fdatasync`` to sync. Works wherever ``os.pwrite`` exists.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ._base import (
    Availability,
    Backend,
    Buffer,
    File,
    create_file,
    open_file,
    pread_exact,
    pwrite_all,
)

IOV_MAX = 1024


class PwriteFile(File):
    """A file descriptor with positioned I/O."""

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self._fd = fd
        self.size = os.fstat(fd).st_size

    def write(self, pos: int, data: Buffer) -> None:
        pwrite_all(self._fd, pos, data)

    def writev(self, pos: int, buffers: Sequence[Buffer]) -> None:
        for start in range(0, len(buffers), IOV_MAX):
            chunk = buffers[start:start + IOV_MAX]
            total = sum(len(b) for b in chunk)
            done = os.pwritev(self._fd, chunk, pos)
            if done < total:  # rare: finish the rest byte-exactly
                pwrite_all(self._fd, pos + done, b"".join(bytes(b) for b in chunk)[done:])
            pos += total

    def read(self, pos: int, size: int) -> bytes:
        return pread_exact(self._fd, pos, size)

    def sync(self) -> None:
        os.fdatasync(self._fd)

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


class PwriteBackend(Backend):
    """Plain positioned system calls on file descriptors."""

    name = "pwrite"

    def open(self, path: str, *, size: int = 0, create: bool = False,
             writable: bool = True) -> File:
        fd = create_file(path, size) if create else open_file(path, writable)
        return PwriteFile(path, fd)


def probe() -> Availability:
    missing = [f for f in ("pwrite", "pwritev", "pread", "fdatasync") if not hasattr(os, f)]
    if missing:
        return Availability(False, "os lacks " + ", ".join(missing))
    return Availability(True, "os.pwritev / os.pread / os.fdatasync")
