"""walrus for asyncio: :class:`AsyncWalrus`, the ``Walrus`` API as coroutines.

No call blocks the event loop:

- what takes microseconds in memory (an append into the mapping, a read served from the
  read-ahead, a query) runs on the loop, unless a lock it needs is held by another thread or
  the next segment is not ready: then it runs in the loop's default executor;
- under ``SyncEach`` an append (or a read that writes its cursor) is written on the loop,
  and its future is resolved on the loop once durable: one thread per instance waits for
  the group commit for all of them (an fsync covers every write made meanwhile);
- a waiting read registers a waker that resolves a future when an entry of its topic
  arrives: it holds no thread while it waits;
- opening, ``flush``, ``close`` and marking a topic run in the executor (they wait for
  fsyncs), as does every read of a read-only observer (it reads the writer's files).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from ._cancellation import off_loop, to_the_end
from ._config import Consistency, Schedule
from ._damage import Damage
from ._durability import Cue
from ._entry import Entry
from ._errors import StorageError, WalrusClosedError
from ._log import Payload
from ._retention import Retention
from ._topic_info import TopicInfo
from ._validate import check_topic
from ._wait import (
    NOW,
    FollowPlan,
    check_timeout,
    collected,
    deadline_of,
    left_until,
)
from ._walrus import Walrus

__all__ = ["AsyncWalrus"]

T = TypeVar("T")


SETTLE_AT_ONCE = 16
"""Futures resolved per turn of the loop: each wakes a task, and the loop runs every task
woken in one turn before anything else (a timer due, a socket ready), so resolving a hundred
at once would hold everything else back for a hundred tasks' steps."""

Settled = tuple["asyncio.Future[None]", BaseException | None]


class Settler:
    """Resolves futures of one loop from any thread: one call into the loop for all that
    arrive together (no wake-up of the loop per future), ``SETTLE_AT_ONCE`` per turn.

    ``push`` runs inside a writer's append (a waiting read's waker) or in the commit thread:
    it never raises (a loop closed meanwhile has nobody waiting).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: deque[Settled] = deque()
        self.scheduled = False
        """A drain is due on the loop (set before asking for one, cleared as it starts: a
        push seen by neither asks for another, which finds nothing to do at worst)."""

    def push(self, future: asyncio.Future[None], error: BaseException | None = None) -> None:
        self.queue.append((future, error))
        if not self.scheduled:
            self.scheduled = True
            try:
                self.loop.call_soon_threadsafe(self._drain)
            except RuntimeError:
                pass

    def _drain(self) -> None:
        self.scheduled = False
        queue = self.queue
        for _ in range(min(len(queue), SETTLE_AT_ONCE)):
            future, error = queue.popleft()
            if future.done():
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)
        if queue and not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self._drain)


class Committer:
    """The thread that waits for the group commit on behalf of an instance's coroutines.

    Each turn takes every LSN submitted so far and settles all their futures with one call
    into each loop. The first wait leads a sync pass (or shares one with other writers)
    that covers all of them, so the others return at once; but each is asked on its own,
    not only the highest: a pass that failed before this turn may have undone some (they
    raise) while writes made after it, higher up, are durable.
    """

    def __init__(self, wait: Callable[[int], None]) -> None:
        self._wait = wait
        self._queue: deque[tuple[int, asyncio.Future[None], Settler]] = deque()
        self._ready = Cue()
        """Given after each submit: releasing a lock, one C call (no Condition)."""
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="walrus-aio-commit",
                                        daemon=True)
        self._thread.start()

    def submit(self, lsn: int, settler: Settler) -> asyncio.Future[None]:
        """A future of ``settler``'s loop, resolved once the log is durable up to ``lsn``."""
        future: asyncio.Future[None] = settler.loop.create_future()
        self._queue.append((lsn, future, settler))  # deque.append: atomic
        self._ready.set()
        return future

    def stop(self) -> None:
        """Settle what was submitted, then end the thread (blocking: run it off the loop)."""
        self._stopping = True
        self._ready.set()
        self._thread.join()

    def _run(self) -> None:
        queue = self._queue
        while True:
            if not queue:
                if self._stopping:
                    return
                self._ready.wait()
                continue
            items = [queue.popleft() for _ in range(len(queue))]
            outcomes = [self._outcome(lsn) for lsn, _, _ in items]
            for (_, future, settler), outcome in zip(items, outcomes, strict=True):
                settler.push(future, outcome)

    def _outcome(self, lsn: int) -> BaseException | None:
        try:
            self._wait(lsn)
        except StorageError as exc:
            return exc
        return None


