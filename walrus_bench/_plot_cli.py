"""``walrus bench plot KIND``: turn a results folder's CSV into a PNG, and maybe show it."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any


def add_plot(sub: Any) -> None:
    from ._plot import PLOTS

    p = sub.add_parser("plot", help="plot a benchmark's CSV as a PNG",
                       description="Reads the CSV a benchmark wrote into --out and writes a "
                                   "PNG beside it (needs the plot extra).")
    p.add_argument("kind", choices=list(PLOTS))
    p.add_argument("--out", default="bench_results", metavar="DIR",
                   help="the results folder (default: %(default)s)")
    p.add_argument("--show", action="store_true",
                   help="open the PNG when a display exists (else just print its path)")
    p.set_defaults(func=_run_plot)


def opener() -> list[str] | None:
    """The command that opens a file on this desktop, or None with no display."""
    if sys.platform == "darwin":
        return ["open"]
    if (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) and shutil.which(
            "xdg-open"):
        return ["xdg-open"]
    return None


def _run_plot(args: argparse.Namespace) -> int:
    from ._plot import PLOTS

    path = PLOTS[args.kind](Path(args.out))
    print(path)
    command = opener() if args.show else None
    if command is not None:
        subprocess.Popen([*command, str(path)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    elif args.show:
        print("no display: open the file above to see it")
    return 0
