"""Named consumers on disk: one small state file per consumer, shared by every process.

A named consumer's position is not written into the log: a read-only observer in another
process consumes through it too, and it must never write the writer's files. So each
consumer has a file of its own under ``consumers+/`` in the data directory (the format
is in docs/format.md): a header naming the topic and the consumer, the pid of the process
that owns it, and four checksummed position slots, so that a torn write leaves the previous
position readable. Writes go through the instance's backend, so that
the fault-injecting test backends see them as they see the log's.

Two locks (``flock``), each dropped by the kernel when its process dies:

- the *owner lock* on a consumer's file: one process at a time moves that consumer;
- the *registry lock* on the ``consumers+`` directory: creating a consumer, seeking one,
  deleting one and the writer's reclamation of segments run one at a time, in any process
  (see docs/consumer-protocol.md for the race this closes).
"""

from __future__ import annotations

import builtins
import errno
import fcntl
import hashlib
import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

from ._dirlock import _try_lock
from ._errors import StorageError, WalrusError, WalrusLockedError, storage_error
from ._making import sync_directory
from .backends._base import Backend, File

logger = logging.getLogger("walrus")

DIRECTORY = "consumers+"
"""The folder of consumer files in a data directory: a key folder is never named so (``+``
is not a character of a sanitised key), and neither is any file of the log."""
SUFFIX = ".cur"
MAGIC = b"WALRUSCN"
VERSION = 2
"""Version 2 has four position slots; version 1 files (two) are still read, and an owner
writes such a file anew as version 2 before it moves the consumer (a walrus that reads only
two slots would take an older position from it)."""
READABLE = (1, VERSION)
FILE_SIZE = 4096
OWNER_AT = 1024
SLOT_AT = (2048, 2560, 3072, 3584)
"""Each slot in a sector of its own: a torn write damages at most the slot it writes."""
_FREE = {(d, w, s): next(i for i in range(len(SLOT_AT)) if i not in (d, w, s))
         for d in (None, *range(len(SLOT_AT))) for w in (None, *range(len(SLOT_AT)))
         for s in (None, *range(len(SLOT_AT)))}
"""The slot a position goes to, by the slots it must not touch (see :class:`ConsumerFile`):
looked up (a store took 0.52 us so, 2.4 us choosing with ``min`` over the slots)."""
_HEAD = struct.Struct("<8sHHHH")  # magic, version, topic length, name length, reserved
_SLOT = struct.Struct("<QQ")  # generation, position
_CRC = struct.Struct("<I")
_OWNER = struct.Struct("<QI")  # pid, crc


class ConsumerFileError(WalrusError):
    """A consumer file that is not one (or names another consumer)."""


def file_name(topic: str, name: str) -> str:
    """The file of consumer ``name`` of ``topic``: a hash, since the two names together may
    be longer than a file name can be (the header holds them in full)."""
    key = topic.encode("utf-8") + b"\0" + name.encode("utf-8")
    return hashlib.blake2b(key, digest_size=10).hexdigest() + SUFFIX


def encode_header(topic: str, name: str) -> bytes:
    t, n = topic.encode("utf-8"), name.encode("utf-8")
    head = _HEAD.pack(MAGIC, VERSION, len(t), len(n), 0) + t + n
    return head + _CRC.pack(zlib.crc32(head))


def decode_header(data: bytes) -> tuple[str, str, int, int]:
    """(topic, consumer name, checksum seed of the slots, version) of a consumer file's first
    bytes."""
    if len(data) < _HEAD.size:
        raise ConsumerFileError("short consumer file")
    magic, version, tl, nl, _ = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise ConsumerFileError("not a consumer file")
    if version not in READABLE:
        raise ConsumerFileError(f"consumer file version {version} (this walrus reads "
                                f"{' and '.join(map(str, READABLE))})")
    end = _HEAD.size + tl + nl
    if len(data) < end + 4 or _CRC.unpack_from(data, end)[0] != zlib.crc32(data[:end]):
        raise ConsumerFileError("damaged consumer file header")
    t = data[_HEAD.size:_HEAD.size + tl].decode("utf-8")
    n = data[_HEAD.size + tl:end].decode("utf-8")
    return t, n, _CRC.unpack_from(data, end)[0], version


