"""``walrus append``: one entry from the argument, a file, or one entry per line of input.

The whole input is read and checked before anything is written, so a bad input (a missing
file, an entry over the size limit) writes nothing. An input within the library's batch limits
is one atomic batch; a larger one goes in several, and a failure between them says on stderr
which entries were written, so that a retry does not append them twice.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from .._cli_options import directory_and_backend, open_observer, open_writer
from .._config import MAX_BATCH_BYTES, MAX_BATCH_ENTRIES, MAX_ENTRY_BYTES
from .._errors import EntryTooLargeError
from .._validate import check_topic
from . import CommandError, PartlyWritten, Subparsers, topic_command


def register(commands: Subparsers) -> None:
    parser = topic_command(
        commands, "append", summary="append entries to a topic",
        description="Append one entry (DATA, or the contents of --file), or with --lines one "
                    "entry per line of standard input (or of --file).", writer=True)
    parser.add_argument("data", metavar="DATA", nargs="?",
                        help="the entry, as UTF-8 (bytes that are not UTF-8 pass through)")
    parser.add_argument("--lines", action="store_true",
                        help="one entry per line (the newline is not part of the entry)")
    parser.add_argument("--file", metavar="F",
                        help="read the entry (or, with --lines, the lines) from F; - is stdin")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_topic(args.topic)
    entries = _entries(args)
    for data in entries:
        if len(data) > MAX_ENTRY_BYTES:
            raise EntryTooLargeError(
                f"an entry of {len(data)} bytes is over MAX_ENTRY_BYTES ({MAX_ENTRY_BYTES})")
    first = _append(args, entries) if entries else _check_directory(args)
    if not args.quiet:
        where = f" ({_span(first, len(entries))})" if entries else ""
        noun = "entry" if len(entries) == 1 else "entries"
        print(f"appended {len(entries)} {noun} to {args.topic!r}{where}")
    return 0


def _check_directory(args: argparse.Namespace) -> int:
    """For an empty input: report a problem with the directory, as appending would, but
    create nothing (a log made for no entry would only take room)."""
    if directory_and_backend(args)[0].exists():
        with open_observer(args):
            pass
    return 0


def _append(args: argparse.Namespace, entries: list[bytes]) -> int:
    """Append ``entries`` in as few atomic batches as the library allows; return the first
    offset. Ctrl-C waits for the batch being written, so what was written is always known;
    a failure after some entries were written raises :class:`PartlyWritten` saying which."""
    first = count = 0
    try:
        with open_writer(args) as wal, _interrupts_deferred() as interrupted:
            for batch in _batches(entries):  # the directory's lock: no other writer, so the
                if interrupted():            # batches' offsets follow each other
                    raise KeyboardInterrupt
                start = wal.batch_append_for_topic(args.topic, batch)
                first = start if count == 0 else first
                count += len(batch)
    except BaseException as exc:
        if count == 0:
            raise
        where = f"to {args.topic!r} ({_span(first, count)})"
        if count == len(entries):  # the error came as the log closed: its last sync failed
            what, them = ("the entry was", "it") if count == 1 else (
                f"all {count} entries were", "them")
            raise PartlyWritten(f"{what} written {where}, but may not be durable: a power "
                                f"loss could take {them} back") from exc
        raise PartlyWritten(f"the first {count} of the {len(entries)} lines were appended {where}; "
                            f"the other {len(entries) - count} were not") from exc
    return first


def _span(first: int, count: int) -> str:
    """``offset 4`` or ``offsets 4-6``."""
    return f"offset {first}" if count == 1 else f"offsets {first}-{first + count - 1}"


@contextmanager
def _interrupts_deferred() -> Iterator[Callable[[], bool]]:
    """While open, SIGINT only sets a flag (the callable yielded reads it): an interrupt
    never lands inside a batch, whose outcome would then be unknown."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield lambda: False  # signals reach the main thread only; SIGINT ignored, or handled
        return               # by the program that runs this: left as it is
    seen: list[int] = []

    def note(signum: int, frame: FrameType | None) -> None:
        seen.append(signum)

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield lambda: bool(seen)
    finally:
        signal.signal(signal.SIGINT, previous)


def _entries(args: argparse.Namespace) -> list[bytes]:
    if args.data is not None and (args.lines or args.file is not None):
        raise CommandError("give DATA, or --file / --lines, not both")
    if args.data is not None:
        return [os.fsencode(args.data)]
    if args.file is None and not args.lines:
        raise CommandError("nothing to append: give DATA, --file F or --lines")
    text = _read_input(args.file)
    if not args.lines:
        return [text]
    lines = text.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the newline that ends the last line does not start another
    return lines


def _read_input(name: str | None) -> bytes:
    if name is None or name == "-":
        return sys.stdin.buffer.read()
    try:
        with open(name, "rb") as f:
            return f.read()
    except OSError as exc:
        raise CommandError(f"cannot read {name}: {exc.strerror}") from None


def _batches(entries: list[bytes]) -> Iterator[list[bytes]]:
    """The library's largest atomic batches: the whole input, when it is within its limits."""
    batch: list[bytes] = []
    size = 0
    for data in entries:
        if batch and (len(batch) == MAX_BATCH_ENTRIES or size + len(data) > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(data)
        size += len(data)
    if batch:
        yield batch