class AsyncWalrus:
    """A :class:`~walrus.Walrus` for asyncio: the same methods, as coroutines.

    ``AsyncWalrus(...)`` takes the keywords of ``Walrus(...)``; the directory is opened (off
    the loop) by ``async with AsyncWalrus(...) as wal:`` or ``await AsyncWalrus.open(...)``.
    ``follow`` is an async iterator: ``async for entry in wal.follow("orders"): ...``.
    """

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, **options: Any) -> None:
        self._open_with = (data_dir, options)
        self._wal: Walrus | None = None
        self._committer: Committer | None = None
        self._committer_lock = threading.Lock()
        self._settlers: dict[asyncio.AbstractEventLoop, Settler] = {}
        self._settlers_lock = threading.Lock()
        """Guards ``_settlers``: the loops of several threads may use one instance at once."""

    @classmethod
    async def open(cls, data_dir: str | os.PathLike[str] | None = None,
                   **options: Any) -> AsyncWalrus:
        """Open the directory (off the loop) and return the instance."""
        wal = cls(data_dir, **options)
        await wal._open()
        return wal

    @classmethod
    def wrapping(cls, wal: Walrus) -> AsyncWalrus:
        """An asyncio view of ``wal``, already open (closing the view closes ``wal``)."""
        view = cls()
        view._wal = wal
        return view

    async def _open(self) -> None:
        """Open the directory off the loop; an open that has begun is never cancelled
        halfway (the instance would hold the directory with nobody to close it)."""
        if self._wal is None:
            data_dir, options = self._open_with
            self._wal = await off_loop(partial(Walrus, data_dir, **options))

    async def __aenter__(self) -> AsyncWalrus:
        await self._open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    @property
    def wal(self) -> Walrus:
        """The blocking instance underneath (for code that runs off the loop)."""
        if self._wal is None:
            raise WalrusClosedError("this AsyncWalrus is not open yet (use `async with` or "
                                    "`await AsyncWalrus.open(...)`)")
        return self._wal

    # --- how a call runs -------------------------------------------------------------------------

    def _inline(self) -> bool:
        """Can a call run on the loop without blocking it? Not in an observer (it reads
        files), nor while another thread holds the append lock, nor when a roll would have to
        create the next segment (no spare is ready)."""
        wal = self.wal
        log = wal._log
        return not wal._read_only and not log.mutex.locked() and (
            log.spare is not None or log.closed)

    async def _call(self, call: Callable[[], T], *, inline: bool = True) -> T:
        """Run ``call`` on the loop when that cannot block it, else in the executor; under
        SyncEach, return once what it wrote is durable. A cancellation that comes once
        ``call`` has begun waits for all that and is delivered at the task's next await
        (see ``walrus._cancellation``): an entry read is never dropped on the way."""
        if inline and self._inline():
            result, noted, error = collected(call)
        else:
            result, noted, error = await off_loop(partial(collected, call))
        if noted:
            await to_the_end(self._durable(max(noted)))
        if error is not None:
            raise error
        return result  # type: ignore[return-value]

    def _durable(self, lsn: int) -> asyncio.Future[None]:
        """A future resolved once the log is durable up to ``lsn``."""
        committer = self._committer
        if committer is None:
            with self._committer_lock:
                if self._committer is None:
                    self._committer = Committer(self.wal._durability.wait)
                committer = self._committer
        return committer.submit(lsn, self._settler())

    def _settler(self) -> Settler:
        """The settler of the running loop (an instance may serve several loops in turn)."""
        loop = asyncio.get_running_loop()
        settler = self._settlers.get(loop)  # one dict look-up, atomic: no lock once made
        if settler is not None:
            return settler
        with self._settlers_lock:
            settler = self._settlers.get(loop)
            if settler is None:
                settler = self._settlers[loop] = Settler(loop)
                for old in [old for old in self._settlers if old.is_closed()]:
                    del self._settlers[old]
            return settler

    async def _waiting(self, attempt: Callable[[], T], topic: str, timeout: object, *,
                       inline: bool = True) -> T:
        """Try ``attempt`` until it returns something or ``timeout`` passes (see
        ``Waits.wait``); between tries, a future resolved by an append of ``topic``."""
        deadline = deadline_of(check_timeout(timeout))
        check_topic(topic)
        waits = self.wal._waits
        settler = self._settler()
        while True:
            woken: asyncio.Future[None] = settler.loop.create_future()
            waker = partial(settler.push, woken)
            waits.add(topic, waker)
            try:
                found = await self._call(attempt, inline=inline)
                left = left_until(deadline)
                if found or left == 0:
                    return found
                # not wait_for: on 3.11 it drops a cancellation that comes as woken resolves
                await asyncio.wait({woken}, timeout=left)  # then one more try
            finally:
                waits.remove(topic, waker)
            if waits.closed:
                raise WalrusClosedError()

    # --- the API ---------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._wal is None or self._wal.closed

    @property
    def read_only(self) -> bool:
        return self.wal.read_only

    @property
    def backend(self) -> str:
        return self.wal.backend

    @property
    def data_dir(self) -> Path:
        return self.wal.data_dir

    @property
    def consistency(self) -> Consistency:
        return self.wal.consistency

    @property
    def fsync_schedule(self) -> Schedule:
        return self.wal.fsync_schedule

    async def append_for_topic(self, topic: str, data: Payload) -> int:
        """``Walrus.append_for_topic``: the entry's offset, once durable per the schedule."""
        return await self._call(partial(self.wal.append_for_topic, topic, data))

    async def batch_append_for_topic(self, topic: str, entries: Sequence[Payload]) -> int:
        """``Walrus.batch_append_for_topic``: all or nothing."""
        return await self._call(partial(self.wal.batch_append_for_topic, topic, entries))

    async def read_next(self, topic: str, checkpoint: bool = True, *,
                        consumer: str | None = None,
                        timeout: float | None = 0) -> Entry | None:
        """``Walrus.read_next``; a waiting read (``timeout`` not 0) holds no thread. A named
        consumer's read runs off the loop (its position is a file's, synced per schedule)."""
        attempt = partial(self.wal.read_next, topic, checkpoint, consumer=consumer)
        if timeout is NOW:
            return await self._call(attempt, inline=consumer is None)
        return await self._waiting(attempt, topic, timeout, inline=consumer is None)

    async def batch_read_for_topic(self, topic: str, max_bytes: int, checkpoint: bool = True,
                                   start_offset: int | None = None, *,
                                   consumer: str | None = None,
                                   timeout: float | None = 0) -> list[Entry]:
        """``Walrus.batch_read_for_topic``; waiting as in :meth:`read_next`."""
        attempt = partial(self.wal.batch_read_for_topic, topic, max_bytes, checkpoint,
                          start_offset, consumer=consumer)
        if timeout is NOW:
            return await self._call(attempt, inline=consumer is None)
        return await self._waiting(attempt, topic, timeout, inline=consumer is None)

    def follow(self, topic: str, *, consumer: str | None = None,
               checkpoint: bool = True) -> AsyncIterator[Entry]:
        """``Walrus.follow`` as an async iterator; it ends when the instance is closed."""
        return self._follow(FollowPlan(topic, consumer, checkpoint))

    async def _follow(self, plan: FollowPlan) -> AsyncIterator[Entry]:
        try:
            while True:
                method, args, options = plan.call()
                for entry in plan.got(await getattr(self, method)(*args, **options)):
                    yield entry
        except WalrusClosedError as exc:
            if not plan.ended(self.closed, exc):
                raise

    async def flush(self) -> None:
        await self._call(self.wal.flush, inline=False)

    async def topics(self) -> list[str]:
        return await self._call(self.wal.topics)

    async def get_topic_entry_count(self, topic: str, *, consumer: str | None = None) -> int:
        return await self._call(partial(self.wal.get_topic_entry_count, topic,
                                        consumer=consumer), inline=consumer is None)

    async def consumers(self, topic: str) -> dict[str, int]:
        """``Walrus.consumers`` (it reads every consumer file: off the loop)."""
        return await self._call(partial(self.wal.consumers, topic), inline=False)

    async def seek(self, topic: str, offset: int, *, consumer: str | None = None) -> None:
        """``Walrus.seek``, off the loop (it takes the consumers' registry lock)."""
        await self._call(partial(self.wal.seek, topic, offset, consumer=consumer),
                         inline=False)

    async def delete_consumer(self, topic: str, consumer: str) -> None:
        """``Walrus.delete_consumer``, off the loop."""
        await self._call(partial(self.wal.delete_consumer, topic, consumer), inline=False)

    async def get_topic_entry_counts(self) -> dict[str, int]:
        return await self._call(self.wal.get_topic_entry_counts)

    async def get_topic_size(self, topic: str) -> int:
        return await self._call(partial(self.wal.get_topic_size, topic))

    async def topic_info(self, topic: str) -> TopicInfo:
        return await self._call(partial(self.wal.topic_info, topic))

    async def topic_is_clean(self, topic: str) -> bool:
        return await self._call(partial(self.wal.topic_is_clean, topic))

    async def mark_topic_clean(self, topic: str) -> None:
        await self._call(partial(self.wal.mark_topic_clean, topic), inline=False)

    async def mark_topic_dirty(self, topic: str) -> None:
        await self._call(partial(self.wal.mark_topic_dirty, topic), inline=False)

    async def set_retention(self, topic: str, *, max_age: float | timedelta | None = None,
                            max_bytes: int | None = None) -> None:
        """``Walrus.set_retention``, off the loop (the setting is synced before it returns)."""
        await self._call(partial(self.wal.set_retention, topic, max_age=max_age,
                                 max_bytes=max_bytes), inline=False)

    async def get_retention(self, topic: str) -> Retention:
        return await self._call(partial(self.wal.get_retention, topic))

    async def damage(self) -> list[Damage]:
        return await self._call(self.wal.damage)

    async def close(self) -> None:
        """Close the instance (off the loop); waiting reads raise WalrusClosedError and
        follows end. Idempotent."""
        wal = self._wal
        if wal is None:
            return
        await off_loop(self._close_now)

    def _close_now(self) -> None:
        """Close the instance, then stop the commit thread: one job, so that a cancellation
        never leaves the thread running with nobody to stop it."""
        assert self._wal is not None
        self._wal.close()
        with self._committer_lock:
            committer, self._committer = self._committer, None
        if committer is not None:
            committer.stop()

    def __repr__(self) -> str:
        return f"<AsyncWalrus {self._wal!r}>"
