"""Command-line options that mirror the library's constructor: where, how durable, which backend.

Every subcommand that opens a data directory takes ``DIR`` and the same options; this module
turns them into ``Walrus`` keyword arguments, and opens a writer or a read-only observer.
``--fsync`` and ``--consistency`` are parsed by ``_settings_parse``, so they are spelled as
``WALRUS_FSYNC`` and the benchmarks' flags are.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ._config import FsyncSchedule, ReadConsistency
from ._settings_parse import parse_consistency, parse_fsync
from ._walrus import Walrus

FSYNC_HELP = ("fsync schedule: sync-each, no-fsync (or none), async (= 1000ms), <n>ms or <n> "
              "(milliseconds); default 1000ms")
CONSISTENCY_HELP = ("read consistency: strictly-at-once (default) or at-least-once:N "
                    "(persist the cursor every N entries)")

T = TypeVar("T")


def _argument_type(parse: Callable[[str], T], what: str) -> Callable[[str], T]:
    """Adapt a parser so argparse reports its message as a bad-argument error."""
    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"invalid {what} {text!r}: {exc}") from None
    convert.__name__ = what
    return convert


def at_least(minimum: int, what: str) -> Callable[[str], int]:
    """An argparse type: a whole number no smaller than ``minimum``."""
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    convert.__name__ = what
    return convert


def interval(text: str) -> float:
    """An argparse type: a polling interval in seconds, in (0, 60]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 < value <= 60:
        raise argparse.ArgumentTypeError(f"must be in (0, 60] seconds, got {text}")
    return value


def add_directory_options(parser: argparse.ArgumentParser, *, writer: bool) -> None:
    """``DIR`` plus the options every command that opens a directory shares."""
    parser.add_argument("data_dir", metavar="DIR", type=Path, help="the data directory")
    parser.add_argument("--key", metavar="KEY",
                        help="instance key: use DIR/<sanitised KEY> (as Walrus(key=...))")
    parser.add_argument("--backend", metavar="NAME",
                        help="I/O backend: a name, a comma-separated fallback list or auto "
                             "(default: $WALRUS_BACKEND, else auto)")
    if writer:
        parser.add_argument("--fsync", metavar="SCHEDULE",
                            type=_argument_type(parse_fsync, "fsync schedule"),
                            default=FsyncSchedule.Milliseconds(1000), help=FSYNC_HELP)
        parser.add_argument("--consistency", metavar="MODE",
                            type=_argument_type(parse_consistency, "consistency"),
                            default=ReadConsistency.StrictlyAtOnce, help=CONSISTENCY_HELP)


def open_writer(args: argparse.Namespace) -> Walrus:
    """Open DIR for writing: takes the directory's lock (fails at once if it is held)."""
    return Walrus(data_dir=args.data_dir, key=args.key, backend=args.backend,
                  fsync_schedule=args.fsync, consistency=args.consistency)


def open_observer(args: argparse.Namespace) -> Walrus:
    """Open DIR as a read-only observer: no lock, no writes, safe beside a live writer."""
    return Walrus(data_dir=args.data_dir, key=args.key, backend=args.backend, read_only=True)
