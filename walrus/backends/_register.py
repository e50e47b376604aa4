"""Registers the built-in backends, exactly as a third-party plugin would."""

from __future__ import annotations

from ..plugins import BackendSpec, hookimpl
from . import _mmap, _pwrite


@hookimpl
def walrus_register_backends() -> list[BackendSpec]:
    """The built-in ``mmap`` and ``pwrite`` backends."""
    return [
        BackendSpec("mmap", _mmap.MmapBackend, priority=100, probe=_mmap.probe,
                    description=_mmap.MmapBackend.__doc__ or ""),
        BackendSpec("pwrite", _pwrite.PwriteBackend, priority=50, probe=_pwrite.probe,
                    description=_pwrite.PwriteBackend.__doc__ or ""),
    ]
