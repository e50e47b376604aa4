"""The backend itself: every method of the contract in ``walrus.backends``."""

from __future__ import annotations

import os
import threading
from typing import BinaryIO

from walrus.backends import Backend, Buffer, File, create_file


class FileObjFile(File):
    """One segment file, seen through an unbuffered Python file object."""

    def __init__(self, path: str, stream: BinaryIO) -> None:
        self.path = path
        self._stream = stream
        self.size = os.fstat(stream.fileno()).st_size
        # Readers of other threads share the stream's position with the writer.
        self._lock = threading.Lock()
        # No memory mapping: the engine goes through write/read below (``view`` stays None).

    def write(self, pos: int, data: Buffer) -> None:
        with self._lock:
            self._stream.seek(pos)
            view = memoryview(data).cast("B")
            while view:  # unbuffered: the OS has the bytes, observers see them
                view = view[self._stream.write(view) or 0:]

    def read(self, pos: int, size: int) -> bytes:
        with self._lock:  # unbuffered: never bytes a cache kept from before another's write
            self._stream.seek(pos)
            return self._stream.read(size)

    def sync(self) -> None:
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
            return FileObjFile(path, os.fdopen(fd, "r+b", buffering=0))
        return FileObjFile(path, open(path, "r+b" if writable else "rb", buffering=0))
