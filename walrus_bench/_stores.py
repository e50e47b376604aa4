"""The systems ``walrus bench compare`` measures, behind one small interface.

Each system does every operation in its own natural loop (``append_each`` takes a list of
payloads), so the comparison measures the system and not a Python wrapper around each call.
"""

from __future__ import annotations

import importlib.util
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Protocol

import attrs

from walrus import FsyncSchedule, ReadConsistency, Walrus, available_backends

CURSOR_EVERY = 1000
"""A consumer persists its position once every 1000 entries (AtLeastOnce(1000) in walrus)."""
RECORD = struct.Struct("<IIQ")
"""The plain-Python baselines' 16-byte header: length, crc32, sequence number."""


class Store(Protocol):
    """One open system, in a fresh folder, in the sync mode its workload asks for."""

    def append_each(self, payloads: list[bytes]) -> None:
        """Append each payload as its own acknowledged entry (durable each if opened so)."""

    def append_batch(self, payloads: list[bytes]) -> None:
        """Append the payloads as one atomic batch."""

    def sync(self) -> None:
        """Make everything appended so far durable."""

    def consume(self, limit: int) -> int:
        """Read up to ``limit`` entries in order, persisting the cursor every CURSOR_EVERY."""

    def close(self) -> None: ...


Opener = Callable[[Path, bool], Store]
"""``(folder, durable)``: durable means every append is synced before it returns."""


@attrs.frozen
class System:
    name: str
    kind: str  # "walrus", "baseline" or "peer"
    open: Opener
    note: str = ""


# --- walrus ---------------------------------------------------------------------------------------


class WalrusStore:
    def __init__(self, folder: Path, durable: bool, backend: str) -> None:
        self.wal = Walrus(data_dir=folder, backend=backend,
                          consistency=ReadConsistency.AtLeastOnce(CURSOR_EVERY),
                          fsync_schedule=FsyncSchedule.SyncEach if durable
                          else FsyncSchedule.NoFsync)

    def append_each(self, payloads: list[bytes]) -> None:
        append = self.wal.append_for_topic
        for p in payloads:
            append("bench", p)

    def append_batch(self, payloads: list[bytes]) -> None:
        self.wal.batch_append_for_topic("bench", payloads)

    def sync(self) -> None:
        self.wal.flush()

    def consume(self, limit: int) -> int:
        read = self.wal.read_next
        for n in range(limit):
            if read("bench") is None:
                return n
        return limit

    def read_batch(self, budget: int) -> int:
        """One batch read of up to ``budget`` bytes, checkpointed; the entries it returned."""
        return len(self.wal.batch_read_for_topic("bench", budget, checkpoint=True))

    def close(self) -> None:
        self.wal.close()


def walrus_systems() -> list[System]:
    """One system per backend that can run here."""

    def opener(backend: str) -> Opener:
        return lambda folder, durable: WalrusStore(folder, durable, backend)

    return [System(f"walrus-{b.name}", "walrus", opener(b.name))
            for b in available_backends() if b.available]


# --- plain Python baselines ----------------------------------------------------------------------


class FileStore:
    """Records with a 16-byte header appended to one buffered file: the ceiling."""

    def __init__(self, folder: Path, durable: bool, checksum: bool = True) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "log"
        self.file = self.path.open("wb")
        self.durable = durable
        self.checksum = checksum
        self.seq = 0
        self.cursor_fd = os.open(folder / "cursor", os.O_RDWR | os.O_CREAT, 0o644)
        self.reader: BinaryIO | None = None
        self.consumed = 0

    def _record(self, p: bytes, seq: int) -> bytes:
        return RECORD.pack(len(p), zlib.crc32(p) if self.checksum else 0, seq) + p

    def _write(self, data: bytes) -> None:
        self.file.write(data)
        if self.durable:
            self.sync()

    def append_each(self, payloads: list[bytes]) -> None:
        record, write, seq = self._record, self._write, self.seq
        for p in payloads:
            write(record(p, seq))
            seq += 1
        self.seq = seq

    def append_batch(self, payloads: list[bytes]) -> None:
        seq = self.seq
        self._write(b"".join([self._record(p, seq + i) for i, p in enumerate(payloads)]))
        self.seq = seq + len(payloads)

    def sync(self) -> None:
        self.file.flush()
        os.fdatasync(self.file.fileno())

    def consume(self, limit: int) -> int:
        """Reads records in order, checks each crc, persists the position every 1000."""
        if self.reader is None:
            self.file.flush()
            self.reader = self.path.open("rb")
        read, unpack, size, crc = self.reader.read, RECORD.unpack, RECORD.size, zlib.crc32
        checksum, count = self.checksum, self.consumed
        done = 0
        while done < limit:
            header = read(size)
            if len(header) < size:
                break
            length, expected, seq = unpack(header)
            payload = read(length)
            if checksum and crc(payload) != expected:
                raise ValueError(f"record {seq}: bad crc")
            done += 1
            if (count + done) % CURSOR_EVERY == 0:
                os.pwrite(self.cursor_fd, struct.pack("<Q", self.reader.tell()), 0)
        self.consumed = count + done
        return done

    def close(self) -> None:
        self.file.close()
        if self.reader is not None:
            self.reader.close()
        os.close(self.cursor_fd)


class PwriteStore(FileStore):
    """The same records, one ``os.pwrite`` per append (what a SyncEach append must cost)."""

    def __init__(self, folder: Path, durable: bool) -> None:
        super().__init__(folder, durable)
        self.fd = self.file.fileno()
        self.offset = 0

    def _write(self, data: bytes) -> None:
        self.offset += os.pwrite(self.fd, data, self.offset)
        if self.durable:
            os.fdatasync(self.fd)

    def sync(self) -> None:
        os.fdatasync(self.fd)


def baseline_systems() -> list[System]:
    return [
        System("python-file", "baseline", lambda f, d: FileStore(f, d, checksum=False),
               "buffered file write, 16-byte header, no checksum"),
        System("python-file-crc32", "baseline", FileStore,
               "buffered file write, 16-byte header with zlib.crc32 (the targets' ceiling)"),
        System("python-pwrite", "baseline", PwriteStore, "os.pwrite per record + fdatasync"),
    ]


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None
