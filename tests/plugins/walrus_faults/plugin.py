"""The entry point: one fault backend per wrappable built-in, registered like any plugin."""

from __future__ import annotations

import walrus
from walrus import BackendSpec
from walrus.testing._faults import fault_backend_spec

WRAPPED = ("mmap", "pwrite", "io_uring")


@walrus.hookimpl
def walrus_register_backends() -> list[BackendSpec]:
    """Never chosen by ``auto`` (lowest priority): only tests ask for these by name."""
    return [fault_backend_spec(inner) for inner in WRAPPED]
