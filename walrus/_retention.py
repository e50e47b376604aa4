"""Retention: per-topic limits by age and size, where they are kept, and the expiry that
applies them in the background worker (never on the append or read paths).

Expiry works in whole slices: the entries one topic has in one sealed, synced and indexed
segment. The age of a slice is bounded by the segment headers alone (a segment's header is
stamped when it becomes the active one, so every entry of segment N was appended before the
next segment's creation time), which is why the format needs no timestamp per entry.

An expiry is made durable as a CURSOR record of the shared cursor at the new first stored
offset (written before the segment can be deleted, synced by the reclamation that deletes
it): recovery, of this version and of earlier ones, then sees the offsets before the first
surviving entry as consumed, never as lost to damage.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from itertools import groupby
from typing import TYPE_CHECKING

import attrs

from ._codec import CURSOR, SEG_SHIFT, SegmentSummary
from ._errors import InvalidArgumentError, WalrusError
from ._log import Log
from ._making import sync_directory
from ._reclaim import settled
from ._segment import Segment
from ._speedups import record_bytes
from ._topics import Topic

if TYPE_CHECKING:  # only a type: the cursors sit above this module
    from ._cursors import Position

logger = logging.getLogger("walrus")

RETENTION_FILE = "retention+"
"""The settings file in a data directory (``+`` is not a character of a sanitised key, so no
key folder is ever named so)."""
FORMAT = "walrus-retention"
VERSION = 1
BLOCK = 4096
"""The settings file is padded (JSON ignores trailing spaces) to a whole number of these."""
RACY_NS = 100_000_000
"""How recent a modification time must be for the file's stamp not to be trusted: ten
times the coarsest tick a Linux kernel stamps files with (10 ms at 100 Hz)."""
MAX_AGE = (2**63 - 1) / 1e9
"""The longest ``max_age``, in seconds (about 292 years): segment headers stamp their time as
a signed 64-bit count of nanoseconds, so no longer age could ever be reached."""


@attrs.frozen
class Retention:
    """A topic's retention limits; ``None`` means no limit of that kind.

    ``max_age`` is in seconds, ``max_bytes`` counts the bytes the topic's entries occupy on
    disk (``get_topic_size``)."""

    max_age: float | None = None
    max_bytes: int | None = None

    @property
    def unlimited(self) -> bool:
        return self.max_age is None and self.max_bytes is None


NO_LIMITS = Retention()


def check_retention(max_age: object, max_bytes: object) -> Retention:
    """The limits as a Retention, or InvalidArgumentError naming the bad one."""
    age: float | None = None
    if max_age is not None:
        if isinstance(max_age, timedelta):
            max_age = max_age.total_seconds()
        if isinstance(max_age, bool) or not isinstance(max_age, (int, float)):
            raise InvalidArgumentError(
                f"max_age must be a number of seconds, a timedelta or None, not "
                f"{type(max_age).__name__}")
        shown = repr(max_age) if len(repr(max_age)) <= 24 else f"{repr(max_age)[:8]}..."
        if max_age > MAX_AGE:  # compared before float(): an int may be too large for one
            raise InvalidArgumentError(
                f"max_age must be at most {MAX_AGE:.0f} seconds (about 292 years), got "
                f"{shown}; use max_age=None for no age limit")
        if not max_age > 0:  # NaN, or <= 0 (an int too large for a float among them)
            raise InvalidArgumentError(f"max_age must be a positive number of seconds, got "
                                       f"{shown}")
        age = float(max_age)
    size: int | None = None
    if max_bytes is not None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int):
            raise InvalidArgumentError(
                f"max_bytes must be an int or None, not {type(max_bytes).__name__}")
        if max_bytes <= 0:
            raise InvalidArgumentError(f"max_bytes must be positive, got {max_bytes}")
        size = max_bytes
    return Retention(age, size)


def read_file(path: str) -> bytes | None:
    """The bytes of ``path``; None when it is absent."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def file_stamp(path: str) -> tuple[int, int, int, int] | None:
    """(inode, ctime, mtime, size) of ``path`` in nanoseconds; None when it is absent."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_ctime_ns, st.st_mtime_ns, st.st_size


def stored_age(path: str, topic: object, age: object) -> object:
    """A ``max_age`` read back from the file: one above :data:`MAX_AGE`, which an earlier
    version accepted (and then failed every expiry with), counts as :data:`MAX_AGE`."""
    if isinstance(age, (int, float)) and not isinstance(age, bool) and age > MAX_AGE:
        logger.warning("retention of topic %r in %s: max_age %r is longer than the longest "
                       "possible (%.0f seconds), which it is read as", topic, path, age, MAX_AGE)
        return MAX_AGE
    return age


class Settings:
    """Every topic's limits, kept in the data directory's ``retention+`` file.

    The file is rewritten whole (a ``.tmp`` file, fsynced, renamed, the directory fsynced),
    so a crash or power loss leaves the old settings or the new ones, never a mix.
    """

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, RETENTION_FILE)
        self.lock = threading.Lock()
        self.limits: dict[str, Retention] = {}
        """Topic name -> its limits (topics without limits are absent)."""
        self.floors: dict[str, int] = {}
        """Topic name -> the offset before which its entries expired (durable before any
        segment holding them is deleted; applied again when the directory is opened)."""
        self.problem: str | None = None
        """Why the file could not be read at the last look (None: it was read, or is absent);
        while set, nothing writes it, so no other topic's limits or floors are lost."""
        self.raw: bytes | None = None
        """The file's bytes when last read (a look within the racy window that finds the
        same bytes changes nothing)."""
        self.trusted = False
        """Whether ``stamp`` was taken long enough after the file's last change to tell the
        next change apart."""
        self.stamp: tuple[int, int, int, int] | None = None
        """The file's (inode, ctime, mtime, size) when last read: an observer rereads it
        when it changes."""
        self.reload()

    def reload(self) -> bool:
        """Read the file again if it changed since the last look; True if it did. A file
        that cannot be read gives no limits (keeping entries is the safe side), with a
        warning.

        A stamp taken within ``RACY_NS`` of the file's modification time is not trusted (as
        git does for its index): a kernel stamps files with a clock that moves in ticks of
        up to 10 ms, and a file system may give the next write the same inode and size, so a
        write within the same tick would look like no change at all."""
        stamp = file_stamp(self.path)
        if stamp == self.stamp and self.trusted:
            return False
        self.stamp = stamp
        self.trusted = stamp is None or time.time_ns() - stamp[2] >= RACY_NS
        try:
            raw = None if stamp is None else read_file(self.path)
        except OSError as exc:
            return self._unreadable(exc)
        if raw is not None and raw == self.raw:  # looked again within the racy window
            return False
        self.raw = raw
        if raw is None:
            self.limits, self.floors, self.problem = {}, {}, None
            return True
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict) or doc.get("format") != FORMAT:
                raise ValueError("not a walrus retention file")
            if doc.get("version") != VERSION:
                raise ValueError(f"unknown version {doc.get('version')!r}")
            limits = {str(name): check_retention(stored_age(self.path, name, v.get("max_age")),
                                                 v.get("max_bytes"))
                      for name, v in doc["topics"].items()}
            floors = {str(name): int(v) for name, v in doc.get("expired", {}).items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return self._unreadable(exc, raw)
        self.limits, self.floors, self.problem = limits, floors, None  # never empty meanwhile
        return True

    def _unreadable(self, exc: Exception, raw: bytes | None = None) -> bool:
        """No limits while the file cannot be read (``raw``: the bytes that would not parse,
        so that looking again at the same bytes warns no more)."""
        logger.warning("ignoring retention settings in %s (%s): no entry expires",
                       self.path, exc)
        self.limits, self.floors = {}, {}
        self.problem = str(exc) or type(exc).__name__
        self.raw = raw
        return True

    def get(self, topic: str) -> Retention:
        return self.limits.get(topic, NO_LIMITS)

    def set(self, topic: str, limits: Retention) -> None:
        """Persist ``limits`` for ``topic`` (durable when this returns)."""
        with self.lock:
            new = dict(self.limits)
            if limits.unlimited:
                new.pop(topic, None)
            else:
                new[topic] = limits
            self._write(new, self.floors)

    def expired(self, floors: dict[str, int]) -> None:
        """Persist new first stored offsets (durable when this returns)."""
        with self.lock:
            self._write(self.limits, {**self.floors, **floors})

    def _write(self, limits: dict[str, Retention], floors: dict[str, int]) -> None:
        if self.problem is not None:
            raise WalrusError(
                f"cannot change retention: {self.path} cannot be read ({self.problem}), and "
                f"rewriting it would lose every topic's limits and expiry points; nothing was "
                f"changed (repair or restore the file, or remove it to start with no limits)")
        doc = {"format": FORMAT, "version": VERSION,
               "topics": {name: {"max_age": r.max_age, "max_bytes": r.max_bytes}
                          for name, r in limits.items()},
               "expired": floors}
        tmp = self.path + ".tmp"
        size = fill(tmp, json.dumps(doc, sort_keys=True).encode())
        os.replace(tmp, self.path)
        sync_directory(os.path.dirname(self.path))
        self.limits, self.floors = limits, floors
        reserve(tmp, size)


def fill(path: str, body: bytes) -> int:
    """Write ``body`` into the spare file ``path``, padded with spaces to its size when it
    fits, and fsync it; returns the size. Writing over blocks the spare holds takes none: on
    a full disk the expiry that frees space can still record itself (a new file would need
    blocks). A spare with a second name (linked by hand, to the live file say) is never
    written into: it is replaced by a new file."""
    fd = _spare(path)
    try:
        size = os.fstat(fd).st_size
        if len(body) > size:  # room to grow without a new block at each write
            size = -(-2 * len(body) // BLOCK) * BLOCK
        data = memoryview(body.ljust(size))
        while data:
            data = data[os.pwrite(fd, data, size - len(data)):]
        os.fsync(fd)
    finally:
        os.close(fd)
    return size


def _spare(path: str) -> int:
    """A descriptor of the spare file ``path``, a file of its own (made anew if it is a
    symbolic link or has another name)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        if os.fstat(fd).st_nlink == 1:
            return fd
        os.close(fd)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
    os.unlink(path)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)


def reserve(path: str, size: int) -> None:
    """Make the spare the next settings are written into, a new file of ``size`` bytes (the
    blocks the replaced settings just gave back). Nothing depends on it: without one, the
    next write makes its file anew. The replaced file is never written again, so a reader
    that opened it still reads whole settings."""
    try:
        with open(path, "xb") as f:
            f.write(b" " * size)
    except FileExistsError:
        pass  # made meanwhile by hand: the next write checks it
    except OSError as exc:
        logger.debug("no spare retention settings file %s: %s", path, exc)
        try:
            os.unlink(path)
        except OSError:
            pass


class Expiry:
    """Moves the first stored offset of topics with limits past what expired (the worker
    calls :meth:`run`; reclamation then deletes the segments nobody needs any more)."""

    def __init__(self, log: Log, settings: Settings,
                 positions: Callable[[str], Iterable[Position]],
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.log = log
        self.settings = settings
        self.positions = positions
        """Topic name -> the named consumers' Positions this instance owns (their read-ahead
        must not serve an expired entry)."""
        self.clock = clock
        """Wall-clock nanoseconds (segment headers hold the same clock); tests replace it."""
        self.sizes: dict[tuple[int, int], int] = {}
        """(topic id, segment number) -> bytes of that slice (slices never change): from the
        index when the worker writes it (:meth:`note_index`), else counted once."""

    def note_index(self, summary: SegmentSummary) -> None:
        """The worker indexed a sealed segment: keep its slices' sizes (the index counted
        them already) for the expiry that follows, if any topic has limits."""
        if self.settings.limits or self.settings.floors:
            for tid, entry in summary.topics.items():
                if entry.nbytes:
                    self.sizes[(tid, summary.number)] = entry.nbytes

    def run(self) -> bool:
        """Expire what the limits say; True if a first stored offset moved."""
        limits, floors = self.settings.limits, self.settings.floors
        if not limits and not floors:
            return False
        log = self.log
        segments = list(log.segments.values())
        sealed = [(seg, nxt.header.created_ns)  # with the creation time of the next segment
                  for seg, nxt in zip(settled(log, segments), segments[1:], strict=False)]
        now = self.clock()
        moves = []
        for name in {**floors, **limits}:  # a floor without limits: its cursor may lag
            t = log.by_name.get(name)
            if t is None:
                continue
            first, dropped = self.expiry_point(t, limits.get(name, NO_LIMITS), sealed, now)
            if first > t.first_seq or t.persisted < t.first_seq:
                moves.append((t, first, dropped))
        raised = {t.name: first for t, first, _ in moves if first > floors.get(t.name, 0)}
        if raised:
            self.settings.expired(raised)
        for t, first, dropped in moves:
            self.expire(t, first, dropped)
        moved = bool(moves)
        live = {seg.number for seg in segments}
        for key in [k for k in self.sizes if k[1] not in live]:
            del self.sizes[key]
        return moved

    def expiry_point(self, t: Topic, r: Retention, sealed: list[tuple[Segment, int]],
                     now: int) -> tuple[int, int]:
        """The offset ``t``'s first stored entry moves to, and the bytes it drops: whole
        slices, oldest first, while the slice is older than ``max_age`` or the topic would
        still hold at least ``max_bytes`` without it."""
        first, size, dropped = t.first_seq, t.nbytes, 0
        age_ns = None if r.max_age is None else int(r.max_age * 1e9)
        for seg, next_created in sealed:
            lo, hi = t.lsn_range(seg.number)
            if hi == lo:
                continue
            if lo != first - t.first_seq:
                break  # not a prefix (cannot happen: slices go oldest first)
            key = (t.tid, seg.number)
            nbytes = self.sizes.get(key)
            if nbytes is None:
                nbytes = self.sizes[key] = record_bytes(seg.whole(), t.lsns[lo:hi])
            # a creation time before this segment's own (a damaged header) proves no age
            old = (age_ns is not None and next_created >= seg.header.created_ns
                   and next_created + age_ns <= now)
            big = r.max_bytes is not None and size - nbytes >= r.max_bytes
            if not (old or big):
                break
            first, size, dropped = t.first_seq + hi, size - nbytes, dropped + nbytes
        return first, dropped

    def expire(self, t: Topic, first: int, dropped: int) -> None:
        """Make ``first`` the first stored offset of ``t``: the shared cursor is persisted no
        lower (the durable record of the expiry), then the index is trimmed."""
        with holding(self.positions(t.name), first), t.read_lock:
            if t.persisted < first:
                self.log.write_state(t, CURSOR, first)
            self.log.trim(t, first, dropped)



@contextmanager
def holding(positions: Iterable[Position], first: int) -> Iterator[None]:
    """Hold the read locks of these named consumers (a Position's lock comes before its
    topic's; always taken in one order) while their topic's first stored offset moves to
    ``first``: a reader places its position at the first stored entry under its own lock
    and then reads the index under the topic's, so the offset must not move in between.
    Their read-ahead of expired entries is dropped."""
    with ExitStack() as stack:
        for c in sorted(positions, key=id):
            stack.enter_context(c.read_lock)
            if c.ahead_seq < first:
                c.ahead, c.ahead_seq = [], 0
        yield


def apply_floors(log: Log, floors: dict[str, int],
                 positions: Callable[[str], Iterable[Position]]) -> None:
    """Trim each topic to its recorded first stored offset: entries that expired before a
    restart (their segment still held by another topic), or that an observer's writer
    expired, are not stored any more."""
    for name, floor in floors.items():
        t = log.by_name.get(name)
        if t is None or floor <= t.first_seq:
            continue
        with holding(positions(name), floor), t.read_lock:
            n = min(floor - t.first_seq, len(t.lsns))
            dropped = 0
            for number, group in groupby(t.lsns[:n], key=lambda lsn: lsn >> SEG_SHIFT):
                seg = log.segments.get(number)
                if seg is not None:
                    dropped += record_bytes(seg.whole(), array("Q", group))
            log.trim(t, t.first_seq + n, dropped)


class Retainer:
    """What the facade delegates retention to: checking, persisting and reporting limits."""

    def __init__(self, log: Log, owned: dict[tuple[str, str], Position]) -> None:
        self.log = log
        self.settings = Settings(log.directory)
        self.expiry = Expiry(log, self.settings, lambda topic: [
            c for (_name, tp), c in list(owned.items()) if tp == topic])
        apply_floors(log, self.settings.floors, self.expiry.positions)

    def observe(self) -> None:
        """An observer follows the writer's expiry (called after each refresh)."""
        if self.settings.reload():
            apply_floors(self.log, self.settings.floors, self.expiry.positions)

    def set(self, topic: str, max_age: object, max_bytes: object) -> None:
        """Check everything first: a bad limit or an unknown topic changes nothing."""
        limits = check_retention(max_age, max_bytes)
        if topic not in self.log.by_name:
            raise InvalidArgumentError(
                f"unknown topic {topic!r}: retention is set on a topic that exists")
        self.settings.set(topic, limits)

    def get(self, topic: str) -> Retention:
        return self.settings.get(topic)
