"""The ``walrus`` command line (also ``python -m walrus``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._version import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="walrus", description="A durable, topic-aware write-ahead log.")
    parser.add_argument("--version", action="version", version=f"walrus-wal {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    from .bench import register as register_bench

    register_bench(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
