"""Benchmark settings from flags and ``WALRUS_*`` variables, parsed the way the original does.

A flag wins over its variable, the variable over the default. An invalid value raises
:class:`walrus.InvalidArgumentError` naming where it came from; nothing falls back silently.
Settings the library also reads (fsync schedule, backend) use its own parsers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from walrus import MAX_BATCH_ENTRIES, InvalidArgumentError
from walrus._settings_parse import parse_duration as parse_duration  # shared with the CLI
from walrus._settings_parse import parse_size as parse_size

T = TypeVar("T")

MAX_THREADS = 128
"""The original's ceiling for a thread count or range."""



def parse_threads(text: str) -> tuple[int, int]:
    """``<n>`` means 1..n, ``<a>-<b>`` means a..b; 1 <= a <= b <= 128."""
    value = text.strip()
    first, dash, last = value.partition("-")
    if dash:
        if not (first.isdigit() and last.isdigit()):
            raise ValueError("expected <n> or <a>-<b>")
        low, high = int(first), int(last)
    elif value.isdigit():
        low, high = 1, int(value)
    else:
        raise ValueError("expected <n> or <a>-<b>")
    if not 1 <= low <= high <= MAX_THREADS:
        raise ValueError(f"need 1 <= start <= end <= {MAX_THREADS}")
    return low, high


def parse_thread_count(text: str) -> int:
    """One thread count: ``<n>`` (1..128). A range is refused: these runs use one count."""
    if "-" in text:
        raise ValueError("this benchmark runs one thread count; give <n>, not a range")
    return parse_threads(text)[1]


def parse_batch_size(text: str) -> int:
    """Entries per batch: 1..MAX_BATCH_ENTRIES."""
    value = text.strip()
    if not value.isdigit() or not 1 <= int(value) <= MAX_BATCH_ENTRIES:
        raise ValueError(f"expected a whole number from 1 to {MAX_BATCH_ENTRIES}")
    return int(value)


def pick(parse: Callable[[str], T], default: T, *sources: tuple[str, str | None]) -> T:
    """The first given source (flags first, then variables), parsed; else the default.

    ``sources`` are ``(name, text)`` pairs such as ``("--threads", args.threads)`` or
    ``("WALRUS_THREADS", os.environ.get("WALRUS_THREADS"))``; None or "" means not given.
    """
    for name, text in sources:
        if text:
            try:
                return parse(text)
            except ValueError as exc:
                raise InvalidArgumentError(f"{name}={text!r}: {exc}") from None
    return default
