"""``walrus tail``: follow a topic beside its writer and print entries as they arrive.

A read-only observer polls from its own position, so tailing never moves the shared cursor and
never blocks the writer. SIGINT or SIGTERM ends it cleanly (exit status 0).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from types import FrameType

from .._cli_options import at_least, interval, open_observer
from .._cli_output import FORMAT_HELP, FORMATS, write_entries
from .._validate import check_topic
from . import Subparsers, require_topic, topic_command
from .read import READ_BUDGET


def register(commands: Subparsers) -> None:
    parser = topic_command(
        commands, "tail", summary="print a topic's entries as they arrive, until interrupted",
        description="Print entries appended to TOPIC from now on (or from --from-offset), "
                    "until interrupted. Works beside a running writer; never consumes.",
        writer=False)
    parser.add_argument("--from-offset", metavar="O", type=at_least(0, "an entry offset"),
                        help="start at entry offset O instead of the end")
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
    out = sys.stdout.buffer
    flag = _StopFlag()
    previous = {sig: signal.signal(sig, flag) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with open_observer(args) as wal:
            require_topic(wal.topics(), args.topic, wal.data_dir)
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
