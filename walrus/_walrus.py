"""The ``Walrus`` facade: validates calls and applies the consistency mode to the log."""

from __future__ import annotations

import errno
import logging
import os
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from ._backpressure import Throttle
from ._codec import CLEAN, DIRTY, MARKED_DIRTY
from ._config import (
    DEFAULT_CONSISTENCY,
    DEFAULT_SCHEDULE,
    DEFAULT_SEGMENT_BYTES,
    MAX_BATCH_ENTRIES,
    MAX_ENTRY_BYTES,
    MAX_SEGMENT_BYTES,
    AtLeastOnceMode,
    Consistency,
    MillisecondsSchedule,
    NoFsyncSchedule,
    Schedule,
    SyncEachSchedule,
    check_consistency,
    check_schedule,
    resolve_root,
)
from ._consumers import Registry
from ._cursors import Cursor, Position, reading, refuse_consuming
from ._damage import Damage
from ._dirlock import DirectoryLock
from ._durability import Background, Durability
from ._entry import Entry
from ._errors import (
    InvalidArgumentError,
    OffsetOutOfRangeError,
    StorageError,
    WalrusError,
)
from ._follow import frontier
from ._indexing import index_segment
from ._log import Log, Payload, wait_for
from ._named import Consumers
from ._prefault import writeback_age
from ._recovery import Rebuilder, open_log
from ._reserve import DescriptorReserve
from ._retention import Retainer, Retention
from ._topic_info import TopicInfo
from ._topics import Topic
from ._validate import (
    check_consumer,
    check_open,
    check_topic,
    check_writable,
    nonnegative_int,
    not_a_bool,
    snapshot_batch,
)
from ._wait import NOW, Waits, Watcher, deferrable, follow_topic
from .plugins._selection import select_backend

logger = logging.getLogger("walrus")

MAX_READ_BUDGET = MAX_BATCH_ENTRIES * MAX_ENTRY_BYTES
"""A batch read never returns more payload than this, so a larger ``max_bytes`` is the same."""


_OPEN: dict[int, weakref.ref[Walrus]] = {}
"""Every open instance of this process, so that a forked child can disown them all."""


def _disown_inherited() -> None:
    """In a forked child: every instance the parent had open is the parent's alone."""
    for ref in list(_OPEN.values()):
        wal = ref()
        if wal is not None:
            try:
                wal._disown()
            except Exception:  # it is marked closed first, which is what counts
                pass
    _OPEN.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_disown_inherited)


