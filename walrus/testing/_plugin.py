"""The kit once active: its fixtures, and the suite added to what pytest collects."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import walrus
from walrus.plugins import plugin_manager

from . import SUITE
from ._faults import PREFIX, fault_backend_spec
from ._instances import WalrusFactory, instances

BUILTIN = ("pwrite", "mmap")
"""Built-in backends that can read back what the backend under test wrote."""


def activate(config: pytest.Config) -> None:
    """Refuse an unknown or unavailable backend at once, then register the fixtures."""
    name = config.getoption("walrus_backend")
    for option in ("walrus_crashes", "walrus_power_cuts"):
        if config.getoption(option) < 0:
            raise pytest.UsageError(f"--{option.replace('_', '-')} must be 0 or more")
    rows = {row.name: row for row in walrus.available_backends()}
    row = rows.get(name)
    if row is None:
        raise pytest.UsageError(
            f"--walrus-backend {name}: no backend of that name is registered (registered: "
            f"{', '.join(sorted(rows))}); is the package that registers it installed?")
    if not row.available:
        raise pytest.UsageError(f"--walrus-backend {name}: the backend cannot run here: "
                                f"{row.reason}")
    reference = config.getoption("walrus_reference") or next(
        b for b in BUILTIN if b != name)
    if reference not in rows or not rows[reference].available:
        raise pytest.UsageError(f"--walrus-reference {reference}: not an available backend")
    config.stash[REFERENCE] = reference
    config.pluginmanager.register(sys.modules[__name__], "walrus-testing-fixtures")
    if config.args_source == pytest.Config.ArgsSource.ARGS:
        config.args.append(str(SUITE))  # the paths given, and the kit
    else:
        config.args[:] = [str(SUITE)]  # only the kit (not the project's testpaths)


ORDER = ("test_file_contract", "test_engine", "test_format", "test_concurrency", "test_crash",
         "test_power_loss")
"""The contract first: a backend that breaks it fails there, with the plainest message."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the suite's modules in :data:`ORDER`, after the caller's own tests."""
    def rank(item: pytest.Item) -> int:
        path = Path(item.path)
        if path.parent != SUITE or path.stem not in ORDER:
            return -1
        return ORDER.index(path.stem)

    items.sort(key=rank)


class _FaultPlugin:
    """Registers the fault-injecting wrapper of the backend under test."""

    def __init__(self, inner: str) -> None:
        self.inner = inner

    @walrus.hookimpl
    def walrus_register_backends(self) -> list[walrus.BackendSpec]:
        return [fault_backend_spec(self.inner)]


KEEP_ENV = ("WALRUS_DISABLED_PLUGINS", "WALRUS_DISABLE_PLUGIN_AUTOLOAD", "WALRUS_URING",
            "WALRUS_PURE_PYTHON")
"""Variables that decide which backends exist and how they run: a child keeps them."""

REFERENCE = pytest.StashKey[str]()


@pytest.fixture(scope="session")
def walrus_backend(pytestconfig: pytest.Config) -> str:
    """The name of the backend under test."""
    return str(pytestconfig.getoption("walrus_backend"))


@pytest.fixture(scope="session")
def walrus_reference(pytestconfig: pytest.Config) -> str:
    """A built-in backend that must read what the backend under test wrote."""
    return pytestconfig.stash[REFERENCE]


@pytest.fixture(autouse=True)
def _walrus_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WALRUS_QUIET", "1")

@pytest.fixture
def open_walrus(tmp_path: Path, walrus_backend: str) -> Iterator[WalrusFactory]:
    """Opens instances on the backend under test (in ``tmp_path/wal`` unless told);
    every one is closed at teardown."""
    with instances(tmp_path / "wal", walrus_backend) as factory:
        yield factory


@pytest.fixture
def fault_backend(walrus_backend: str) -> Iterator[str]:
    """The name of a fault-injecting wrapper of the backend under test (registered for
    the test's duration)."""
    name = PREFIX + walrus_backend
    known = {row.name for row in walrus.available_backends()}
    if name in known:  # the project registers it already
        yield name
        return
    plugin = _FaultPlugin(walrus_backend)
    plugin_manager().register(plugin, name=f"walrus-testing-{name}")
    try:
        yield name
    finally:
        plugin_manager().unregister(plugin)

@pytest.fixture(scope="session")
def child_environment() -> dict[str, str]:
    """The environment of a child process: this process's import path (so it finds the
    same backends), without the caller's walrus settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("WALRUS_") or k in KEEP_ENV}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env["WALRUS_QUIET"] = "1"
    return env
