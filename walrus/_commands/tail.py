"""``walrus tail``: follow a topic beside its writer and print entries as they arrive.

A read-only observer polls from its own position, so tailing never moves the shared cursor and
never blocks the writer. With ``--consumer NAME`` it consumes through that named consumer
instead: it starts at the consumer's cursor, and each batch is consumed once it is written
out, so a tail stopped and started again goes on where it stopped. SIGINT or SIGTERM ends it
cleanly (exit status 0).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType
from typing import BinaryIO

from .._cli_options import at_least, interval, open_observer
from .._cli_output import FORMAT_HELP, FORMATS, write_entries
from .._validate import check_consumer, check_topic
from .._walrus import Walrus
from . import CommandError, Subparsers, require_topic, topic_command
from .read import READ_BUDGET


def register(commands: Subparsers) -> None:
    parser = topic_command(
        commands, "tail", summary="print a topic's entries as they arrive, until interrupted",
        description="Print entries appended to TOPIC from now on (or from --from-offset), "
                    "until interrupted. Works beside a running writer; consumes only with "
                    "--consumer.", writer=False)
    parser.add_argument("--from-offset", metavar="O", type=at_least(0, "an entry offset"),
                        help="start at entry offset O instead of the end")
    parser.add_argument("--consumer", metavar="NAME",
                        help="consume through named consumer NAME: start at its cursor and "
                             "consume each entry once printed")
    parser.add_argument("--format", choices=FORMATS, default="raw", help=FORMAT_HELP)
    parser.add_argument("--interval", metavar="SECONDS", type=interval, default=0.01,
                        help="how often to look for new entries when idle (default 0.01)")
    parser.set_defaults(func=run)


class _StopFlag:
    """Set by SIGINT/SIGTERM; the loop checks it between batches, so no line is cut short."""

    def __init__(self) -> None:
        self.stopping = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True


def run(args: argparse.Namespace) -> int:
    check_topic(args.topic)
    name = args.consumer
    if name is not None:
        check_consumer(name)
        if args.from_offset is not None:
            raise CommandError("--from-offset and --consumer do not go together "
                               "(a consumer starts at its own cursor)")
    out = sys.stdout.buffer
    flag = _StopFlag()
    previous = {sig: signal.signal(sig, flag) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with open_observer(args) as wal:
            require_topic(wal.topics(), args.topic, wal.data_dir)
            if name is not None:
                while not flag.stopping:
                    if not consume_batch(wal, args.topic, name, out, args.format):
                        time.sleep(args.interval)
                return 0
            start = args.from_offset
            if start is None:
                start = wal.topic_info(args.topic).next_offset
            while not flag.stopping:
                batch = wal.batch_read_for_topic(args.topic, READ_BUDGET, checkpoint=False,
                                                 start_offset=start)
                if batch:
                    write_entries(out, batch, args.format)
                    start = batch[-1].offset + 1
                else:
                    time.sleep(args.interval)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def consume_batch(wal: Walrus, topic: str, consumer: str, out: BinaryIO, fmt: str) -> bool:
    """Write the entries at the consumer's cursor, then consume them; False when there are
    none. An entry that cannot be written stays unconsumed."""
    batch = wal.batch_read_for_topic(topic, READ_BUDGET, checkpoint=False, consumer=consumer)
    if not batch:
        return False
    write_entries(out, batch, fmt)
    # Exactly what was written: a second read would also take entries appended meanwhile.
    wal.seek(topic, batch[-1].offset + 1, consumer=consumer)
    return True
