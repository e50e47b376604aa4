"""``walrus read``: consume entries at the shared cursor, or peek without moving it.

Consuming reads at the shared cursor need the directory's lock; ``--peek``,
``--from-offset`` and ``--consumer`` (a named consumer's own cursor) read through a
read-only observer, so they work beside a running writer.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import BinaryIO

from .._cli_options import at_least, open_observer, open_writer
from .._cli_output import FORMAT_HELP, FORMATS, write_entries
from .._entry import Entry
from .._errors import CorruptionError
from .._validate import check_consumer, check_topic
from .._walrus import Walrus
from . import CommandError, Subparsers, require_topic, topic_command

READ_BUDGET = 4 << 20
"""Payload bytes asked for per batch read while peeking."""


def register(commands: Subparsers) -> None:
    parser = topic_command(
        commands, "read", summary="read (consume) or peek at entries of a topic",
        description="Read the next N entries at the topic's shared cursor (or at a named "
                    "consumer's cursor) and consume them. --peek and --from-offset leave the "
                    "cursor alone; they and --consumer work beside a running writer.",
        writer=True)
    parser.add_argument("--peek", action="store_true",
                        help="do not consume: show the entries at the cursor")
    parser.add_argument("-n", metavar="N", type=at_least(1, "a number of entries"), default=1,
                        help="read up to N entries (default 1)")
    parser.add_argument("--from-offset", metavar="O", type=at_least(0, "an entry offset"),
                        help="read from entry offset O (implies --peek)")
    parser.add_argument("--consumer", metavar="NAME",
                        help="read at named consumer NAME's cursor (created at the first "
                             "stored entry if new), from this process beside the writer")
    parser.add_argument("--format", choices=FORMATS, default="raw", help=FORMAT_HELP)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_topic(args.topic)
    out = sys.stdout.buffer
    name = args.consumer
    if name is not None:
        check_consumer(name)
    with open_observer(args) as observer:
        require_topic(observer.topics(), args.topic, observer.data_dir)
        if args.peek or args.from_offset is not None:
            start = args.from_offset
            if start is None:
                at_cursor = observer.read_next(args.topic, checkpoint=False, consumer=name)
                if at_cursor is None:
                    return 0
                start = at_cursor.offset
            for batch in peek(observer, args.topic, start, args.n):
                write_entries(out, batch, args.format)
            return 0
        if name is not None:
            for _ in range(args.n):
                if not consume_after_writing(observer, args.topic, out, args.format, name):
                    break
            return 0
    with open_writer(args) as wal:
        for _ in range(args.n):
            if not consume_after_writing(wal, args.topic, out, args.format):
                break
    return 0


def consume_after_writing(wal: Walrus, topic: str, out: BinaryIO, fmt: str,
                          consumer: str | None = None) -> bool:
    """Write the entry at the cursor, then consume it; False when there is none.

    An entry that cannot be written (the reader of a pipe went away) stays unconsumed. A
    damaged entry is consumed as a checkpointing read consumes it (the cursor moves past it)
    and its CorruptionError goes to the caller.
    """
    try:
        entry = wal.read_next(topic, checkpoint=False, consumer=consumer)
    except CorruptionError:
        # raises CorruptionError again, moving past it
        wal.read_next(topic, checkpoint=True, consumer=consumer)
        raise
    if entry is None:
        return False
    write_entries(out, [entry], fmt)
    # we own the cursor (the directory's lock, or the consumer's): the same entry
    consumed = wal.read_next(topic, checkpoint=True, consumer=consumer)
    assert consumed is not None and consumed.offset == entry.offset
    return True


def peek(wal: Walrus, topic: str, start: int, limit: int) -> Iterator[list[Entry]]:
    """Batches of up to ``limit`` entries in all, from offset ``start``, cursor untouched."""
    left = limit
    while left > 0:
        batch = wal.batch_read_for_topic(topic, READ_BUDGET, checkpoint=False,
                                         start_offset=start)
        if not batch:
            return
        batch = batch[:left]
        left -= len(batch)
        start = batch[-1].offset + 1
        yield batch


__all__ = ["CommandError", "peek", "register", "run"]
