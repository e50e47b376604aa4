"""Registration: the module named by the ``walrus`` entry point in pyproject.toml."""

from __future__ import annotations

import os

import walrus

from .backend import FileObjBackend


def probe() -> walrus.Availability:
    """Can the backend run here? Must never raise; the reason is shown by ``walrus backends``."""
    if not hasattr(os, "fsync"):
        return walrus.Availability(False, "os.fsync is missing on this platform")
    return walrus.Availability(True, "unbuffered file objects and os.fsync")


@walrus.hookimpl
def walrus_register_backends() -> list[walrus.BackendSpec]:
    # Priority 0: below the built-in backends, so "auto" picks it only if they cannot run.
    return [walrus.BackendSpec("fileobj", FileObjBackend, priority=0, probe=probe,
                               description=FileObjBackend.__doc__ or "")]
