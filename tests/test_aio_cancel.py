"""walrus.aio under cancellation: a call cancelled before it began has no effect; one
cancelled once it began completes, returns its result, and the task is cancelled at its next
await. Each call is held at a known point (it began, or it waits for durability) by a gate,
so the cancellation lands exactly there."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import walrus
from walrus import Entry, FsyncSchedule, Walrus
from walrus.aio import AsyncWalrus, Committer

from .test_aio import run, waiting_for
from .test_wait import HANG


class Gate:
    """Holds a call where it is wrapped: ``begun`` once it got there, ``go`` lets it on."""

    def __init__(self) -> None:
        self.begun = threading.Event()
        self.go = threading.Event()

    def wrap(self, call: Callable[..., Any]) -> Callable[..., Any]:
        def held(*args: Any, **kwargs: Any) -> Any:
            self.begun.set()
            assert self.go.wait(HANG)
            return call(*args, **kwargs)
        return held

    async def reached(self) -> None:
        assert await asyncio.to_thread(self.begun.wait, HANG), "the call never began"


def hold_durability(aw: AsyncWalrus, gate: Gate) -> None:
    """Hold every wait of ``aw``'s coroutines for durability at ``gate``."""
    old, aw._committer = aw._committer, Committer(gate.wrap(aw.wal._durability.wait))
    if old is not None:
        old.stop()


async def delivered_then_cancelled(call: Callable[[], Awaitable[Any]],
                                   gate: Gate) -> list[Any]:
    """Cancel a task while ``call`` is held by ``gate``, then let it on: what the task got
    from it (it must then be cancelled at its next await)."""
    got: list[Any] = []

    async def task_body() -> None:
        got.append(await call())
        await asyncio.sleep(HANG)  # the cancellation lands here
        got.append("never cancelled")

    await cancelled_while_held(asyncio.ensure_future(task_body()), gate)
    return got


async def cancelled_while_held(task: asyncio.Future[Any], gate: Gate) -> None:
    """Cancel ``task`` once its call reached ``gate``, let the call on, and check that the
    task ends cancelled."""
    await gate.reached()
    task.cancel()
    await asyncio.sleep(0.01)  # the cancellation reaches the task while the call is held
    gate.go.set()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_a_named_read_cancelled_once_begun_delivers_its_entry(tmp_path: Path) -> None:
    """A named consumer's read runs in the executor; before, cancelling the task dropped
    the entry it had taken from the consumer."""
    async def main() -> None:
        async with AsyncWalrus(tmp_path / "wal") as aw:
            await aw.batch_append_for_topic("t", [b"e0", b"e1"])
            gate = Gate()
            wal = aw.wal
            wal.read_next = gate.wrap(wal.read_next)  # type: ignore[method-assign]
            got = await delivered_then_cancelled(
                lambda: aw.read_next("t", consumer="c"), gate)
            assert got == [Entry(b"e0", 0, "t")]
            assert await aw.read_next("t", consumer="c") == Entry(b"e1", 1, "t")

    run(main)


