"""A typed face over ``walrus._native._uring``: the ring pool, its operations, and the probe.

Each method is one call into C that does a whole operation (prepare, submit, reap, retry
short transfers), and turns a negative errno into an :class:`OSError` naming the file. The
extension is imported lazily: this module imports fine where it was never built.
"""

from __future__ import annotations

import errno
import functools
import importlib
import os
import platform
import sys
import threading
from collections.abc import Sequence
from typing import Any

from .._native.hints import URING_PACKAGES, how_to_build
from ._base import Availability, Buffer, pread_exact

MODULE = "walrus._native._uring"
DEPTH = 256
"""Submission queue entries per ring: syncs and reads beyond it go in rounds."""
MAX_RINGS = 8
"""Rings per backend (one per concurrent operation); each costs one file descriptor."""
SCRATCH = 1 << 20
"""Reads up to this size go through a per-thread buffer that stays mapped: io_uring hands a
read into a page not yet faulted in to a worker thread (~180 us instead of ~14 us for 256 KiB)."""
DIRECT_MAX = 64 << 10
"""A single write or read of up to this many bytes is one plain ``pwritev``/``pread`` in the
extension, not a ring operation (``WR_DIRECT_MAX`` in ``uring.c``): a ring has nothing to
overlap in it, and ext4 hands a buffered write submitted through a ring to a kernel worker,
several times the cost of the system call. Batches (many buffers, or more bytes) use the ring."""
OPCODES = ("NOP", "READ", "WRITE", "WRITEV", "FSYNC")
"""The io_uring operations the backend uses."""


def _native() -> Any:
    """The compiled module; raises ImportError when it was not built or cannot load."""
    return importlib.import_module(MODULE)


def _error(code: int, what: str, path: str) -> OSError:
    return OSError(code, f"io_uring {what}: {os.strerror(code)}", path)


class Ring:
    """The io_uring ring pool of one backend: thread-safe, rings created on demand."""

    def __init__(self, depth: int = DEPTH, max_rings: int = MAX_RINGS) -> None:
        native = _native()
        self._ffi = ffi = native.ffi
        self._lib = lib = native.lib
        pool = lib.wr_pool_new(depth, max_rings)
        if pool == ffi.NULL:
            raise MemoryError("cannot allocate an io_uring ring pool")
        self._pool = ffi.gc(pool, lib.wr_pool_free)
        err = lib.wr_pool_prepare(self._pool)
        if err < 0:
            raise OSError(-err, f"cannot create an io_uring ring: {os.strerror(-err)}")
        self._local = threading.local()

    @property
    def rings(self) -> int:
        """How many rings the pool has created so far."""
        return int(self._lib.wr_pool_rings(self._pool))

    @property
    def operations(self) -> int:
        """How many operations have gone through a ring so far (a single write or read of
        up to :data:`DIRECT_MAX` bytes is a plain system call and is not counted)."""
        return int(self._lib.wr_pool_operations(self._pool))

    def _bytes(self, data: Buffer) -> Any:
        """``data`` as a ``char *`` argument: bytes as they are, anything else as a view
        (whose ``len`` is in bytes whatever the buffer's item format)."""
        return data if type(data) is bytes else self._ffi.from_buffer(data)

    def write(self, fd: int, pos: int, data: Buffer, path: str) -> None:
        """Write all of ``data`` at ``pos``."""
        buf = self._bytes(data)
        err = self._lib.wr_write2(self._pool, fd, pos, buf, len(buf), self._ffi.NULL, 0)
        if err < 0:
            raise _error(-err, f"write of {len(buf)} bytes at {pos}", path)

    def writev(self, fd: int, pos: int, buffers: Sequence[Buffer], path: str) -> None:
        """Write ``buffers`` back to back from ``pos`` (one SQE per 1024 buffers)."""
        if len(buffers) == 2:  # header + payload: no iovec array built in Python
            a, b = self._bytes(buffers[0]), self._bytes(buffers[1])
            err = self._lib.wr_write2(self._pool, fd, pos, a, len(a), b, len(b))
        else:
            views = [self._ffi.from_buffer(b) for b in buffers]  # iovecs hold pointers
            iov = self._ffi.new("struct iovec[]", [(v, len(v)) for v in views])
            err = self._lib.wr_writev(self._pool, fd, pos, iov, len(views))
        if err < 0:
            raise _error(-err, f"write of {len(buffers)} buffers at {pos}", path)

    def read(self, fd: int, pos: int, size: int, path: str) -> bytes:
        """Read ``size`` bytes at ``pos`` (fewer only at the end of the file).

        Up to :data:`SCRATCH` bytes go through the ring into a per-thread buffer, then one
        copy into ``bytes``. A larger read (a huge entry, recovery's scan of a whole
        segment) is one ``os.pread``: io_uring has nothing to overlap in a single read, and
        only ``os.pread`` fills a fresh ``bytes`` without a second copy of up to a segment.
        """
        if size <= 0:
            return b""
        if size > SCRATCH:
            try:
                return pread_exact(fd, pos, size)
            except OSError as exc:
                raise OSError(exc.errno, f"pread of {size} bytes at {pos}: {exc.strerror}",
                              path) from exc
        local = self._local
        if getattr(local, "buf", None) is None:
            local.buf = bytearray(SCRATCH)
            local.ptr = self._ffi.from_buffer(local.buf)
        got = self._lib.wr_read(self._pool, fd, pos, local.ptr, size)
        if got < 0:
            raise _error(-got, f"read of {size} bytes at {pos}", path)
        return bytes(memoryview(local.buf)[:got])

    def sync(self, fds: Sequence[int], paths: Sequence[str]) -> None:
        """fdatasync every file at once; raise for the first that failed."""
        if not fds:
            return
        ffi = self._ffi
        res = ffi.new("int32_t[]", len(fds))
        err = self._lib.wr_sync_many(self._pool, ffi.new("int[]", list(fds)), len(fds), res)
        if err < 0:
            for i, path in enumerate(paths):
                if res[i] < 0:
                    raise _error(-res[i], "fdatasync", path)
            raise _error(-err, "fdatasync", paths[0])

    def close(self) -> None:
        """Wait for running operations, then free the rings; later calls raise EBADF."""
        self._lib.wr_pool_close(self._pool)

    def disown(self) -> None:
        """In a forked child: never touch the parent's rings again, not even to free them
        (one a parent thread was using at the fork would be waited for for ever, and the
        rings' memory is shared with the parent). Later calls raise EBADF from a pool of
        this process's own, closed at once."""
        ffi, lib = self._ffi, self._lib
        ffi.gc(self._pool, None)  # this copy of the parent's pool is never freed here
        pool = lib.wr_pool_new(1, 1)
        if pool == ffi.NULL:
            raise MemoryError("cannot allocate an io_uring ring pool")
        lib.wr_pool_close(pool)
        self._pool = ffi.gc(pool, lib.wr_pool_free)


