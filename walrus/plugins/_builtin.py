"""Registers the built-in backends and sinks, exactly as a third-party plugin would."""

from __future__ import annotations

from ..backends import _io_uring, _mmap, _pwrite
from ..sinks import _nats
from ._hookspecs import hookimpl
from ._spec import BackendSpec, SinkSpec


@hookimpl
def walrus_register_backends() -> list[BackendSpec]:
    """The built-in ``mmap``, ``pwrite`` and ``io_uring`` backends."""
    return [
        BackendSpec("mmap", _mmap.MmapBackend, priority=100, probe=_mmap.probe,
                    description=_mmap.MmapBackend.__doc__ or ""),
        BackendSpec("pwrite", _pwrite.PwriteBackend, priority=50, probe=_pwrite.probe,
                    description=_pwrite.PwriteBackend.__doc__ or ""),
        BackendSpec("io_uring", _io_uring.IoUringBackend, priority=25, probe=_io_uring.probe,
                    description=_io_uring.IoUringBackend.__doc__ or ""),
    ]


@hookimpl
def walrus_register_sinks() -> list[SinkSpec]:
    """The built-in ``nats`` sink (NATS JetStream; needs the extra ``walrus-wal[nats]``)."""
    return [SinkSpec("nats", _nats.factory, probe=_nats.probe,
                     description="NATS JetStream: a subject per topic, exactly once")]
