"""The backend itself: every method of the contract in ``walrus.backends``."""

from __future__ import annotations

import os
from typing import BinaryIO

from walrus.backends import Backend, Buffer, File, create_file


class FileObjFile(File):
    """One segment file, seen through a buffered Python file object."""

    def __init__(self, path: str, stream: BinaryIO) -> None:
        self.path = path
        self._stream = stream
        self.size = os.fstat(stream.fileno()).st_size
        # No memory mapping: the engine goes through write/read below (``view`` stays None).

    def write(self, pos: int, data: Buffer) -> None:
        self._stream.seek(pos)
        self._stream.write(data)
        self._stream.flush()  # hand the bytes to the OS: observers and crashes must see them

    def read(self, pos: int, size: int) -> bytes:
        self._stream.seek(pos)
        return self._stream.read(size)

    def sync(self) -> None:
        self._stream.flush()
        os.fsync(self._stream.fileno())

    def close(self) -> None:
        if not self._stream.closed:
            self._stream.close()


class FileObjBackend(Backend):
    """Buffered file objects: portable and simple, slower than mmap and pwrite."""

    name = "fileobj"

    def open(self, path: str, *, size: int = 0, create: bool = False,
             writable: bool = True) -> File:
        if create:
            fd = create_file(path, size)  # exclusive create + allocation, from walrus
            return FileObjFile(path, os.fdopen(fd, "r+b"))
        return FileObjFile(path, open(path, "r+b" if writable else "rb"))  # noqa: SIM115
