"""Benchmark tooling: ``walrus bench ...`` (placeholder until the benchmark issue lands)."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: Any) -> None:
    """Add the ``bench`` subcommand to the ``walrus`` command line."""
    parser = commands.add_parser("bench", help="run benchmarks")
    parser.set_defaults(func=_missing)


def _missing(args: argparse.Namespace) -> int:
    raise SystemExit("walrus bench: not implemented yet")
