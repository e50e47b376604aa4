"""The backend author's kit: walrus's conformance suite as a pytest plugin.

``pytest -p walrus.testing --walrus-backend NAME`` runs the suite that the built-in backends
pass against the registered backend ``NAME``: the ``File`` contract itself, the engine on it,
the on-disk format read back through a built-in backend (and the other way round),
concurrency, SIGKILL crashes under each fsync schedule, and simulated power loss through a
fault-injecting wrapper of ``NAME``. Installed walrus also registers this module through a
``pytest11`` entry point; without ``--walrus-backend`` it only adds its options and changes
nothing else of a test run.

The fault machinery (``FaultBackend``, ``Machine``, ``powered``, ``crash_image``) is importable
from here for a backend author's own tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ._faults import (
    MACHINE,
    POLICIES,
    FaultBackend,
    Machine,
    PowerOff,
    crash_image,
    fault_backend_spec,
    powered,
)

if TYPE_CHECKING:
    import pytest

SUITE = Path(__file__).resolve().parent / "suite"
"""The conformance tests, collected when ``--walrus-backend`` is given."""

__all__ = [
    "MACHINE",
    "POLICIES",
    "SUITE",
    "FaultBackend",
    "Machine",
    "PowerOff",
    "crash_image",
    "fault_backend_spec",
    "powered",
    "pytest_addoption",
    "pytest_configure",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    """The kit's options; they do nothing until ``--walrus-backend`` is given."""
    group = parser.getgroup("walrus", "walrus backend conformance kit")
    group.addoption("--walrus-backend", metavar="NAME", default=None,
                    help="run walrus's conformance suite against the registered backend NAME")
    group.addoption("--walrus-reference", metavar="NAME", default=None,
                    help="the built-in backend that reads back what NAME wrote, and writes "
                         "what NAME must read (default: pwrite, or mmap when NAME is pwrite)")
    group.addoption("--walrus-crashes", metavar="N", type=int, default=2,
                    help="SIGKILL crashes per fsync schedule (default: 2)")
    group.addoption("--walrus-power-cuts", metavar="N", type=int, default=10,
                    help="simulated power cuts per fsync schedule (default: 10)")


def pytest_configure(config: pytest.Config) -> None:
    """With ``--walrus-backend``: check the backend, add the fixtures and collect the suite."""
    if config.getoption("walrus_backend", None) is None:
        return
    from . import _plugin

    _plugin.activate(config)
