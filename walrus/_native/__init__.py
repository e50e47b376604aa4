"""Optional C extensions, built with cffi by ``setup.py`` (see ``docs/backends.md``).

Each extension has a ``*_build.py`` script here that defines its ``ffibuilder``; nothing in
this package is imported unless the feature using it is, and a missing extension is a
normal, reported state (the feature's probe says "not built").
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

from .._config import env


@functools.cache
def speedups() -> tuple[Any, Any, str]:
    """The ``_speedups`` extension as ``(ffi, lib, why)``, or ``(None, None, why)``.

    Loaded once for its two users, the record codec loops (``walrus._speedups``) and the mmap
    backend's page hooks, so both follow the same choice: ``WALRUS_PURE_PYTHON`` forces the
    Python path (the test suite runs both).
    """
    if env("WALRUS_PURE_PYTHON") is not None:
        return None, None, "pure Python (WALRUS_PURE_PYTHON is set)"
    try:
        from . import _speedups  # type: ignore[attr-defined]
    except ImportError as exc:
        return None, None, f"pure Python (C accelerators not built: {exc})"
    return _speedups.ffi, _speedups.lib, "C accelerators (walrus._native._speedups)"


def _plain(name: str, built: str, without: str) -> tuple[Any, str]:
    """A plain CPython extension of this package and why, or ``(None, why)`` (``built`` and
    ``without`` say what runs in either case); ``WALRUS_PURE_PYTHON`` forces ``without``."""
    if env("WALRUS_PURE_PYTHON") is not None:
        return None, "pure Python (WALRUS_PURE_PYTHON is set)"
    try:
        module = importlib.import_module(f"{__name__}.{name}")
    except ImportError as exc:
        return None, f"{without} ({__name__}.{name} not built: {exc})"
    return module, f"{built} ({__name__}.{name})"


@functools.cache
def hot() -> tuple[Any, str]:
    """The ``_hot`` extension (the per-call hot paths against the CPython API) and why, or
    ``(None, why)``; ``WALRUS_PURE_PYTHON`` forces the Python paths, as for ``speedups``."""
    return _plain("_hot", "C hot paths", "Python hot paths")


@functools.cache
def prefault() -> tuple[Any, str]:
    """The ``_prefault`` extension (a prefaulter thread that runs without the GIL) and why, or
    ``(None, why)``; ``WALRUS_PURE_PYTHON`` forces the Python thread, as for ``speedups``."""
    return _plain("_prefault", "a native thread", "a Python thread")
