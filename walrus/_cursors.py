"""Cursors: where consuming reads stand in each topic, and when that position is persisted.

The consistency policy (StrictlyAtOnce persists before handing entries out, AtLeastOnce(N)
once N were consumed since the last persist), the cursor arithmetic, the read-ahead that
serves ``read_next`` and the persistence of lagging positions all live here, so that the
facade only checks arguments and delegates.

Each topic has the shared cursor, whose state lives in the topic (``Topic.cursor``,
``persisted``, ``ahead``, guarded by its ``read_lock``) and is persisted as CURSOR records of
the log, and any number of named consumers: a :class:`Position` each, with the same fields
and its own lock, persisted in a consumer file (``_consumers.py``). The read paths take the
holder of the fields (``c``: the topic itself, or a Position) beside the topic, so one code
path and one consistency policy serve both.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from itertools import repeat

from ._ahead import AheadBudget
from ._codec import CURSOR
from ._consumers import ConsumerFile
from ._entry import Entry
from ._errors import (
    CorruptionError,
    InvalidArgumentError,
    OffsetOutOfRangeError,
    ReadOnlyError,
    WalrusClosedError,
    WalrusError,
    storage_error,
)
from ._limits import MAX_BATCH_ENTRIES
from ._log import Log
from ._reading import read_run
from ._speedups import hot_entries, hot_read_next
from ._topics import Topic
from ._validate import not_a_bool
from ._wait import NOW, Waits

AHEAD_COUNT = 512
AHEAD_BYTES = 64 << 10
"""read_next checks up to this many entries (or bytes) at once and serves the next calls
from them: one checksum pass in C per run instead of a chain of Python calls per entry."""
SHARED = "shared"
"""The name of the cursor every instance of a directory shares."""

_new_entry = tuple.__new__


def entries_of(payloads: list[bytes], first: int, topic: str) -> list[Entry]:
    """Entries for consecutive payloads, built in C (one loop of the extension, or C-level
    map/zip loops without it: no Python frame per entry)."""
    if not payloads:  # ``first`` may be any offset asked for, past what C's int64 holds
        return []
    if hot_entries is not None:
        return hot_entries(payloads, first, topic, Entry)  # type: ignore[no-any-return]
    n = len(payloads)
    return list(map(_new_entry, repeat(Entry, n),
                    zip(payloads, range(first, first + n), repeat(topic, n), strict=True)))


@contextmanager
def reading(what: str) -> Iterator[None]:
    """A read that fails in the backend (a failing disk) raises StorageError, as writes do;
    walrus's own errors pass unchanged."""
    try:
        yield
    except WalrusError:
        raise
    except OSError as exc:
        raise storage_error(exc, what) from exc


class Position:
    """Where named consumer ``name`` stands in ``topic`` (the fields the read paths use,
    named as the shared cursor's are in :class:`Topic`), and the file it is persisted in."""

    __slots__ = ("ahead", "ahead_seq", "cursor", "file", "name", "persisted", "read_lock",
                 "topic", "topic_name")

    def __init__(self, topic_name: str, name: str, topic: Topic | None, file: ConsumerFile,
                 persisted: int) -> None:
        self.topic_name = topic_name
        self.name = name
        self.topic = topic
        """None until the topic exists (a consumer may come before its producer)."""
        self.file = file
        self.cursor = persisted
        self.persisted = persisted
        self.read_lock = threading.Lock()
        self.ahead: list[Entry] = []
        self.ahead_seq = 0


def refuse_consuming() -> ReadOnlyError:
    """The error for a consuming read on a read-only observer."""
    return ReadOnlyError("a read-only observer cannot consume entries (use checkpoint=False)")


