"""``walrus append``: one entry from the argument, a file, or one entry per line of input.

The whole input is read and checked before anything is written, so a bad input (a missing
file, an entry over the size limit) writes nothing. Lines are appended in atomic batches.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator

from .._cli_options import open_writer
from .._config import MAX_BATCH_ENTRIES, MAX_ENTRY_BYTES
from .._errors import EntryTooLargeError
from .._validate import check_topic
from . import CommandError, Subparsers, topic_command

BATCH_BYTES = 16 << 20
"""Payload bytes per batch of ``--lines`` (besides the 2000-entry cap)."""


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
    first = last = -1
    with open_writer(args) as wal:  # the directory's lock: no other writer, so the batches'
        for batch in _batches(entries):  # offsets follow each other
            start = wal.batch_append_for_topic(args.topic, batch)
            first = start if first < 0 else first
            last = start + len(batch) - 1
    if not args.quiet:
        span = f"offset {first}" if first == last else f"offsets {first}-{last}"
        noun = "entry" if len(entries) == 1 else "entries"
        where = f" ({span})" if entries else ""
        print(f"appended {len(entries)} {noun} to {args.topic!r}{where}")
    return 0


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
    batch: list[bytes] = []
    size = 0
    for data in entries:
        if batch and (len(batch) == MAX_BATCH_ENTRIES or size + len(data) > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(data)
        size += len(data)
    if batch:
        yield batch
