"""``walrus forward``: send topics to NATS JetStream (or another sink), exactly once.

Runs beside the live writer as a read-only observer that holds what the stream has not
acknowledged yet through its own named consumer. ``--once`` returns when caught up;
otherwise it follows the topics until SIGINT or SIGTERM, then stops cleanly (exit status 0)
after the batch in flight is acknowledged or given up.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from .._cli_options import add_directory_options, at_least, walrus_keywords
from .._forward import forward
from ..sinks import ForwardProgress
from . import Subparsers

LAG_SHOWN = 5
"""Topics named in the progress line (those with the most lag)."""


def register(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "forward", help="forward topics to NATS JetStream, exactly once",
        description="Forward every entry of the chosen topics (all topics by default, "
                    "including topics created later) to subject PREFIX.<topic> of a JetStream "
                    "stream, in order and exactly once, with the topic and offset in headers. "
                    "Works beside a running writer, never moving its shared cursor; a named "
                    "consumer of each topic keeps in the log what the stream has not "
                    "acknowledged yet. Creates the stream when it is missing.")
    add_directory_options(parser, writer=False)
    parser.add_argument("--to", metavar="URL", required=True,
                        help="the cluster: nats://HOST:PORT[,nats://HOST:PORT...]")
    parser.add_argument("--topic", metavar="T", action="append", dest="topics",
                        help="forward topic T (repeatable; default: every topic)")
    parser.add_argument("--stream", metavar="NAME",
                        help="the stream (default: the subject prefix in upper case)")
    parser.add_argument("--subject-prefix", metavar="P", default="walrus",
                        help="subjects are P.<topic> (default: walrus)")
    parser.add_argument("--replicas", metavar="N", type=at_least(1, "a replica count"),
                        help="replicas of a stream this creates (default: 3 on a cluster of "
                             "three nodes or more, else 1)")
    parser.add_argument("--consumer", metavar="NAME",
                        help="the named consumer holding what the stream has not acknowledged "
                             "(default: forward:STREAM); one forwarder per name at a time")
    parser.add_argument("--once", action="store_true",
                        help="return when every topic has caught up, instead of following")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(func=run)


def progress_line(report: ForwardProgress) -> str:
    """``forwarded N entries (R/s); lag: topic n, ...`` (the topics with the most lag)."""
    worst = sorted(report.lag.items(), key=lambda item: (-item[1], item[0]))[:LAG_SHOWN]
    lag = ", ".join(f"{topic} {n}" for topic, n in worst) or "none"
    more = len(report.lag) - len(worst)
    return (f"forwarded {report.forwarded} entries ({report.rate:,.0f}/s); lag: {lag}"
            + (f" (+{more} topics)" if more > 0 else ""))


def run(args: argparse.Namespace) -> int:
    stop = threading.Event()

    def stopping(signum: int, frame: FrameType | None) -> None:
        stop.set()

    def show(report: ForwardProgress) -> None:
        print(f"walrus forward: {progress_line(report)}", file=sys.stderr, flush=True)

    found = walrus_keywords(args)  # DIR and its options, or --config FILE's table
    previous = {sig: signal.signal(sig, stopping) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        final = forward(found["data_dir"], args.to, topics=args.topics, stream=args.stream,
                        subject_prefix=args.subject_prefix, replicas=args.replicas,
                        once=args.once, stop=stop, progress=None if args.quiet else show,
                        key=found.get("key"), backend=found.get("backend"),
                        consumer=args.consumer)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not args.quiet:
        show(final)
    return 0
