"""Waiting reads: who waits for which topic, and what wakes them.

A waiting read registers a *waker* (a callable) for its topic **before** each attempt to
read, and sleeps only if the attempt found nothing. Whatever makes an entry of that topic
readable afterwards calls the waker, so no entry can slip between the attempt and the sleep,
and the wait does not need to know which cursor the read moves (the shared one, a named
consumer, a ``start_offset``): it just tries again.

What calls the wakers:

- in a writer, the log, at the point where an entry becomes visible to readers (an append,
  or under ``SyncEach`` the sync pass that made it durable). The log holds one hook,
  ``None`` while nobody waits, so an append pays one attribute check for all this.
- in a read-only observer, a :class:`Watcher` thread that follows the writer's files while
  anybody waits (polling with backoff: a writer's stores into its shared mapping raise no
  file-system event that inotify could report).
- ``close()``: every waker, once; the waiters then raise ``WalrusClosedError``.

A thread waits on a :class:`~walrus._durability.Cue` of its own; an asyncio task's waker
resolves a future on its loop, so a waiting task holds no thread.

Deferring durability: under ``SyncEach`` an append (or a consuming read that writes a
cursor) returns only once durable. The asyncio API must not block its loop on that fsync, so
it calls the same methods through :func:`collected`, which makes the wait a note of the
LSN to wait for; it then waits for that LSN off the loop (see ``walrus.aio``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

from ._durability import Cue
from ._errors import InvalidArgumentError, WalrusClosedError, WalrusForkedError
from ._validate import check_topic, not_a_bool

if TYPE_CHECKING:
    from ._entry import Entry
    from ._log import Log
    from ._topics import Topic
    from ._walrus import Walrus

T = TypeVar("T")
Waker = Callable[[], None]

NOW = 0
FOLLOW_BYTES = 1 << 20
"""What a peeking ``follow`` reads at a time."""
"""The default timeout (do not wait). The hot paths test ``timeout is not NOW``: one identity
check, and every other value (0.0, a bad one) takes the path that checks it."""


def check_timeout(timeout: object) -> float | None:
    """The timeout as seconds (None: for ever); InvalidArgumentError for anything else than
    None or a number >= 0 (a bool is not a number here). A timeout longer than a thread can
    wait at once (``threading.TIMEOUT_MAX``, about 292 years) is for ever too."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise InvalidArgumentError(
            f"timeout must be a number of seconds >= 0 or None, not {type(timeout).__name__}")
    if timeout != timeout or timeout < 0:  # NaN; an int too large for a float compares too
        raise InvalidArgumentError(f"timeout must be >= 0 seconds or None, got {timeout!r}")
    return None if timeout > threading.TIMEOUT_MAX else float(timeout)


def deadline_of(timeout: float | None) -> float | None:
    """The monotonic time a wait of ``timeout`` seconds ends (None: never)."""
    return None if timeout is None else time.monotonic() + timeout


def left_until(deadline: float | None) -> float | None:
    """Seconds left until ``deadline`` (None: for ever; never negative)."""
    return None if deadline is None else max(0.0, deadline - time.monotonic())


