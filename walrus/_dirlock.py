"""One writer per data directory: an flock on the directory itself; ``LOCK`` names the holder.

The lock is taken on the directory, not on a file in it: a file can be deleted (an operator
"cleaning a stale lock file") while it is held, and the next opener would then lock a new
file and write beside the live writer. A directory cannot be replaced under the log it holds.
``LOCK`` holds the holder's pid for the error a refused opener raises, and is locked too, so
that versions of walrus that lock only ``LOCK`` and this one refuse each other.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os

from ._errors import StorageError, WalrusLockedError

log = logging.getLogger("walrus")

LOCK_NAME = "LOCK"


class DirectoryLock:
    """Held for the life of a writable instance; the kernel drops it if the process dies."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.path = os.path.join(directory, LOCK_NAME)
        self.fds: list[int] = []
        try:
            self.fds.append(_open(directory, os.O_RDONLY | os.O_DIRECTORY, "the data directory"))
            if not _try_lock(self.fds[0]):
                raise self._refused()
            pid_fd = self._open_pid_file()
            if pid_fd is not None:
                self.fds.append(pid_fd)
                if not _try_lock(pid_fd):  # held by a version that locks only LOCK
                    raise self._refused()
                os.ftruncate(pid_fd, 0)
                os.pwrite(pid_fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            self.release()
            raise

    def _open_pid_file(self) -> int | None:
        """``LOCK``, created if missing; None if something else has that name (a directory
        left by an older version's keyed instance): the directory lock is what counts."""
        try:
            return _open(self.path, os.O_RDWR | os.O_CREAT, "the lock file")
        except StorageError as exc:
            if exc.errno != errno.EISDIR:
                raise
            log.warning("%s is not a file; the holder's pid is not recorded there", self.path)
            return None

    def _refused(self) -> WalrusLockedError:
        pid = _pid_in(self.path)
        if pid is None:
            pid = _flock_holder(self.directory)
        holder = f"process {pid}" if pid is not None else "another process"
        if pid == os.getpid():
            holder += " (this process: another Walrus instance has it open)"
        return WalrusLockedError(f"data directory {self.directory} is locked by {holder}", pid)

    def release(self) -> None:
        """Close the descriptors, which drops the lock (never unlinks ``LOCK``: two openers
        could then lock two inodes). In a forked child it closes only the child's copies,
        so the parent keeps its lock while a child that outlives it does not hold it."""
        fds, self.fds = self.fds, []
        for fd in fds:
            os.close(fd)


def _open(path: str, flags: int, what: str) -> int:
    try:
        return os.open(path, flags | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise StorageError(exc.errno or errno.EIO,
                           f"cannot open {what} {path}: {exc.strerror}") from exc


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _pid_in(path: str) -> int | None:
    """The pid written in ``LOCK``, if it is a readable file holding one."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)


def _flock_holder(directory: str) -> int | None:
    """The pid holding an flock on ``directory``, from ``/proc/locks`` (Linux), when ``LOCK``
    cannot say (deleted while held)."""
    try:
        st = os.stat(directory)
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    where = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in lines:
        fields = line.split()
        if "->" in fields:  # a waiter, not a holder
            continue
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == where:
            try:
                return int(fields[4])
            except ValueError:
                return None
    return None
