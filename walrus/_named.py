"""Named consumers of one instance: finding, owning, seeking, listing and deleting them.

The facade delegates here; reads go through the :class:`Cursor` (one policy for every
cursor), and the files through the :class:`Registry`. A consumer this instance used is
owned (its file's owner lock held) until ``close()`` or ``delete_consumer``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

from ._consumers import ConsumerFile, ConsumerFileError, Registry, Syncer
from ._cursors import Cursor, Position, reading
from ._errors import OffsetOutOfRangeError, WalrusLockedError
from ._log import Log
from ._topics import Topic
from ._validate import check_consumer, check_topic, nonnegative_int

logger = logging.getLogger("walrus")


class Consumers:
    """The named consumers an instance owns, and the registry of every process's."""

    def __init__(self, log: Log, cursor: Cursor, registry: Registry, *,
                 check_open: Callable[[], None], observe: Callable[[], object],
                 read_only: bool, interval: float | None, sync_each: bool) -> None:
        self._log = log
        self._cursor = cursor
        self.registry = registry
        self._check_open = check_open
        self._observe = observe
        self._read_only = read_only
        self._mutex = threading.Lock()
        self.owned: dict[tuple[str, str], Position] = {}
        """(consumer, topic) -> Position of every consumer this instance owns."""
        self.syncer = Syncer(interval) if interval is not None and not sync_each else None
        if self.syncer is not None:
            syncer = self.syncer
            cursor.on_store = lambda c: syncer.note(c.file)

    def _topic(self, topic: str) -> Topic | None:
        return self._log.by_name.get(topic)

    def position(self, topic: str, name: str) -> Position:
        """The slow path of a named read: validate, refresh (observers), own the consumer
        (creating it at the topic's first stored entry), and link it to its topic once the
        topic exists. Writers then find it on the cursor's hot path."""
        check_topic(topic)
        check_consumer(name)
        self._check_open()
        self._observe()
        while True:
            c = self.owned.get((name, topic))
            if c is None:
                with self._mutex:  # one first use at a time (threads of this instance)
                    c = self.owned.get((name, topic))
                    if c is None:
                        c = self._own(topic, name)
            if c.topic is None:
                t = self._topic(topic)
                if t is not None:
                    with c.read_lock:
                        c.topic = t
                        c.cursor = c.persisted = _place(t, c.persisted)
            if c.topic is None or self._read_only:
                return c
            with self._mutex:  # a delete_consumer meanwhile must not stay on the hot path
                if self.owned.get((name, topic)) is c:
                    self._cursor.named.setdefault(name, {})[topic] = c
                    return c

    def _own(self, topic: str, name: str) -> Position:
        """Take ownership (under the registry lock: no reclamation runs meanwhile, and an
        observer's refresh under it sees every segment deleted before)."""
        with self.registry.locked():
            self._observe()
            t = self._topic(topic)
            start = 0 if t is None else t.first_seq
            file, persisted = self.registry.own(topic, name, start)
            if persisted is not None and persisted > _end(t):
                try:  # before reclamation reads the file again
                    persisted = _rewind(file, _end(t))
                except BaseException:
                    file.close()
                    raise
        if persisted is None:
            logger.warning("consumer %r of topic %r: no readable position in %s; it starts "
                           "at the first stored entry", name, topic, file.path)
            persisted = start
        c = Position(topic, name, None, file, persisted)
        if self.syncer is not None:
            self.syncer.start()
        if t is not None:
            c.topic = t
            c.cursor = c.persisted = _place(t, persisted)
        self.owned[(name, topic)] = c
        return c

    def rewind_past_end(self) -> None:
        """Recovery (a writer opening, before anything is appended): every consumer file
        whose position lies past its topic's end is set back to that end, on disk.

        A power loss takes back the log's writes that no sync made durable, but not a
        consumer file synced before them (a flush, a close and reclamation sync the consumer
        files first; the consumers' own syncer and observers' consumers sync on their own
        time). The offsets it claims to have passed are handed out again, to new entries,
        which it must read; and reclamation, which reads the files, must not delete them
        first. A consumer another process owns was set back when that process took it.

        Each file is set back under its owner lock alone: the registry lock, which another
        process may hold for long, is not needed (nobody registers a position past the end,
        and this writer reclaims nothing yet)."""
        if not os.path.isdir(self.registry.directory):
            return  # no consumer yet (and no folder made for none)
        with reading("setting back consumers past the log's end"):
            for topic, name, position, _path in self.registry.list():
                end = _end(self._topic(topic))
                if position is None or position <= end:
                    continue
                try:
                    file, _ = self.registry.own(topic, name, None)
                except (WalrusLockedError, FileNotFoundError):
                    continue  # owned elsewhere (set back there), or deleted meanwhile
                try:
                    _rewind(file, end)
                finally:
                    file.close()

    def count(self, topic: str, name: str, t: Topic | None) -> int:
        """Entries consumer ``name`` has not consumed yet (its file's position when another
        process owns it; the first stored entry when it does not exist)."""
        check_consumer(name)
        if t is None:
            return 0
        c = self.owned.get((name, topic))
        stored = c.cursor if c is not None else self._stored(topic, name)
        at = t.first_seq if stored is None else max(stored, t.first_seq)
        return max(0, t.visible - at)

    def _stored(self, topic: str, name: str) -> int | None:
        try:
            for tp, n, position, _path in self.registry.list():
                if (tp, n) == (topic, name):
                    return position
        except OSError:
            return None
        return None

    def listing(self, topic: str) -> dict[str, int]:
        """Every consumer of ``topic`` (any process): name -> next offset it will read."""
        check_topic(topic)
        self._check_open()
        self._observe()
        t = self._topic(topic)
        found: dict[str, int] = {}
        with reading(f"listing the consumers of {topic!r}"):
            for tp, name, position, _path in self.registry.list():
                if tp != topic:
                    continue
                c = self.owned.get((name, topic))
                if c is not None:
                    found[name] = c.cursor
                    continue
                at = 0 if position is None else position
                found[name] = at if t is None else _place(t, at)
        for (name, tp), c in list(self.owned.items()):
            if tp == topic:
                found[name] = c.cursor
        return dict(sorted(found.items()))

    def seek(self, topic: str, offset: int, name: str) -> None:
        """Move consumer ``name`` to ``offset`` and persist it (under the registry lock:
        a seek back never lands in a segment being deleted)."""
        check_topic(topic)
        check_consumer(name)
        offset = nonnegative_int("offset", offset)
        self._check_open()
        self._observe()
        t = self._topic(topic)
        first, last = (0, 0) if t is None else (t.first_seq, t.next_seq)
        if t is None and offset:
            raise OffsetOutOfRangeError(
                f"topic {topic!r} does not exist yet: a consumer of it can only be placed at "
                f"offset 0, got {offset}")
        if not first <= offset <= last:
            raise OffsetOutOfRangeError(
                f"topic {topic!r}: cannot seek to offset {offset}; stored offsets are "
                f"{first}..{last} (the next offset included)")
        c = self.position(topic, name)
        with self.registry.locked():
            self._observe()
            t = self._topic(topic)
            first, last = (0, 0) if t is None else (t.first_seq, t.next_seq)
            if not first <= offset <= last:  # reclaimed meanwhile
                raise OffsetOutOfRangeError(
                    f"topic {topic!r}: offsets before {first} were reclaimed meanwhile")
            with c.read_lock:
                self._cursor.store(None, c, offset)
                c.cursor = offset
                c.ahead, c.ahead_seq = [], 0

    def delete(self, topic: str, name: str) -> None:
        """Forget consumer ``name`` of ``topic`` and its hold on disk space (any process's,
        once that process is gone; ``WalrusLockedError`` while it lives). No such consumer:
        nothing happens."""
        check_topic(topic)
        check_consumer(name)
        self._check_open()
        with self._mutex:  # see position: it links only a consumer still owned
            c = self.owned.pop((name, topic), None)
            if c is not None:
                per = self._cursor.named.get(name)
                if per is not None:
                    per.pop(topic, None)
        with self.registry.locked():
            if c is None:
                try:
                    file, _ = self.registry.own(topic, name, None)
                except FileNotFoundError:
                    return
                except ConsumerFileError:  # its position unknown, its hold only goes with it
                    self.registry.discard(topic, name)
                    return
            else:
                file = c.file
                c.read_lock.acquire()  # reads in flight finish first
            try:
                self.registry.delete(file.path)
            finally:
                self._drop(file)
                if c is not None:
                    c.read_lock.release()

    def _drop(self, file: ConsumerFile) -> None:
        try:
            file.close()
        except OSError as exc:
            logger.warning("closing consumer file %s: %s", file.path, exc)

    def sync(self) -> None:
        """Make every owned consumer's persisted position durable (flush, close)."""
        for c in list(self.owned.values()):
            with c.read_lock:
                if c.file.dirty:
                    with reading(f"syncing consumer {c.name!r} of topic {c.topic_name!r}"):
                        c.file.sync()

    def close(self) -> None:
        """Stop the syncer, sync and release every owned consumer (after ``persist``)."""
        if self.syncer is not None:
            self.syncer.stop()
        try:
            self.sync()
        finally:
            for c in list(self.owned.values()):
                self._drop(c.file)
            self.owned.clear()
            self._cursor.named.clear()

    def disown(self) -> None:
        """In a forked child: close only this process's copies of the owner locks."""
        for c in list(self.owned.values()):
            c.file.disown()
        self.owned.clear()
        self._cursor.named.clear()


def _end(t: Topic | None) -> int:
    """The next offset of a topic (0: the topic is not in the log)."""
    return 0 if t is None else t.next_seq


def _rewind(file: ConsumerFile, end: int) -> int:
    """Store ``end`` durably as the position of a consumer found past it (see
    :meth:`Consumers.rewind_past_end`); returns it."""
    logger.warning("consumer file %s: its position lies past the end of its topic (a power "
                   "loss took entries back); set back to %d, where new entries go", file.path,
                   end)
    file.store(end)
    file.sync()
    return end


def _place(t: Topic, at: int) -> int:
    """Where a loaded position may stand: not before the first stored entry, not past the
    next offset (entries a power loss took back are appended again at those offsets)."""
    return min(max(at, t.first_seq), t.next_seq)