class Cursor:
    """Every cursor of a log's topics (the shared one and the named consumers this
    instance owns), with the consistency policy.

    ``topics`` is the table the hot path looks names up in (empty for observers, which
    must refresh first); ``lookup`` is the slow path for a name not in it (validates the
    name, refuses consuming reads where they are not allowed, returns the topic or None);
    ``position`` is the slow path of a named consumer (validates, takes ownership, returns
    its Position). ``closed`` is set by :meth:`shut` before the instance waits for reads in
    flight.
    """

    __slots__ = ("__dict__", "__weakref__", "_lazy_every", "_topics", "closed", "named")
    """The fields the C read_next reads (``walrus/_native/hot.c``), at fixed offsets; the
    rest in the instance dictionary."""

    def __init__(self, log: Log, topics: dict[str, Topic],
                 lookup: Callable[[str, bool], Topic | None],
                 wait_durable: Callable[[int], None], *, persist_every: int | None,
                 sync_each: bool, read_only: bool, name: str = SHARED,
                 owner: int | None = None,
                 position: Callable[[str, str], Position] | None = None,
                 waits: Waits) -> None:
        self.name = name
        """The shared cursor's name."""
        self.ahead_budget = AheadBudget()
        """One memory bound for the read-ahead of all its cursors (``_ahead.py``)."""
        self.owner = os.getpid() if owner is None else owner
        """The process that moves it."""
        self._log = log
        self._topics = topics
        self._lookup = lookup
        self._position = position
        self.named: dict[str, dict[str, Position]] = {}
        """Named consumer -> topic -> its Position, for those this instance owns. An
        observer's stays empty: its reads go through ``position``, which refreshes first."""
        self._wait = wait_durable
        self._strict = persist_every is None
        self._persist_every = 1 if persist_every is None else persist_every
        self._lazy_every = 0 if persist_every is None else persist_every
        """A read may skip writing the cursor while fewer than this were consumed since the
        last persist (0 under StrictlyAtOnce: it never may)."""
        self._sync_each = sync_each
        self._read_only = read_only
        self.on_store: Callable[[Position], None] | None = None
        """Told of each named position handed to the OS but not synced (the schedule's
        syncer, under Milliseconds)."""
        self.closed = False
        self.waits = waits
        """Where a read that waits for an entry registers: the one table of the log (it has
        a single hook), shared by every cursor of it."""
        if hot_read_next is not None:  # the common case in C, the rest in read_next
            self.read_next = partial(hot_read_next, self, Cursor.read_next)  # type: ignore[method-assign]

    def shut(self) -> None:
        """Refuse every read from now on (reads in flight finish)."""
        self.closed = True

    def read_next(self, topic: str, checkpoint: bool = True, consumer: str | None = None,
                  timeout: float | None = NOW) -> Entry | None:
        """The next entry of ``topic`` at this cursor, or None (see ``Walrus.read_next``).

        The hot path of reads, one frame: the facade binds its ``read_next`` to it.
        (``consumer`` and ``timeout`` are keyword-only in the facade's signature, but not
        here: a keyword-only default costs every call a dictionary lookup.)
        """
        if timeout is not NOW:  # a waiting read (or a timeout to check)
            return self._wait_next(topic, checkpoint, consumer, timeout)
        if checkpoint is not True and checkpoint is not False:
            raise not_a_bool("checkpoint", checkpoint)
        c: Topic | Position
        if consumer is None:
            try:
                t = self._topics[topic]
            except (KeyError, TypeError):  # not known yet, or unhashable: the slow path decides
                found = self._lookup(topic, checkpoint)
                if found is None:
                    return None
                t = found
            c = t
        else:
            try:
                c = self.named[consumer][topic]
                t = c.topic  # type: ignore[assignment]
            except (KeyError, TypeError):
                c = self._named(topic, consumer)
                t = c.topic  # type: ignore[assignment]
            if t is None:
                return None
        lock = c.read_lock
        lock.acquire()  # not `with`: measurably cheaper on this path
        try:
            if self.closed:
                raise WalrusClosedError()
            seq = c.cursor
            if seq >= t.visible:
                return None
            i = seq - c.ahead_seq
            ahead = c.ahead
            if 0 <= i < len(ahead):
                entry = ahead[i]
            else:
                entry = self._read_ahead(t, c, seq, checkpoint)
                seq = entry[1]  # the same, unless the entries before it were reclaimed
            if not checkpoint:
                return entry
            if seq - c.persisted < self._lazy_every:
                c.cursor = seq + 1  # AtLeastOnce between two persists: nothing to write
                return entry
            wait = self._advance(t, c, seq, 1)
        finally:
            lock.release()
        if wait and self._sync_each:
            self._wait(wait)
        return entry

    def _wait_next(self, topic: str, checkpoint: bool, consumer: str | None,
                   timeout: object) -> Entry | None:
        """``read_next`` with a timeout: tries it again each time the topic may have more
        (a separate frame: a closure would cost the hot path its plain locals)."""
        return self.waits.wait(lambda: self.read_next(topic, checkpoint, consumer), topic,
                               timeout)

    def _named(self, topic: str, consumer: str) -> Position:
        """The slow path of a named consumer: validated, owned, refreshed (observers)."""
        if self._position is None:
            raise AssertionError("this cursor has no named consumers")
        return self._position(topic, consumer)

    def _read_ahead(self, t: Topic, c: Topic | Position, seq: int, checkpoint: bool) -> Entry:
        """Refill the read-ahead of ``c`` from ``seq`` (under its read lock).

        A damaged entry raises CorruptionError; a checkpointing read consumes it first.
        A named consumer behind the first stored entry (reclaimed past it: a consumer whose
        position a power loss set back) goes on from the first stored entry.
        """
        if seq < t.first_seq:
            seq = t.first_seq
        try:
            asked = self.ahead_budget.share(AHEAD_BYTES)
            seq, ahead = self._run(t, c, seq, asked, AHEAD_COUNT)
        except CorruptionError:
            if checkpoint:
                wait = self._advance(t, c, seq, 1)
                if wait and self._sync_each:
                    c.read_lock.release()
                    try:
                        self._wait(wait)
                    finally:
                        c.read_lock.acquire()
            raise
        c.ahead, c.ahead_seq = entries_of(ahead, seq, t.name), seq
        self.ahead_budget.charge(c, ahead, asked)
        return c.ahead[0]

    def read_batch(self, t: Topic, budget: int, checkpoint: bool,
                   start: int | None, c: Topic | Position | None = None) -> list[Entry]:
        """Entries of ``t`` from the cursor ``c`` (the shared one by default; or from
        ``start``, touching no cursor) within ``budget`` bytes and ``MAX_BATCH_ENTRIES``
        entries (see ``batch_read_for_topic``)."""
        if c is None:
            c = t
        wait = 0
        with c.read_lock:
            if self.closed:
                raise WalrusClosedError()
            if start is None:
                seq = max(c.cursor, t.first_seq) if c is not t else c.cursor
            else:
                seq = start
                if seq < t.first_seq:
                    raise OffsetOutOfRangeError(
                        f"topic {t.name!r}: entries before offset {t.first_seq} were "
                        f"reclaimed (asked for offset {seq})")
            seq, entries, error = self._collect(t, c, seq, budget)
            if checkpoint and start is None:
                consumed = len(entries) or (1 if error is not None else 0)
                if consumed:
                    wait = self._advance(t, c, seq, consumed)
        if wait and self._sync_each:
            self._wait(wait)
        if error is not None and not entries:
            raise error
        return entries

    def _collect(self, t: Topic, c: Topic | Position, seq: int,
                 budget: int) -> tuple[int, list[Entry], CorruptionError | None]:
        """Read entries from ``seq`` (or the first stored entry, see ``_run``) within the
        budget; stops before a damaged one. Returns where it read from too."""
        try:
            seq, payloads = self._run(t, c, seq, budget, MAX_BATCH_ENTRIES)
        except CorruptionError as exc:
            return seq, [], exc
        return seq, entries_of(payloads, seq, t.name), None

    def _run(self, t: Topic, c: Topic | Position, seq: int, budget: int,
             limit: int) -> tuple[int, list[bytes]]:
        """Where it read from, and the payloads from there (see ``read_run``). A named
        consumer holds only its own lock, so it takes the topic's too while it reads the
        topic's index: reclamation, expiry and an observer's refresh trim that index under
        it, and the first stored entry may have moved past ``seq`` since the caller looked
        (it then reads from the first stored entry)."""
        with reading(f"reading topic {t.name!r} at offset {seq}"):
            if c is t:
                return seq, read_run(self._log.segments, t, seq, t.visible, budget, limit)
            with t.read_lock:
                seq = max(seq, t.first_seq)
                return seq, read_run(self._log.segments, t, seq, t.visible, budget, limit)

    def _advance(self, t: Topic, c: Topic | Position, seq: int, count: int) -> int:
        """Consume ``count`` entries from ``seq`` (under the read lock of ``c``).

        StrictlyAtOnce persists the new position before the entries are handed out.
        AtLeastOnce(N) persists the position reached by *earlier* calls once N entries were
        consumed since the last persist, never the entries this call returns. Returns the
        LSN to wait for under SyncEach (0: nothing to wait for).
        """
        if self._read_only and c is t:
            raise refuse_consuming()
        new = seq + count
        lsn = 0
        if self._strict:
            lsn = self.store(t, c, new)
        elif seq - c.persisted >= self._persist_every:
            lsn = self.store(t, c, seq)
        c.cursor = new
        return lsn

    def store(self, t: Topic | None, c: Topic | Position, value: int) -> int:
        """Persist ``value`` as the position of ``c`` (under its read lock): a CURSOR record
        for the shared cursor (returns its LSN, for SyncEach to wait for); a named
        consumer's slot, handed to the OS and, under SyncEach, synced before this returns."""
        if c is t:
            return self._log.write_state(t, CURSOR, value)
        assert isinstance(c, Position)
        if c.file.lock_fd < 0:  # a read that found it just before delete_consumer did
            raise InvalidArgumentError(
                f"consumer {c.name!r} of topic {c.topic_name!r} was deleted during this read "
                "(nothing was consumed)")
        with reading(f"persisting consumer {c.name!r} of topic {c.topic_name!r}"):
            c.file.store(value)
            c.persisted = value
            if self._sync_each:
                c.file.sync()
            elif self.on_store is not None:
                self.on_store(c)
        return 0

    def persist(self, topics: list[Topic], positions: list[Position]) -> None:
        """Write the exact position of every cursor whose persisted one lags (AtLeastOnce):
        the shared ones of ``topics``, and ``positions``."""
        for t in topics:
            with t.read_lock:
                if t.cursor != t.persisted and t.cursor > t.persisted:
                    self._log.write_state(t, CURSOR, t.cursor)
        for c in positions:
            with c.read_lock:
                if c.cursor != c.persisted:
                    self.store(c.topic, c, c.cursor)
