"""``walrus retention``: show or set a topic's retention limits (age and size)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from .._cli_options import open_observer, open_writer
from .._retention import Retention
from .._settings_parse import duration_label, parse_duration, parse_size, size_label
from .._validate import check_topic
from . import CommandError, Subparsers, require_topic, topic_command

NONE = "none"
"""The value that lifts a limit."""


def register(commands: Subparsers) -> None:
    parser = topic_command(
        commands, "retention", summary="show or set a topic's retention limits",
        description="Show TOPIC's retention limits, or set them: entries older than --max-age, "
                    "or beyond --max-bytes of the topic on disk, expire oldest first, even if "
                    "no consumer has read them. A limit not given keeps its value; 'none' "
                    "lifts it. Setting needs the directory's lock (no writer running).",
        writer=True)
    parser.add_argument("--max-age", metavar="AGE",
                        help="e.g. 90s, 30m, 1h, 168h or a number of seconds; none: no limit")
    parser.add_argument("--max-bytes", metavar="SIZE",
                        help="e.g. 512MiB, 4GiB or a number of bytes; none: no limit")
    parser.set_defaults(func=run)


def retention_label(r: Retention) -> str:
    """``max-age 1h, max-bytes 512MiB``, or ``none``."""
    parts = []
    if r.max_age is not None:
        parts.append(f"max-age {duration_label(r.max_age)}")
    if r.max_bytes is not None:
        parts.append(f"max-bytes {size_label(r.max_bytes)}")
    return ", ".join(parts) or NONE


def _limit(text: str | None, parse: Callable[[str], float], option: str) -> float | None:
    """The limit ``text`` gives, ``None`` for ``none``; ``nan`` when not given (kept)."""
    if text is None:
        return math.nan
    if text.strip().lower() == NONE:
        return None
    try:
        return parse(text)
    except ValueError as exc:
        raise CommandError(f"{option} {text!r}: {exc}") from None


def run(args: argparse.Namespace) -> int:
    check_topic(args.topic)
    age = _limit(args.max_age, parse_duration, "--max-age")  # checked before opening
    size = _limit(args.max_bytes, parse_size, "--max-bytes")
    with open_observer(args) as wal:  # a missing directory or topic changes nothing
        require_topic(wal.topics(), args.topic, wal.data_dir)
        if args.max_age is None and args.max_bytes is None:
            print(f"{args.topic}: {retention_label(wal.get_retention(args.topic))}")
            return 0
    with open_writer(args) as wal:
        require_topic(wal.topics(), args.topic, wal.data_dir)
        now = wal.get_retention(args.topic)
        wal.set_retention(args.topic,
                          max_age=now.max_age if age is not None and math.isnan(age) else age,
                          max_bytes=(now.max_bytes if size is not None and math.isnan(size)
                                     else None if size is None else int(size)))
        print(f"{args.topic}: {retention_label(wal.get_retention(args.topic))}")
    return 0
