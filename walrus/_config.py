"""Configuration values: limits, consistency modes, fsync schedules and where data lives.

The modes are frozen attrs values so they can be compared, hashed and printed; the classes
``ReadConsistency`` and ``FsyncSchedule`` are namespaces that spell them the way the Rust
original does (``ReadConsistency.AtLeastOnce(persist_every=N)``, ``FsyncSchedule.SyncEach``).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import ClassVar

import attrs

from ._errors import InvalidArgumentError
from ._limits import MAX_BATCH_BYTES as MAX_BATCH_BYTES
from ._limits import MAX_BATCH_ENTRIES as MAX_BATCH_ENTRIES
from ._limits import MAX_ENTRY_BYTES as MAX_ENTRY_BYTES
from ._limits import MAX_SEGMENT_BYTES as MAX_SEGMENT_BYTES
from ._limits import MAX_TOPIC_BYTES as MAX_TOPIC_BYTES
from ._validate import nonnegative_int

DEFAULT_BASE_DIR = "wal_files"
DEFAULT_SEGMENT_BYTES = 64 << 20
"""Default size of a log segment file; a larger entry or batch gets a segment of its own size."""


def _persist_every(value: object) -> int:
    return max(1, nonnegative_int("AtLeastOnce persist_every", value))


MAX_INTERVAL_MS = int(threading.TIMEOUT_MAX) * 1000
"""Longest ``Milliseconds`` interval: the longest wait the platform can express (about 292
years on Linux); a longer one could not even be turned into seconds."""


def _milliseconds(value: object) -> int:
    interval = nonnegative_int("Milliseconds interval", value)
    if interval > MAX_INTERVAL_MS:
        raise InvalidArgumentError(
            f"Milliseconds interval must be at most {MAX_INTERVAL_MS}, got {interval}")
    return max(1, interval)


@attrs.frozen(repr=False)
class StrictlyAtOnceMode:
    """Persist the cursor on every checkpointing read: at-most-once delivery after a crash."""

    def __repr__(self) -> str:
        return "ReadConsistency.StrictlyAtOnce"


@attrs.frozen(repr=False)
class AtLeastOnceMode:
    """Persist the cursor once every ``persist_every`` consumed entries: replay, never skip."""

    persist_every: int = attrs.field(converter=_persist_every)

    def __repr__(self) -> str:
        return f"ReadConsistency.AtLeastOnce(persist_every={self.persist_every})"


Consistency = StrictlyAtOnceMode | AtLeastOnceMode


class ReadConsistency:
    """Read consistency modes: ``StrictlyAtOnce`` or ``AtLeastOnce(persist_every=N)``."""

    StrictlyAtOnce: ClassVar[StrictlyAtOnceMode] = StrictlyAtOnceMode()
    """A checkpointing read persists the new cursor before it returns: at most once."""
    AtLeastOnce = AtLeastOnceMode
    """``AtLeastOnce(persist_every=N)``: the cursor is persisted once N more entries were
    consumed (and on ``flush()`` and ``close()``); up to N entries may come again after a
    crash, none is skipped."""


@attrs.frozen(repr=False)
class MillisecondsSchedule:
    """A background flusher makes dirty data durable every ``interval_ms`` milliseconds."""

    interval_ms: int = attrs.field(converter=_milliseconds)

    def __repr__(self) -> str:
        return f"FsyncSchedule.Milliseconds({self.interval_ms})"


@attrs.frozen(repr=False)
class SyncEachSchedule:
    """Every append (and every persisted cursor) is durable before the call returns."""

    def __repr__(self) -> str:
        return "FsyncSchedule.SyncEach"


@attrs.frozen(repr=False)
class NoFsyncSchedule:
    """Nothing is synced except by ``flush()`` and ``close()``."""

    def __repr__(self) -> str:
        return "FsyncSchedule.NoFsync"


Schedule = MillisecondsSchedule | SyncEachSchedule | NoFsyncSchedule


class FsyncSchedule:
    """Fsync schedules: ``Milliseconds(n)``, ``SyncEach`` or ``NoFsync``."""

    Milliseconds = MillisecondsSchedule
    """``Milliseconds(n)``: a background thread makes appends durable every n ms."""
    SyncEach: ClassVar[SyncEachSchedule] = SyncEachSchedule()
    """Every append is durable before it returns (concurrent appends share one fsync)."""
    NoFsync: ClassVar[NoFsyncSchedule] = NoFsyncSchedule()
    """No fsync until ``flush()`` or ``close()`` (or a full segment): a power loss may lose
    what came since; a process crash loses nothing."""


DEFAULT_CONSISTENCY: Consistency = ReadConsistency.StrictlyAtOnce
DEFAULT_SCHEDULE: Schedule = MillisecondsSchedule(1000)


def check_consistency(value: object) -> Consistency:
    if isinstance(value, (StrictlyAtOnceMode, AtLeastOnceMode)):
        return value
    raise InvalidArgumentError(
        "consistency must be ReadConsistency.StrictlyAtOnce or ReadConsistency.AtLeastOnce(N), "
        f"not {value!r}"
    )


def check_schedule(value: object) -> Schedule:
    if isinstance(value, (MillisecondsSchedule, SyncEachSchedule, NoFsyncSchedule)):
        return value
    raise InvalidArgumentError(
        "fsync_schedule must be FsyncSchedule.Milliseconds(n), FsyncSchedule.SyncEach or "
        f"FsyncSchedule.NoFsync, not {value!r}"
    )


# --- where the data lives ------------------------------------------------------------------

_KEEP = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3


def fnv1a64(data: bytes) -> int:
    """FNV-1a, 64 bit: the hash that names keys which sanitise to nothing."""
    h = _FNV_OFFSET
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h


RESERVED_NAME = "lock"
RESERVED_SUFFIXES = (".wal", ".idx", ".tmp")
"""Names a data directory's own files have or may have (compared in lower case): ``LOCK``,
segments, indexes and files being written. A key folder never takes one."""


def sanitize_key(key: str) -> str:
    """Turn an instance key into one safe directory name that can never leave its base,
    nor take the name of a file of the base's own log (a folder named like a segment or
    ``LOCK`` would break the instance that owns the base)."""
    if not isinstance(key, str):
        raise InvalidArgumentError(f"an instance key must be a str, not {type(key).__name__}")
    name = "".join(c if c in _KEEP else "_" for c in key)
    folded = name.lower()
    if (not name.strip("_") or name in (".", "..") or folded == RESERVED_NAME
            or folded.endswith(RESERVED_SUFFIXES)):
        return "ns_" + format(fnv1a64(key.encode("utf-8", "surrogatepass")), "x")
    return name


def env(name: str) -> str | None:
    """An environment variable, with an empty value counting as unset."""
    value = os.environ.get(name)
    return value if value else None


def resolve_root(data_dir: str | os.PathLike[str] | None, key: str | None) -> Path:
    """The directory an instance owns, following SPEC section 1."""
    if data_dir is not None:
        if not isinstance(data_dir, (str, os.PathLike)):
            raise InvalidArgumentError(
                f"data_dir must be a str or a path, not {type(data_dir).__name__}"
            )
        path = os.fspath(data_dir)
        if not isinstance(path, str):
            raise InvalidArgumentError(
                f"data_dir must be a str path, not {type(path).__name__}")
        if "\0" in path:
            raise InvalidArgumentError(f"data_dir must not contain a NUL character: {path!r}")
        if not path:  # a slip (an unset setting), which would put the log where we run
            raise InvalidArgumentError("data_dir must not be empty (use '.' for the current "
                                       "directory)")
        base = Path(path)
        return base / sanitize_key(key) if key is not None else base
    base = Path(env("WALRUS_DATA_DIR") or DEFAULT_BASE_DIR)
    if key is None:
        key = env("WALRUS_INSTANCE_KEY")
    return base / sanitize_key(key) if key is not None else base
