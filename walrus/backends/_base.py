"""The backend contract: the only file I/O the engine asks for.

A backend opens and allocates files and moves bytes; it knows nothing of records, topics or
cursors (those live in the engine, identical for every backend). The engine uses two kinds of
object:

* a :class:`Backend`, made once per ``Walrus`` instance by the factory a plugin registers, and
* the :class:`File` objects it opens.

A file whose backend maps it into memory exposes the mapping as :attr:`File.view`; the engine
then encodes records in place and reads them without a system call. Otherwise the engine goes
through :meth:`File.write`, :meth:`File.writev` and :meth:`File.read`.

A mapping's pages are the backend's business too (SQLite's ``xFetch``/``xUnfetch`` model: an
optional capability with a fallback). Three optional members with do-nothing defaults let the
engine use them when a backend offers them: :attr:`File.address` (a pointer the engine's C
encoder appends through), :meth:`File.prefault` and :meth:`File.release_pages`. A fourth,
:meth:`File.settle`, lets a backend give back what it holds only for writing a file that is
done.
"""

from __future__ import annotations

import abc
import errno
import os
from collections.abc import Sequence
from typing import Any, ClassVar

import attrs

Buffer = bytes | bytearray | memoryview


@attrs.frozen
class Availability:
    """What a backend's probe returns: can the backend run here, and why (not)."""

    ok: bool
    reason: str = ""


class File(abc.ABC):
    """An open file of a data directory."""

    path: str
    """Where the file lives."""
    size: int
    """Its size in bytes; log files are allocated at full size when created."""
    view: Any = None
    """A buffer over the whole file (an ``mmap``), writable unless opened read-only; or None."""
    address: Any = None
    """Optional: a C pointer (``char *`` of ``walrus._native._speedups``) to the first byte of
    a writable :attr:`view`, through which the engine appends a record in one C call; or None
    (the engine then writes through :attr:`view`). While it lives the mapping must stay mapped:
    :meth:`close` releases it first."""

    @abc.abstractmethod
    def write(self, pos: int, data: Buffer) -> None:
        """Write all of ``data`` at ``pos`` (short writes are retried, errors raised)."""

    def writev(self, pos: int, buffers: Sequence[Buffer]) -> None:
        """Write ``buffers`` back to back from ``pos``."""
        for data in buffers:
            self.write(pos, data)
            pos += len(data)

    @abc.abstractmethod
    def read(self, pos: int, size: int) -> bytes:
        """Read ``size`` bytes at ``pos`` (fewer only at the end of the file).

        It returns the file's bytes as they are now: another process, or another ``File`` of
        the same path, may have written them since (no read cache that outlives a call).
        Readers in other threads call it while the writer's thread writes elsewhere in the
        same file: it must not move a position the writes depend on (read positionally, as
        ``os.pread`` does, or take a lock shared with ``write``)."""

    @abc.abstractmethod
    def sync(self) -> None:
        """Make every write made so far durable (fdatasync or msync)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the file; idempotent."""

    def prefault(self, start: int, end: int | None = None,  # noqa: B027 - optional hook
                 writable: bool = False) -> None:
        """Optional: fault the pages of ``[start, end)`` in ahead of the writer.

        Never changes a byte, may be called from another thread than the writer's, and does
        nothing once the file is closed. The default does nothing (nothing to fault in).
        """

    def release_pages(self) -> None:  # noqa: B027 - optional hook
        """Optional: give back this process's pages of a file no longer written, leaving the
        data to the page cache (a later read maps it again). The default does nothing."""

    def settle(self) -> None:  # noqa: B027 - optional hook
        """Optional: every byte of the file is durable and it is only read from now on;
        release what only writing needs (a descriptor kept for syncs), so that a log keeping
        many segments holds fewer descriptors. A later write or sync must still work. The
        default does nothing."""


class Backend(abc.ABC):
    """Does the file I/O for one ``Walrus`` instance."""

    name: ClassVar[str] = ""

    @abc.abstractmethod
    def open(self, path: str, *, size: int = 0, create: bool = False,
             writable: bool = True) -> File:
        """Open ``path``.

        With ``create=True`` the file must not exist yet: it is created with ``size`` bytes,
        allocated (``posix_fallocate``) so that writes into it cannot fail for lack of space.
        Otherwise the existing file is opened at its current size, read-only unless
        ``writable``. A failed create leaves no file behind.
        """

    def sync_files(self, files: Sequence[File]) -> None:
        """Make several files durable, in order; a backend may overlap the syncs."""
        for f in files:
            f.sync()

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the backend holds (rings, threads); files are closed before."""

    def disown(self) -> None:  # noqa: B027 - optional hook
        """This process is a fork of the one that made the backend, which still uses it.

        Called in the child instead of :meth:`close`: release nothing shared with the parent
        (rings, threads), and make any later use fail rather than touch it.
        """


def create_file(path: str, size: int) -> int:
    """Create ``path`` exclusively, allocate ``size`` bytes and return a read-write fd.

    Shared by the built-in backends; a third-party backend may use it too.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        if size:
            try:
                os.posix_fallocate(fd, 0, size)
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # no fallocate here
                    raise
                os.ftruncate(fd, size)
    except BaseException:
        os.close(fd)
        try:
            os.unlink(path)
        except OSError:
            pass
        raise
    return fd


def open_file(path: str, writable: bool) -> int:
    """Open an existing file for the built-in backends."""
    return os.open(path, (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC)


def pread_exact(fd: int, pos: int, size: int) -> bytes:
    """``os.pread`` until ``size`` bytes or the end of the file."""
    data = os.pread(fd, size, pos)
    if len(data) == size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = os.pread(fd, size - got, pos + got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def pwrite_all(fd: int, pos: int, data: Buffer) -> None:
    """``os.pwrite`` until every byte is written."""
    view = data if isinstance(data, bytes) else memoryview(data).cast("B")
    total = len(view)
    done = os.pwrite(fd, view, pos)
    while done < total:
        written = os.pwrite(fd, view[done:], pos + done)
        if written <= 0:
            raise OSError(errno.EIO, f"no progress writing {total} bytes at {pos}")
        done += written