def encode_slot(generation: int, position: int, seed: int) -> bytes:
    body = _SLOT.pack(generation, position)
    return body + _CRC.pack(zlib.crc32(body, seed))


def decode_slots(data: bytes, seed: int) -> tuple[int, int] | None:
    """(generation, position) of the newest valid slot in a whole file's bytes, or None."""
    newest = newest_slot(data, seed)
    return None if newest is None else newest[1:]


def newest_slot(data: bytes, seed: int) -> tuple[int, int, int] | None:
    """(slot index, generation, position) of the newest valid slot, or None."""
    best = None
    for index, at in enumerate(SLOT_AT):
        body = data[at:at + _SLOT.size]
        if len(body) < _SLOT.size:
            continue
        (crc,) = _CRC.unpack_from(data, at + _SLOT.size)
        generation, position = _SLOT.unpack(body)
        if generation and crc == zlib.crc32(body, seed) and (best is None or generation > best[1]):
            best = (index, generation, position)
    return best


def read_state(path: str) -> tuple[str, str, int | None]:
    """(topic, name, position) of a consumer file, read without any lock (a position being
    written meanwhile fails its checksum, and the older slot is the one read: never a
    position ahead of the one the owner persisted). None: no valid slot."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.pread(fd, FILE_SIZE, 0)
    finally:
        os.close(fd)
    topic, name, seed, _ = decode_header(data)
    slot = decode_slots(data, seed)
    return topic, name, None if slot is None else slot[1]


def _owner_pid(path: str) -> int | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = os.pread(fd, _OWNER.size, OWNER_AT)
    finally:
        os.close(fd)
    if len(data) < _OWNER.size:
        return None
    pid, crc = _OWNER.unpack(data)
    return pid if pid and crc == zlib.crc32(data[:8]) else None


class ConsumerFile:
    """An owned consumer's state file: the owner lock, and the position slots.

    Which slot a position goes to is decided here, in one place. A write never touches:

    - the slot holding the newest position a sync made durable (a power loss leaves it whole);
    - the slot holding the newest position written (a write cut short, by a failed write or
      by the process dying in the middle of it, leaves that one whole: the calls it answered
      are not handed out again);
    - while a sync runs, the slot it is making durable (so that every sync moves the durable
      position on, however often positions are written meanwhile).

    With four slots one is always left for it.
    """

    def __init__(self, path: str, file: File, lock_fd: int, seed: int, generation: int,
                 durable: int | None = None) -> None:
        self.path = path
        self.file = file
        self.lock_fd = lock_fd
        self.seed = seed
        self.generation = generation
        self.dirty = False
        """Written since the last sync."""
        self.one_sync = threading.Lock()
        """One sync of the file at a time (each marks the slot it makes durable). A store
        and a sync in another thread (the consumer syncer's, or ``flush``) share ``durable``,
        ``last`` and ``syncing`` without a lock (taken twice, it made a store 0.78 us instead
        of 0.52 us), by order alone: see :meth:`sync`."""
        self.durable = durable
        """The slot holding the newest position a sync made durable (None: none yet)."""
        self.last = durable
        """The slot holding the newest position written (None: none yet)."""
        self.syncing: int | None = None
        """The slot the running sync is making durable (None: no sync, or nothing to)."""

    def store(self, position: int) -> None:
        """Hand ``position`` to the OS in a slot no rule above keeps. Stores do not overlap:
        each runs under its consumer's read lock, or before anyone else knows the file."""
        generation = self.generation + 1
        syncing = self.syncing  # before durable: see sync
        slot = _FREE[self.durable, self.last, syncing]
        self.file.write(SLOT_AT[slot], encode_slot(generation, position, self.seed))
        self.last = slot  # after the write: a sync marking it covers the write
        self.generation = generation
        self.dirty = True

    def sync(self) -> None:
        """Make the file durable: the newest position written when the sync began is the
        durable one once it ends.

        Without a lock, by order: the sync marks ``last`` as ``syncing`` before it syncs (a
        store sees the mark, or chose its slot before it and did not choose ``last``); once
        the sync is done it sets ``durable`` before it drops the mark, and a store reads the
        mark before ``durable``, so it sees the slot just made durable in one or the other."""
        with self.one_sync:
            self.syncing = self.last
            self.dirty = False
            try:
                self.file.sync()
            except BaseException:
                self.dirty = True
                self.syncing = None
                raise
            if self.syncing is not None:
                self.durable = self.syncing
            self.syncing = None

    def close(self) -> None:
        """Close the file and drop the owner lock."""
        try:
            self.file.close()
        finally:
            self.disown()

    def disown(self) -> None:
        """Close this process's descriptor of the lock (a fork's copy: the parent keeps it)."""
        fd, self.lock_fd = self.lock_fd, -1
        if fd >= 0:
            os.close(fd)


class Registry:
    """The consumer files of one data directory, as one process sees them."""

    def __init__(self, directory: str, backend: Backend) -> None:
        self.directory = os.path.join(directory, DIRECTORY)
        self.backend = backend
        self._made = False
        self._mutex = threading.Lock()
        """In-process half of the registry lock (flock does not serialise threads sharing
        one descriptor, and each locking opens its own)."""
        self._unreadable: Sequence[str] = []
        """The consumer files reclamation last found it could not read (warned of once)."""

    def path_of(self, topic: str, name: str) -> str:
        return os.path.join(self.directory, file_name(topic, name))

    def _make(self) -> None:
        if not self._made:
            try:
                os.makedirs(self.directory, exist_ok=True)
            except OSError as exc:
                raise storage_error(exc, f"creating {self.directory}") from exc
            self._made = True

    @contextmanager
    def locked(self, wait: bool = True) -> Iterator[bool]:
        """Hold the registry lock (creating the folder first). ``wait=False`` yields False
        instead of waiting when another process holds it."""
        self._make()
        if not self._mutex.acquire(blocking=wait):  # a thread of ours holds or waits for it
            yield False
            return
        try:
            fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                if wait:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                    got = True
                else:
                    got = _try_lock(fd)
                yield got
            finally:
                os.close(fd)  # drops the lock
        finally:
            self._mutex.release()

    def list(self) -> Iterator[tuple[str, str, int | None, str]]:
        """(topic, name, persisted position, path) of every consumer file; damaged or
        foreign files are skipped."""
        yield from self._read_all()[0]

    def _read_all(self) -> tuple[Sequence[tuple[str, str, int | None, str]], Sequence[str]]:
        """What every consumer file says, and the paths of those that could not be read."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return [], []
        found: builtins.list[tuple[str, str, int | None, str]] = []
        unreadable: builtins.list[str] = []
        for entry in sorted(names):
            if not entry.endswith(SUFFIX):
                continue
            path = os.path.join(self.directory, entry)
            try:
                topic, name, position = read_state(path)
            except FileNotFoundError:  # deleted meanwhile: holds nothing
                continue
            except (OSError, ValueError, WalrusError):
                unreadable.append(path)
                continue
            found.append((topic, name, position, path))
        return found, unreadable

    def own(self, topic: str, name: str, start: int | None) -> tuple[ConsumerFile, int | None]:
        """Open consumer ``name`` of ``topic`` as its owner: (file, persisted position).

        An existing file is taken over; with ``start`` (the caller holds the registry lock)
        a missing one is created at that position. ``WalrusLockedError`` if another live
        owner holds it; None for the file when it does not exist and ``start`` is None.
        """
        path = self.path_of(topic, name)
        try:
            fd = self._lock(topic, name, path)
        except FileNotFoundError:
            if start is None:
                raise
            return self._create(topic, name, path, start), start
        try:
            return self._adopt(topic, name, path, fd)
        except BaseException:
            _close(fd)
            raise

    def _lock(self, topic: str, name: str, path: str) -> int:
        """A descriptor of consumer file ``path`` holding its owner lock;
        ``WalrusLockedError`` if another live owner holds it, ``FileNotFoundError`` if there
        is no such file."""
        for _ in range(100):  # each retry follows a concurrent delete; never loops for long
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                raise
            except OSError as exc:
                raise storage_error(exc, f"opening consumer file {path}") from exc
            try:
                if not _try_lock(fd):
                    pid = _owner_pid(path)
                    holder = f"process {pid}" if pid is not None else "another process"
                    if pid == os.getpid():
                        holder += " (this process: another Walrus instance uses it)"
                    raise WalrusLockedError(
                        f"consumer {name!r} of topic {topic!r} is in use by {holder}", pid)
                try:
                    same = os.fstat(fd).st_ino == os.stat(path).st_ino
                except FileNotFoundError:
                    same = False
            except BaseException:
                _close(fd)
                raise
            if same:
                return fd
            os.close(fd)  # deleted (and maybe made again) while we locked it
        raise StorageError(errno.EAGAIN, f"consumer file {path} keeps being replaced")

    def discard(self, topic: str, name: str) -> None:
        """Remove the file of consumer ``name`` of ``topic`` although it cannot be read (a
        damaged header, a version this walrus does not read): its owner lock first, as for
        any deletion (the caller holds the registry lock). A file that names another
        consumer is left alone."""
        path = self.path_of(topic, name)
        try:
            fd = self._lock(topic, name, path)
        except FileNotFoundError:
            return
        try:
            try:
                t, n, _, _ = decode_header(os.pread(fd, FILE_SIZE, 0))
            except ConsumerFileError as exc:
                problem = str(exc)
            else:
                raise ConsumerFileError(f"{path} belongs to consumer {n!r} of topic {t!r}: "
                                        f"left alone")
            self.delete(path)
        finally:
            _close(fd)
        logger.warning("deleted consumer %r of topic %r, whose file %s could not be read (%s)",
                       name, topic, path, problem)

    def _adopt(self, topic: str, name: str, path: str, fd: int) -> tuple[ConsumerFile, int | None]:
        file: File | None
        try:
            file = self.backend.open(path, writable=True)
        except OSError as exc:
            raise storage_error(exc, f"opening consumer file {path}") from exc
        try:
            data = file.read(0, FILE_SIZE)
            try:
                t, n, seed, version = decode_header(data)
            except ConsumerFileError as exc:
                raise ConsumerFileError(
                    f"consumer {name!r} of topic {topic!r}: {path} cannot be read ({exc}); "
                    f"delete_consumer({topic!r}, {name!r}) removes it, and its position "
                    f"with it") from exc
            if (t, n) != (topic, name):
                raise ConsumerFileError(f"{path} belongs to consumer {n!r} of topic {t!r}")
            slot = newest_slot(data, seed)
            position = None if slot is None else slot[2]
            if version != VERSION:
                file.close()
                file = None
                cf = self._create(topic, name, path, position or 0)  # replaces it whole
                os.close(fd)  # the old file's lock: a process waiting for it finds it replaced
                return cf, position
            cf = (ConsumerFile(path, file, fd, seed, 0) if slot is None
                  else ConsumerFile(path, file, fd, seed, slot[1], slot[0]))
            self._stamp(cf)
        except BaseException:
            if file is not None:
                file.close()
            raise
        return cf, position

    def _stamp(self, cf: ConsumerFile) -> None:
        """Write the owner's pid (for the error a refused process raises)."""
        pid = struct.pack("<Q", os.getpid())
        cf.file.write(OWNER_AT, pid + _CRC.pack(zlib.crc32(pid)))

    def _create(self, topic: str, name: str, path: str, start: int) -> ConsumerFile:
        """Make the file whole under a temporary name, then rename it into place, so that
        no process ever finds a consumer file without its header and first position."""
        tmp = path + ".tmp"
        if os.path.lexists(tmp):  # left by a crash during a creation
            os.unlink(tmp)
        fd = -1
        file = None
        try:
            file = self.backend.open(tmp, size=FILE_SIZE, create=True)
            fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
            _try_lock(fd)  # nobody else knows the file yet
            header = encode_header(topic, name)
            seed = _CRC.unpack_from(header, len(header) - 4)[0]
            file.write(0, header)
            cf = ConsumerFile(path, file, fd, seed, 0)
            cf.store(start)
            self._stamp(cf)
            cf.sync()
            os.rename(tmp, path)
            sync_directory(self.directory)
            file.close()  # opened again by its name, so that ``File.path`` names it
            file = None
            cf.file = file = self.backend.open(path, writable=True)
            return cf
        except BaseException as exc:
            if file is not None:
                file.close()
            if fd >= 0:
                os.close(fd)
            try:
                os.unlink(tmp)
            except OSError:
                pass
            if isinstance(exc, OSError) and not isinstance(exc, WalrusError):
                raise storage_error(exc, f"creating consumer file {path}") from exc
            raise

    def delete(self, path: str) -> None:
        """Remove a consumer file (the caller holds the registry lock and the owner lock)."""
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise storage_error(exc, f"deleting consumer file {path}") from exc
        sync_directory(self.directory)

    def positions(self) -> dict[str, tuple[str, int]] | None:
        """Path -> (topic, persisted position) of every consumer file (a file without a
        valid position holds its whole topic: position 0); None when a consumer file could
        not be read at all (its topic unknown, it holds every topic at its first stored entry:
        only what expired goes)."""
        found, unreadable = self._read_all()
        if unreadable != self._unreadable:  # logged once, not at each reclamation
            self._unreadable = unreadable
            if unreadable:
                logger.warning(
                    "consumer file(s) %s cannot be read: until they can, a segment is deleted "
                    "only once every entry in it expired by retention. If that consumer is "
                    "not needed any more, delete_consumer(topic, name) removes its file",
                    ", ".join(unreadable))
        if unreadable:
            return None
        return {path: (topic, 0 if position is None else position)
                for topic, _name, position, path in found}

    def sync(self, paths: Iterable[str]) -> None:
        """Make these consumer files durable (through the backend, whoever wrote them):
        reclamation relies only on durable positions, which no power loss sets back."""
        for path in paths:
            try:
                file = self.backend.open(path, writable=True)
            except FileNotFoundError:
                continue  # deleted: its hold went with it
            try:
                file.sync()
            finally:
                file.close()


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def lowest(positions: dict[str, tuple[str, int]]) -> dict[str, int]:
    """Per topic name, the lowest of the positions."""
    low: dict[str, int] = {}
    for topic, at in positions.values():
        low[topic] = min(at, low.get(topic, at))
    return low


class Syncer:
    """Under ``Milliseconds(n)``: syncs the consumer files written since the last pass every
    n ms (a thread started when the first consumer is opened, in writers and observers alike)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.dirty: set[ConsumerFile] = set()
        self.mutex = threading.Lock()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def note(self, cf: ConsumerFile) -> None:
        with self.mutex:
            self.dirty.add(cf)
            self._start()

    def start(self) -> None:
        """Start the thread when a consumer is opened, not in the first read that stores a
        position: starting a thread waits until it runs, which takes milliseconds on a
        loaded machine (a drain of 2,000 entries under two CPU hogs ran at a tenth of the
        shared cursor's rate for it)."""
        with self.mutex:
            self._start()

    def _start(self) -> None:
        if self.thread is None and not self.stopping.is_set():
            self.thread = threading.Thread(target=self._run, name="walrus-consumers",
                                           daemon=True)
            self.thread.start()

    def _run(self) -> None:
        while not self.stopping.wait(self.interval):
            self.sync()

    def sync(self) -> None:
        """Sync every file written since the last pass; a failure is logged and retried."""
        with self.mutex:
            dirty, self.dirty = self.dirty, set()
        for cf in dirty:
            try:
                if cf.lock_fd >= 0:
                    cf.sync()
            except (OSError, ValueError) as exc:
                logger.error("syncing consumer file %s failed: %s", cf.path, exc)
                with self.mutex:
                    self.dirty.add(cf)

    def stop(self) -> None:
        self.stopping.set()
        thread = self.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
