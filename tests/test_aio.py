"""walrus.aio.AsyncWalrus: the API as coroutines, waiting reads that hold no thread, SyncEach
writes that resolve on the loop, follow as an async iterator, close waking the waiters.

Each test runs its own loop with ``asyncio.run``; bounds (``HANG``) only guard against a
hang, nothing is timed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

import walrus
from walrus import Entry, FsyncSchedule, ReadConsistency, Walrus
from walrus.aio import AsyncWalrus

from .test_wait import HANG

InvalidArgumentError = walrus.InvalidArgumentError
WalrusClosedError = walrus.WalrusClosedError
T = TypeVar("T")

SCHEDULES = {"no-fsync": FsyncSchedule.NoFsync, "sync-each": FsyncSchedule.SyncEach,
             "ms": FsyncSchedule.Milliseconds(1000)}


@pytest.fixture(params=sorted(SCHEDULES))
def schedule(request: pytest.FixtureRequest) -> Any:
    return SCHEDULES[request.param]


def run(test: Callable[[], Awaitable[T]]) -> T:
    async def guarded() -> T:
        return await asyncio.wait_for(test(), HANG)
    return asyncio.run(guarded())


async def waiting_for(wal: AsyncWalrus, topic: str, count: int = 1) -> None:
    """Return once ``count`` tasks wait for ``topic`` (they registered their wakers)."""
    while wal.wal._waits.count(topic) < count:
        await asyncio.sleep(0.001)


def test_the_api_as_coroutines(tmp_path: Path, backend: str, schedule: Any) -> None:
    async def main() -> None:
        async with AsyncWalrus(tmp_path / "wal", backend=backend,
                               fsync_schedule=schedule) as wal:
            assert await wal.append_for_topic("t", b"a") == 0
            assert await wal.batch_append_for_topic("t", [b"b", b"c"]) == 1
            assert await wal.topics() == ["t"]
            assert await wal.get_topic_entry_count("t") == 3
            assert await wal.get_topic_entry_counts() == {"t": 3}
            assert await wal.get_topic_size("t") > 0
            assert await wal.read_next("t") == Entry(b"a", 0, "t")
            assert await wal.read_next("t", checkpoint=False) == Entry(b"b", 1, "t")
            assert await wal.batch_read_for_topic("t", 100) == [Entry(b"b", 1, "t"),
                                                                Entry(b"c", 2, "t")]
            assert await wal.read_next("t") is None
            assert await wal.batch_read_for_topic("t", 100, False, 0) == [
                Entry(b"a", 0, "t"), Entry(b"b", 1, "t"), Entry(b"c", 2, "t")]
            await wal.mark_topic_clean("t")
            assert await wal.topic_is_clean("t")
            await wal.mark_topic_dirty("t")
            assert not await wal.topic_is_clean("t")
            assert (await wal.topic_info("t")).topic == "t"
            assert await wal.damage() == []
            await wal.flush()
            assert wal.backend == backend
            assert wal.data_dir == tmp_path / "wal"
            assert wal.fsync_schedule == schedule
            assert wal.consistency == ReadConsistency.StrictlyAtOnce
            assert not wal.read_only
        assert wal.closed
        await wal.close()  # idempotent
        with pytest.raises(WalrusClosedError):
            await wal.append_for_topic("t", b"late")

    run(main)
    with Walrus(tmp_path / "wal") as again:  # what it wrote and consumed survived
        assert again.read_next("t", checkpoint=False) is None
        assert again.get_topic_entry_count("t") == 0


def test_open_classmethod_and_errors(tmp_path: Path) -> None:
    async def main() -> None:
        wal = await AsyncWalrus.open(tmp_path / "wal")
        try:
            with pytest.raises(walrus.InvalidTopicError):
                await wal.append_for_topic("", b"x")
            with pytest.raises(InvalidArgumentError, match="timeout"):
                await wal.read_next("t", timeout=-1)
            with pytest.raises(InvalidArgumentError, match="timeout"):
                await wal.batch_read_for_topic("t", 10, timeout=float("nan"))
            with pytest.raises(InvalidArgumentError, match="timeout"):
                await wal.read_next("t", timeout="5")  # type: ignore[arg-type]
            assert not wal.wal._waits.waiting()
        finally:
            await wal.close()
        with pytest.raises(WalrusClosedError):
            AsyncWalrus(tmp_path / "wal").wal  # noqa: B018  (not opened)

    run(main)


def test_a_waiting_read_is_woken_by_an_append(tmp_path: Path, schedule: Any) -> None:
    async def main() -> None:
        async with AsyncWalrus(tmp_path / "wal", fsync_schedule=schedule) as wal:
            assert await wal.read_next("t", timeout=0.01) is None
            reader = asyncio.ensure_future(wal.read_next("t", timeout=None))
            batch = asyncio.ensure_future(
                wal.batch_read_for_topic("u", 100, checkpoint=False, timeout=HANG * 10))
            await waiting_for(wal, "t")
            await waiting_for(wal, "u")
            await wal.append_for_topic("t", b"x")
            assert await reader == Entry(b"x", 0, "t")
            assert not batch.done()  # another topic's append did not end its wait
            await wal.append_for_topic("u", b"y")
            assert await batch == [Entry(b"y", 0, "u")]

    run(main)


def test_a_waiting_read_holds_no_thread(tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncWalrus(tmp_path / "wal") as wal:
            before = threading.active_count()
            readers = [asyncio.ensure_future(wal.read_next(f"t{i}", timeout=None))
                       for i in range(50)]
            for i in range(50):
                await waiting_for(wal, f"t{i}")
            assert threading.active_count() - before < 50  # not a thread each
            for i in range(50):
                await wal.append_for_topic(f"t{i}", b"%d" % i)
            assert [e and e.data for e in await asyncio.gather(*readers)] == [
                b"%d" % i for i in range(50)]

    run(main)


def test_an_append_from_another_thread_wakes_a_waiting_task(tmp_path: Path,
                                                            schedule: Any) -> None:
    async def main() -> None:
        async with AsyncWalrus(tmp_path / "wal", fsync_schedule=schedule) as wal:
            reader = asyncio.ensure_future(wal.read_next("t", timeout=None))
            await waiting_for(wal, "t")
            await asyncio.to_thread(wal.wal.append_for_topic, "t", b"from a thread")
            assert await reader == Entry(b"from a thread", 0, "t")

    run(main)


def test_close_wakes_waiting_tasks_and_ends_follows(tmp_path: Path) -> None:
    async def main() -> None:
        wal = await AsyncWalrus.open(tmp_path / "wal")
        reader = asyncio.ensure_future(wal.read_next("t", timeout=None))
        got: list[Entry] = []

        async def follow() -> None:
            async for entry in wal.follow("f"):
                got.append(entry)

        follower = asyncio.ensure_future(follow())
        await waiting_for(wal, "t")
        await waiting_for(wal, "f")
        await wal.append_for_topic("f", b"1")
        while not got:  # the follower has it (then it waits again, or is about to)
            await asyncio.sleep(0.001)
        await wal.close()
        with pytest.raises(WalrusClosedError):
            await reader
        await follower  # ended without raising
        assert got == [Entry(b"1", 0, "f")]

    run(main)


def test_a_timed_out_wait_returns_nothing_and_forgets_its_waker(tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncWalrus(tmp_path / "wal") as wal:
            assert await wal.batch_read_for_topic("t", 100, timeout=0.01) == []
            assert not wal.wal._waits.waiting()
            task = asyncio.ensure_future(wal.read_next("t", timeout=None))
            await waiting_for(wal, "t")
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert not wal.wal._waits.waiting()

    run(main)


def test_many_tasks_append_under_sync_each_and_all_is_durable(tmp_path: Path) -> None:
    async def main() -> list[int]:
        async with AsyncWalrus(tmp_path / "wal", fsync_schedule=FsyncSchedule.SyncEach) as wal:
            offsets = await asyncio.gather(*(wal.append_for_topic("t", b"%d" % i)
                                             for i in range(300)))
            # Each resolved once durable: the log's durable point covers every one.
            log = wal.wal._log
            assert log.durable >= max(t.lsns[-1] for t in log.by_tid.values())
            return offsets

    assert sorted(run(main)) == list(range(300))
    with Walrus(tmp_path / "wal") as again:
        assert again.get_topic_entry_count("t") == 300


def test_consuming_reads_under_sync_each_resolve_once_the_cursor_is_durable(
        tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncWalrus(tmp_path / "wal", fsync_schedule=FsyncSchedule.SyncEach) as wal:
            await wal.batch_append_for_topic("t", [b"a", b"b"])
            entry = await wal.read_next("t")
            assert entry == Entry(b"a", 0, "t")
            log = wal.wal._log
            assert log.durable >= log.active.lsn_base | log.active.end  # type: ignore[union-attr]

    run(main)


def test_a_peeking_follow_and_a_consuming_one(tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncWalrus(tmp_path / "wal",
                               consistency=ReadConsistency.AtLeastOnce(2)) as wal:
            await wal.batch_append_for_topic("t", [b"0", b"1"])
            peek = wal.follow("t", checkpoint=False)
            assert [await anext(peek), await anext(peek)] == [Entry(b"0", 0, "t"),
                                                             Entry(b"1", 1, "t")]
            later = asyncio.ensure_future(anext(peek))
            await waiting_for(wal, "t")
            await wal.append_for_topic("t", b"2")
            assert await later == Entry(b"2", 2, "t")
            assert await wal.get_topic_entry_count("t") == 3
            consume = wal.follow("t")
            assert [(await anext(consume)).data for _ in range(3)] == [b"0", b"1", b"2"]
            assert await wal.get_topic_entry_count("t") == 0
        with pytest.raises(walrus.InvalidTopicError):
            wal.follow("")

    run(main)


def test_an_observer_waits_without_blocking_its_loop(tmp_path: Path) -> None:
    writer = Walrus(tmp_path / "wal")
    try:
        async def main() -> None:
            async with AsyncWalrus(tmp_path / "wal", read_only=True) as observer:
                reader = asyncio.ensure_future(
                    observer.read_next("t", checkpoint=False, timeout=None))
                await waiting_for(observer, "t")
                ticks = 0
                while ticks < 3:  # the loop runs while the observer waits
                    await asyncio.sleep(0)
                    ticks += 1
                await asyncio.to_thread(writer.append_for_topic, "t", b"seen")
                assert await reader == Entry(b"seen", 0, "t")
                with pytest.raises(walrus.ReadOnlyError):
                    await observer.append_for_topic("t", b"no")

        run(main)
    finally:
        writer.close()
