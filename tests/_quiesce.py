"""Holding a writer's background threads still, for checks that another thread must not disturb.

No pytest here: child processes of the tests import it too (the source tree is on their path).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from walrus import Walrus


@contextmanager
def quiesced(wal: Walrus, timeout: float = 120) -> Iterator[None]:
    """The writer's background work owed so far done, and no more of it while inside.

    The worker makes the spare segment ahead of need (waited for here: it is the worker's
    own first job), then indexes, reclaims and checkpoints only while holding its ``work``
    lock, which this holds. Measurements of the calling thread (allocations), and proofs that
    a directory did not change, are then exact, however the machine schedules the threads.
    ``timeout`` only bounds a worker that never makes the spare (a failure).
    """
    background = wal._background
    if background is None:  # read-only: no worker
        yield
        return
    deadline = time.monotonic() + timeout
    while wal._log.spare is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"the background worker made no spare segment in {timeout} s")
        time.sleep(0.005)
    background.run_once()
    with background.work:
        yield
