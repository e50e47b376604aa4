"""The documentation runs: every fenced block in docs/ is executed or checked, and the site builds.

Rules for a block (anything else fails here, so nothing slips through unrun):

* ``python``: executed; the blocks of a page share one namespace and one scratch directory, in
  page order. A ``text`` (or unlabelled) block right after a python block is the output it
  must print; anywhere else such a block is literal text (recorded results), not code.
* ``console``: a shell transcript; each ``$ command`` runs in that scratch directory with the
  source tree's ``walrus`` on PATH and must exit 0; the lines after it are its exact output
  (standard error included), where a line ``...`` matches any number of lines.
* any block right after ``<!-- file: PATH -->`` must equal that file of the repository
  (which the tests then install and run, see test_docs_plugin_example.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

import walrus

from .cli_support import ROOT, quiet_isolated_env

__all__ = ["quiet_isolated_env"]  # fixtures

DOCS = ROOT / "docs"
PAGES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.glob("*.md"))
FENCE = re.compile(r"^```(\S*)\s*$")
FILE_MARKER = re.compile(r"^<!-- file: (\S+) -->$")


@attrs.frozen
class Block:
    page: str
    line: int
    lang: str
    text: str
    file: str | None


def blocks_of(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        start = i
        body = []
        i += 1
        while i < len(lines) and lines[i] != "```":
            body.append(lines[i])
            i += 1
        if i == len(lines):
            raise AssertionError(f"{path.name}:{start + 1}: unclosed code block")
        previous = next((ln for ln in reversed(lines[:start]) if ln.strip()), "")
        marker = FILE_MARKER.match(previous)
        found.append(Block(path.name, start + 1, match.group(1), "\n".join(body) + "\n",
                           marker.group(1) if marker else None))
        i += 1
    return found


def _matches(expected: list[str], actual: list[str]) -> bool:
    """Exact line match, where an expected line ``...`` stands for any number of lines."""
    if not expected:
        return not actual
    if expected[0] == "...":
        return any(_matches(expected[1:], actual[k:]) for k in range(len(actual) + 1))
    return bool(actual) and actual[0] == expected[0] and _matches(expected[1:], actual[1:])


def _shim_dir(tmp: Path) -> Path:
    """A bin directory whose ``walrus`` runs this source tree's command line."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "walrus"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m walrus "$@"\n')
    shim.chmod(0o755)
    return bin_dir


def run_console(block: Block, cwd: Path, env: dict[str, str]) -> None:
    commands: list[tuple[str, list[str]]] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            commands.append((line[2:], []))
        elif commands:
            commands[-1][1].append(line.rstrip())
        else:
            raise AssertionError(f"{block.page}:{block.line}: output before the first command")
    for command, expected in commands:
        result = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, timeout=120,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        actual = [ln.rstrip() for ln in result.stdout.decode().splitlines()]
        where = f"{block.page}:{block.line}: $ {command}"
        assert result.returncode == 0, f"{where}\nexit {result.returncode}\n" + "\n".join(actual)
        assert _matches(expected, actual), (
            f"{where}\nexpected:\n" + "\n".join(expected) + "\nactual:\n" + "\n".join(actual))


DRIVER = """
import contextlib, io, json, os, sys, traceback
protocol = os.fdopen(os.dup(1), "w")
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # stray output of children cannot garble replies
namespace = {"__name__": "__docs__"}
for line in sys.stdin:
    where, code = json.loads(line)
    out = io.StringIO()
    error = None
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(code, where, "exec"), namespace)
    except BaseException:
        error = traceback.format_exc()
    protocol.write(json.dumps({"out": out.getvalue(), "error": error}) + "\\n")
    protocol.flush()
"""


