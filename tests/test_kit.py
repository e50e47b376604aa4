"""The backend author's kit (``walrus.testing``): the built-in backends pass it, deliberately
broken backends fail it with a message that says what they broke, and without
``--walrus-backend`` the plugin changes nothing of a test run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from .conftest import BACKENDS, ROOT

BROKEN = ROOT / "tests" / "kit_plugins"
"""Deliberately broken backends (``walrus_broken``), registered only where this is on the path."""


def run_pytest(cwd: Path, *args: str, path: tuple[Path, ...] = (BROKEN,),
               plugin: bool = True) -> subprocess.CompletedProcess[str]:
    """``pytest [-p walrus.testing] args`` in a fresh process, with the source tree and
    ``path`` importable and none of this run's pytest or walrus settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "WALRUS_")) or k == "WALRUS_URING"}
    env.update(PYTHONPATH=os.pathsep.join(map(str, (ROOT, *path))), WALRUS_QUIET="1")
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
               "--show-capture=no",  # the failures' messages, not the logs around them
               *(("-p", "walrus.testing") if plugin else ()), *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


def passed(result: subprocess.CompletedProcess[str]) -> int:
    found = re.search(r"(\d+) passed", result.stdout)
    return int(found.group(1)) if found else 0


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_every_builtin_backend_passes_the_kit(tmp_path: Path, backend: str) -> None:
    result = run_pytest(tmp_path, "--walrus-backend", backend)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert passed(result) >= 26 and "failed" not in result.stdout


BROKEN_CASES = {
    "broken-tears": ((), r"write\(\) tore the write: of the \d+ bytes given at \d+, only the "
                         r"first \d+ reached the file"),
    "broken-memory": ((), r"write\(\) did not hand the bytes to the OS: after it returned"),
    "broken-stale": ((), r"read\(\) returned bytes that differ from what write\(\) was given "
                         r"at \d+"),
    "broken-writev": ((), r"writev\(\) did not write its \d+ buffers back to back in order"),
    "broken-nosync": (("-k", "sync_leaves_no_dirty_page"),
                      r"sync\(\) returned while \d+ pages of 0000000000000001.wal were still "
                      r"dirty in the page cache"),
    "broken-memory-crash": (("-k", "sigkill and NoFsync"),
                            r"an acknowledged append was lost after SIGKILL under NoFsync: "
                            r"topic 'a' recovered \d+ entries, \d+ were acknowledged"),
}
"""Backend (a ``-crash`` case runs only the crash test) -> (pytest arguments, the failure)."""


@pytest.mark.parametrize("case", list(BROKEN_CASES))
def test_a_broken_backend_fails_the_kit_saying_what_it_broke(tmp_path: Path,
                                                              case: str) -> None:
    args, message = BROKEN_CASES[case]
    backend = case.removesuffix("-crash")
    result = run_pytest(tmp_path, "--walrus-backend", backend, "-x", *args)
    if "cannot see dirty pages here" in result.stdout + result.stderr:
        pytest.skip("this file system cannot show dirty pages (see the kit's skip reason)")
    assert result.returncode == 1, result.stdout[-5000:] + result.stderr[-2000:]
    assert re.search(message, result.stdout), result.stdout[-5000:]


def test_without_its_option_the_plugin_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "test_mine.py").write_text("def test_mine():\n    pass\n")
    result = run_pytest(tmp_path)
    assert result.returncode == 0 and passed(result) == 1, result.stdout
    helped = run_pytest(tmp_path, "--help")
    assert "--walrus-backend=NAME" in helped.stdout


def test_the_pytest11_entry_point_loads_it_beside_p(tmp_path: Path) -> None:
    """Installed, walrus registers the plugin under its module's name, so ``-p walrus.testing``
    and the entry point do not register it twice; it stays inert until asked."""
    entry_points = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "entry-points"]["pytest11"]
    assert entry_points == {"walrus.testing": "walrus.testing"}
    dist = tmp_path / "site" / "walrus_kit_probe-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: walrus-kit-probe\n"
                                   "Version: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[pytest11]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    work = tmp_path / "work"
    work.mkdir()
    (work / "test_mine.py").write_text("def test_mine():\n    pass\n")
    site = (tmp_path / "site",)
    for plugin in (False, True):
        result = run_pytest(work, path=site, plugin=plugin)
        assert result.returncode == 0 and passed(result) == 1, result.stdout + result.stderr
    kit = run_pytest(work, "--walrus-backend", "pwrite", "-k", "contract", path=site,
                     plugin=False)
    assert kit.returncode == 0 and passed(kit) >= 9, kit.stdout + kit.stderr


def test_an_unknown_backend_is_a_usage_error(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, "--walrus-backend", "no-such-backend")
    assert result.returncode == 4
    assert "--walrus-backend no-such-backend: no backend of that name is registered" in \
        result.stderr
