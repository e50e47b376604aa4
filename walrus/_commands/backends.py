"""``walrus backends``: every registered I/O backend, whether it can run here, and why."""

from __future__ import annotations

import argparse
import json

from ..plugins import available_backends, format_backend_table
from . import Subparsers


def register(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "backends", help="list the I/O backends and whether they can run here",
        description="List every registered backend (built-in and from plugins), highest "
                    "priority first: the order 'auto' tries them in.")
    parser.add_argument("--format", choices=("table", "json"), default="table",
                        help="a text table (default) or one JSON object a line")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rows = available_backends()
    if args.format == "json":
        for row in rows:
            print(json.dumps({"name": row.name, "available": row.available, "reason": row.reason,
                              "priority": row.priority, "plugin": row.plugin,
                              "description": row.description}))
        return 0
    print(format_backend_table(rows))
    return 0
