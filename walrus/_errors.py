"""The exception hierarchy.

Every error derives from :class:`WalrusError`. Errors caused by the caller also derive from
:class:`ValueError`; errors coming from the system (files, locks, disks) from :class:`OSError`,
so existing ``except OSError`` handlers keep working.
"""

from __future__ import annotations

import errno
import os


class WalrusError(Exception):
    """Base class of every error walrus raises."""


class _OSWalrusError(WalrusError, OSError):
    """An error that is also an :class:`OSError` (it carries an errno); its text is the
    message alone, without the ``[Errno N]`` prefix ``OSError`` would put before it."""

    def __str__(self) -> str:
        return str(self.strerror)


class InvalidArgumentError(WalrusError, ValueError, TypeError):
    """An argument (or an environment variable) has the wrong type or an invalid value."""


class InvalidTopicError(InvalidArgumentError):
    """The topic is not a str of 1..255 UTF-8 bytes without NUL."""


class EntryTooLargeError(WalrusError, ValueError):
    """A payload is larger than ``MAX_ENTRY_BYTES``."""


class BatchTooLargeError(WalrusError, ValueError):
    """A batch has more than ``MAX_BATCH_ENTRIES`` entries or ``MAX_BATCH_BYTES`` bytes."""


class OffsetOutOfRangeError(WalrusError, ValueError):
    """A ``start_offset`` names an entry whose segment has already been reclaimed, or a
    ``seek`` goes outside the stored offsets (first stored offset to next offset)."""


class WalrusLockedError(_OSWalrusError):
    """The data directory is held open by another live process (or by this one)."""

    def __init__(self, message: str, pid: int | None = None) -> None:
        super().__init__(errno.EWOULDBLOCK, message)
        self.pid = pid


class StorageError(_OSWalrusError):
    """A file operation failed (write, sync, create); the errno is the system's.

    The log is left as it was before the failing call; what was acknowledged earlier stays.
    """


class WalrusClosedError(_OSWalrusError):
    """The instance has been closed."""

    def __init__(self, message: str = "this Walrus instance is closed") -> None:
        super().__init__(errno.EBADF, message)


class WalrusForkedError(WalrusClosedError):
    """The instance was inherited through ``fork()``: it belongs to the process that opened it.

    A child sharing the parent's files, write position, locks and io_uring rings would
    overwrite the parent's entries (or break its rings), so every call in the child raises
    this instead; the parent goes on unaffected. Open a new instance in the child.
    """

    def __init__(self, owner: int) -> None:
        super().__init__(
            f"this Walrus instance belongs to process {owner}, which opened it; this process "
            f"({os.getpid()}) inherited it through fork() and cannot use it (open a new "
            "instance here, e.g. Walrus(data_dir=..., read_only=True) beside the parent)")
        self.pid = owner


class CorruptionError(_OSWalrusError):
    """Stored data failed its checksum or framing check; it is never returned as data."""

    def __init__(self, message: str, topic: str | None = None, offset: int | None = None) -> None:
        super().__init__(errno.EIO, message)
        self.topic = topic
        self.offset = offset


class BackendUnavailableError(_OSWalrusError):
    """The requested I/O backend is not registered or its probe says it cannot run here."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.ENOTSUP, message)


class ReadOnlyError(_OSWalrusError):
    """A write or a checkpointing read was attempted on a read-only observer."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EROFS, message)


class ForwardError(WalrusError):
    """Forwarding cannot go on safely: the sink is missing, or the target (a stream, a subject)
    holds something that does not continue this log."""


def storage_error(exc: OSError, what: str) -> StorageError:
    """Wrap an OSError from a backend so it names the operation (and stays an OSError)."""
    if isinstance(exc, StorageError):
        return exc
    return StorageError(exc.errno or errno.EIO, f"{what}: {exc.strerror or exc}")
