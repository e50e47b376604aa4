"""Helpers for the command-line, observer, verify and docs tests: real processes, real files."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._forks import run_interpreter

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def quiet_isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test sees the developer's WALRUS_* settings; relative paths land in tmp_path."""
    for name in list(os.environ):
        if name.startswith("WALRUS_") and name not in ("WALRUS_REQUIRE_URING", "WALRUS_URING"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("WALRUS_QUIET", "1")
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data directory that does not exist yet."""
    return tmp_path / "wal"


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: this one's, with the source tree importable."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), **extra)
    return env


def walrus_cmd(*args: str | os.PathLike[str], stdin: bytes | None = None, timeout: float = 60,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run the real ``walrus`` command line (``python -m walrus``) and wait for it (forked
    from a zygote that has imported walrus, tests/_zygote.py, when one serves ``env``)."""
    return run_interpreter(["-m", "walrus", *map(str, args)], env or child_env(), timeout, ROOT,
                      stdin)


def start_walrus(*args: str | os.PathLike[str]) -> subprocess.Popen[bytes]:
    """Start the real ``walrus`` command line without waiting (for ``tail``)."""
    return subprocess.Popen([sys.executable, "-m", "walrus", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env())


def start_python(code: str, *args: str) -> subprocess.Popen[bytes]:
    """Start Python code in a fresh interpreter, stdin and stdout piped."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=child_env())


def run_python(code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    """Run Python code in another process and require it to succeed (forked from a zygote
    that has imported walrus, or a fresh interpreter: tests/_forks.py)."""
    result = run_interpreter(["-c", textwrap.dedent(code), *args], child_env(), timeout, ROOT)
    if result.returncode != 0:
        raise AssertionError(f"child failed ({result.returncode}):\n{result.stderr.decode()}")
    return result


def tree_state(path: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``path`` with its size and modification time (to prove nothing changed)."""
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(path.rglob("*")) if p.is_file()}
