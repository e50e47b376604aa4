"""``walrus topics``: every topic with its entries, first offset, unconsumed entries, bytes,
clean flag and retention."""

from __future__ import annotations

import argparse
import json

from .._cli_options import add_directory_options, open_observer
from .._cli_output import render_table
from . import Subparsers
from .retention import retention_label


def register(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "topics", help="list topics with their counts, sizes, clean flags and retention",
        description="List every topic: entries on disk, the first stored offset, entries not "
                    "yet consumed by the shared cursor, bytes on disk (headers included), the "
                    "clean flag and the retention limits; then every "
                    "named consumer with its position (the next offset it reads) and lag "
                    "(entries it has not consumed). Works beside a running writer.")
    add_directory_options(parser, writer=False)
    parser.add_argument("--format", choices=("table", "json"), default="table",
                        help="a text table (default) or one JSON object a line")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with open_observer(args) as wal:
        stats = [wal.topic_info(name) for name in wal.topics()]
        kept = {s.topic: wal.get_retention(s.topic) for s in stats}
        named = {s.topic: {n: (at, max(0, s.next_offset - max(at, s.first_offset)))
                           for n, at in wal.consumers(s.topic).items()} for s in stats}
    if args.format == "json":
        for s in stats:
            print(json.dumps({"topic": s.topic, "entries": s.entries, "unconsumed": s.unconsumed,
                              "bytes": s.size, "clean": s.clean, "first_offset": s.first_offset,
                              "next_offset": s.next_offset,
                              "retention": {"max_age": kept[s.topic].max_age,
                                            "max_bytes": kept[s.topic].max_bytes},
                              "consumers": {n: {"next_offset": at, "lag": lag}
                                            for n, (at, lag) in named[s.topic].items()}},
                             ensure_ascii=False))
        return 0
    rows = [(s.topic, s.entries, s.first_offset, s.unconsumed, s.size, "yes" if s.clean else "no",
             retention_label(kept[s.topic])) for s in stats]
    print(render_table(("TOPIC", "ENTRIES", "FIRST OFFSET", "UNCONSUMED", "BYTES", "CLEAN",
                        "RETENTION"), rows,
                       right=(False, True, True, True, True, False, False)), end="")
    consumers = [(t, n, at, lag) for t, per in named.items() for n, (at, lag) in per.items()]
    if consumers:
        print()
        print(render_table(("TOPIC", "CONSUMER", "NEXT OFFSET", "LAG"), consumers,
                           right=(False, False, True, True)), end="")
    return 0
