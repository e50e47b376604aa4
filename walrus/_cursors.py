"""Cursors: where consuming reads stand in each topic, and when that position is persisted.

The consistency policy (StrictlyAtOnce persists before handing entries out, AtLeastOnce(N)
once N were consumed since the last persist), the cursor arithmetic, the read-ahead that
serves ``read_next`` and the persistence of lagging positions all live here, so that the
facade only checks arguments and delegates.

Today there is one cursor per topic, the shared one, and its state lives in the topic
(``Topic.cursor``, ``persisted``, ``ahead``), guarded by the topic's ``read_lock``. A
:class:`Cursor` names the cursor it moves (an owner and a name) so that more cursors per
topic, some owned by other processes, can be added beside it without changing its callers.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import repeat

from ._codec import CURSOR
from ._entry import Entry
from ._errors import (
    CorruptionError,
    OffsetOutOfRangeError,
    ReadOnlyError,
    WalrusClosedError,
    WalrusError,
)
from ._limits import MAX_BATCH_ENTRIES
from ._log import Log, storage_error
from ._reading import read_run
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
    """Entries for consecutive payloads, built in C-level loops (map/zip, no Python frame)."""
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


def refuse_consuming() -> ReadOnlyError:
    """The error for a consuming read on a read-only observer."""
    return ReadOnlyError("a read-only observer cannot consume entries (use checkpoint=False)")


class Cursor:
    """One named cursor over every topic of a log, with its consistency policy.

    ``topics`` is the table the hot path looks names up in (empty for observers, which
    must refresh first); ``lookup`` is the slow path for a name not in it (validates the
    name, refuses consuming reads where they are not allowed, returns the topic or None).
    ``closed`` is set by :meth:`shut` before the instance waits for reads in flight.
    """

    def __init__(self, log: Log, topics: dict[str, Topic],
                 lookup: Callable[[str, bool], Topic | None],
                 wait_durable: Callable[[int], None], *, persist_every: int | None,
                 sync_each: bool, read_only: bool, name: str = SHARED,
                 owner: int | None = None, waits: Waits) -> None:
        self.name = name
        """Which cursor of each topic this moves (only the shared one exists today)."""
        self.owner = os.getpid() if owner is None else owner
        """The process that moves it."""
        self._log = log
        self._topics = topics
        self._lookup = lookup
        self._wait = wait_durable
        self._strict = persist_every is None
        self._persist_every = 1 if persist_every is None else persist_every
        self._lazy_every = 0 if persist_every is None else persist_every
        """A read may skip writing the cursor while fewer than this were consumed since the
        last persist (0 under StrictlyAtOnce: it never may)."""
        self._sync_each = sync_each
        self._read_only = read_only
        self.closed = False
        self.waits = waits
        """Where a read that waits for an entry registers: the one table of the log (it has
        a single hook), shared by every cursor of it."""

    def shut(self) -> None:
        """Refuse every read from now on (reads in flight finish)."""
        self.closed = True

    def read_next(self, topic: str, checkpoint: bool = True,
                  timeout: float | None = NOW) -> Entry | None:
        """The next entry of ``topic`` at this cursor, or None (see ``Walrus.read_next``).

        The hot path of reads, one frame: the facade binds its ``read_next`` to it.
        (``timeout`` is keyword-only in the facade's signature, but not here: a keyword-only
        default costs every call a dictionary lookup.)
        """
        if timeout is not NOW:  # a waiting read (or a timeout to check)
            return self._wait_next(topic, checkpoint, timeout)
        if checkpoint is not True and checkpoint is not False:
            raise not_a_bool("checkpoint", checkpoint)
        try:
            t = self._topics[topic]
        except (KeyError, TypeError):  # not known yet, or unhashable: the slow path decides
            found = self._lookup(topic, checkpoint)
            if found is None:
                return None
            t = found
        lock = t.read_lock
        lock.acquire()  # not `with`: measurably cheaper on this path
        try:
            if self.closed:
                raise WalrusClosedError()
            seq = t.cursor
            if seq >= t.visible:
                return None
            i = seq - t.ahead_seq
            ahead = t.ahead
            entry = ahead[i] if 0 <= i < len(ahead) else self._read_ahead(t, seq, checkpoint)
            if not checkpoint:
                return entry
            if seq - t.persisted < self._lazy_every:
                t.cursor = seq + 1  # AtLeastOnce between two persists: nothing to write
                return entry
            wait = self._advance(t, seq, 1)
        finally:
            lock.release()
        if wait and self._sync_each:
            self._wait(wait)
        return entry

    def _wait_next(self, topic: str, checkpoint: bool, timeout: object) -> Entry | None:
        """``read_next`` with a timeout: tries it again each time the topic may have more
        (a separate frame: a closure would cost the hot path its plain locals)."""
        return self.waits.wait(lambda: self.read_next(topic, checkpoint), topic, timeout)

    def _read_ahead(self, t: Topic, seq: int, checkpoint: bool) -> Entry:
        """Refill the topic's read-ahead from ``seq`` (under its read lock).

        A damaged entry raises CorruptionError; a checkpointing read consumes it first.
        """
        try:
            with reading(f"reading topic {t.name!r} at offset {seq}"):
                ahead = read_run(self._log.segments, t, seq, t.visible, AHEAD_BYTES, AHEAD_COUNT)
        except CorruptionError:
            if checkpoint:
                wait = self._advance(t, seq, 1)
                if wait and self._sync_each:
                    t.read_lock.release()
                    try:
                        self._wait(wait)
                    finally:
                        t.read_lock.acquire()
            raise
        t.ahead, t.ahead_seq = entries_of(ahead, seq, t.name), seq
        return t.ahead[0]

    def read_batch(self, t: Topic, budget: int, checkpoint: bool,
                   start: int | None) -> list[Entry]:
        """Entries of ``t`` from this cursor (or from ``start``, touching no cursor) within
        ``budget`` bytes and ``MAX_BATCH_ENTRIES`` entries (see ``batch_read_for_topic``)."""
        wait = 0
        with t.read_lock:
            if self.closed:
                raise WalrusClosedError()
            if start is None:
                seq = t.cursor
            else:
                seq = start
                if seq < t.first_seq:
                    raise OffsetOutOfRangeError(
                        f"topic {t.name!r}: entries before offset {t.first_seq} were "
                        f"reclaimed (asked for offset {seq})")
            entries, error = self._collect(t, seq, budget)
            if checkpoint and start is None:
                consumed = len(entries) or (1 if error is not None else 0)
                if consumed:
                    wait = self._advance(t, seq, consumed)
        if wait and self._sync_each:
            self._wait(wait)
        if error is not None and not entries:
            raise error
        return entries

    def _collect(self, t: Topic, seq: int,
                 budget: int) -> tuple[list[Entry], CorruptionError | None]:
        """Read entries from ``seq`` within the budget; stops before a damaged one."""
        try:
            with reading(f"reading topic {t.name!r} at offset {seq}"):
                payloads = read_run(self._log.segments, t, seq, t.visible, budget,
                                    MAX_BATCH_ENTRIES)
        except CorruptionError as exc:
            return [], exc
        return entries_of(payloads, seq, t.name), None

    def _advance(self, t: Topic, seq: int, count: int) -> int:
        """Consume ``count`` entries from ``seq`` (under the topic's read lock).

        StrictlyAtOnce persists the new position before the entries are handed out.
        AtLeastOnce(N) persists the position reached by *earlier* calls once N entries were
        consumed since the last persist, never the entries this call returns. Returns the
        LSN to wait for under SyncEach (0: nothing written).
        """
        if self._read_only:
            raise refuse_consuming()
        new = seq + count
        lsn = 0
        if self._strict:
            lsn = self._log.write_state(t, CURSOR, new)
        elif seq - t.persisted >= self._persist_every:
            lsn = self._log.write_state(t, CURSOR, seq)
        t.cursor = new
        return lsn

    def persist(self, topics: list[Topic]) -> None:
        """Write the exact position of every topic whose persisted one lags (AtLeastOnce)."""
        for t in topics:
            with t.read_lock:
                if t.cursor != t.persisted and t.cursor > t.persisted:
                    self._log.write_state(t, CURSOR, t.cursor)