def test_a_batch_read_cancelled_once_begun_delivers_its_entries(tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncWalrus(tmp_path / "wal") as aw:
            await aw.batch_append_for_topic("t", [b"%d" % i for i in range(50)])
            gate = Gate()
            wal = aw.wal
            wal.batch_read_for_topic = gate.wrap(  # type: ignore[method-assign]
                wal.batch_read_for_topic)
            got = await delivered_then_cancelled(
                lambda: aw.batch_read_for_topic("t", 1 << 20, consumer="c"), gate)
            assert [e.offset for e in got[0]] == list(range(50))
            await aw.append_for_topic("t", b"50")
            assert await aw.read_next("t", consumer="c") == Entry(b"50", 50, "t")

    run(main)


def test_a_shared_read_cancelled_while_it_waits_for_the_append_lock_delivers_its_entry(
        tmp_path: Path) -> None:
    """With the append lock held by another thread the read runs in the executor, where it
    waits for the lock to write its cursor record."""
    async def main() -> None:
        async with AsyncWalrus(tmp_path / "wal") as aw:
            await aw.batch_append_for_topic("t", [b"e0", b"e1"])
            gate = Gate()
            wal = aw.wal
            mutex = wal._log.mutex
            mutex.acquire()
            try:
                wal.read_next = gate.wrap(wal.read_next)  # type: ignore[method-assign]
                task = asyncio.ensure_future(delivered_then_cancelled(
                    lambda: aw.read_next("t"), gate))
                await gate.reached()
            finally:
                mutex.release()
            assert await task == [Entry(b"e0", 0, "t")]
            assert await aw.read_next("t") == Entry(b"e1", 1, "t")

    run(main)


def test_a_read_cancelled_while_its_cursor_is_made_durable_delivers_its_entry(
        tmp_path: Path) -> None:
    """Under SyncEach a consuming read returns once its cursor is durable: a cancellation in
    that wait used to drop the entry it had consumed."""
    async def main() -> None:
        async with AsyncWalrus(tmp_path / "wal", fsync_schedule=FsyncSchedule.SyncEach) as aw:
            await aw.batch_append_for_topic("t", [b"e0", b"e1"])
            gate = Gate()
            hold_durability(aw, gate)
            got = await delivered_then_cancelled(lambda: aw.read_next("t"), gate)
            assert got == [Entry(b"e0", 0, "t")]
            assert await aw.read_next("t") == Entry(b"e1", 1, "t")

    run(main)


def test_an_append_cancelled_while_it_is_made_durable_returns_its_offset(
        tmp_path: Path) -> None:
    """Its caller learns the offset, so it never makes the append again."""
    async def main() -> None:
        async with AsyncWalrus(tmp_path / "wal", fsync_schedule=FsyncSchedule.SyncEach) as aw:
            gate = Gate()
            hold_durability(aw, gate)
            got = await delivered_then_cancelled(lambda: aw.append_for_topic("t", b"x"), gate)
            assert got == [0]
            assert await aw.get_topic_entry_count("t") == 1

    run(main)


def test_a_read_cancelled_before_it_began_takes_nothing(tmp_path: Path) -> None:
    """The executor's only thread is busy, so the read has not begun when it is cancelled:
    it never runs, and the entry stays for the next read."""
    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(1))
        async with AsyncWalrus(tmp_path / "wal") as aw:
            await aw.append_for_topic("t", b"e0")
            busy = threading.Event()
            occupied = loop.run_in_executor(None, busy.wait, HANG)
            task = asyncio.ensure_future(aw.read_next("t", consumer="c"))
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            busy.set()
            await occupied
            assert await aw.read_next("t", consumer="c") == Entry(b"e0", 0, "t")

    run(main)


def test_a_timeout_that_lands_once_the_read_began_gives_the_entry_and_no_cancellation(
        tmp_path: Path) -> None:
    """``asyncio.timeout`` takes its cancellation back when the read ends with an entry: the
    entry is returned, and nothing cancels the task afterwards."""
    async def main() -> None:
        async with AsyncWalrus(tmp_path / "wal") as aw:
            await aw.append_for_topic("t", b"e0")
            gate = Gate()
            wal = aw.wal
            wal.read_next = gate.wrap(wal.read_next)  # type: ignore[method-assign]
            threading.Timer(0.2, gate.go.set).start()
            async with asyncio.timeout(0.05):
                entry = await aw.read_next("t", consumer="c")
            assert entry == Entry(b"e0", 0, "t")
            await asyncio.sleep(0.05)  # no cancellation left over
            assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]

    run(main)


