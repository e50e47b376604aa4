"""Command-line options that mirror the library's constructor: where, how durable, which backend.

Every subcommand that opens a data directory takes ``DIR`` and the same options; this module
turns them into ``Walrus`` keyword arguments, and opens a writer or a read-only observer.
``--fsync`` and ``--consistency`` are parsed by ``_settings_parse``, so they are spelled as
``WALRUS_FSYNC`` and the benchmarks' flags are.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from ._config import resolve_root
from ._errors import InvalidArgumentError
from ._from_config import walrus_arguments
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


def _directory(text: str) -> Path:
    """An argparse type: a directory; an empty one (an unset shell variable) is refused, not
    taken for the current directory."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path (use . for the current directory)")
    return Path(text)


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
    """``DIR`` (or ``--config FILE``) plus the options every command that opens a directory
    shares."""
    add_directory_argument(parser, "the data directory")
    parser.add_argument("--key", metavar="KEY",
                        help="instance key: use DIR/<sanitised KEY> (as Walrus(key=...))")
    parser.add_argument("--backend", metavar="NAME",
                        help="I/O backend: a name, a comma-separated fallback list or auto "
                             "(default: $WALRUS_BACKEND, else auto)")
    if writer:  # no default here: one from --config FILE applies unless the option is given
        parser.add_argument("--fsync", metavar="SCHEDULE",
                            type=_argument_type(parse_fsync, "fsync schedule"), help=FSYNC_HELP)
        parser.add_argument("--consistency", metavar="MODE",
                            type=_argument_type(parse_consistency, "consistency"),
                            help=CONSISTENCY_HELP)


def add_directory_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """``DIR``, or ``--config FILE`` in its place (see :func:`without_directory`)."""
    parser.add_argument("data_dir", metavar="DIR", type=_directory,
                        help=f"{help} (left out with --config)")
    parser.add_argument("--config", metavar="FILE", type=Path,
                        help="take DIR and the defaults of the other options from the [walrus] "
                             "table of this TOML file (as Walrus.from_config)")


@contextmanager
def without_directory(parser: argparse.ArgumentParser,
                      args: Sequence[str] | None) -> Iterator[None]:
    """While ``args`` give ``--config FILE``, ``parser`` takes no ``DIR``: the file names it."""
    directory = next((a for a in parser._actions  # argparse keeps no public list of them
                      if a.dest == "data_dir" and not a.option_strings), None)
    tokens = list(args or [])
    tokens = tokens[:tokens.index("--")] if "--" in tokens else tokens
    given = any(t == "--config" or t.startswith("--config=") for t in tokens)
    if directory is None or not given:
        yield
        return
    groups = [g for g in parser._action_groups if directory in g._group_actions]
    where = parser._actions.index(directory)
    parser._actions.remove(directory)
    for group in groups:
        group._group_actions.remove(directory)
    try:
        yield
    finally:
        parser._actions.insert(where, directory)
        for group in groups:
            group._group_actions.insert(0, directory)


def walrus_keywords(args: argparse.Namespace) -> dict[str, Any]:
    """``Walrus`` keyword arguments: ``--config FILE``'s table, then the options given."""
    config: Path | None = getattr(args, "config", None)
    found = walrus_arguments(config) if config is not None else {}
    if getattr(args, "data_dir", None) is not None:
        found["data_dir"] = args.data_dir
    elif "data_dir" not in found:
        raise InvalidArgumentError(f"{config} names no data_dir in its [walrus] table")
    for option, keyword in (("key", "key"), ("backend", "backend"),
                            ("fsync", "fsync_schedule"), ("consistency", "consistency")):
        if getattr(args, option, None) is not None:
            found[keyword] = getattr(args, option)
    return found


def directory_and_backend(args: argparse.Namespace) -> tuple[Path, str | None]:
    """The directory ``DIR``/``--key`` (or ``--config FILE``) name, and the backend asked for."""
    found = walrus_keywords(args)
    return resolve_root(found["data_dir"], found.get("key")), found.get("backend")


def open_writer(args: argparse.Namespace) -> Walrus:
    """Open DIR for writing: takes the directory's lock (fails at once if it is held)."""
    return Walrus(**walrus_keywords(args))


def open_observer(args: argparse.Namespace) -> Walrus:
    """Open DIR as a read-only observer: no lock, no writes, safe beside a live writer."""
    return Walrus(**{**walrus_keywords(args), "read_only": True})
