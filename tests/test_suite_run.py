"""How the suite itself runs: groups kept whole across pytest-xdist workers (tests/_order.py),
and ``make test``'s steps side by side, each reported (tests/_suite.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .conftest import ROOT, child_environment

GROUPED = """
import os, pytest

@pytest.mark.xdist_group("shared")
@pytest.mark.parametrize("case", range(6))
def test_grouped(case):
    with open(os.environ["WORKERS_SEEN"], "a") as seen:
        seen.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")

@pytest.mark.parametrize("case", range(6))
def test_free(case):
    pass
"""


def test_a_group_runs_whole_in_one_worker(tmp_path: Path) -> None:
    """``--dist loadgroup`` with the suite's hook: the six grouped cases share one worker
    (spread over both when the group's ``@name`` is lost, as pytest 9.2 loses xdist's)."""
    (tmp_path / "conftest.py").write_text(
        "from tests._order import keep_groups\n\n"
        "def pytest_collection_modifyitems(config, items):\n"
        "    keep_groups(config, items)\n")
    (tmp_path / "test_grouped.py").write_text(GROUPED)
    seen = tmp_path / "workers"
    env = dict(child_environment(), WORKERS_SEEN=str(seen))
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                           "-n", "2", "--dist", "loadgroup", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    workers = seen.read_text().split()
    assert len(workers) == 6 and len(set(workers)) == 1, workers


def test_every_step_runs_and_each_failure_is_named(tmp_path: Path) -> None:
    """A failing first pass stops nothing: the second pass and the checks run to their end,
    their output is shown, and the summary names each failed step (make fails)."""
    (tmp_path / "test_one.py").write_text(
        "import os\n\n"
        "def test_pure():\n"
        "    assert os.environ.get('WALRUS_PURE_PYTHON') != '1', 'pure'\n")
    (tmp_path / "conftest.py").write_text(  # the option the second pass is given
        "def pytest_addoption(parser):\n"
        "    parser.addoption('--only-backends')\n")
    (tmp_path / "Makefile").write_text("ok:\n\t@echo checked-ok\n"
                                       "bad:\n\t@echo checked-bad; false\n")
    done = subprocess.run(
        [sys.executable, "-m", "tests._suite", "--workers", "1", "--check", "ok bad",
         "--make", f"make -C {tmp_path}", "--pure-python-tests", str(tmp_path / "test_one.py"),
         "--", "-q", "--rootdir", str(tmp_path), str(tmp_path / "test_one.py")],
        cwd=ROOT, env=child_environment(), capture_output=True, text=True, timeout=300)
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "1 passed" in out and "1 failed" in out and "AssertionError: pure" in out, out
    assert "checked-bad" in out, out
    summary = out.rsplit("== make test: ", 1)[1]
    assert summary.startswith("FAILED in pass 2 of 2"), summary
    assert "make bad" in summary and "make ok" not in summary and "pass 1" not in summary, summary