class Waits:
    """The waiters of one instance, by topic name (a topic may not exist yet).

    ``_lock`` guards the table. The log calls :meth:`wake` after an append, outside its
    append lock (a sync pass publishing SyncEach writes calls it under that lock, so the order
    is the append lock, then ``_lock``); nothing here takes the append lock.
    """

    def __init__(self, log: Log, watcher: Watcher | None = None) -> None:
        self._log = log
        self._lock = threading.Lock()
        self._by_name: dict[str, list[Waker]] = {}
        self._watcher = watcher
        if watcher is not None:
            watcher.attach(self)
        self.closed = False

    def add(self, name: str, waker: Waker) -> None:
        """Call ``waker`` once when an entry of topic ``name`` may have become readable (or
        on close). Raises WalrusClosedError once closed."""
        with self._lock:
            if self.closed:
                raise WalrusClosedError()
            first = not self._by_name
            self._by_name.setdefault(name, []).append(waker)
            if first:
                self._log.watch_visible(self.wake)
        if first and self._watcher is not None:
            self._watcher.kick()

    def remove(self, name: str, waker: Waker) -> None:
        """Forget ``waker`` (it may have been called and forgotten already)."""
        with self._lock:
            wakers = self._by_name.get(name)
            if wakers is None or waker not in wakers:
                return
            wakers.remove(waker)
            if not wakers:
                del self._by_name[name]
                if not self._by_name:
                    self._log.watch_visible(None)

    def names(self) -> list[str]:
        """The topics somebody waits for now."""
        with self._lock:
            return list(self._by_name)

    def count(self, name: str) -> int:
        """How many wait for topic ``name`` now."""
        with self._lock:
            return len(self._by_name.get(name, ()))

    def waiting(self) -> bool:
        return bool(self._by_name)

    def wake(self, t: Topic) -> None:
        """Entries of ``t`` became readable: call (and forget) its wakers.

        A topic nobody waits for costs one dictionary look-up, without the lock: a waiter
        registers before it tries to read, and the writer calls this after its entries became
        visible, so a waiter missing here tries after they did and finds them."""
        if t.name in self._by_name:
            self.wake_name(t.name)

    def wake_name(self, name: str) -> None:
        """Call (and forget) the wakers of topic ``name``: every one, even if one before it
        raised (the first exception is raised once all were called)."""
        with self._lock:
            wakers = self._by_name.pop(name, None)
            if wakers is None:
                return
            if not self._by_name:
                self._log.watch_visible(None)
        error: BaseException | None = None
        for waker in wakers:
            try:
                waker()
            except BaseException as exc:  # raised below, after the others
                error = error or exc
        if error is not None:
            raise error

    def shut(self) -> None:
        """Closing: refuse new waiters and wake every one (they raise WalrusClosedError)."""
        with self._lock:
            self.closed = True
            everyone = [w for wakers in self._by_name.values() for w in wakers]
            self._by_name.clear()
            self._log.watch_visible(None)
        for waker in everyone:
            waker()
        if self._watcher is not None:
            self._watcher.stop()

    def disown(self) -> None:
        """In a forked child: nobody waits here (the parent's threads were not copied), and
        the lock may have been held by one of them at the fork."""
        self._lock = threading.Lock()
        self._by_name = {}
        self.closed = True

    def wait(self, attempt: Callable[[], T], name: str, timeout: object) -> T:
        """Call ``attempt`` until it returns something (a true value) or ``timeout`` passes;
        then return its last result. ``attempt`` must validate its own arguments, and do
        nothing when it returns a false value."""
        deadline = deadline_of(check_timeout(timeout))
        check_topic(name)
        cue = Cue()
        while True:
            cue.clear()
            self.add(name, cue.set)
            try:
                found = attempt()
                if found:
                    return found
                left = left_until(deadline)
                if left == 0:
                    return found
                cue.wait(-1 if left is None else left)
            finally:
                self.remove(name, cue.set)
            if self.closed:
                raise WalrusClosedError()


