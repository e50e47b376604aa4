"""The ``File`` contract, through the backend alone: what the engine relies on, call by call.

Each write is also read back through the operating system (``os.pread`` on the path), so a
failure can tell a write that never reached the file from a read that returns the wrong bytes.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

import walrus
from walrus.backends import Backend, Buffer, File

from .._pagecache import unobservable, unsynced_pages
from ._checks import broke, first_difference

SIZE = 64 << 10


@pytest.fixture
def backend(walrus_backend: str) -> Iterator[Backend]:
    made = walrus.backend_spec(walrus_backend).factory()
    yield made
    made.close()


@pytest.fixture
def opened(backend: Backend, tmp_path: Path) -> Iterator[File]:
    f = backend.open(str(tmp_path / "0000000000000001.wal"), size=SIZE, create=True)
    yield f
    f.close()


def on_disk(path: str, pos: int, size: int) -> bytes:
    """What the file holds, read through the operating system rather than the backend."""
    with open(path, "rb") as f:
        f.seek(pos)
        return f.read(size)


def check_written(f: File, pos: int, data: bytes, before: bytes, call: str = "write()") -> None:
    """After ``call`` put ``data`` at ``pos`` (over ``before``): the file and read() agree."""
    got = on_disk(f.path, pos, len(data))
    if got != data:
        k = first_difference(got, data)
        if got == before:
            broke(f"{call} did not hand the bytes to the OS: after it returned, the file (read "
                  f"through the OS) does not hold the {len(data)} bytes given at {pos}; a "
                  f"process crash would lose them, and observers in other processes cannot "
                  f"see them")
        if got[k:] == before[k:]:
            broke(f"{call} tore the write: of the {len(data)} bytes given at {pos}, only the "
                  f"first {k} reached the file")
        broke(f"{call} put other bytes in the file than it was given: at {pos + k} (byte {k} "
              f"of {len(data)} given at {pos})")
    back = f.read(pos, len(data))
    if back != data:
        k = first_difference(back, data)
        broke(f"read() returned bytes that differ from what write() was given at {pos + k} "
              f"(byte {k} of {len(data)} read at {pos}), while the file itself holds the "
              f"right bytes: read() returns stale or wrong data")


def test_create_makes_a_file_of_the_size_asked_for(backend: Backend, tmp_path: Path) -> None:
    path = str(tmp_path / "new.wal")
    f = backend.open(path, size=SIZE, create=True)
    try:
        if not os.path.exists(path):
            broke(f"open({path!r}, create=True) made no file at that path: the engine lists "
                  f"and recovers segments by their file names")
        if f.path != path:
            broke(f"File.path is {f.path!r}, not the path it was opened with ({path!r})")
        if f.size != SIZE or os.path.getsize(path) != SIZE:
            broke(f"open(create=True, size={SIZE}) made a file of {os.path.getsize(path)} bytes "
                  f"(File.size says {f.size}): segments are allocated at full size")
        if f.read(0, SIZE) != bytes(SIZE):
            broke("a newly created file does not read back as zeros: the engine finds the end "
                  "of the log at the first zero header")
    finally:
        f.close()


def test_create_refuses_an_existing_file(backend: Backend, tmp_path: Path) -> None:
    path = tmp_path / "taken.wal"
    path.write_bytes(b"keep me")
    try:
        f = backend.open(str(path), size=SIZE, create=True)
    except OSError:
        pass
    else:
        f.close()
        broke("open(create=True) on an existing file did not raise: a create must be "
              "exclusive, or an existing segment could be overwritten")
    if path.read_bytes() != b"keep me":
        broke("open(create=True) on an existing file changed that file")


def test_writes_reach_the_file_and_read_back(opened: File) -> None:
    rng = random.Random(1)
    image = bytearray(SIZE)
    for i in range(200):  # overlapping writes: a read must see the latest
        pos = rng.randrange(0, SIZE - 1) if i % 4 else rng.randrange(0, 512)
        size = min(SIZE - pos, rng.choice((1, 7, 64, 511, 4096, 9000)))
        data = rng.randbytes(size)
        before = bytes(image[pos:pos + size])
        opened.write(pos, data)
        image[pos:pos + size] = data
        check_written(opened, pos, data, before)
    if opened.read(0, SIZE) != bytes(image):
        broke("read() of the whole file differs from what the writes put there")


def test_every_buffer_type_is_accepted(opened: File) -> None:
    """The engine hands ``bytes``, ``bytearray`` and ``memoryview`` (also of a larger buffer)."""
    big = bytearray(b"0123456789" * 10)
    buffers: list[Buffer] = [b"bytes!", bytearray(b"bytearray"), memoryview(big)[10:30]]
    pos = 100
    for data in buffers:
        before = on_disk(opened.path, pos, len(data))
        opened.write(pos, data)
        check_written(opened, pos, bytes(data), before,
                      f"write() of a {type(data).__name__} object")
        pos += len(data)


def test_writev_writes_its_buffers_back_to_back_in_order(opened: File) -> None:
    rng = random.Random(2)
    for round_ in range(30):
        count = rng.randint(1, 8)
        buffers: list[Buffer] = [rng.randbytes(rng.randint(0, 700)) for _ in range(count)]
        if round_ % 3 == 1:
            buffers = [memoryview(bytearray(b)) for b in buffers]
        pos = rng.randrange(0, SIZE - 6000)
        joined = b"".join(bytes(b) for b in buffers)
        before = on_disk(opened.path, pos, len(joined))
        opened.writev(pos, buffers)
        got = on_disk(opened.path, pos, len(joined))
        if got != joined and got != before:
            k = first_difference(got, joined)
            starts = [sum(len(b) for b in buffers[:i]) for i in range(count)]
            index = max(i for i, start in enumerate(starts) if start <= k)
            broke(f"writev() did not write its {count} buffers back to back in order: the file "
                  f"holds the wrong bytes at {pos + k}, inside buffer {index} (which belongs at "
                  f"{pos + starts[index]})")
        check_written(opened, pos, joined, before, "writev()")


def test_reads_at_the_end_of_the_file_are_short(opened: File) -> None:
    opened.write(SIZE - 10, b"0123456789")
    tail = opened.read(SIZE - 10, 100)
    if tail != b"0123456789":
        broke(f"read(size={100}) 10 bytes before the end returned {len(tail)} bytes "
              f"({tail[:16]!r}); expected the 10 bytes there (fewer only at the end)")
    past = opened.read(SIZE, 10)
    if past != b"":
        broke(f"read() at the end of the file returned {len(past)} bytes; expected none")


def test_reopening_sees_the_size_and_the_data(backend: Backend, opened: File) -> None:
    opened.write(4000, b"persisted")
    opened.sync()
    opened.close()
    for writable in (True, False):
        again = backend.open(opened.path, writable=writable)
        try:
            if again.size != SIZE:
                broke(f"a file reopened (writable={writable}) has File.size {again.size}; the "
                      f"file holds {SIZE} bytes")
            if again.read(4000, 9) != b"persisted":
                broke(f"a file reopened (writable={writable}) does not read back what was "
                      f"written before it was closed")
        finally:
            again.close()


def test_close_is_idempotent(backend: Backend, tmp_path: Path) -> None:
    f = backend.open(str(tmp_path / "twice.wal"), size=SIZE, create=True)
    f.close()
    try:
        f.close()
    except Exception as exc:
        broke(f"a second close() raised {type(exc).__name__}: {exc}; close() is idempotent")


def test_sync_leaves_no_dirty_page(backend: Backend, opened: File, tmp_path: Path) -> None:
    """After ``sync()`` (and ``sync_files``) none of the file's pages waits for writeback."""
    why = unobservable(str(tmp_path))
    if why is not None:
        pytest.skip(f"cannot see dirty pages here: {why}")
    second = backend.open(str(tmp_path / "second.wal"), size=SIZE, create=True)
    try:
        for call, files in (("sync()", [opened]), ("sync_files()", [opened, second])):
            for f in files:
                f.write(8192, os.urandom(20000))
            if call == "sync()":
                opened.sync()
            else:
                backend.sync_files(files)
            for f in files:
                left = unsynced_pages(f.path)
                if left:
                    broke(f"{call} returned while {left} pages of {os.path.basename(f.path)} "
                          f"were still dirty in the page cache: it did not make the writes "
                          f"durable (a power loss would lose them)")
    finally:
        second.close()
