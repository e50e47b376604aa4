"""The text spellings of settings: fsync schedules, read consistency modes and backend choices.

One parser per setting, shared by the ``walrus`` command line (``--fsync``, ``--consistency``),
the benchmarks' flags and ``WALRUS_*`` variables, and any future configuration source, so that a
value is spelled the same everywhere. A parser raises ``ValueError`` (``InvalidArgumentError``
for a consistency mode) with the accepted forms; the caller adds where the text came from.
"""

from __future__ import annotations

import re

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

_AT_LEAST_ONCE = re.compile(r"at-least-once:(\d+)")


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
    if digits.isdigit():
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
