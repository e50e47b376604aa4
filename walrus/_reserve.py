"""A few file descriptors held back, so that a process out of them can still free some.

A log keeps a descriptor open for each segment it holds, beside whatever else the process
has open. When the process runs out, making the next segment fails (the append raises
``StorageError`` and loses nothing), and so does the background pass: writing an index,
locking and listing the consumer files and syncing them each need a descriptor for a moment.
But that pass is what gives descriptors back, by deleting the segments every cursor has passed
and the ones retention expires: without a reserve, a log that ran out stayed out after its
consumers had caught up, until the process closed it.

So the worker holds a few descriptors (of ``/dev/null``) while it sleeps. Once making a
segment failed for want of one, the next pass lets them go for its own use, and no segment is
made while it runs (such a file would keep what the pass needs); then it takes them back.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

RESERVED = 8
"""Enough for one pass, which needs at most four at once (the consumer files' lock, one
consumer file, the directory's sync; an index file and the directory's sync)."""

OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE)


class DescriptorReserve:
    """The descriptors held back, and whether the process ran out since the last pass.

    ``fds`` is the worker's (taken and let go only by it, in :meth:`lent_out`, and at
    :meth:`release`). ``starved`` is set by whoever fails to make a segment and cleared by the
    worker; ``lent`` is set only by the worker. Both are plain flags read without a lock: a
    segment made just as a pass begins takes at most the one or two descriptors of one file.
    """

    def __init__(self, count: int = RESERVED) -> None:
        self.count = count
        self.fds: list[int] = []
        self.starved = False
        """Making a segment failed for want of a descriptor since the last pass."""
        self.lent = False
        """A pass is using the reserve: no segment is made meanwhile."""
        self._mutex = threading.Lock()
        """Guards ``fds`` against a close racing the worker's last pass."""
        self.refill()

    def refill(self) -> None:
        """Take back what was let go, as far as the process has descriptors free."""
        with self._mutex:
            while len(self.fds) < self.count:
                try:
                    self.fds.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
                except OSError:
                    return

    def release(self) -> None:
        """Let every held descriptor go (a pass, or closing)."""
        with self._mutex:
            self.disown()

    def disown(self) -> None:
        """Close every held descriptor without the lock: in a forked child, whose copy of
        the lock a thread of the parent may have held at the fork (it is not here to let go
        of it); else under it (:meth:`release`)."""
        fds, self.fds = self.fds, []
        for fd in fds:
            os.close(fd)

    @contextmanager
    def making(self) -> Iterator[None]:
        """Around making a segment file: refused while a pass has the reserve; a failure
        for want of descriptors marks the process as out of them."""
        if self.lent:
            raise OSError(errno.EMFILE, "Too many open files (the last ones are in use to "
                                        "delete segments the consumers have passed)")
        try:
            yield
        except OSError as exc:
            if exc.errno in OUT_OF_DESCRIPTORS:
                self.starved = True
            raise

    @contextmanager
    def lent_out(self) -> Iterator[None]:
        """Around the worker's pass: if the process ran out, the reserve is free inside."""
        if not self.starved:
            yield
            return
        self.lent = True
        self.release()
        try:
            yield
        finally:
            self.starved = False  # until making a segment fails again
            self.refill()
            self.lent = False
