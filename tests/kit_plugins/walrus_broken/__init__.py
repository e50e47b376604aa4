"""Deliberately broken backends: each breaks one promise of the ``File`` contract.

Registered through their ``.dist-info`` like an installed plugin, but only where this folder
is on ``sys.path``: the kit's own tests put it there for the ``pytest`` they run, never for
the main suite (whose engine tests run on every available backend).
"""

from __future__ import annotations

from collections.abc import Sequence

import walrus
from walrus.backends import Backend, Buffer, File
from walrus.backends._pwrite import PwriteBackend, PwriteFile


class TearingFile(PwriteFile):
    """Writes only the first half of anything longer than one byte, and says nothing."""

    def write(self, pos: int, data: Buffer) -> None:
        super().write(pos, bytes(data)[:max(1, len(data) // 2)])

    def writev(self, pos: int, buffers: Sequence[Buffer]) -> None:
        self.write(pos, b"".join(bytes(b) for b in buffers))


class MemoryFile(PwriteFile):
    """Keeps writes in memory until ``sync`` or ``close``: a process crash loses them."""

    def __init__(self, path: str, fd: int) -> None:
        super().__init__(path, fd)
        self.held: list[tuple[int, bytes]] = []

    def write(self, pos: int, data: Buffer) -> None:
        self.held.append((pos, bytes(data)))

    def writev(self, pos: int, buffers: Sequence[Buffer]) -> None:
        self.write(pos, b"".join(bytes(b) for b in buffers))

    def read(self, pos: int, size: int) -> bytes:
        data = bytearray(super().read(pos, size))
        for at, held in self.held:  # the newest bytes, from memory
            lo, hi = max(pos, at), min(pos + len(data), at + len(held))
            if lo < hi:
                data[lo - pos:hi - pos] = held[lo - at:hi - at]
        return bytes(data)

    def _spill(self) -> None:
        held, self.held = self.held, []
        for at, data in held:
            super().write(at, data)

    def sync(self) -> None:
        self._spill()
        super().sync()

    def close(self) -> None:
        if self._fd >= 0:
            self._spill()
        super().close()


class StaleFile(PwriteFile):
    """Caches what it read and never forgets it: reads after a rewrite return old bytes."""

    def __init__(self, path: str, fd: int) -> None:
        super().__init__(path, fd)
        self.cache: dict[tuple[int, int], bytes] = {}

    def read(self, pos: int, size: int) -> bytes:
        key = (pos, size)
        if key not in self.cache:
            self.cache[key] = super().read(pos, size)
        return self.cache[key]


class ReversedFile(PwriteFile):
    """``writev`` writes its buffers back to back, but the last one first."""

    def writev(self, pos: int, buffers: Sequence[Buffer]) -> None:
        for data in reversed(buffers):
            self.write(pos, data)
            pos += len(data)


class NoSyncFile(PwriteFile):
    """``sync`` returns at once and makes nothing durable."""

    def sync(self) -> None:
        pass


def backend_of(file_class: type[PwriteFile], name: str) -> type[Backend]:
    """A pwrite backend whose files are ``file_class``."""

    class Broken(PwriteBackend):
        def open(self, path: str, *, size: int = 0, create: bool = False,
                 writable: bool = True) -> File:
            inner = super().open(path, size=size, create=create, writable=writable)
            assert isinstance(inner, PwriteFile)
            fd, inner._fd = inner._fd, -1
            return file_class(path, fd)

    Broken.name = name  # type: ignore[misc]
    Broken.__doc__ = file_class.__doc__
    return Broken


BROKEN = {"broken-tears": TearingFile, "broken-memory": MemoryFile,
          "broken-stale": StaleFile, "broken-writev": ReversedFile,
          "broken-nosync": NoSyncFile}


@walrus.hookimpl
def walrus_register_backends() -> list[walrus.BackendSpec]:
    return [walrus.BackendSpec(name, backend_of(cls, name), priority=-2000,
                               description=cls.__doc__ or "")
            for name, cls in BROKEN.items()]


