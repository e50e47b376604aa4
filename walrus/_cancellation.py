"""How a coroutine of ``walrus.aio`` meets a cancellation: before its call has begun, or not
at all.

Cancelling a task that awaits a call is safe while the call has not begun: nothing happened,
and ``CancelledError`` is raised. Once it has begun it has an effect (an entry appended, an
entry taken from a cursor), and dropping its result would lose that effect: a consumed entry
nobody received, an append its caller believes failed and makes again. So from then on the
call runs to its end (and under ``SyncEach`` until what it wrote is durable), its result is
returned, and the cancellation is delivered at the task's next ``await`` instead, unless
whoever asked for it took it back meanwhile (``asyncio.timeout`` and ``asyncio.wait_for``
do, when what they waited for ended with a result). This is trio's rule for a cancelled
operation: it either had no effect and raises, or completes.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Generic, TypeVar, cast

T = TypeVar("T")


class _Job(Generic[T]):
    """A call for the executor that can be withdrawn until it begins. ``_lock`` guards
    ``_begun`` and ``_withdrawn``."""

    __slots__ = ("_begun", "_call", "_lock", "_withdrawn")

    def __init__(self, call: Callable[[], T]) -> None:
        self._call = call
        self._lock = threading.Lock()
        self._begun = False
        self._withdrawn = False

    def run(self) -> T:
        with self._lock:
            if self._withdrawn:
                return cast(T, None)  # nobody awaits it
            self._begun = True
        return self._call()

    def withdraw(self) -> bool:
        """Make sure the call never begins; False when it has begun already."""
        with self._lock:
            if self._begun:
                return False
            self._withdrawn = True
            return True


async def off_loop(call: Callable[[], T]) -> T:
    """``call()`` in the loop's default executor. A cancellation that comes before it begins
    withdraws it and is raised; one that comes later waits for it (see :func:`to_the_end`)."""
    job = _Job(call)
    future = asyncio.get_running_loop().run_in_executor(None, job.run)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        if job.withdraw():
            raise
    try:
        return await to_the_end(future)
    finally:
        cancel_again()  # it had begun: it ended first


async def to_the_end(future: asyncio.Future[T]) -> T:
    """The outcome of ``future`` (its result, or its error raised), awaited through any
    cancellation, which is delivered again at the task's next await once it is settled."""
    cancelled = False
    try:
        while True:
            try:
                return await asyncio.shield(future)
            except asyncio.CancelledError:
                if future.cancelled():  # the future itself (its loop is shutting down)
                    raise
                cancelled = True
    finally:
        if cancelled:
            cancel_again()


_redelivering: set[asyncio.Task[object]] = set()
"""Tasks with a cancellation to deliver again at their next turn (one delivery each)."""


def cancel_again() -> None:
    """Deliver at the current task's next ``await`` a cancellation that a call let pass to
    finish its work, unless whoever asked for it has taken it back by then (its count of
    requests fell: a count that stayed up from a cancellation caught earlier is no request)."""
    task = asyncio.current_task()
    if task is None or task in _redelivering:
        return
    _redelivering.add(task)
    requested = task.cancelling()

    def again() -> None:
        _redelivering.discard(task)
        if requested and task.cancelling() >= requested and not task.done():
            task.uncancel()  # the request stands as made: one, not two
            task.cancel()

    asyncio.get_running_loop().call_soon(again)