class Walrus:
    """A durable, topic-aware write-ahead log in one directory.

    ``Walrus()`` opens the default directory (``$WALRUS_DATA_DIR`` or ``./wal_files``, under
    ``$WALRUS_INSTANCE_KEY`` when set) with ``StrictlyAtOnce`` reads and a 1000 ms fsync
    schedule. Every keyword is optional: ``key`` names an instance folder under the base
    directory, ``backend`` picks the I/O backend (a name, a comma-separated fallback list, or
    ``auto``), ``read_only=True`` opens an observer beside a running writer, and
    ``segment_size`` sets the size of new log files (64 MiB by default).
    """

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, *,
                 key: str | None = None,
                 consistency: Consistency = DEFAULT_CONSISTENCY,
                 fsync_schedule: Schedule = DEFAULT_SCHEDULE,
                 backend: str | None = None,
                 read_only: bool = False,
                 segment_size: int = DEFAULT_SEGMENT_BYTES) -> None:
        self._closed = True  # until fully open: close() and __del__ must see a safe state
        self._owner = os.getpid()
        self._consistency = check_consistency(consistency)
        self._schedule = check_schedule(fsync_schedule)
        if not isinstance(read_only, bool):
            raise InvalidArgumentError(f"read_only must be a bool, not {type(read_only).__name__}")
        size = nonnegative_int("segment_size", segment_size)
        if size < 4096:
            raise InvalidArgumentError(f"segment_size must be at least 4096 bytes, got {size}")
        if size > MAX_SEGMENT_BYTES:
            raise InvalidArgumentError(
                f"segment_size must be at most {MAX_SEGMENT_BYTES} bytes (1 TiB), got {size}")
        self._root = resolve_root(data_dir, key)
        self._read_only = read_only
        self._sync_each = isinstance(self._schedule, SyncEachSchedule)
        self._backend_name, self._backend = select_backend(backend)
        self._lock: DirectoryLock | None = None
        self._background: Background | None = None
        self._close_lock = threading.Lock()
        try:
            directory = self._prepare_directory()
            if not read_only:
                self._lock = DirectoryLock(directory)
            self._log, self._rebuilder = open_log(
                directory, self._backend, segment_size=size, sync_each=self._sync_each,
                read_only=read_only)
        except BaseException as exc:
            if self._lock is not None:
                self._lock.release()
            self._backend.close()
            if isinstance(exc, OSError) and not isinstance(exc, WalrusError):
                raise StorageError(exc.errno or errno.EIO,
                                   f"opening {self._root}: {exc.strerror or exc}") from exc
            raise
        self._topics = self._log.by_name
        self._fast_topics = {} if read_only else self._topics
        if not read_only:  # under SyncEach too: Log.append waits for durability itself
            self.append_for_topic = self._log.append  # type: ignore[method-assign,assignment]
        """What the hot paths look topics up in: empty for observers, which must refresh."""
        self._durability = Durability(self._log)
        wait_durable = deferrable(self._durability.wait)  # walrus.aio waits off its loop
        self._log.use_durability(wait_durable)
        self._waits = Waits(self._log, Watcher(self._observe, self._frontier)
                            if read_only else None)
        self._cursor = Cursor(
            self._log, self._fast_topics, self._lookup, wait_durable,
            persist_every=(self._consistency.persist_every
                           if isinstance(self._consistency, AtLeastOnceMode) else None),
            sync_each=self._sync_each, read_only=read_only, position=self._position,
            waits=self._waits)
        self.read_next = self._cursor.read_next  # type: ignore[method-assign]
        self._consumers = Consumers(
            self._log, self._cursor, Registry(str(self._root), self._backend),
            check_open=self._check_open, observe=self._observe, read_only=read_only,
            interval=(self._schedule.interval_ms / 1000.0
                      if isinstance(self._schedule, MillisecondsSchedule) else None),
            sync_each=self._sync_each)
        self._retainer = Retainer(self._log, self._consumers.owned)
        self._closed = False
        if not read_only:
            try:
                self._consumers.rewind_past_end()  # before the worker reads their files
            except BaseException:
                self.close()
                raise
            interval = (self._schedule.interval_ms / 1000.0
                        if isinstance(self._schedule, MillisecondsSchedule) else None)
            writeback = (writeback_age() if isinstance(self._schedule, NoFsyncSchedule)
                         else interval)
            reserve = DescriptorReserve()
            self._log.keep_descriptors(reserve)
            try:
                self._background = Background(self._log, self._durability, interval,
                                              writeback, registry=self._consumers.registry,
                                              expiry=self._retainer.expiry.run,
                                              on_indexed=self._retainer.expiry.note_index,
                                              reserve=reserve)
            except BaseException:  # no thread (out of memory or threads): nothing kept
                reserve.release()
                self.close()
                raise
            self._log.throttle_rolls(Throttle(self._log, self._retainer.settings, size,
                                              self._background.run_once))
            self._log.call_on_seal(self._background.wake)
        ident = id(self)
        _OPEN[ident] = weakref.ref(self, lambda _ref: _OPEN.pop(ident, None))
        logger.debug("opened %s with backend %s (%r, %r)", self._root, self._backend_name,
                  self._consistency, self._schedule)

    def _prepare_directory(self) -> str:
        root = self._root
        if root.exists() and not root.is_dir():
            raise StorageError(errno.ENOTDIR, f"data directory {root} is not a directory")
        if self._read_only:
            if not root.is_dir():
                raise StorageError(errno.ENOENT, f"data directory {root} does not exist")
        else:
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(exc.errno or errno.EIO,
                                   f"cannot create data directory {root}: {exc.strerror}") from exc
            if not os.access(root, os.W_OK | os.X_OK):
                raise StorageError(errno.EACCES, f"data directory {root} is not writable")
        return str(root)

    # --- the Rust original's constructors, as classmethods ---------------------------------------

    @classmethod
    def new(cls) -> Walrus:
        """The default directory, StrictlyAtOnce, Milliseconds(1000)."""
        return cls()

    @classmethod
    def with_consistency(cls, consistency: Consistency) -> Walrus:
        """The default directory with this read consistency, Milliseconds(1000)."""
        return cls(consistency=consistency)

    @classmethod
    def with_consistency_and_schedule(cls, consistency: Consistency,
                                      schedule: Schedule) -> Walrus:
        """The default directory with this read consistency and fsync schedule."""
        return cls(consistency=consistency, fsync_schedule=schedule)

    @classmethod
    def new_for_key(cls, key: str) -> Walrus:
        """``base / sanitize(key)``, where base is ``$WALRUS_DATA_DIR`` or ``./wal_files``."""
        return cls(key=key)

    @classmethod
    def with_consistency_for_key(cls, key: str, consistency: Consistency) -> Walrus:
        """The instance folder of ``key`` (as ``new_for_key``) with this read consistency."""
        return cls(key=key, consistency=consistency)

    @classmethod
    def with_consistency_and_schedule_for_key(cls, key: str, consistency: Consistency,
                                              schedule: Schedule) -> Walrus:
        """The instance folder of ``key`` with this read consistency and fsync schedule."""
        return cls(key=key, consistency=consistency, fsync_schedule=schedule)

    # --- properties -------------------------------------------------------------------------------

    @property
    def backend(self) -> str:
        """Name of the I/O backend in use."""
        return self._backend_name

    @property
    def data_dir(self) -> Path:
        """The directory this instance owns."""
        return self._root

    @property
    def consistency(self) -> Consistency:
        """The read consistency: when a consuming read's cursor is persisted."""
        return self._consistency

    @property
    def fsync_schedule(self) -> Schedule:
        """When appends are made durable."""
        return self._schedule

    @property
    def read_only(self) -> bool:
        """True for an observer opened with ``read_only=True`` (peeks only, no writes)."""
        return self._read_only

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called (or in a forked child); every call then raises."""
        return self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        mode = ", read_only" if self._read_only else ""
        return (f"<Walrus {str(self._root)!r} {state} backend={self._backend_name} "
                f"{self._consistency!r} {self._schedule!r}{mode}>")

    # --- writes -----------------------------------------------------------------------------------

    def append_for_topic(self, topic: str, data: Payload) -> int:
        """Append one entry and return its offset; durable per the fsync schedule when this
        returns. The topic is created by its first append."""
        # A writable instance binds this name straight to the log's hot path, Log.append,
        # which does the same in one frame (under SyncEach it waits for durability itself).
        if self._read_only:
            self._log.append_new(topic, (data,))  # raises the reason
        return self._log.append(topic, data)

    def batch_append_for_topic(self, topic: str, entries: Sequence[Payload]) -> int:
        """Append up to 2000 entries (10 GiB) atomically: all are written or none is.

        Returns the offset of the batch's first entry (the others follow it one by one);
        for an empty batch, which writes nothing, the offset the next entry will get.
        """
        if isinstance(entries, (bytes, bytearray, memoryview, str)) or not isinstance(
                entries, Sequence):
            raise InvalidArgumentError(
                f"entries must be a sequence of bytes-like objects, not {type(entries).__name__}")
        t = self._find(topic)
        if t is None:
            return self._log.append_new(topic, entries)
        items, need = snapshot_batch(entries)
        if not items:
            self._check_writable()
            return t.next_seq
        return self._log.append_batch(topic, t, items, need)

    def flush(self) -> None:
        """Make every acknowledged append and every checkpointed cursor durable now."""
        self._check_open()
        self._persist_cursors()
        self._consumers.sync()
        if self._read_only:
            return
        self._durability.flush()

    def _persist_cursors(self) -> None:
        """Write the exact cursor of every topic and every named consumer whose persisted
        position lags (AtLeastOnce); an observer has named consumers only."""
        topics = [] if self._read_only else list(self._log.by_tid.values())
        self._cursor.persist(topics, list(self._consumers.owned.values()))

    # --- reads ------------------------------------------------------------------------------------

    def read_next(self, topic: str, checkpoint: bool = True, *,
                  consumer: str | None = None, timeout: float | None = 0) -> Entry | None:
        """The next entry of ``topic`` at the shared cursor (or at named ``consumer``'s,
        which comes into being at the topic's first stored entry), or None.

        ``checkpoint=True`` consumes it (persisting the cursor as the consistency mode says);
        ``checkpoint=False`` peeks. ``timeout``: 0 returns at once, a number of seconds waits
        up to that long for an entry, None waits until one arrives.
        """
        # Every instance binds this name straight to its cursor's hot path, which does the
        # same in one frame.
        return self._cursor.read_next(topic, checkpoint, consumer, timeout)

    def batch_read_for_topic(self, topic: str, max_bytes: int, checkpoint: bool = True,
                             start_offset: int | None = None, *,
                             consumer: str | None = None,
                             timeout: float | None = 0) -> list[Entry]:
        """Entries in commit order, up to ``max_bytes`` of payload and 2000 entries.

        The first available entry is returned even if it alone is larger than ``max_bytes``.
        With ``start_offset`` the read starts at that entry offset and touches neither the
        shared cursor nor the counts. ``consumer`` reads at that named consumer's cursor.
        ``timeout`` waits for the first entry, as in :meth:`read_next`.
        """
        if timeout is not NOW:
            return self._wait_batch(topic, max_bytes, checkpoint, start_offset, consumer, timeout)
        budget = nonnegative_int("max_bytes", max_bytes)
        start = None if start_offset is None else nonnegative_int("start_offset", start_offset)
        if checkpoint is not True and checkpoint is not False:
            raise not_a_bool("checkpoint", checkpoint)
        budget = min(budget, MAX_READ_BUDGET)  # any larger budget means the same: no limit
        if consumer is not None and start is None:
            try:  # a writer's consumers in use, as on read_next's hot path
                c = self._cursor.named[consumer][topic]
            except (KeyError, TypeError):
                c = self._position(topic, consumer)
            if c.topic is None:
                return []
            return self._cursor.read_batch(c.topic, budget, checkpoint, None, c)
        if consumer is not None:
            check_consumer(consumer)
        t = self._find(topic)
        if t is None:
            t = self._lookup(topic, checkpoint and start is None)
            if t is None:
                return []
        return self._cursor.read_batch(t, budget, checkpoint, start)

    def _find(self, topic: str) -> Topic | None:
        """A known topic's state on the hot paths; None for an unknown name, for a non-str
        (validated later) and always for observers (they refresh first)."""
        try:
            return self._fast_topics.get(topic)
        except TypeError:  # unhashable, so not a str: check_topic says what is wrong
            return None

    def _position(self, topic: str, consumer: str) -> Position:
        """The slow path of a named consumer's read (see ``Consumers.position``)."""
        return self._consumers.position(topic, consumer)

    def _lookup(self, topic: str, consuming: bool) -> Topic | None:
        """The slow path of a read: validate, follow a live writer, refuse consuming reads."""
        check_topic(topic)
        self._check_open()
        if self._read_only:
            if consuming:
                raise refuse_consuming()
            self._observe()
        return self._topics.get(topic)

    # --- queries ----------------------------------------------------------------------------------

    def topics(self) -> list[str]:
        """Every topic, in the order they were created."""
        self._check_open()
        self._observe()
        return [t.name for t in sorted(self._log.by_tid.values(), key=lambda t: t.tid)]

    def damage(self) -> list[Damage]:
        """What opening the directory found damaged on disk or lost to damage: entries (by
        topic and offset range) whose reads raise ``CorruptionError`` or whose records are
        gone, and damaged files or records. Empty when nothing was; a crash's torn tail and
        unused fresh segments are not damage."""
        self._check_open()
        return list(self._rebuilder.damage)

    def get_topic_entry_count(self, topic: str, *, consumer: str | None = None) -> int:
        """Entries not yet consumed by the shared cursor (or by named ``consumer``)."""
        t = self._query(topic)
        if consumer is not None:
            return self._consumers.count(topic, consumer, t)
        return 0 if t is None else max(0, t.visible - t.cursor)

    def get_topic_entry_counts(self) -> dict[str, int]:
        """``get_topic_entry_count`` of every topic, in the order they were created."""
        self._check_open()
        self._observe()
        return {t.name: max(0, t.visible - t.cursor)
                for t in sorted(self._log.by_tid.values(), key=lambda t: t.tid)}

    def topic_info(self, topic: str) -> TopicInfo:
        """The topic's offset range, unconsumed entries, size and clean flag, all taken at
        one moment (a ``TopicInfo``). An unknown topic reads as an empty one."""
        t = self._query(topic)
        if t is None:
            return TopicInfo(topic, 0, 0, 0, 0, True)
        lock = self._log.mutex
        with t.read_lock:  # no read or reclamation moves the cursor or the first offset,
            wait_for(lock)
            with lock:  # and no append the next offset or the size (topic, then append)
                first, visible, cursor, size, clean = (t.first_seq, t.visible, t.cursor,
                                                       t.size, t.clean)
        return TopicInfo(topic, first, visible, max(0, visible - cursor), size, clean)

    def get_topic_size(self, topic: str) -> int:
        """Bytes the topic's retained entries occupy on disk, headers included."""
        t = self._query(topic)
        return 0 if t is None else t.size

    def topic_is_clean(self, topic: str) -> bool:
        """True if the topic is unknown or has had no append since ``mark_topic_clean``."""
        t = self._query(topic)
        return t is None or t.clean

    def mark_topic_clean(self, topic: str) -> None:
        """Set the topic's clean flag (it survives restarts; the next append clears it).
        Marking never creates a topic."""
        self._mark(topic, CLEAN)

    def mark_topic_dirty(self, topic: str) -> None:
        """Clear the topic's clean flag, as an append does."""
        self._mark(topic, DIRTY)

    def _mark(self, topic: str, kind: int) -> None:
        check_topic(topic)
        self._check_writable()
        t = self._topics.get(topic)
        if t is None:
            return  # marking never creates a topic; an unknown topic is clean
        if kind == DIRTY and t.mark == MARKED_DIRTY:
            return
        lsn = self._log.write_state(t, kind)
        if self._sync_each:
            self._durability.wait(lsn)

    def _query(self, topic: str) -> Topic | None:
        check_topic(topic)
        self._check_open()
        self._observe()
        return self._topics.get(topic)

    # --- lifecycle --------------------------------------------------------------------------------

    def _check_open(self) -> None:
        check_open(self._closed, self._owner)

    def _disown(self) -> None:
        """This process is a fork of the one that opened the instance: refuse every call.

        The parent goes on using the files, the write position, the lock and the io_uring
        rings, so the child must not touch them, not even to close or free them (a lock or
        a ring a parent thread held at the fork would never be released here). Empty topic
        tables send every call to a path that checks ``_closed`` first; the child closes
        only its own copies of the lock's descriptors, so it never holds the directory
        after the parent is gone.
        """
        self._closed = True
        self._cursor.shut()
        self._consumers.disown()
        self._waits.disown()
        self._close_lock = threading.Lock()
        self._log.disown()
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if self._background is not None:
            self._background.reserve.disown()
        self._backend.disown()

    def _check_writable(self) -> None:
        check_writable(self._closed, self._owner, self._read_only)

    def _observe(self) -> bool:
        """Observers: pick up what the writer added since the last look, and wake whoever
        waits for a topic that grew. Every look does, whichever call makes it (the watcher's,
        a query, a read): a look that only the watcher's counted would leave a waiter asleep
        when another call saw the entry first. Returns whether anything changed."""
        if not self._read_only:
            return False
        waits = self._waits
        with self._close_lock:
            self._check_open()
            rebuilder: Rebuilder = self._rebuilder
            log: Log = self._log
            waited = waits.names() if waits.waiting() else []
            before = [self._visible(name) for name in waited]
            try:
                with reading(f"following the writer of {self._root}"):
                    changed = rebuilder.refresh()
                    if changed:
                        log.follow(rebuilder.segments, rebuilder.topics)
                    self._retainer.observe()
            finally:  # what grew is woken even when a later step of the look failed
                for name, seen in zip(waited, before, strict=True):
                    if self._visible(name) > seen:
                        waits.wake_name(name)
        return changed

    def close(self) -> None:
        """Persist cursors exactly, make everything durable, release the directory. Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            log = self._log
            error: BaseException | None = None
            try:
                self._persist_cursors()
            except BaseException as exc:  # keep closing; report at the end
                error = exc
            self._closed = True
            self._cursor.shut()
            self._waits.shut()
            for t in list(log.by_tid.values()):  # wait for reads in flight
                with t.read_lock:
                    pass
            try:
                self._consumers.close()
            except BaseException as exc:
                error = error or exc
            log.shut()  # no write from now on: racing appends raise WalrusClosedError
            self._durability.reclaim()  # a pass an interrupt left unfinished in this thread
            if self._background is not None:
                self._background.stop()
            self._durability.stop()
            log.drop_spare()  # prepared but never used: not part of the log
            if not self._read_only:
                try:
                    self._durability.flush()
                except BaseException as exc:
                    error = error or exc
                if error is None:
                    self._write_indexes()
            for seg in list(log.segments.values()):
                try:
                    seg.close()
                except Exception as exc:  # pragma: no cover - closing should not fail
                    logger.warning("closing %s: %s", seg.path, exc)
            self._backend.close()
            if self._lock is not None:
                self._lock.release()
            _OPEN.pop(id(self), None)
            if error is not None:
                raise error

    def _write_indexes(self) -> None:
        """A clean close indexes every segment, so the next open rescans nothing."""
        log = self._log
        for seg in [*log.to_index, log.active]:
            if seg is None:
                continue
            try:
                index_segment(log, seg)
            except OSError as exc:
                logger.warning("could not write the index of %s: %s", seg.path, exc)
        log.indexed(list(log.to_index))

    # --- named consumers ------------------------------------------------------------------------

    def consumers(self, topic: str) -> dict[str, int]:
        """Every named consumer of ``topic``, in any process: name -> the next offset it
        will read."""
        return self._consumers.listing(topic)

    def seek(self, topic: str, offset: int, *, consumer: str | None = None) -> None:
        """Move a cursor to ``offset`` (replay or skip) and persist it as a checkpoint
        would; ``OffsetOutOfRangeError`` outside [first stored offset, next offset]."""
        if consumer is None:
            self._seek_shared(topic, offset)
        else:
            self._consumers.seek(topic, offset, consumer)

    def _seek_shared(self, topic: str, offset: int) -> None:
        check_topic(topic)
        offset = nonnegative_int("offset", offset)
        self._check_writable()
        t = self._topics.get(topic)
        if t is None:  # no offset is stored, not even 0: say so rather than "0..0"
            raise OffsetOutOfRangeError(
                f"topic {topic!r} does not exist: it has no cursor to seek")
        first, last = t.first_seq, t.next_seq
        if not first <= offset <= last:
            raise OffsetOutOfRangeError(
                f"topic {topic!r}: cannot seek to offset {offset}; stored offsets are "
                f"{first}..{last} (the next offset included)")
        with self._consumers.registry.locked(), t.read_lock:  # no reclamation meanwhile
            if offset < t.first_seq:
                raise OffsetOutOfRangeError(
                    f"topic {topic!r}: offsets before {t.first_seq} were reclaimed meanwhile")
            lsn = self._cursor.store(t, t, offset)
            t.cursor = offset
            t.ahead, t.ahead_seq = [], 0
        if self._sync_each:
            self._durability.wait(lsn)

    def delete_consumer(self, topic: str, consumer: str) -> None:
        """Forget named ``consumer`` of ``topic`` and its hold on disk space; nothing
        happens if there is none. ``WalrusLockedError`` while another process uses it."""
        self._consumers.delete(topic, consumer)

    def follow(self, topic: str, *, consumer: str | None = None,
               checkpoint: bool = True) -> Iterator[Entry]:
        """The entries of ``topic`` as they arrive, waiting between them; the iterator
        ends when the instance is closed. ``checkpoint=True`` consumes each entry as it is
        yielded (as ``read_next`` does); ``checkpoint=False`` follows from the cursor without
        moving it."""
        return follow_topic(self, topic, consumer, checkpoint)

    def _wait_batch(self, topic: str, max_bytes: int, checkpoint: bool,
                    start_offset: int | None, consumer: str | None,
                    timeout: object) -> list[Entry]:
        """``batch_read_for_topic`` with a timeout (a frame of its own: a closure would cost
        the read without one its plain locals)."""
        return self._waits.wait(
            lambda: self.batch_read_for_topic(topic, max_bytes, checkpoint, start_offset,
                                              consumer=consumer),
            topic, timeout)

    def _visible(self, topic: str) -> int:
        """How many entries of ``topic`` readers may see now (-1: no such topic yet)."""
        t = self._topics.get(topic)
        return -1 if t is None else t.visible

    def _frontier(self) -> bytes | None:
        """Observers: the bytes where the writer's next write lands (None: not known)."""
        segments = self._rebuilder.segments
        return frontier(segments[-1]) if segments else None

    def __enter__(self) -> Walrus:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @classmethod
    def from_config(cls, source: Mapping[str, Any] | str | os.PathLike[str]) -> Walrus:
        """Open walrus as a ``[walrus]`` table says: a mapping, or the path of a TOML file.

        Keys: ``data_dir``, ``key``, ``backend``, ``fsync``, ``consistency``,
        ``segment_size``, ``read_only`` (see the configuration guide). An unknown key or a
        bad value raises ``InvalidArgumentError`` naming it, before anything is created.
        """
        from ._from_config import walrus_arguments

        return cls(**walrus_arguments(source))

    # --- retention ------------------------------------------------------------------------------

    def set_retention(self, topic: str, *, max_age: float | timedelta | None = None,
                      max_bytes: int | None = None) -> None:
        """Limit how long (``max_age`` seconds) and how much (``max_bytes`` on disk) of
        ``topic`` is kept; ``None`` lifts that limit. Durable when it returns. Expired
        entries go oldest first, in the background (see the retention guide)."""
        check_topic(topic)
        self._check_writable()
        self._retainer.set(topic, max_age, max_bytes)

    def get_retention(self, topic: str) -> Retention:
        """``topic``'s limits (``Retention(None, None)`` when it has none)."""
        self._query(topic)
        return self._retainer.get(topic)