def _kernel() -> str:
    return f"Linux {platform.release()}"


def _setup_failure(code: int) -> str:
    name = errno.errorcode.get(code, str(code))
    if code == errno.EPERM:
        try:
            with open("/proc/sys/kernel/io_uring_disabled", encoding="ascii") as f:
                disabled = f.read().strip()
        except OSError:
            disabled = ""
        if disabled and disabled != "0":
            return f"io_uring is disabled by sysctl kernel.io_uring_disabled={disabled} (EPERM)"
        return "creating a ring was refused (EPERM): a seccomp filter or a container policy"
    if code == errno.ENOSYS:
        return f"the kernel has no io_uring ({_kernel()}; ENOSYS)"
    if code in (errno.ENOMEM, errno.EAGAIN):
        return f"cannot create a ring ({name}): locked-memory limit (RLIMIT_MEMLOCK) too low?"
    return f"cannot create a ring: {os.strerror(code)} ({name})"


@functools.cache
def probe() -> Availability:
    """Can the io_uring backend run here? Cached; never raises."""
    try:
        return _probe()
    except Exception as exc:  # a probe must never raise
        return Availability(False, f"probe failed: {type(exc).__name__}: {exc}")


def _probe() -> Availability:
    if not sys.platform.startswith("linux"):
        return Availability(False, f"io_uring is Linux-only (this is {sys.platform})")
    try:
        native = _native()
    except ImportError as exc:
        if getattr(exc, "name", None) == "_cffi_backend":
            return Availability(False, "not usable: cffi is not installed (pip install cffi)")
        if getattr(exc, "name", None) == MODULE:
            return Availability(False, f"not built: {MODULE} is missing; "
                                       f"{how_to_build(URING_PACKAGES)}")
        return Availability(False, f"not loadable: {MODULE}: {exc}")
    ffi, lib = native.ffi, native.lib
    codes = [getattr(lib, f"IORING_OP_{name}") for name in OPCODES]
    missing = ffi.new("unsigned *")
    err = lib.wr_probe(ffi.new("int[]", codes), len(codes), missing)
    if err == -errno.ENOSYS and missing[0] == 0xFFFFFFFF:
        return Availability(False, f"the kernel cannot list its io_uring opcodes ({_kernel()}; "
                                   "needs 5.6 or later)")
    lacking = [name for i, name in enumerate(OPCODES) if missing[0] >> i & 1]
    if lacking:
        return Availability(False, f"the kernel lacks io_uring opcodes {', '.join(lacking)} "
                                   f"({_kernel()}; needs 5.6 or later)")
    if err < 0:
        return Availability(False, _setup_failure(-err))
    return Availability(True, f"io_uring on {_kernel()}: batched fsyncs, reads and writes "
                              "through liburing")
