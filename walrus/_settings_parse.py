"""The text spellings of settings: fsync schedules, read consistency modes and backend choices.

One parser per setting, shared by the ``walrus`` command line (``--fsync``, ``--consistency``),
the benchmarks' flags and ``WALRUS_*`` variables, and any future configuration source, so that a
value is spelled the same everywhere. A parser raises ``ValueError`` (``InvalidArgumentError``
for a consistency mode) with the accepted forms; the caller adds where the text came from.
"""

from __future__ import annotations

import re
from fractions import Fraction

from ._config import (
    Consistency,
    FsyncSchedule,
    MillisecondsSchedule,
    NoFsyncSchedule,
    ReadConsistency,
    Schedule,
    SyncEachSchedule,
)
from ._errors import InvalidArgumentError
from .plugins._manager import registered_specs

_AT_LEAST_ONCE = re.compile(r"at-least-once:(\d+)", re.ASCII)
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([smh]?)", re.ASCII)
_UNIT_SECONDS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE = re.compile(r"(\d+(?:\.\d*)?)\s*([kmgt]?i?b?)", re.IGNORECASE | re.ASCII)
_SIZE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
MAX_SIZE = (1 << 63) - 1
"""The largest size a setting takes (a file offset's range)."""


def parse_fsync(text: str) -> Schedule:
    """``sync-each``, ``no-fsync``/``none``, ``async`` (1000 ms), ``<n>ms`` or ``<n>``."""
    value = text.strip()
    if value == "sync-each":
        return FsyncSchedule.SyncEach
    if value in ("no-fsync", "none"):
        return FsyncSchedule.NoFsync
    if value == "async":
        return FsyncSchedule.Milliseconds(1000)
    digits = value[:-2] if value.endswith("ms") else value
    if digits.isascii() and digits.isdigit():  # not "²" or "٣", which isdigit takes
        return FsyncSchedule.Milliseconds(int(digits))
    raise ValueError("expected sync-each, no-fsync, none, async, <n>ms or <n>")


def fsync_label(schedule: Schedule) -> str:
    """The spelling ``parse_fsync`` reads back."""
    if isinstance(schedule, SyncEachSchedule):
        return "sync-each"
    if isinstance(schedule, NoFsyncSchedule):
        return "no-fsync"
    assert isinstance(schedule, MillisecondsSchedule)
    return f"{schedule.interval_ms}ms"


def parse_consistency(text: str) -> Consistency:
    """``strictly-at-once`` or ``at-least-once:N``."""
    value = text.strip().lower()
    if value in ("strictly-at-once", "strict"):
        return ReadConsistency.StrictlyAtOnce
    match = _AT_LEAST_ONCE.fullmatch(value)
    if match is None:
        raise InvalidArgumentError("expected strictly-at-once or at-least-once:N")
    return ReadConsistency.AtLeastOnce(persist_every=int(match.group(1)))


def parse_backend(text: str) -> str:
    """A backend name, a comma-separated fallback list or ``auto``; every name registered."""
    names = [name.strip() for name in text.split(",")]
    known = {spec.name for spec, _ in registered_specs()}
    unknown = [name for name in names if name != "auto" and name not in known]
    if not all(names) or unknown:
        raise ValueError(f"unknown backend {', '.join(unknown) or '(empty)'}; "
                         f"registered: {', '.join(sorted(known)) or 'none'}, or auto")
    return ",".join(names)


def parse_duration(text: str) -> float:
    """Seconds from ``<n>s``, ``<n>m``, ``<n>h`` or a bare number of seconds (> 0)."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError("expected <n>s, <n>m, <n>h or a number of seconds")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise ValueError("must be more than zero")
    return seconds


def parse_size(text: str) -> int:
    """Bytes from ``512MiB``, ``2GB``, ``100k`` or a bare number (binary multiples)."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError("expected a size such as 512MiB, 4GiB or a number of bytes")
    unit = match.group(2).lower().rstrip("b").rstrip("i")
    size = int(Fraction(match.group(1)) * 1024 ** " kmgt".index(unit or " "))  # exact: no inf
    if size > MAX_SIZE:
        raise ValueError("too large: must be less than 8 EiB")
    return size


def duration_label(seconds: float) -> str:
    """The shortest spelling ``parse_duration`` reads back exactly (``1h``, ``90s``, ``2.5s``)."""
    for unit in ("h", "m"):
        count = seconds / _UNIT_SECONDS[unit]
        if count >= 1 and count == int(count):
            return f"{int(count)}{unit}"
    return f"{int(seconds)}s" if seconds == int(seconds) else f"{seconds:g}s"


def size_label(n: int) -> str:
    """The spelling ``parse_size`` reads back exactly: the largest binary unit that divides."""
    unit = 0
    while unit < len(_SIZE_UNITS) - 1 and n >= 1024 and n % 1024 == 0:
        n //= 1024
        unit += 1
    return f"{n}{_SIZE_UNITS[unit]}"