class PythonSession:
    """A fresh interpreter that runs a page's python blocks in one namespace, in order."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", DRIVER], cwd=cwd, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def run(self, where: str, code: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps([where, code]) + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline()
        assert reply, f"{where}: the interpreter running the docs died"
        result = json.loads(reply)
        assert result["error"] is None, f"{where} failed:\n{result['error']}"
        return str(result["out"])

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def run_page(page: str, tmp: Path) -> int:
    """Run every block of a page; returns how many ran or were checked."""
    blocks = blocks_of(DOCS / page)
    scratch = tmp / "scratch"
    scratch.mkdir()
    if "examples/" in (DOCS / page).read_text(encoding="utf-8"):  # as in a checkout
        shutil.copytree(ROOT / "examples", scratch / "examples")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WALRUS_")}
    env.update(WALRUS_QUIET="1", PYTHONPATH=str(ROOT),
               PATH=f"{_shim_dir(tmp)}{os.pathsep}{env.get('PATH', '')}")
    python = PythonSession(scratch, env)
    last_output: str | None = None
    try:
        for block in blocks:
            where = f"{page}:{block.line}"
            if block.file is not None:
                wanted = (ROOT / block.file).read_text(encoding="utf-8")
                assert block.text == wanted, f"{where} differs from {block.file}"
                last_output = None
            elif block.lang == "python":
                last_output = python.run(where, block.text)
            elif block.lang in ("text", "") and last_output is not None:
                assert last_output == block.text, (
                    f"{where}: the python block above printed:\n{last_output}")
                last_output = None
            elif block.lang in ("text", ""):
                last_output = None  # literal text (recorded results), not code
            elif block.lang == "console":
                run_console(block, scratch, env)
                last_output = None
            else:
                raise AssertionError(f"{where}: a {block.lang or 'plain'} block is neither run "
                                     "nor checked; use python, console, text or a file marker")
    finally:
        python.close()
    return len(blocks)


def test_docs_have_pages() -> None:
    for page in ("index.md", "getting-started.md", "cli.md", "configuration.md",
                 "durability.md", "plugins.md", "faq.md"):
        assert page in PAGES


@pytest.mark.parametrize("page", PAGES)
def test_every_block_of_the_page_runs(page: str, tmp_path: Path) -> None:
    run_page(page, tmp_path)


def test_readme_example_runs(tmp_path: Path) -> None:
    """The README's python blocks run too (its shell block is the Makefile's own demo/test)."""
    readme = blocks_of(ROOT / "README.md")
    python = [b for b in readme if b.lang == "python"]
    assert python
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    session = PythonSession(tmp_path, env)
    try:
        for block in python:
            session.run(f"README.md:{block.line}", block.text)
    finally:
        session.close()


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    """mkdocs --strict: a broken link, anchor or nav entry fails the build."""
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which(
        "mkdocs")
    if mkdocs is None:
        pytest.fail("mkdocs is not installed: pip install -e '.[dev]'")
    result = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "getting-started" / "index.html").exists()
    api = (tmp_path / "site" / "api" / "index.html").read_text(encoding="utf-8")
    anchors = set(re.findall(r'id="(walrus\.[\w.]+)"', api))
    public = {f"walrus.{name}" for name in walrus.__all__}
    methods = {f"walrus.Walrus.{name}" for name in dir(walrus.Walrus) if not name.startswith("_")}
    assert public - anchors == set(), "names of walrus.__all__ missing from the API reference"
    assert methods - anchors == set(), "Walrus methods missing from the API reference"
    assert "walrus.Walrus.get_topic_entry_count" in anchors
    index = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert 'href="api/"' in index, "the index links to the API reference"


def test_a_public_name_the_api_page_does_not_place_is_added() -> None:
    """A new export reaches the API reference even before docs/api.md files it anywhere."""
    sys.path.insert(0, str(ROOT))
    try:
        import mkdocs_hooks
    finally:
        sys.path.remove(str(ROOT))
    assert mkdocs_hooks.public_names() == list(walrus.__all__)
    page = "# API\n\n::: walrus.Walrus\n"
    added = mkdocs_hooks.with_every_public_name(page, ["Walrus", "NewThing"])
    assert added == "# API\n\n::: walrus.Walrus\n\n## Other names\n\n::: walrus.NewThing\n"
    assert mkdocs_hooks.with_every_public_name(page, ["Walrus"]) == page


def test_readme_links_resolve() -> None:
    """The README is not part of the site, so check its relative links here."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if "://" not in t]
    assert local
    missing = [t for t in local if not (ROOT / t).exists()]
    assert missing == []
