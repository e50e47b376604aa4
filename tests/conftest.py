"""Shared fixtures: every engine test runs against every available backend."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ROOT / "tests" / "plugins"
"""Test-only plugins, found through their ``.dist-info`` like installed distributions."""
if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))

import walrus  # noqa: E402  (after the plugin path, so its entry points are found)
from walrus import Walrus  # noqa: E402
from walrus._native import prefault as native_prefault  # noqa: E402
from walrus.testing._instances import instances  # noqa: E402

from ._forks import Zygote, close_all, run_interpreter, zygote_for  # noqa: E402
from ._order import keep_groups, longest_first  # noqa: E402

_AVAILABLE = [row.name for row in walrus.available_backends() if row.available]
FAULT_BACKENDS = [name for name in _AVAILABLE if name.startswith("faults-")]
"""The fault-injecting wrappers (``walrus.testing._faults``, registered by
tests/plugins/walrus_faults), one per wrapped backend."""
BACKENDS = [name for name in _AVAILABLE if name not in FAULT_BACKENDS]
if not FAULT_BACKENDS:
    raise RuntimeError(f"the walrus_faults test plugin was not registered from {PLUGINS}")
if (os.environ.get("WALRUS_SPEEDUPS") == "1" and not os.environ.get("WALRUS_PURE_PYTHON")
        and not walrus._speedups.ACCELERATED):
    raise RuntimeError("WALRUS_SPEEDUPS=1 but the C accelerators did not load: "
                       + walrus._speedups.REASON)
if (os.environ.get("WALRUS_SPEEDUPS") == "1" and not os.environ.get("WALRUS_PURE_PYTHON")
        and native_prefault()[0] is None):
    raise RuntimeError("WALRUS_SPEEDUPS=1 but the native prefaulter did not load: "
                       + native_prefault()[1])
if os.environ.get("WALRUS_REQUIRE_URING") and "io_uring" not in BACKENDS:
    raise RuntimeError("WALRUS_REQUIRE_URING is set but the io_uring backend is unavailable: "
                       + next((r.reason for r in walrus.available_backends()
                               if r.name == "io_uring"), "not registered"))


KEEP_ENV = ("WALRUS_REQUIRE_URING", "WALRUS_URING", "WALRUS_PURE_PYTHON",
            "WALRUS_NATIVE_PREFAULT")
"""Variables that select how the suite itself runs (they reach child processes too)."""


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's WALRUS_* settings; relative paths land in tmp_path."""
    for name in list(os.environ):
        if name.startswith("WALRUS_") and name not in KEEP_ENV:
            monkeypatch.delenv(name)
    monkeypatch.setenv("WALRUS_QUIET", "1")
    monkeypatch.chdir(tmp_path)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def child_environment() -> dict[str, str]:
    """What a test's child process is given: this environment (the suite's own variables and
    ``WALRUS_QUIET`` once the autouse fixture has run), the source tree and plugins importable."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("WALRUS_") or name in KEEP_ENV}
    env.setdefault("WALRUS_QUIET", "1")
    return dict(env, PYTHONPATH=os.pathsep.join([str(ROOT), str(PLUGINS)]))


@pytest.fixture
def zygote() -> Zygote:
    """Children that start without paying Python's imports (tests/_zygote.py)."""
    forks = zygote_for(child_environment(), ROOT)
    assert forks is not None
    return forks


WalFactory = Callable[..., Walrus]


@pytest.fixture
def open_wal(tmp_path: Path, backend: str) -> Iterator[WalFactory]:
    """Open instances on the parametrised backend; all are closed at teardown."""
    with instances(tmp_path / "wal", backend) as factory:
        yield factory


def run_child(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run Python code in a fresh interpreter (a real, separate process).

    The code should end with ``os._exit(0)`` where it means to die without closing.
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(PLUGINS)]))
    done = run_interpreter(["-c", textwrap.dedent(code), *args], env, timeout, ROOT)
    result = subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(),
                                         done.stderr.decode())
    if result.returncode != 0:
        raise AssertionError(f"child failed ({result.returncode}):\n{result.stderr}")
    return result


def drain(wal: Walrus, topic: str, checkpoint: bool = True) -> list[bytes]:
    """read_next until None."""
    out = []
    while (entry := wal.read_next(topic, checkpoint=checkpoint)) is not None:
        out.append(entry.data)
        if not checkpoint:
            break
    return out


def peek_all(wal: Walrus, topic: str, start: int = 0) -> list[walrus.Entry]:
    """Every retained entry from ``start`` without touching the cursor."""
    out: list[walrus.Entry] = []
    while True:
        batch = wal.batch_read_for_topic(topic, 1 << 30, checkpoint=False, start_offset=start)
        if not batch:
            return out
        out.extend(batch)
        start = batch[-1].offset + 1


def segment_files(path: Path) -> list[Path]:
    return sorted(path.glob("*.wal"))


def smaps_bytes(path: str | Path, *fields: str) -> int:
    """The sum of ``fields`` (e.g. ``"Rss"``) over this process's mappings of ``path``, in
    bytes, from ``/proc/self/smaps``."""
    total, inside = 0, False
    wanted = {f"{field}:" for field in fields}
    with open("/proc/self/smaps") as f:
        for line in f:
            first = line.split(maxsplit=1)[0]
            if "-" in first and not first.endswith(":"):  # a mapping's heading line
                inside = line.rstrip().endswith(str(path))
            elif inside and first in wanted:
                total += int(line.split()[1]) * 1024
    return total


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--only-backends", metavar="NAMES", default=None,
        help="run the tests parametrised by backend (or by a faults-* wrapper) only for these "
             "backends, comma-separated: the pure-Python pass of `make test` skips io_uring, "
             "whose codec calls are pwrite's")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``--only-backends``, then the longest tests first and each group whole
    (tests/_order.py)."""
    if only := config.getoption("--only-backends"):
        keep = set(only.split(","))
        chosen, dropped = [], []
        for item in items:
            params = getattr(item, "callspec", None)
            names = [str(params.params[name]).removeprefix("faults-")
                     for name in ("backend", "faulty") if params and name in params.params]
            (chosen if keep.issuperset(names) else dropped).append(item)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = chosen
    longest_first(items)
    keep_groups(config, items)


def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_WorkerFigures(), "walrus-worker-figures")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Under pytest-xdist, a worker hands its figures to the controller (which prints them)."""
    from ._workload import FIGURES

    close_all()
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["walrus_figures"] = dict(FIGURES)


class _WorkerFigures:
    """Adds each pytest-xdist worker's figures to the controller's (a hook only xdist knows)."""

    @pytest.hookimpl
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        from ._workload import FIGURES

        FIGURES.update(getattr(node, "workeroutput", {}).get("walrus_figures", {}))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The reliability figures (docs/reliability.md quotes them), summed over xdist workers."""
    from ._workload import FIGURES

    if FIGURES:
        terminalreporter.section("reliability figures")
        for name, count in sorted(FIGURES.items()):
            terminalreporter.write_line(f"{name}: {count}")
