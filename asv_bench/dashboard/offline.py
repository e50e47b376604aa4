"""asv's dashboard without a network: its scripts and styles from npm packages, not CDNs.

``asv publish`` writes an ``index.html`` that loads jQuery, flot, bootstrap and a few plugins
from CDNs; on a machine without network it shows only asv's error page. ``vendor`` copies the
same files from the npm packages pinned in ``package.json`` (installed by ``npm ci`` beside
it) into the published folder and points the page at them. ``check`` serves the folder on
127.0.0.1, opens the overview and one graph in headless Chromium with every other host
unreachable, and fails unless both render (optionally saving screenshots).

    python asv_bench/dashboard/offline.py vendor asv_bench/.asv/html
    python asv_bench/dashboard/offline.py check asv_bench/.asv/html [--screenshots DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "node_modules"
VENDOR_DIR = "vendor"

FILES = {
    # the file name in asv's CDN address: its copy in the npm package (same version)
    "jquery-3.3.1.min.js": "jquery/dist/jquery.min.js",
    "jquery.flot.min.js": "flot/jquery.flot.js",
    "jquery.flot.time.min.js": "flot/jquery.flot.time.js",
    "jquery.flot.selection.min.js": "flot/jquery.flot.selection.js",
    "jquery.flot.categories.min.js": "flot/jquery.flot.categories.js",
    "jquery.flot.orderBars.js": "flot-orderbars/js/jquery.flot.orderBars.js",
    "stupidtable.min.js": "stupid-table-plugin/stupidtable.min.js",
    "md5.min.js": "blueimp-md5/js/md5.min.js",
    "bootstrap.min.js": "bootstrap/dist/js/bootstrap.min.js",
    "bootstrap.min.css": "bootstrap/dist/css/bootstrap.min.css",
}
FOLDERS = ["bootstrap/dist/fonts"]
"""Copied whole: bootstrap's stylesheet loads its icon font from ``../fonts/``."""

TAG = re.compile(r"<(?:script|link)\b[^>]*>", re.IGNORECASE)
REMOTE = re.compile(r'\b(src|href)="(https?://[^"]+)"')
CDN_ONLY = re.compile(r'\s(?:integrity|crossorigin|referrerpolicy)="[^"]*"')
"""Subresource-integrity hashes are the CDN's minified builds'; the packaged files differ."""


class DashboardError(Exception):
    """The dashboard cannot be made to work offline, or does not render."""


def localise(html: str) -> tuple[str, set[str]]:
    """``html`` with every remote script and stylesheet pointed at ``vendor/``, and the
    package files it now needs. An unknown remote file is an error, not a silent CDN load."""
    needed: set[str] = set()

    def tag(match: re.Match[str]) -> str:
        text = match.group(0)
        remote = REMOTE.search(text)
        if remote is None:
            return text
        name = remote.group(2).rsplit("/", 1)[-1]
        if name not in FILES:
            raise DashboardError(f"no local copy of {remote.group(2)}: add it to FILES and "
                                 "package.json")
        needed.add(FILES[name])
        text = text.replace(remote.group(0), f'{remote.group(1)}="{VENDOR_DIR}/{FILES[name]}"')
        return CDN_ONLY.sub("", text)

    return TAG.sub(tag, html), needed


def vendor(html_dir: Path, modules: Path = NODE_MODULES) -> list[Path]:
    """Rewrite the published pages of ``html_dir`` in place; copy what they load. Returns
    the pages rewritten."""
    if not modules.is_dir():
        raise DashboardError(f"{modules} is missing: run `npm ci` in {modules.parent}")
    pages, needed = [], set()
    for page in sorted(html_dir.glob("*.html")):
        html, files = localise(page.read_text())
        if files:
            page.write_text(html)
            pages.append(page)
            needed |= files
    for rel in sorted(needed) + (FOLDERS if needed else []):
        source, target = modules / rel, html_dir / VENDOR_DIR / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copyfile(source, target)
    return pages


@contextlib.contextmanager
def serve(html_dir: Path) -> Iterator[str]:
    """``html_dir`` over HTTP on 127.0.0.1 (a free port) while the block runs; its URL."""
    handler = functools.partial(_QuietHandler, directory=str(html_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def chromium() -> str | None:
    """The path of a Chromium or Chrome, if one is installed."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def render(url: str, screenshot: Path | None = None, browser: str | None = None) -> str:
    """The DOM of ``url`` after its scripts ran, in headless Chromium that can reach no host
    but 127.0.0.1 (so a CDN load would fail here as it does offline)."""
    browser = browser or chromium()
    if browser is None:
        raise DashboardError("Chromium is not installed (Debian: apt-get install chromium)")
    base = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--window-size=1400,900", "--virtual-time-budget=10000",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]
    if screenshot is not None:
        subprocess.run([*base, f"--screenshot={screenshot}", url], check=True,
                       capture_output=True, timeout=120)
    done = subprocess.run([*base, "--dump-dom", url], check=True, capture_output=True,
                          text=True, timeout=120)
    return done.stdout


def check(html_dir: Path, screenshots: Path | None = None, graph: str | None = None) -> None:
    """Fail unless the overview lists benchmarks and a graph page draws a plot, offline."""
    benchmarks = sorted(p.stem for p in (html_dir / "graphs").rglob("*.json"))
    if not benchmarks:
        raise DashboardError(f"{html_dir} has no graphs: run `asv publish` on some results")
    graph = graph or "cost.Instructions.track_append"
    if screenshots is not None:
        screenshots.mkdir(parents=True, exist_ok=True)
    with serve(html_dir) as url:
        pages = {"index": url, "graph": f"{url}#{graph}"}
        for name, page in pages.items():
            dom = render(page, screenshots / f"{name}.png" if screenshots else None)
            if "<body" not in dom or "dependencies of airspeed velocity failed" in dom:
                raise DashboardError(f"{page} shows asv's error page (a script failed to load)")
            if name == "index" and graph not in dom:
                raise DashboardError(f"{page} lists no benchmark {graph!r}")
            if name == "graph" and 'class="flot-base"' not in dom:
                raise DashboardError(f"{page} draws no plot")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["vendor", "check"])
    parser.add_argument("html_dir", type=Path)
    parser.add_argument("--screenshots", type=Path, help="check: save index.png and graph.png")
    parser.add_argument("--graph", help="check: the benchmark whose graph to open")
    args = parser.parse_args(argv)
    try:
        if args.action == "vendor":
            pages = vendor(args.html_dir)
            print(f"{len(pages)} page(s) now load their scripts from {args.html_dir / VENDOR_DIR}")
        else:
            check(args.html_dir, args.screenshots, args.graph)
            print(f"{args.html_dir}: the overview and a graph render offline")
    except DashboardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
