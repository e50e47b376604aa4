"""Fault backends: a real backend underneath, every write and sync seen by the machine.

A fault backend presents ``view=None``, so the engine sends every byte through
:meth:`FaultFile.write` (there is no mapping to write around it), whatever the wrapped
backend does underneath.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from ..._errors import BackendUnavailableError
from ...backends import Backend, Buffer, File
from ...backends._base import Availability
from ...plugins import BackendSpec, backend_spec
from ._machine import MACHINE, FileState, PowerOff

PREFIX = "faults-"


class FaultFile(File):
    """A file of the wrapped backend whose writes and syncs go through the machine."""

    def __init__(self, inner: File, state: FileState) -> None:
        self.inner = inner
        self.state = state
        self.path = inner.path
        self.size = inner.size
        self.view = None

    def write(self, pos: int, data: Buffer) -> None:
        m = MACHINE
        with m.lock:  # atomic against a power cut taken from another thread
            tick = m.tick()
            new = bytes(data)
            fault = m.fault("write")
            if fault is not None:
                if fault.short and len(new) > 1:
                    self._write(tick, pos, new[:len(new) // 2])
                    raise OSError(fault.errno, f"injected short write ({len(new) // 2} of "
                                               f"{len(new)} bytes at {pos})")
                raise OSError(fault.errno, "injected write failure")
            self._write(tick, pos, new)

    def _write(self, tick: int, pos: int, new: bytes) -> None:
        old = self.inner.read(pos, len(new))
        self.inner.write(pos, new)
        MACHINE.wrote(self.state, tick, pos, old, new)

    def writev(self, pos: int, buffers: Sequence[Buffer]) -> None:
        self.write(pos, b"".join(bytes(b) for b in buffers))

    def read(self, pos: int, size: int) -> bytes:
        return self.inner.read(pos, size)

    def sync(self) -> None:
        m = MACHINE
        start = m.tick()
        fault = m.fault("sync")
        if fault is not None:
            m.synced(self.state, start, ok=False)
            raise OSError(fault.errno, "injected fsync failure")
        m.gate("sync")
        self.inner.sync()
        with m.lock:
            if m.dead:  # the power went while the disk was still busy
                raise PowerOff()
            m.synced(self.state, start, ok=True)

    def close(self) -> None:
        self.inner.close()


class FaultBackend(Backend):
    """Wraps the registered backend ``inner``."""

    def __init__(self, inner: str) -> None:
        self.name = PREFIX + inner  # type: ignore[misc]
        self.inner = backend_spec(inner).factory()

    def open(self, path: str, *, size: int = 0, create: bool = False,
             writable: bool = True) -> File:
        m = MACHINE
        if create:
            m.tick()
            fault = m.fault("create")
            if fault is not None:
                raise OSError(fault.errno, f"injected failure creating {path}")
            inner = self.inner.open(path, size=size, create=True)
            return FaultFile(inner, m.created(path))
        return FaultFile(self.inner.open(path, writable=writable), m.state(path))

    def sync_files(self, files: Sequence[File]) -> None:
        began = time.monotonic()
        start = MACHINE.tick()
        for f in files:
            f.sync()
        MACHINE.sync_done(start, began)

    def close(self) -> None:
        self.inner.close()

    def disown(self) -> None:
        self.inner.disown()


def fault_backend_spec(inner: str, priority: int = -1000) -> BackendSpec:
    """``faults-<inner>``: the wrapper of the registered backend ``inner``, available where it is.

    The low priority keeps ``auto`` from ever choosing it: only tests ask for it by name.
    """

    def probe() -> Availability:
        try:
            spec = backend_spec(inner)
        except BackendUnavailableError as exc:
            return Availability(False, str(exc))
        found = spec.availability()
        return Availability(found.ok, f"wraps {inner}: {found.reason}")

    return BackendSpec(PREFIX + inner, lambda: FaultBackend(inner), priority=priority,
                       probe=probe, description=f"test-only fault injection and power-loss "
                                                f"simulation over {inner}")
