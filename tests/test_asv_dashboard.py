"""The asv dashboard works with no network: its scripts come from npm packages, not CDNs."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
ASV_DIR = ROOT / "asv_bench"


def _offline() -> ModuleType:
    path = ASV_DIR / "dashboard" / "offline.py"
    spec = importlib.util.spec_from_file_location("asv_offline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


offline = _offline()


def _asv_index() -> str:
    asv = pytest.importorskip("asv")
    return (Path(asv.__file__).parent / "www" / "index.html").read_text()


def test_every_remote_script_and_style_of_asvs_page_gets_a_packaged_copy() -> None:
    html, needed = offline.localise(_asv_index())
    tags = re.findall(r"<(?:script|link)\b[^>]*>", html)
    assert tags and not [t for t in tags if "http://" in t or "https://" in t], tags
    assert not [t for t in tags if "integrity=" in t]  # the CDN builds' hashes are gone
    assert needed == set(offline.FILES.values())
    assert 'src="vendor/jquery/dist/jquery.min.js"' in html
    assert 'href="vendor/bootstrap/dist/css/bootstrap.min.css"' in html


def test_a_remote_file_with_no_packaged_copy_is_an_error() -> None:
    page = '<script src="https://cdn.example/lib/unknown.min.js"></script>'
    with pytest.raises(offline.DashboardError, match=r"unknown\.min\.js"):
        offline.localise(page)


def test_vendor_copies_what_the_rewritten_page_loads(tmp_path: Path) -> None:
    modules = tmp_path / "node_modules"
    for rel in [*offline.FILES.values(), "bootstrap/dist/fonts/icons.woff"]:
        (modules / rel).parent.mkdir(parents=True, exist_ok=True)
        (modules / rel).write_text(rel)
    html_dir = tmp_path / "html"
    html_dir.mkdir()
    (html_dir / "index.html").write_text(_asv_index())
    assert offline.vendor(html_dir, modules) == [html_dir / "index.html"]
    page = (html_dir / "index.html").read_text()
    for src in re.findall(r'(?:src|href)="(vendor/[^"]+)"', page):
        assert (html_dir / src).is_file(), src
    assert (html_dir / "vendor/bootstrap/dist/fonts/icons.woff").is_file()


@pytest.mark.slow
def test_published_dashboard_renders_offline_in_chromium(tmp_path: Path) -> None:
    """A real run, ``asv publish``, vendoring, then headless Chromium with every host but
    127.0.0.1 unreachable: the overview lists the benchmark and its graph draws a plot."""
    asv = shutil.which("asv", path=str(Path(sys.executable).parent)) or shutil.which("asv")
    if asv is None:
        pytest.skip("asv is not installed (pip install 'walrus-wal[dev]')")
    if offline.chromium() is None:
        pytest.skip("Chromium is not installed (bash .ci/install-bench-deps.sh)")
    if not offline.NODE_MODULES.is_dir():
        pytest.skip("the dashboard's npm packages are missing (bash .ci/install-bench-deps.sh)")
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed (bash .ci/install-bench-deps.sh)")
    # The repository whose commits the graphs follow: the checkout holding this tree (tox
    # tests a copy of the tree without .git, made inside the checkout's .tox folder).
    top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=ROOT,
                         capture_output=True, text=True)
    if top.returncode != 0:
        pytest.skip("asv's graphs follow the commits of a git repository; this tree is in none")
    repo = top.stdout.strip()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()
    branch = subprocess.run(["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.strip()
    if branch == "HEAD":
        pytest.skip("a detached HEAD: asv's graphs follow a branch")
    conf = {
        "version": 1, "project": "walrus-wal", "repo": repo, "environment_type": "existing",
        "branches": [branch], "benchmark_dir": str(ASV_DIR / "benchmarks"),
        "results_dir": str(tmp_path / "results"), "html_dir": str(tmp_path / "html"),
        "env_dir": str(tmp_path / "env"),
    }
    (tmp_path / "asv.conf.json").write_text(json.dumps(conf))
    env = {**os.environ, "HOME": str(tmp_path), "WALRUS_ASV_BACKENDS": "mmap"}
    graph = "cost.Syscalls.track_durable_append"

    def run(*args: str) -> None:
        done = subprocess.run([asv, *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr

    run("machine", "--yes")
    run("run", "--quick", "--python=same", "--set-commit-hash", head,
        "--bench", "^" + re.escape(graph))
    run("publish")
    html = tmp_path / "html"
    assert "https://" in (html / "index.html").read_text()  # as asv writes it: CDNs
    offline.vendor(html)
    offline.check(html, tmp_path / "shots", graph=graph)
    assert (tmp_path / "shots" / "graph.png").stat().st_size > 10_000
