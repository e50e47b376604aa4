"""Values that plugins hand to walrus: what a backend or a sink is, and the rows that list them.

Whether a backend can run here (``Availability``, what a probe returns) belongs to the backend
contract in ``walrus.backends``: a probe lives beside its backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from ..backends._base import Availability, Backend


def _name(instance: object, attribute: object, value: str) -> None:
    if not isinstance(value, str) or not value or "," in value or value.strip() != value:
        raise ValueError(f"a backend name must be a non-empty str without commas, got {value!r}")
    if value == "auto":
        raise ValueError("'auto' is reserved for automatic backend selection")


def _probed(probe: Callable[[], Availability] | None) -> Availability:
    """What ``probe`` says, turning anything it raises into an unavailable answer."""
    if probe is None:
        return Availability(True, "")
    try:
        result = probe()
    except Exception as exc:  # a probe must never break selection
        return Availability(False, f"probe raised {type(exc).__name__}: {exc}")
    if isinstance(result, Availability):
        return result
    return Availability(False, f"probe returned {result!r}, not an Availability")


@attrs.frozen
class BackendSpec:
    """A backend as a plugin registers it."""

    name: str = attrs.field(validator=_name)
    factory: Callable[[], Backend] = attrs.field(validator=attrs.validators.is_callable())
    priority: int = 0
    """Higher is tried first by ``auto``."""
    probe: Callable[[], Availability] | None = None
    """Says whether the backend can run here; must not raise (walrus guards it anyway)."""
    description: str = ""

    def availability(self) -> Availability:
        """Run the probe, turning anything it raises into an unavailable answer."""
        return _probed(self.probe)


@attrs.frozen
class BackendInfo:
    """One row of ``available_backends()``."""

    name: str
    available: bool
    reason: str
    priority: int
    description: str
    plugin: str
    """The plugin that registered the backend."""


@attrs.frozen
class SinkSpec:
    """A sink as a plugin registers it: where ``walrus forward`` can send a log's entries.

    ``name`` is also the URL scheme it serves (``nats`` for ``--to nats://...``). ``factory``
    takes the target URLs and the sink's options (keywords) and returns an object with
    ``run(source, *, once, stop, progress)`` (see ``walrus.sinks.Sink``).
    """

    name: str = attrs.field(validator=_name)
    factory: Callable[..., Any] = attrs.field(validator=attrs.validators.is_callable())
    probe: Callable[[], Availability] | None = None
    """Says whether the sink can run here (its client library is installed); must not raise."""
    description: str = ""

    def availability(self) -> Availability:
        """Run the probe, turning anything it raises into an unavailable answer."""
        return _probed(self.probe)
