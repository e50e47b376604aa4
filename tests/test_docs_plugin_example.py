"""The example backend plugin in examples/ installs with pip and works end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .cli_support import ROOT, data_dir, quiet_isolated_env

__all__ = ["data_dir", "quiet_isolated_env"]  # fixtures

EXAMPLE = ROOT / "examples" / "walrus-fileobj-backend"

pytestmark = pytest.mark.xdist_group("source-tree")
"""pip builds the example in its folder: one pytest-xdist worker does it, once."""


@pytest.fixture(scope="session")  # once: xdist may run other modules between these tests
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The example package, installed by pip into a directory of its own (not this venv)."""
    target = tmp_path_factory.mktemp("plugin-site")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
         str(target), str(EXAMPLE)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert list(target.glob("walrus_fileobj_backend-*.dist-info"))
    yield target


def env_with(plugin_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WALRUS_")}
    env.update(PYTHONPATH=os.pathsep.join([str(plugin_path), str(ROOT)]), WALRUS_QUIET="1",
               **extra)
    return env


def walrus_with(plugin_path: Path, *args: str | Path,
                **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "walrus", *map(str, args)],
                          capture_output=True, text=True, timeout=120,
                          env=env_with(plugin_path, **extra))


def test_the_installed_plugin_is_listed(plugin_path: Path) -> None:
    result = walrus_with(plugin_path, "backends", "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert rows["fileobj"] == {
        "name": "fileobj", "available": True, "reason": "unbuffered file objects and os.fsync",
        "priority": 0, "plugin": "fileobj",
        "description": "Buffered file objects: portable and simple, slower than mmap and pwrite."}
    assert list(rows)[-1] == "fileobj"  # lowest priority: auto tries it last


def test_the_plugin_can_be_disabled(plugin_path: Path) -> None:
    for variable in ("WALRUS_DISABLED_PLUGINS", "WALRUS_DISABLE_PLUGIN_AUTOLOAD"):
        result = walrus_with(plugin_path, "backends", **{variable: "fileobj"})
        assert result.returncode == 0 and "fileobj" not in result.stdout
        assert "pwrite" in result.stdout


def test_the_command_line_uses_it_and_others_read_what_it_wrote(plugin_path: Path,
                                                                 data_dir: Path) -> None:
    lines = "".join(f"entry {i}\n" for i in range(50))
    result = subprocess.run([sys.executable, "-m", "walrus", "append", str(data_dir), "t",
                             "--lines", "--backend", "fileobj", "--fsync", "sync-each"],
                            input=lines, capture_output=True, text=True, timeout=120,
                            env=env_with(plugin_path))
    assert result.returncode == 0, result.stderr
    for backend in ("fileobj", "pwrite", "mmap"):
        read = walrus_with(plugin_path, "read", data_dir, "t", "--peek", "-n", "100",
                           "--backend", backend)
        assert read.stdout == lines, read.stderr
    verify = walrus_with(plugin_path, "verify", data_dir, "--backend", "fileobj")
    assert verify.returncode == 0 and verify.stdout.rstrip().endswith("OK")


LIBRARY_USE = """
import os, sys
from walrus import FsyncSchedule, Walrus
path = sys.argv[1]
with Walrus(data_dir=path, segment_size=8192, fsync_schedule=FsyncSchedule.SyncEach) as wal:
    assert wal.backend == "fileobj"
    for i in range(200):
        wal.append_for_topic("t", b"%d" % i * 20)
    wal.batch_append_for_topic("t", [b"batch"] * 10)
    assert wal.read_next("t").data == b"0" * 20
wal = Walrus(data_dir=path)  # picked from WALRUS_BACKEND again
assert wal.read_next("t").data == b"1" * 20  # the cursor survived the reopen
os._exit(0)  # a crash: recovery must still find everything
"""


def test_the_library_uses_it_across_segments_reopens_and_a_crash(plugin_path: Path,
                                                                   data_dir: Path) -> None:
    env = env_with(plugin_path, WALRUS_BACKEND="fileobj")
    result = subprocess.run([sys.executable, "-c", LIBRARY_USE, str(data_dir)], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert len(list(data_dir.glob("*.wal"))) > 2
    from walrus import Walrus

    with Walrus(data_dir=data_dir, backend="pwrite") as wal:
        assert wal.get_topic_entry_count("t") == 208
        assert wal.read_next("t") == (b"2" * 20, 2, "t")


def test_the_example_passes_the_backend_authors_kit(plugin_path: Path, tmp_path: Path) -> None:
    """What docs/plugins.md tells an author to run, run on the example."""
    env = {k: v for k, v in env_with(plugin_path).items() if not k.startswith("PYTEST_")}
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                             "-p", "walrus.testing", "--walrus-backend", "fileobj"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
