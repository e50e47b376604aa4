"""The subcommands of ``walrus``: one module each, every one with ``register`` and ``run``."""

from __future__ import annotations

import argparse
from typing import Protocol

from .._cli_options import add_directory_options


class CommandError(Exception):
    """A problem the user can fix (a missing topic, conflicting options): one line, exit 2."""


class PartlyWritten(Exception):
    """A command failed after writing part of what it was asked to: the message says what
    was written (its cause says why the rest was not), so a retry need not write it twice."""


class Subparsers(Protocol):
    """What ``ArgumentParser.add_subparsers`` returns, as far as the commands use it."""

    def add_parser(self, name: str, **kwargs: object) -> argparse.ArgumentParser: ...


def require_topic(topics: list[str], topic: str, where: object) -> None:
    """Raise CommandError unless ``topic`` exists (reading never creates a topic)."""
    if topic not in topics:
        raise CommandError(f"topic {topic!r} does not exist in {where}")


def topic_command(commands: Subparsers, name: str, *, summary: str, description: str,
                  writer: bool) -> argparse.ArgumentParser:
    """A subcommand that works on one topic of a directory: ``walrus NAME DIR TOPIC ...``."""
    parser = commands.add_parser(name, help=summary, description=description)
    add_directory_options(parser, writer=writer)
    parser.add_argument("topic", metavar="TOPIC")
    return parser
