"""One writer per data directory: an flock on ``LOCK`` that names its holder's pid."""

from __future__ import annotations

import errno
import fcntl
import os

from ._errors import StorageError, WalrusLockedError

LOCK_NAME = "LOCK"


class DirectoryLock:
    """Held for the life of a writable instance; the kernel drops it if the process dies."""

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, LOCK_NAME)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StorageError(exc.errno or errno.EIO,
                               f"cannot open the lock file {self.path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            holder = f"process {pid}" if pid is not None else "another process"
            if pid == os.getpid():
                holder += " (this process: another Walrus instance has it open)"
            raise WalrusLockedError(
                f"data directory {directory} is locked by {holder}", pid) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def release(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)  # the file stays: unlinking it would let two openers lock two inodes


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