def test_an_open_cancelled_once_begun_is_closed_again(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, the instance the cancelled open made held the directory for good."""
    gate = Gate()
    monkeypatch.setattr(walrus.aio, "Walrus", gate.wrap(Walrus))

    async def main() -> None:
        async def use() -> None:
            async with AsyncWalrus(tmp_path / "wal"):
                await asyncio.sleep(HANG)

        await cancelled_while_held(asyncio.ensure_future(use()), gate)

    run(main)
    with Walrus(tmp_path / "wal") as again:  # not held by anybody
        assert again.topics() == []


def test_one_instance_on_many_loops_at_once(tmp_path: Path) -> None:
    """Threads each running event loops on one instance: its table of loops is shared.
    A tiny switch interval makes the threads interleave inside it (before: "dictionary
    changed size during iteration", or a KeyError, in about one run of 1,200 in three)."""
    aw = AsyncWalrus.wrapping(Walrus(tmp_path / "wal"))
    errors: list[BaseException] = []

    def loops(k: int) -> None:
        async def wait_a_moment() -> None:
            await aw.read_next(f"t{k}", timeout=0.0)

        for _ in range(600):
            try:
                asyncio.run(wait_a_moment())
            except BaseException as exc:
                errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=loops, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
        aw.wal.close()
    assert errors == []


@pytest.mark.parametrize("where", ["open", "durability"])
def test_a_call_cancelled_once_begun_that_then_fails_still_cancels_the_task(
        tmp_path: Path, where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The call's error is raised, and the task is cancelled at its next await all the same:
    a loop that retries on the error can still be cancelled (before, the cancellation was
    lost when the call it had waited for failed)."""
    async def main() -> None:
        schedule = FsyncSchedule.SyncEach if where == "durability" else FsyncSchedule.NoFsync
        async with AsyncWalrus(tmp_path / "wal", fsync_schedule=schedule) as aw:
            gate = Gate()

            def fails(*args: Any, **kwargs: Any) -> Any:
                raise walrus.StorageError(5, "the disk failed")

            if where == "durability":
                hold_durability(aw, gate)
                aw._committer._wait = gate.wrap(fails)  # type: ignore[union-attr]

                def call() -> Awaitable[Any]:
                    return aw.append_for_topic("t", b"x")
            else:  # an open that finds the directory locked, say
                monkeypatch.setattr(walrus.aio, "Walrus", gate.wrap(fails))

                def call() -> Awaitable[Any]:
                    return AsyncWalrus.open(tmp_path / "other")
            errors: list[BaseException] = []

            async def retrying() -> None:
                while True:
                    try:
                        await call()
                    except walrus.StorageError as exc:
                        errors.append(exc)
                    await asyncio.sleep(0.01)  # the cancellation lands here

            await cancelled_while_held(asyncio.ensure_future(retrying()), gate)
            assert len(errors) == 1

    run(main)


def test_a_waiting_read_cancelled_as_its_entry_arrives_is_cancelled(tmp_path: Path) -> None:
    """The append wakes the waiting read and the task is cancelled before it runs again: the
    cancellation wins, and the entry stays for the next read (before, the read went on and
    returned it, and the cancellation was lost)."""
    async def main() -> None:
        async with AsyncWalrus(tmp_path / "wal") as aw:
            task = asyncio.ensure_future(aw.read_next("t", timeout=HANG))
            await waiting_for(aw, "t")
            aw.wal.append_for_topic("t", b"a")  # on the loop's thread: no turn of the loop
            await asyncio.sleep(0)  # the turn that settles the wake-up
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await aw.read_next("t") == Entry(b"a", 0, "t")

    run(main)


def test_a_call_cancelled_once_begun_waits_without_spinning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While the begun call runs on, the task waits: the cancellation is delivered again
    once, after the call (before, it was delivered again at every turn of the loop, each
    cancelling the wait for the call: the loop spun at full speed until the call ended)."""
    from walrus import _cancellation

    redeliveries: list[int] = []
    real = _cancellation.cancel_again

    def counted() -> None:
        redeliveries.append(1)
        real()

    monkeypatch.setattr(_cancellation, "cancel_again", counted)

    async def main() -> None:
        async with AsyncWalrus(tmp_path / "wal") as aw:
            gate = Gate()
            aw.wal.flush = gate.wrap(aw.wal.flush)  # type: ignore[method-assign]
            task = asyncio.ensure_future(aw.flush())
            await gate.reached()
            task.cancel()
            await asyncio.sleep(0.3)  # the call is held meanwhile
            gate.go.set()
            await asyncio.gather(task, return_exceptions=True)
            assert len(redeliveries) <= 2

    run(main)


def test_a_cancellation_caught_earlier_is_not_delivered_again(tmp_path: Path) -> None:
    """A task that caught a cancellation keeps a count of one request on Python 3.11; a
    timeout that fires while a begun call runs on, and takes its request back, must not be
    turned into a cancellation of that task by the count left over."""
    async def main() -> None:
        async with AsyncWalrus(tmp_path / "wal") as aw:
            gate = Gate()
            aw.wal.flush = gate.wrap(aw.wal.flush)  # type: ignore[method-assign]
            steps: list[str] = []

            async def worker() -> None:
                try:
                    await asyncio.sleep(HANG)
                except asyncio.CancelledError:
                    steps.append("caught")  # and carries on: the count stays at one
                threading.Timer(0.2, gate.go.set).start()
                async with asyncio.timeout(0.05):
                    await aw.flush()  # begun, then the timeout fires; it ends after
                await asyncio.sleep(0.05)
                steps.append("finished")

            task = asyncio.ensure_future(worker())
            await asyncio.sleep(0.01)
            task.cancel()
            await task
            assert steps == ["caught", "finished"]

    run(main)


def test_a_close_cancelled_once_begun_stops_the_commit_thread(tmp_path: Path) -> None:
    def committing() -> int:
        return sum(t.name == "walrus-aio-commit" for t in threading.enumerate())

    async def main() -> None:
        aw = await AsyncWalrus.open(tmp_path / "wal", fsync_schedule=FsyncSchedule.SyncEach)
        await aw.append_for_topic("t", b"x")  # the commit thread runs from the first one
        assert committing() == 1
        gate = Gate()
        aw.wal.close = gate.wrap(aw.wal.close)  # type: ignore[method-assign]
        task = asyncio.ensure_future(aw.close())
        await gate.reached()
        task.cancel()
        await asyncio.sleep(0.01)
        gate.go.set()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0.05)
        assert aw.closed and committing() == 0

    run(main)
