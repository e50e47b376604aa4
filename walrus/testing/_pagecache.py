"""Whether a file's pages are still dirty in the page cache (Linux ``cachestat``, 6.5 and later).

The only way a test can see that a ``sync`` did nothing without cutting the power: after a
real ``fdatasync``, ``fsync`` or ``msync``, none of the file's pages is dirty or under
writeback. The check is usable only where a calibration shows it (an ``os.fsync`` cleans a
freshly written file); elsewhere (tmpfs, older kernels, other systems) :func:`unobservable`
says why.
"""

from __future__ import annotations

import ctypes
import os
import sys

CACHESTAT = 451
"""The system call's number (the same on every Linux architecture)."""


class _Range(ctypes.Structure):
    _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]


class _Stat(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in
                ("nr_cache", "nr_dirty", "nr_writeback", "nr_evicted", "nr_recently_evicted")]


def unsynced_pages(path: str) -> int | None:
    """Pages of ``path`` dirty or under writeback now; None when the kernel cannot tell."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        stat = _Stat()
        rng = _Range(0, 0)  # 0: to the end of the file
        if libc.syscall(CACHESTAT, fd, ctypes.byref(rng), ctypes.byref(stat), 0) != 0:
            return None
        return int(stat.nr_dirty + stat.nr_writeback)
    finally:
        os.close(fd)


def unobservable(directory: str) -> str | None:
    """Why dirty pages cannot be watched in ``directory``, or None when they can."""
    path = os.path.join(directory, "walrus-cachestat-probe")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.pwrite(fd, b"x" * 8192, 0)
        before = unsynced_pages(path)
        if before is None:
            return "the cachestat system call is unavailable (Linux 6.5 or later)"
        if before == 0:
            return "this file system shows no dirty pages after a write"
        os.fsync(fd)
        if unsynced_pages(path) != 0:
            return "this file system keeps pages dirty after fsync (tmpfs?)"
        return None
    finally:
        os.close(fd)
        os.unlink(path)
