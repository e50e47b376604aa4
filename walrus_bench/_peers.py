"""What a Python user would pick instead: sqlite3 in WAL mode, and lmdb, plyvel (LevelDB) and
rocksdict (RocksDB) when installed (``pip install 'walrus-wal[peers]'``).

Each append is its own committed write; "sync" makes what was committed durable; a consumer
walks the keys in order and writes its position every 1000 entries.
"""

from __future__ import annotations

import os
import sqlite3
import struct
from pathlib import Path
from typing import Any

from ._stores import CURSOR_EVERY, System, installed

KEY = struct.Struct(">Q")
"""Big-endian sequence numbers, so key order is append order."""
CURSOR_KEY = b"\x00cursor"
"""Bookkeeping keys sort before every entry key, so entry scans never see them."""
SYNC_KEY = b"\x00sync"
ENTRY_PREFIX = b"e:"


class SqliteStore:
    """A ``log(id INTEGER PRIMARY KEY, data BLOB)`` table, journal_mode=WAL, autocommit."""

    def __init__(self, folder: Path, durable: bool) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "log.db"
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
        self.db.execute("CREATE TABLE log(id INTEGER PRIMARY KEY, data BLOB NOT NULL)")
        self.db.execute("CREATE TABLE cursor(k INTEGER PRIMARY KEY, pos INTEGER NOT NULL)")
        self.db.execute("INSERT INTO cursor VALUES (0, 0)")
        self.rows: Any = None
        self.consumed = 0

    def append_each(self, payloads: list[bytes]) -> None:
        execute = self.db.execute
        for p in payloads:
            execute("INSERT INTO log(data) VALUES (?)", (p,))

    def append_batch(self, payloads: list[bytes]) -> None:
        self.db.execute("BEGIN")
        self.db.executemany("INSERT INTO log(data) VALUES (?)", [(p,) for p in payloads])
        self.db.execute("COMMIT")

    def sync(self) -> None:
        """Commits went to the -wal file unsynced (synchronous=OFF); fsync it."""
        fd = os.open(f"{self.path}-wal", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def consume(self, limit: int) -> int:
        if self.rows is None:
            reader = sqlite3.connect(self.path, check_same_thread=False)
            self.rows = reader.execute("SELECT id, data FROM log WHERE id > ? ORDER BY id",
                                       (self.consumed,))
        fetch, done = self.rows.fetchone, 0
        while done < limit:
            row = fetch()
            if row is None:
                break
            done += 1
            if (self.consumed + done) % CURSOR_EVERY == 0:
                self.db.execute("UPDATE cursor SET pos = ? WHERE k = 0", (row[0],))
        self.consumed += done
        return done

    def close(self) -> None:
        if self.rows is not None:
            self.rows.connection.close()
        self.db.close()


class KeyValueStore:
    """Shared shape of the ordered key-value peers: entries under ``e:<seq>``."""

    def __init__(self) -> None:
        self.seq = 0
        self.consumed = 0
        self.reader: Any = None

    def keys(self, count: int) -> list[bytes]:
        start, pack = self.seq, KEY.pack
        self.seq += count
        return [ENTRY_PREFIX + pack(n) for n in range(start, start + count)]

    def consume(self, limit: int) -> int:
        if self.reader is None:
            self.reader = self.iterate()
        done, step = 0, self.reader.__next__
        while done < limit:
            try:
                step()
            except StopIteration:
                break
            done += 1
            if (self.consumed + done) % CURSOR_EVERY == 0:
                self.save_cursor(KEY.pack(self.consumed + done))
        self.consumed += done
        return done

    def iterate(self) -> Any:
        raise NotImplementedError

    def save_cursor(self, position: bytes) -> None:
        raise NotImplementedError


class LmdbStore(KeyValueStore):
    def __init__(self, folder: Path, durable: bool) -> None:
        import lmdb

        super().__init__()
        self.env = lmdb.open(str(folder), map_size=16 << 30, sync=durable, metasync=durable,
                             max_dbs=2)
        self.log = self.env.open_db(b"log")  # named databases live as keys of the main one
        self.meta = self.env.open_db(b"meta")
        self.read_txn: Any = None

    def append_each(self, payloads: list[bytes]) -> None:
        begin = self.env.begin
        for key, p in zip(self.keys(len(payloads)), payloads, strict=True):
            with begin(write=True, db=self.log) as txn:
                txn.put(key, p, append=True)

    def append_batch(self, payloads: list[bytes]) -> None:
        with self.env.begin(write=True, db=self.log) as txn:
            txn.cursor().putmulti(zip(self.keys(len(payloads)), payloads, strict=True),
                                  append=True)

    def sync(self) -> None:
        self.env.sync(True)

    def iterate(self) -> Any:
        self.read_txn = self.env.begin(db=self.log)
        return iter(self.read_txn.cursor().iternext(keys=False, values=True))

    def save_cursor(self, position: bytes) -> None:
        with self.env.begin(write=True, db=self.meta) as txn:
            txn.put(CURSOR_KEY, position)

    def close(self) -> None:
        if self.read_txn is not None:
            self.read_txn.abort()
        self.env.close()


class LevelDbStore(KeyValueStore):
    def __init__(self, folder: Path, durable: bool) -> None:
        import plyvel

        super().__init__()
        self.db = plyvel.DB(str(folder), create_if_missing=True)
        self.durable = durable

    def append_each(self, payloads: list[bytes]) -> None:
        put, sync = self.db.put, self.durable
        for key, p in zip(self.keys(len(payloads)), payloads, strict=True):
            put(key, p, sync=sync)

    def append_batch(self, payloads: list[bytes]) -> None:
        with self.db.write_batch(sync=self.durable) as batch:
            for key, p in zip(self.keys(len(payloads)), payloads, strict=True):
                batch.put(key, p)

    def sync(self) -> None:
        """LevelDB has no sync call: a synced write syncs the log up to it."""
        self.db.put(SYNC_KEY, b"", sync=True)

    def iterate(self) -> Any:
        return self.db.iterator(prefix=ENTRY_PREFIX, include_key=False)

    def save_cursor(self, position: bytes) -> None:
        self.db.put(CURSOR_KEY, position)

    def close(self) -> None:
        self.db.close()


class RocksDbStore(KeyValueStore):
    def __init__(self, folder: Path, durable: bool) -> None:
        import rocksdict

        super().__init__()
        self.db = rocksdict.Rdict(str(folder), rocksdict.Options(raw_mode=True))
        options = rocksdict.WriteOptions()
        options.sync = durable
        self.db.set_write_options(options)
        self.batch_type = rocksdict.WriteBatch

    def append_each(self, payloads: list[bytes]) -> None:
        put = self.db.put
        for key, p in zip(self.keys(len(payloads)), payloads, strict=True):
            put(key, p)

    def append_batch(self, payloads: list[bytes]) -> None:
        batch = self.batch_type(raw_mode=True)
        for key, p in zip(self.keys(len(payloads)), payloads, strict=True):
            batch.put(key, p)
        self.db.write(batch)

    def sync(self) -> None:
        self.db.flush_wal(True)

    def iterate(self) -> Any:
        return iter(self.db.values(from_key=ENTRY_PREFIX))

    def save_cursor(self, position: bytes) -> None:
        self.db.put(CURSOR_KEY, position)

    def close(self) -> None:
        self.db.close()


def peer_systems() -> list[System]:
    """sqlite3 always; the others when their package is importable."""
    systems = [System("sqlite3-wal", "peer", SqliteStore, "journal_mode=WAL, autocommit")]
    for module, name, opener in (("lmdb", "lmdb", LmdbStore), ("plyvel", "plyvel-leveldb",
                                 LevelDbStore), ("rocksdict", "rocksdict-rocksdb",
                                                 RocksDbStore)):
        if installed(module):
            systems.append(System(name, "peer", opener))
    return systems