class Watcher:
    """Follows a live writer's files while anybody waits in a read-only observer.

    ``probe`` returns the bytes where the writer's next write will land (None: unknown, so
    look); while they stay the same nothing was added. When they change (or every
    ``RELOOK`` seconds in any case: a roll that found no room for its SEAL changes nothing
    there), ``look`` picks up what the writer added (the observer's refresh, which wakes the
    waiters of every topic that grew, and says whether anything changed). Probes come
    ``FAST`` seconds after one that found something, then twice as far apart each time up to
    ``SLOW``, and ``QUIET`` apart once the writer wrote nothing for ``QUIET_AFTER`` seconds:
    an observer of a busy writer sees each entry within a few milliseconds, and one that
    waits in vain costs ``1 / QUIET`` cheap probes a second (each wake-up of a sleeping
    thread costs tens of microseconds of CPU on a virtual machine, so that is what keeps
    idle waiting cheap). The thread ends when nobody waits.
    """

    FAST = 0.001
    SLOW = 0.010
    QUIET = 0.050
    QUIET_AFTER = 5.0
    RELOOK = 1.0

    def __init__(self, look: Callable[[], bool], probe: Callable[[], bytes | None]) -> None:
        self._look = look
        self._probe = probe
        self._waits: Waits | None = None
        self._cue = Cue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopping = False
        self._seen: bytes | None = None
        """What the last probe found (kept across the thread's restarts, as is ``_changed``:
        a restart after a quiet spell stays at the quiet pace instead of probing fast again
        for ``QUIET_AFTER`` seconds)."""
        self._changed = time.monotonic()
        """When a probe last found something new."""

    def attach(self, waits: Waits) -> None:
        self._waits = waits

    def kick(self) -> None:
        """Somebody waits now: make sure the thread runs."""
        with self._lock:
            if self._stopping or (self._thread is not None and self._thread.is_alive()):
                return
            self._thread = threading.Thread(target=self._run, name="walrus-watch", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Closing: the thread ends at its next turn (not joined: it may be waiting for the
        lock that ``close()`` holds, and a closed instance refuses its look anyway)."""
        self._stopping = True
        self._cue.set()

    def _run(self) -> None:
        waits = self._waits
        assert waits is not None
        pause = self.FAST
        looked = 0.0  # look once at the start: the observer may not have looked for long
        while not self._stopping:
            names = waits.names()
            if not names:
                with self._lock:  # a waiter that arrives now finds no thread and starts one
                    if not waits.waiting():
                        self._thread = None
                        return
                continue
            try:
                now = self._probe()
            except Exception:  # a segment let go meanwhile: look
                now = None
            found = False
            if now != self._seen:
                self._changed = time.monotonic()
            if now is None or now != self._seen or time.monotonic() - looked >= self.RELOOK:
                self._seen = now
                try:
                    found = self._look()
                except WalrusClosedError:
                    return
                except Exception:  # a failing look: the waiters' own reads will report it
                    pass
                looked = time.monotonic()
            pause = (self.FAST if found else min(pause * 2, self.SLOW)
                     if time.monotonic() - self._changed < self.QUIET_AFTER else self.QUIET)
            self._cue.wait(pause)


def follow_topic(wal: Walrus, topic: str, consumer: str | None,
                 checkpoint: bool) -> Iterator[Entry]:
    """``Walrus.follow``: the arguments are checked now, the entries read as they are asked
    for."""
    return _follow(wal, FollowPlan(topic, consumer, checkpoint))


def _follow(wal: Walrus, plan: FollowPlan) -> Iterator[Entry]:
    try:
        while True:
            method, args, options = plan.call()
            yield from plan.got(getattr(wal, method)(*args, **options))
    except WalrusClosedError as exc:
        if not plan.ended(wal.closed, exc):
            raise


class FollowPlan:
    """What a follow reads next, for the blocking and the asyncio API alike.

    A consuming follow reads one entry at a time, so an iteration the caller stops consumes
    nothing it did not yield; a peeking one finds the cursor's entry, then reads on from it
    in batches (``start_offset``), moving nothing.
    """

    def __init__(self, topic: str, consumer: str | None, checkpoint: bool) -> None:
        check_topic(topic)
        if checkpoint is not True and checkpoint is not False:
            raise not_a_bool("checkpoint", checkpoint)
        self.topic = topic
        self.checkpoint = checkpoint
        self.named: dict[str, object] = {} if consumer is None else {"consumer": consumer}
        self.at: int | None = None
        """A peeking follow's next offset, once known."""

    def call(self) -> tuple[str, tuple[object, ...], dict[str, object]]:
        """The next read: (method name, positional arguments, keywords)."""
        if self.at is None:
            return "read_next", (self.topic, self.checkpoint), {"timeout": None, **self.named}
        return ("batch_read_for_topic", (self.topic, FOLLOW_BYTES, False, self.at),
                {"timeout": None})

    def got(self, result: Entry | list[Entry] | None) -> list[Entry]:
        """The entries that read returned, to yield in order."""
        entries = result if isinstance(result, list) else [] if result is None else [result]
        if entries and not self.checkpoint:
            self.at = entries[-1].offset + 1
        return entries

    @staticmethod
    def ended(closed: bool, exc: WalrusClosedError) -> bool:
        """A follow ends when its instance was closed (not when a fork inherited it)."""
        return closed and not isinstance(exc, WalrusForkedError)


class _Noted(threading.local):
    """Per thread: the LSNs :func:`collected` defers (None: wait at once). A class default,
    so a thread that never set it reads None without raising and catching an
    AttributeError (which formats a message: a few thousand instructions per durable
    append)."""

    noted: list[int] | None = None


_local = _Noted()


def deferrable(wait: Callable[[int], None]) -> Callable[[int], None]:
    """``wait`` (return once the log is durable up to an LSN), unless the calling thread is
    inside :func:`collected`: then the LSN is noted instead, for the caller to wait
    for later."""

    def wait_or_note(lsn: int) -> None:
        noted = _local.noted
        if noted is None:
            wait(lsn)
        else:
            noted.append(lsn)

    return wait_or_note


def collected(call: Callable[[], T]) -> tuple[T | None, list[int], BaseException | None]:
    """Run ``call`` with this thread's SyncEach waits deferred: (its result, the LSNs it
    would have waited for, the error it raised). An error is returned, not raised, so that
    the caller raises it once what the call wrote is durable (as the call itself would)."""
    noted: list[int] = []
    outer = _local.noted
    _local.noted = noted
    try:
        return call(), noted, None
    except BaseException as exc:
        return None, noted, exc
    finally:
        _local.noted = outer
