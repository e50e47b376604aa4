"""Finding plugins: the ``walrus`` entry-point group, loaded one by one so a broken plugin is
logged and skipped instead of breaking ``import walrus`` or backend selection."""

from __future__ import annotations

import logging
import os
import threading
from importlib.metadata import entry_points
from types import ModuleType
from typing import TypeVar

import pluggy

from .._errors import BackendUnavailableError, ForwardError
from . import _hookspecs
from ._spec import BackendInfo, BackendSpec, SinkSpec

log = logging.getLogger("walrus.plugins")

BUILTIN_PLUGIN = "walrus.plugins._builtin"
"""The module that registers the built-in backends (through the same entry-point group)."""

_lock = threading.Lock()
_manager: pluggy.PluginManager | None = None


def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with every installed plugin loaded."""
    global _manager
    with _lock:
        if _manager is None:
            pm = pluggy.PluginManager(_hookspecs.PROJECT)
            pm.add_hookspecs(_hookspecs)
            _load_entry_points(pm)
            _manager = pm
        return _manager


def _disabled() -> set[str]:
    value = os.environ.get("WALRUS_DISABLED_PLUGINS", "")
    return {name.strip() for name in value.split(",") if name.strip()}


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    disabled = _disabled()
    autoload = not os.environ.get("WALRUS_DISABLE_PLUGIN_AUTOLOAD")
    found = entry_points(group=_hookspecs.PROJECT) if autoload else ()
    # The built-in plugin loads first so that its names win over a clashing third party.
    for ep in sorted(found, key=lambda ep: (ep.value != BUILTIN_PLUGIN, ep.name)):
        if ep.name in disabled or pm.has_plugin(ep.name):
            continue
        try:
            plugin = ep.load()
            if not pm.is_registered(plugin):
                pm.register(plugin, name=ep.name)
        except Exception as exc:
            log.warning("skipping walrus plugin %r (%s): %s: %s", ep.name, ep.value,
                        type(exc).__name__, exc)
    if not any(getattr(p, "__name__", None) == BUILTIN_PLUGIN for p in pm.get_plugins()):
        # Running from a source tree that was never installed: no entry points exist.
        import importlib

        builtin: ModuleType = importlib.import_module(BUILTIN_PLUGIN)
        pm.register(builtin, name="builtin")


SpecT = TypeVar("SpecT", BackendSpec, SinkSpec)


def _collect(hook: str, kind: type[SpecT]) -> list[tuple[SpecT, str]]:
    """Every spec the plugins return from ``hook``, with the plugin that registered it; the
    first of a name wins, and a plugin whose hook raises or returns junk is logged and skipped."""
    what = "backend" if kind is BackendSpec else "sink"
    pm = plugin_manager()
    seen: dict[str, tuple[SpecT, str]] = {}
    for impl in getattr(pm.hook, hook).get_hookimpls():
        plugin = impl.plugin_name
        try:
            result = impl.function()
        except Exception as exc:
            log.warning("walrus plugin %r failed to register %ss: %s: %s", plugin, what,
                        type(exc).__name__, exc)
            continue
        try:
            specs: list[object] = [result] if isinstance(result, kind) else list(result or ())
        except TypeError:
            specs = [result]
        for spec in specs:
            if not isinstance(spec, kind):
                log.warning("walrus plugin %r returned %r, not a %s", plugin, spec,
                            kind.__name__)
            elif spec.name in seen:
                log.warning("walrus plugin %r registers %s %r again; keeping the one from %r",
                            plugin, what, spec.name, seen[spec.name][1])
            else:
                seen[spec.name] = (spec, plugin)
    return list(seen.values())


def registered_specs() -> list[tuple[BackendSpec, str]]:
    """Every backend spec with the plugin that registered it; the first of a name wins."""
    return sorted(_collect("walrus_register_backends", BackendSpec),
                  key=lambda item: (-item[0].priority, item[0].name))


def registered_sinks() -> list[tuple[SinkSpec, str]]:
    """Every sink spec with the plugin that registered it, by name; the first of a name wins."""
    return sorted(_collect("walrus_register_sinks", SinkSpec), key=lambda item: item[0].name)


def backend_spec(name: str) -> BackendSpec:
    """The registered spec named ``name`` (so a plugin can wrap a built-in backend)."""
    for spec, _ in registered_specs():
        if spec.name == name:
            return spec
    known = ", ".join(spec.name for spec, _ in registered_specs())
    raise BackendUnavailableError(f"no backend named {name!r} is registered (known: {known})")


def sink_spec(name: str) -> SinkSpec:
    """The registered sink named ``name`` that can run here, or ForwardError saying why not
    (unknown name, or the probe's reason, e.g. a missing client library)."""
    specs = {spec.name: spec for spec, _ in registered_sinks()}
    spec = specs.get(name)
    if spec is None:
        raise ForwardError(f"no sink named {name!r} is registered "
                           f"(known: {', '.join(specs) or 'none'})")
    availability = spec.availability()
    if not availability.ok:
        raise ForwardError(f"sink {name!r} is unavailable: {availability.reason or 'no reason'}")
    return spec


def available_backends() -> list[BackendInfo]:
    """One row per registered backend, highest priority first."""
    rows = []
    for spec, plugin in registered_specs():
        availability = spec.availability()
        rows.append(BackendInfo(spec.name, availability.ok, availability.reason, spec.priority,
                                spec.description, plugin))
    return rows
