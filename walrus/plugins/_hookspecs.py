"""The hooks a walrus plugin can implement."""

from __future__ import annotations

from collections.abc import Iterable

import pluggy

from ._spec import BackendSpec, SinkSpec

PROJECT = "walrus"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def walrus_register_backends() -> BackendSpec | Iterable[BackendSpec]:  # type: ignore[empty-body]
    """Return the backend specs this plugin provides."""


@hookspec
def walrus_register_sinks() -> SinkSpec | Iterable[SinkSpec]:  # type: ignore[empty-body]
    """Return the sink specs (targets of ``walrus forward``) this plugin provides."""
