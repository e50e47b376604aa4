"""The ``io_uring`` backend: batches and fdatasyncs go through io_uring rings.

Its strength is submitting many operations at once: a sync pass submits the fdatasync of
every dirty file together (the kernel then overlaps them and shares journal commits), and a
write of many buffers is one SQE per 1024 of them. A single small write or read (an append's
header and payload, up to 64 KiB) is one plain ``pwritev``/``pread`` inside the extension, as
the Rust original sends single appends through pwrite: through a ring, ext4 hands a small
buffered write to a kernel worker, several times the cost of the system call.
``docs/backends.md`` has the measurements and why ``auto`` ranks it where it does."""

from __future__ import annotations

import os
from collections.abc import Sequence

from ._base import Backend, Buffer, File, create_file, open_file
from ._uring_ring import Ring, probe

__all__ = ["IoUringBackend", "IoUringFile", "probe"]


class IoUringFile(File):
    """A file descriptor whose I/O goes through its backend's ring pool."""

    def __init__(self, path: str, fd: int, ring: Ring) -> None:
        self.path = path
        self.fd = fd
        self._ring = ring
        self.size = os.fstat(fd).st_size

    def write(self, pos: int, data: Buffer) -> None:
        self._ring.write(self.fd, pos, data, self.path)

    def writev(self, pos: int, buffers: Sequence[Buffer]) -> None:
        self._ring.writev(self.fd, pos, buffers, self.path)

    def read(self, pos: int, size: int) -> bytes:
        return self._ring.read(self.fd, pos, size, self.path)

    def sync(self) -> None:
        self._ring.sync([self.fd], [self.path])

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


class IoUringBackend(Backend):
    """io_uring through liburing: many fsyncs submitted at once."""

    name = "io_uring"

    def __init__(self) -> None:
        self._ring = Ring()

    def open(self, path: str, *, size: int = 0, create: bool = False,
             writable: bool = True) -> File:
        fd = create_file(path, size) if create else open_file(path, writable)
        return IoUringFile(path, fd, self._ring)

    def sync_files(self, files: Sequence[File]) -> None:
        """Submit the fdatasync of every file at once and wait for all of them."""
        ours = [f for f in files if isinstance(f, IoUringFile)]
        self._ring.sync([f.fd for f in ours], [f.path for f in ours])  # a closed one: EBADF
        for f in files:
            if not isinstance(f, IoUringFile):
                f.sync()

    def close(self) -> None:
        self._ring.close()

    def disown(self) -> None:
        self._ring.disown()
