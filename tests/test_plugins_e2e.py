"""Third-party plugins end to end: real distributions found through their entry points.

Two tiny distributions are written into a directory that a child interpreter has on its
path: ``walrus-demo-plugin`` registers a backend that wraps the built-in ``pwrite`` through
``walrus.backend_spec`` and one whose probe says no; ``walrus-broken-plugin`` fails on import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import ROOT

DEMO_PLUGIN = '''
"""Counts what the engine asks of the pwrite backend it wraps."""
from walrus import Availability, BackendSpec, backend_spec, hookimpl
from walrus.backends import Backend, File

CALLS = []


class CountingFile(File):
    view = None  # no mapping: every append goes through write/writev

    def __init__(self, inner):
        self.inner, self.path, self.size = inner, inner.path, inner.size

    def write(self, pos, data):
        CALLS.append("write")
        self.inner.write(pos, data)

    def writev(self, pos, buffers):
        CALLS.append("writev")
        self.inner.writev(pos, buffers)

    def read(self, pos, size):
        CALLS.append("read")
        return self.inner.read(pos, size)

    def sync(self):
        CALLS.append("sync")
        self.inner.sync()

    def close(self):
        self.inner.close()


class CountingBackend(Backend):
    name = "counting"

    def __init__(self):
        self.inner = backend_spec("pwrite").factory()

    def open(self, path, *, size=0, create=False, writable=True):
        return CountingFile(self.inner.open(path, size=size, create=create, writable=writable))

    def sync_files(self, files):
        CALLS.append("sync_files")
        self.inner.sync_files([f.inner for f in files])

    def close(self):
        self.inner.close()


@hookimpl
def walrus_register_backends():
    return [
        BackendSpec("counting", CountingBackend, priority=1,
                    probe=lambda: Availability(True, "wraps pwrite"),
                    description="pwrite with call counts"),
        BackendSpec("quantum", CountingBackend, priority=10_000,
                    probe=lambda: Availability(False, "demo: no quantum disk attached")),
    ]
'''

CHECKS = '''
import io, json, logging, os, sys, tempfile
log = io.StringIO()
logging.getLogger("walrus").addHandler(logging.StreamHandler(log))
logging.getLogger("walrus").setLevel(logging.INFO)

import walrus  # the broken plugin must not break this
import walrus.plugins
from walrus import FsyncSchedule, Walrus
import walrus_demo_plugin as demo

rows = {r.name: r for r in walrus.available_backends()}
out = {"rows": {n: [r.available, r.reason, r.plugin, r.priority] for n, r in rows.items()}}
out["wraps"] = walrus.backend_spec("counting").factory().inner.name

data_dir = tempfile.mkdtemp()
with Walrus(data_dir=data_dir, backend="counting",
            fsync_schedule=FsyncSchedule.SyncEach) as wal:
    wal.append_for_topic("t", b"one")
    wal.batch_append_for_topic("t", [b"two", b"three"])
    wal.append_for_topic("t", b"four")  # to an existing topic: header + payload, one writev
    out["backend"] = wal.backend
with Walrus(data_dir=data_dir, backend="counting") as wal:
    out["read"] = [e.data.decode() for e in wal.batch_read_for_topic("t", 100, checkpoint=False)]
with Walrus(data_dir=data_dir, backend="pwrite") as wal:
    out["read_by_pwrite"] = wal.get_topic_entry_count("t")
out["calls"] = sorted(set(demo.CALLS))

with Walrus(data_dir=tempfile.mkdtemp()) as wal:  # auto: quantum first, then the built-ins
    out["auto"] = wal.backend
try:
    Walrus(data_dir=tempfile.mkdtemp(), backend="quantum")
    out["explicit"] = None
except walrus.BackendUnavailableError as exc:
    out["explicit"] = str(exc)
out["table"] = walrus.plugins.format_backend_table()
out["log"] = log.getvalue()
print(json.dumps(out))
'''


def _distribution(site: Path, name: str, version: str, entry_points: dict[str, str],
                  modules: dict[str, str]) -> None:
    """Install a distribution the way pip lays one out: modules plus a .dist-info."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = "".join(f"{key} = {value}\n" for key, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[walrus]\n{lines}")
    (info / "RECORD").write_text("")
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    tmp_path = tmp_path_factory.mktemp("plugins")
    site = tmp_path / "site"
    _distribution(site, "walrus-demo-plugin", "1.0", {"demo": "walrus_demo_plugin"},
                  {"walrus_demo_plugin": DEMO_PLUGIN})
    _distribution(site, "walrus-broken-plugin", "0.1", {"broken": "walrus_broken_plugin"},
                  {"walrus_broken_plugin": 'raise RuntimeError("this plugin is broken")\n'})
    env = {k: v for k, v in os.environ.items() if not k.startswith("WALRUS_")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT)])
    env["TMPDIR"] = str(tmp_path)  # the logs the checks make go when pytest cleans up
    result = subprocess.run([sys.executable, "-c", CHECKS], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_an_installed_plugin_is_discovered(report: dict[str, object]) -> None:
    rows = report["rows"]
    assert isinstance(rows, dict)
    assert rows["counting"] == [True, "wraps pwrite", "demo", 1]
    assert {"mmap", "pwrite", "counting", "quantum"} <= set(rows)
    assert rows["mmap"][2] != "demo", "the built-ins come from their own plugin"


def test_a_plugin_wraps_a_builtin_and_does_real_io(report: dict[str, object]) -> None:
    assert report["wraps"] == "pwrite"
    assert report["backend"] == "counting"
    assert report["read"] == ["one", "two", "three", "four"]
    assert report["read_by_pwrite"] == 4, "what the wrapper wrote is a normal directory"
    assert report["calls"] == ["read", "sync", "sync_files", "write", "writev"]


def test_a_plugin_whose_probe_says_no_is_skipped_with_its_reason(
        report: dict[str, object]) -> None:
    rows = report["rows"]
    assert isinstance(rows, dict)
    assert rows["quantum"][:2] == [False, "demo: no quantum disk attached"]
    assert report["auto"] == "mmap"
    assert "'quantum' unavailable (demo: no quantum disk attached)" in str(report["log"])
    assert "demo: no quantum disk attached" in str(report["explicit"])


def test_a_plugin_that_fails_to_import_is_logged_and_skipped(report: dict[str, object]) -> None:
    log = str(report["log"])
    assert "skipping walrus plugin 'broken'" in log
    assert "RuntimeError: this plugin is broken" in log
    rows = report["rows"]
    assert isinstance(rows, dict) and "broken" not in rows


def test_the_backend_table_lists_plugins_with_their_reasons(report: dict[str, object]) -> None:
    lines = str(report["table"]).splitlines()
    assert lines[0].split() == ["backend", "priority", "available", "plugin", "reason"]
    rows = {line.split()[0]: line.split(None, 4) for line in lines[1:-1]}
    assert rows["quantum"] == ["quantum", "10000", "no", "demo", "demo: no quantum disk attached"]
    assert rows["counting"] == ["counting", "1", "yes", "demo", "wraps pwrite"]
    priorities = [int(row[1]) for row in rows.values()]
    assert priorities == sorted(priorities, reverse=True), "highest priority first"
    assert lines[-1] == "auto picks: mmap"
