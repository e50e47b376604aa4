"""The ``walrus`` command line (also ``python -m walrus``).

Every subcommand lives in ``walrus._commands``, except ``bench``: the benchmark tools are a
package of their own (``walrus_bench``), imported only when ``walrus bench`` runs, so the
library and its other commands never load them. Whatever goes wrong that the user can fix (a
bad argument, a locked directory, a missing topic) ends in one line on standard error and exit
status 2, before anything is written.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from ._cli_options import without_directory
from ._commands import (
    CommandError,
    PartlyWritten,
    append,
    backends,
    forward,
    read,
    retention,
    tail,
    topics,
    verify,
)
from ._errors import WalrusError
from ._version import __version__

ERROR_EXIT = 2
PARTLY_WRITTEN_EXIT = 3
INTERRUPTED_EXIT = 130
BENCH_MISSING = ("the benchmark tools (the walrus_bench package) are not installed; they ship "
                 "with walrus-wal, so reinstall it: pip install --force-reinstall walrus-wal")

RegisterBench = Callable[[argparse.ArgumentParser], None]


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line (and the same for every subcommand), and no
    abbreviated options: ``--conf`` must not pass for ``--config`` where DIR is looked for."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(ERROR_EXIT, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None
                         ) -> tuple[argparse.Namespace, list[str]]:
        """With ``--config FILE``, a command takes no ``DIR``: the file names the directory."""
        with without_directory(self, args):
            return super().parse_known_args(args, namespace)


def build_parser(*, bench: RegisterBench | None = None) -> argparse.ArgumentParser:
    """The whole command line; ``bench`` (``walrus_bench.register``) fills in ``walrus bench``."""
    parser = _Parser(
        prog="walrus",
        description="A durable, topic-aware write-ahead log: append, read, follow and check "
                    "topics of a data directory.")
    parser.add_argument("--version", action="version", version=f"walrus-wal {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (append, read, tail, topics, verify, backends, forward, retention):
        module.register(commands)
    bench_parser = commands.add_parser("bench", help="run benchmarks")
    if bench is not None:
        bench(bench_parser)
    return parser


def bench_tools() -> RegisterBench | None:
    """``walrus_bench.register``, or None when the benchmark tools are not installed."""
    try:
        from walrus_bench import register
    except ModuleNotFoundError as exc:
        if exc.name != "walrus_bench":
            raise  # installed, but something it needs is missing: say so in full
        return None
    return register


def describe(exc: BaseException) -> str:
    """An exception as one line that names the problem."""
    if isinstance(exc, OSError) and not isinstance(exc, WalrusError) and exc.strerror:
        text = exc.strerror + (f": {exc.filename}" if exc.filename else "")
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    bench = None
    if arguments[:1] == ["bench"]:
        bench = bench_tools()
        if bench is None:
            print(f"walrus bench: error: {BENCH_MISSING}", file=sys.stderr)
            return ERROR_EXIT
    args = build_parser(bench=bench).parse_args(arguments)
    try:
        result: int = args.func(args)
    except PartlyWritten as exc:
        cause = exc.__cause__
        why = ("interrupted" if isinstance(cause, KeyboardInterrupt) or cause is None
               else describe(cause))
        print(f"walrus {args.command}: error: {why}; {exc}", file=sys.stderr)
        return PARTLY_WRITTEN_EXIT
    except (CommandError, WalrusError, OSError) as exc:
        if isinstance(exc, BrokenPipeError):
            return _broken_pipe()
        print(f"walrus {args.command}: error: {describe(exc)}", file=sys.stderr)
        return ERROR_EXIT
    except KeyboardInterrupt:
        print(f"walrus {args.command}: interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT
    return result


def _broken_pipe() -> int:
    """The reader of our output went away (``walrus read ... | head``): stop quietly."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
