"""Choosing the backend: ``Walrus(backend=...)``, else ``$WALRUS_BACKEND``, else ``auto``.

A value is one name, a comma-separated fallback list, or ``auto`` (every registered backend
by priority). Lists and ``auto`` skip unavailable backends and log why; a single name that
cannot run raises :class:`BackendUnavailableError` with the probe's reason.
"""

from __future__ import annotations

import logging

from .._config import env
from .._errors import BackendUnavailableError, InvalidArgumentError
from ..backends._base import Backend
from ._manager import registered_specs
from ._spec import BackendSpec

log = logging.getLogger("walrus.plugins")


def _candidates(value: str, source: str) -> tuple[list[BackendSpec], bool]:
    names = [name.strip() for name in value.split(",")]
    if not all(names):
        raise InvalidArgumentError(f"{source}={value!r}: empty backend name in the list")
    specs = [spec for spec, _ in registered_specs()]
    by_name = {spec.name: spec for spec in specs}
    chosen: list[BackendSpec] = []
    for name in names:
        if name == "auto":
            chosen.extend(s for s in specs if s not in chosen)
        elif name in by_name:
            if by_name[name] not in chosen:
                chosen.append(by_name[name])
        elif len(names) == 1:
            raise BackendUnavailableError(
                f"{source}={value!r}: no backend named {name!r} is registered "
                f"(known: {', '.join(by_name) or 'none'})")
        else:
            log.info("%s: backend %r is not registered, skipping it", source, name)
    return chosen, len(names) == 1 and names[0] != "auto"


def select_backend(requested: str | None) -> tuple[str, Backend]:
    """Pick and build the backend for one instance; returns its name and the backend."""
    if requested is not None and not isinstance(requested, str):
        raise InvalidArgumentError(f"backend must be a str, not {type(requested).__name__}")
    source = "backend"
    value = requested
    if value is None:
        value = env("WALRUS_BACKEND")
        source = "WALRUS_BACKEND"
    if value is None:
        value, source = "auto", "auto"
    candidates, explicit = _candidates(value, source)
    reasons = []
    for spec in candidates:
        availability = spec.availability()
        if availability.ok:
            try:
                backend = spec.factory()
            except Exception as exc:
                availability_reason = f"factory raised {type(exc).__name__}: {exc}"
            else:
                if not isinstance(backend, Backend):
                    availability_reason = (
                        f"factory returned {type(backend).__name__}, not a Backend")
                else:
                    return spec.name, backend
        else:
            availability_reason = availability.reason or "unavailable"
        if explicit:
            raise BackendUnavailableError(
                f"backend {spec.name!r} is unavailable: {availability_reason}")
        reasons.append(f"{spec.name}: {availability_reason}")
        log.info("backend %r unavailable (%s); trying the next one", spec.name,
                 availability_reason)
    raise BackendUnavailableError(
        f"{source}={value!r}: no usable backend ({'; '.join(reasons) or 'none registered'})")
