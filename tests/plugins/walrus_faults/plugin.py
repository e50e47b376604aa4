"""The entry point: one fault backend per wrappable built-in, registered like any plugin."""

from __future__ import annotations

from collections.abc import Callable

import walrus
from walrus import Availability, BackendSpec, BackendUnavailableError

from ._backend import PREFIX, FaultBackend

WRAPPED = ("mmap", "pwrite", "io_uring")


def _probe(inner: str) -> Callable[[], Availability]:
    def probe() -> Availability:
        try:
            spec = walrus.backend_spec(inner)
        except BackendUnavailableError as exc:
            return Availability(False, str(exc))
        found = spec.availability()
        return Availability(found.ok, f"wraps {inner}: {found.reason}")
    return probe


def _factory(inner: str) -> Callable[[], FaultBackend]:
    return lambda: FaultBackend(inner)


@walrus.hookimpl
def walrus_register_backends() -> list[BackendSpec]:
    """Never chosen by ``auto`` (lowest priority): only tests ask for these by name."""
    return [BackendSpec(PREFIX + inner, _factory(inner), priority=-1000, probe=_probe(inner),
                        description=f"test-only fault injection and power-loss simulation over "
                                    f"{inner}")
            for inner in WRAPPED]
