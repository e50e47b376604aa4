"""``walrus verify``: check a data directory; exit status 1 if anything is damaged."""

from __future__ import annotations

import argparse
import sys

from .._cli_options import add_directory_argument, directory_and_backend
from .._verify import verify_directory
from . import Subparsers

DAMAGE_EXIT = 1


def register(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "verify", help="check every file and entry of a data directory",
        description="Check every segment header, record (checksums, framing) and index file, "
                    "and report every damaged entry with its topic, offset, file and byte "
                    "position. Exit status 1 if anything is damaged. Safe beside a running "
                    "writer: takes no lock and writes nothing.")
    add_directory_argument(parser, "the data directory")
    parser.add_argument("--key", metavar="KEY", help="instance key: verify DIR/<sanitised KEY>")
    parser.add_argument("--backend", metavar="NAME",
                        help="I/O backend to read with (default: $WALRUS_BACKEND, else auto)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="print damage only, not notes and the summary")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    report = verify_directory(*directory_and_backend(args))
    lines = report.lines()
    if args.quiet:
        lines = [d.describe() for d in report.damage]
    for line in lines:
        print(line)
    sys.stdout.flush()
    return 0 if report.ok else DAMAGE_EXIT
