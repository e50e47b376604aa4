"""Waiting reads through named consumers (SPEC sections 7 and 8 together): ``timeout=`` and
``follow(consumer=...)`` in a writer, in read-only observer processes and in ``AsyncWalrus``,
and bad arguments of the two features combined.

Each test first moves the named consumer away from the shared cursor, so a wait that lost
its ``consumer`` on the way would read (or not wait for) the wrong entry. No timed
assertions: a reader is known to wait once its waker is registered, and bounds (``HANG``)
only guard against a hang."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from walrus_faults import powered

import walrus
from walrus import Entry, FsyncSchedule, InvalidArgumentError, ReadConsistency, Walrus
from walrus.aio import AsyncWalrus

from .cli_support import child_env
from .conftest import FAULT_BACKENDS, WalFactory
from .test_aio import run
from .test_aio import waiting_for as task_waiting_for
from .test_wait import HANG, SCHEDULES, Background, held_append, undone_then_kept, waiting_for
from .test_wait import writer as writer  # the fixture: a writer process

MODES = {"strict": ReadConsistency.StrictlyAtOnce,
         "alo=3": ReadConsistency.AtLeastOnce(persist_every=3)}


@pytest.fixture(params=SCHEDULES, ids=["no-fsync", "sync-each"])
def wal(open_wal: WalFactory, request: pytest.FixtureRequest) -> Walrus:
    return open_wal(fsync_schedule=request.param)


def started(wal: Walrus, topic: str = "t", consumer: str = "c") -> None:
    """Append entry 0 of ``topic`` and have ``consumer`` (only) consume it."""
    wal.append_for_topic(topic, b"0")
    assert wal.read_next(topic, consumer=consumer) == Entry(b"0", 0, topic)


# --- 1. waiting through a named consumer in a writer -----------------------------------------


def test_a_named_waiter_is_woken_by_its_topics_append_only(wal: Walrus) -> None:
    started(wal, "a")
    reader = Background(lambda: wal.read_next("a", consumer="c", timeout=None))
    waiting_for(wal, "a")
    woken = threading.Event()  # woken with the reader: by whatever wakes the waiters of "a"
    wal._waits.add("a", woken.set)
    wal.append_for_topic("b", b"other")  # wakes before it returns (SyncEach: once durable)
    assert not woken.is_set()
    assert reader.thread.is_alive()
    wal.append_for_topic("a", b"1")
    assert woken.is_set()
    assert reader.join() == Entry(b"1", 1, "a")
    assert wal.get_topic_entry_count("a", consumer="c") == 0
    assert wal.get_topic_entry_count("a") == 2  # the shared cursor did not move


def test_a_named_batch_waiter_gets_what_an_append_adds(wal: Walrus) -> None:
    started(wal)
    reader = Background(lambda: wal.batch_read_for_topic("t", 1 << 20, consumer="c",
                                                         timeout=HANG * 10))
    waiting_for(wal, "t")
    wal.batch_append_for_topic("t", [b"1", b"2", b"3"])
    assert reader.join() == [Entry(b"%d" % i, i, "t") for i in (1, 2, 3)]
    assert wal.consumers("t") == {"c": 4}
    assert wal.get_topic_entry_count("t") == 4


def test_a_named_consumer_waiting_for_a_topic_not_there_yet(wal: Walrus) -> None:
    reader = Background(lambda: wal.read_next("new", consumer="c", timeout=None))
    waiting_for(wal, "new")
    wal.append_for_topic("new", b"first")
    assert reader.join() == Entry(b"first", 0, "new")
    assert wal.consumers("new") == {"c": 1}
    assert wal.get_topic_entry_count("new") == 1


def test_threads_waiting_on_one_consumer_get_each_entry_once(wal: Walrus) -> None:
    started(wal)
    readers = [Background(lambda: [wal.read_next("t", consumer="c", timeout=None)
                                   for _ in range(5)]) for _ in range(4)]
    waiting_for(wal, "t", 1)
    for i in range(1, 21):
        wal.append_for_topic("t", b"%d" % i)
    got = [e.offset for reader in readers for e in reader.join()]
    assert sorted(got) == list(range(1, 21))
    assert wal.consumers("t") == {"c": 21}
    assert wal.get_topic_entry_count("t") == 21


def test_batch_waiters_on_one_consumer_get_each_entry_once(wal: Walrus) -> None:
    started(wal)
    readers = [Background(lambda: wal.batch_read_for_topic("t", 1 << 20, consumer="c",
                                                           timeout=None)) for _ in range(2)]
    waiting_for(wal, "t", 2)
    wal.append_for_topic("t", b"1")
    end = time.monotonic() + HANG
    while all(r.thread.is_alive() for r in readers):  # one of them got it: the other waits
        assert time.monotonic() < end, "no waiter got the entry"
        time.sleep(0.001)
    wal.append_for_topic("t", b"2")
    got = sorted(e.offset for reader in readers for e in reader.join())
    assert got == [1, 2]


def test_different_consumers_each_get_every_entry(wal: Walrus) -> None:
    started(wal, consumer="x")
    readers = {name: Background(lambda name=name: [  # type: ignore[misc]
        wal.read_next("t", consumer=name, timeout=None) for _ in range(3)])
        for name in ("x", "y")}
    waiting_for(wal, "t", 1)
    wal.batch_append_for_topic("t", [b"1", b"2"])
    wal.append_for_topic("t", b"3")
    assert [e.offset for e in readers["x"].join()] == [1, 2, 3]
    assert [e.offset for e in readers["y"].join()] == [0, 1, 2]  # it started at entry 0
    assert wal.consumers("t") == {"x": 4, "y": 3}
    assert wal.get_topic_entry_count("t") == 4


def test_a_named_waiter_gets_a_sync_each_entry_only_once_durable(tmp_path: Path) -> None:
    with powered() as machine, Walrus(tmp_path / "wal", backend=FAULT_BACKENDS[0],
                                      fsync_schedule=FsyncSchedule.SyncEach) as wal:
        started(wal)
        assert wal.read_next("t", consumer="d") == Entry(b"0", 0, "t")
        reader = Background(lambda: wal.read_next("t", consumer="c", timeout=None))
        batch = Background(lambda: wal.batch_read_for_topic("t", 100, consumer="d",
                                                            timeout=None))
        waiting_for(wal, "t", 2)
        gate = machine.hold("sync")
        writer = held_append(machine, wal, "t", b"held")
        assert reader.thread.is_alive() and batch.thread.is_alive()  # written, not durable
        assert wal.get_topic_entry_count("t", consumer="c") == 0
        assert wal.get_topic_entry_count("t", consumer="d") == 0
        gate.set()
        assert writer.join() == 1
        assert reader.join() == Entry(b"held", 1, "t")
        assert batch.join() == [Entry(b"held", 1, "t")]
        reader = Background(lambda: wal.read_next("t", consumer="c", timeout=None))
        assert undone_then_kept(machine, wal, reader) == Entry(b"kept", 2, "t")
        assert wal.consumers("t") == {"c": 3, "d": 2}


# --- 2. follow through a named consumer ------------------------------------------------------


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_consuming_follow_goes_on_after_a_reopen(open_wal: WalFactory, mode: str) -> None:
    wal = open_wal(consistency=MODES[mode])
    started(wal)
    follower = wal.follow("t", consumer="c")
    first = Background(lambda: [next(follower).offset for _ in range(3)])
    waiting_for(wal, "t")
    wal.append_for_topic("t", b"1")
    wal.batch_append_for_topic("t", [b"2", b"3"])
    assert first.join() == [1, 2, 3]
    last = Background(lambda: next(follower, None))
    waiting_for(wal, "t")  # consumed all three, waits for the fourth
    assert wal.consumers("t") == {"c": 4}
    assert wal.get_topic_entry_count("t") == 4
    wal.close()
    assert last.join() is None  # the follow ended, without raising
    wal = open_wal(consistency=MODES[mode])
    assert wal.consumers("t") == {"c": 4}  # a clean close persists the exact position
    wal.append_for_topic("t", b"4")
    assert next(wal.follow("t", consumer="c")) == Entry(b"4", 4, "t")
    assert next(wal.follow("t")) == Entry(b"0", 0, "t")


def test_a_consuming_follow_stopped_early_consumes_only_what_it_yielded(wal: Walrus) -> None:
    started(wal)
    wal.batch_append_for_topic("t", [b"1", b"2"])
    for entry in wal.follow("t", consumer="c"):
        assert entry.offset == 1
        break
    assert wal.consumers("t") == {"c": 2}
    assert wal.read_next("t", consumer="c") == Entry(b"2", 2, "t")


def test_a_peeking_follow_starts_at_the_consumer_and_moves_nothing(wal: Walrus) -> None:
    started(wal)
    wal.append_for_topic("t", b"1")
    follower = wal.follow("t", consumer="c", checkpoint=False)
    assert next(follower) == Entry(b"1", 1, "t")
    reader = Background(lambda: next(follower))
    waiting_for(wal, "t")
    wal.append_for_topic("t", b"2")
    assert reader.join() == Entry(b"2", 2, "t")
    assert wal.consumers("t") == {"c": 1}
    assert wal.get_topic_entry_count("t") == 3


FOLLOWER = r"""
import os, sys
from walrus import ReadConsistency, Walrus
every = int(sys.argv[2])
mode = ReadConsistency.StrictlyAtOnce if every == 0 else ReadConsistency.AtLeastOnce(every)
wal = Walrus(data_dir=sys.argv[1], consistency=mode)
for n, entry in enumerate(wal.follow("t", consumer="c"), 1):
    if n == int(sys.argv[3]):
        os._exit(0)  # no close: what the consistency mode persisted is all that is left
"""


@pytest.mark.parametrize("every", [0, 4])
def test_a_follow_killed_without_close_resumes_per_the_consistency_mode(
        tmp_path: Path, every: int) -> None:
    with Walrus(tmp_path / "wal") as wal:
        wal.batch_append_for_topic("t", [b"%d" % i for i in range(20)])
    subprocess.run([sys.executable, "-c", FOLLOWER, str(tmp_path / "wal"), str(every), "11"],
                   env=child_env(), check=True, timeout=HANG * 4)
    with Walrus(tmp_path / "wal") as wal:
        resumed = wal.read_next("t", consumer="c")
        assert resumed is not None
        if every == 0:  # StrictlyAtOnce: exactly after the last entry yielded
            assert resumed.offset == 11
        else:  # AtLeastOnce(4): at most 4 entries again, none skipped
            assert 11 - every <= resumed.offset <= 11
        assert wal.get_topic_entry_count("t") == 20


# --- 3. named consumers of read-only observers, beside a writer process -----------------------


def test_an_observer_consumes_through_a_named_consumer_as_a_writer_appends(
        tmp_path: Path, writer: Callable[[str, str], None]) -> None:
    with Walrus(data_dir=tmp_path / "wal", read_only=True) as observer:
        reader = Background(lambda: observer.read_next("t", consumer="c", timeout=None))
        waiting_for(observer, "t")
        writer("t", "first")
        assert reader.join() == Entry(b"first", 0, "t")
        assert observer.consumers("t") == {"c": 1}
        reader = Background(lambda: observer.batch_read_for_topic("t", 1 << 20, consumer="c",
                                                                  timeout=None))
        waiting_for(observer, "t")
        writer("t", "second")
        assert reader.join() == [Entry(b"second", 1, "t")]
        # A consuming follow: each entry once, across segment rolls (4 KiB segments).
        follower = observer.follow("t", consumer="c")
        for i in range(2, 40):
            reader = Background(lambda: next(follower))
            writer("t", f"e{i}-" + "x" * 100)
            assert reader.join() == Entry(f"e{i}-".encode() + b"x" * 100, i, "t")
        assert observer.consumers("t") == {"c": 40}
    with Walrus(data_dir=tmp_path / "wal", read_only=True) as observer:
        assert observer.consumers("t") == {"c": 40}  # persisted where the follow stopped
        peeker = observer.follow("t", consumer="c", checkpoint=False)
        reader = Background(lambda: next(peeker))
        writer("t", "last")
        assert reader.join() == Entry(b"last", 40, "t")
        assert observer.consumers("t") == {"c": 40}


# --- 4. AsyncWalrus --------------------------------------------------------------------------


def test_a_named_task_is_woken_by_appends_from_the_loop_and_a_thread(
        tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncWalrus(tmp_path / "wal") as wal:
            await wal.append_for_topic("t", b"0")
            assert await wal.read_next("t", consumer="c") == Entry(b"0", 0, "t")
            reader = asyncio.ensure_future(wal.read_next("t", consumer="c", timeout=None))
            other = asyncio.ensure_future(
                wal.batch_read_for_topic("u", 100, consumer="c", timeout=None))
            await task_waiting_for(wal, "t")
            await task_waiting_for(wal, "u")
            woken = threading.Event()
            wal.wal._waits.add("t", woken.set)
            await wal.append_for_topic("t", b"1")
            assert woken.is_set()
            assert await reader == Entry(b"1", 1, "t")
            assert not other.done()
            reader = asyncio.ensure_future(wal.read_next("t", consumer="c", timeout=None))
            await task_waiting_for(wal, "t")
            await asyncio.to_thread(wal.wal.append_for_topic, "t", b"2")
            assert await reader == Entry(b"2", 2, "t")
            await asyncio.to_thread(wal.wal.append_for_topic, "u", b"u0")
            assert await other == [Entry(b"u0", 0, "u")]
            assert await wal.get_topic_entry_count("t") == 3
            assert await wal.get_topic_entry_count("t", consumer="c") == 0

    run(main)


def test_consumers_seek_and_delete_as_coroutines(tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncWalrus(tmp_path / "wal") as wal:
            await wal.batch_append_for_topic("t", [b"0", b"1", b"2"])
            assert await wal.consumers("t") == {}
            assert await wal.get_topic_entry_count("t", consumer="c") == 3
            assert await wal.read_next("t", consumer="c") == Entry(b"0", 0, "t")
            assert await wal.consumers("t") == {"c": 1}
            assert await wal.get_topic_entry_count("t", consumer="c") == 2
            await wal.seek("t", 2, consumer="c")
            assert await wal.consumers("t") == {"c": 2}
            assert await wal.read_next("t", consumer="c") == Entry(b"2", 2, "t")
            await wal.seek("t", 1)  # the shared cursor
            assert await wal.read_next("t") == Entry(b"1", 1, "t")
            await wal.delete_consumer("t", "c")
            assert await wal.consumers("t") == {}
            assert await wal.read_next("t", consumer="c") == Entry(b"0", 0, "t")  # anew
            with pytest.raises(InvalidArgumentError):
                await wal.delete_consumer("t", "")

    run(main)


def test_async_for_over_a_named_follow(tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncWalrus(tmp_path / "wal") as wal:
            await wal.append_for_topic("t", b"0")
            assert await wal.read_next("t", consumer="c") is not None
            seen: list[int] = []

            async def follow() -> None:
                async for entry in wal.follow("t", consumer="c"):
                    seen.append(entry.offset)
                    if len(seen) == 3:
                        return

            follower = asyncio.ensure_future(follow())
            await task_waiting_for(wal, "t")
            await wal.append_for_topic("t", b"1")
            await asyncio.to_thread(wal.wal.batch_append_for_topic, "t", [b"2", b"3", b"4"])
            await follower
            assert seen == [1, 2, 3]
            assert await wal.consumers("t") == {"c": 4}
            peeked = [e.offset async for e in _first(wal.follow("t", consumer="c",
                                                                checkpoint=False), 1)]
            assert peeked == [4]
            assert await wal.consumers("t") == {"c": 4}
            assert await wal.get_topic_entry_count("t") == 5

    run(main)


async def _first(entries: Any, n: int) -> Any:
    """The first ``n`` entries of an async iterator."""
    async for entry in entries:
        yield entry
        n -= 1
        if n == 0:
            return


def test_a_named_read_under_sync_each_syncs_off_the_loop(tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncWalrus(tmp_path / "wal",
                               fsync_schedule=FsyncSchedule.SyncEach) as wal:
            await wal.append_for_topic("t", b"0")
            assert await wal.read_next("t", checkpoint=False, consumer="c") is not None
            file = wal.wal._consumers.owned[("c", "t")].file
            synced_in: list[int] = []
            sync = file.sync

            def recorded() -> None:
                synced_in.append(threading.get_ident())
                sync()

            file.sync = recorded  # type: ignore[method-assign]
            end = time.monotonic() + HANG
            while not wal._inline():  # until a call could run on the loop (a spare is ready)
                assert time.monotonic() < end, "the next segment was never made ready"
                await asyncio.sleep(0.001)
            assert await wal.read_next("t", consumer="c") == Entry(b"0", 0, "t")
            reader = asyncio.ensure_future(wal.read_next("t", consumer="c", timeout=None))
            batch = asyncio.ensure_future(
                wal.batch_read_for_topic("t", 100, consumer="c", timeout=None))
            await task_waiting_for(wal, "t", 2)
            await wal.batch_append_for_topic("t", [b"1", b"2"])
            got = [await reader, *await batch]
            assert sorted(e.offset for e in got if e is not None) == [1, 2]
            await wal.append_for_topic("t", b"3")
            async for entry in wal.follow("t", consumer="c"):
                assert entry.offset == 3
                break
            else:
                pytest.fail("the follow ended")
            assert len(synced_in) >= 1
            assert threading.get_ident() not in synced_in

    run(main)


def test_close_ends_named_waiting_tasks_and_follows(tmp_path: Path) -> None:
    async def main() -> None:
        wal = await AsyncWalrus.open(tmp_path / "wal")
        reader = asyncio.ensure_future(wal.read_next("t", consumer="c", timeout=None))
        got: list[int] = []

        async def follow() -> None:
            async for entry in wal.follow("t", consumer="d"):
                got.append(entry.offset)

        follower = asyncio.ensure_future(follow())
        await task_waiting_for(wal, "t", 2)
        await wal.append_for_topic("t", b"0")
        assert await reader == Entry(b"0", 0, "t")
        reader = asyncio.ensure_future(wal.read_next("t", consumer="c", timeout=None))
        await task_waiting_for(wal, "t", 2)  # both wait again: d consumed entry 0
        await wal.close()
        with pytest.raises(walrus.WalrusClosedError):
            await reader
        await follower  # ended, without raising
        assert got == [0]
        async with AsyncWalrus(tmp_path / "wal") as again:
            assert await again.consumers("t") == {"c": 1, "d": 1}

    run(main)


def test_an_async_observer_consumes_through_a_named_consumer(tmp_path: Path) -> None:
    with Walrus(tmp_path / "wal") as writer_here:
        async def main() -> None:
            async with AsyncWalrus(tmp_path / "wal", read_only=True) as observer:
                reader = asyncio.ensure_future(
                    observer.read_next("t", consumer="c", timeout=None))
                await task_waiting_for(observer, "t")
                await asyncio.to_thread(writer_here.append_for_topic, "t", b"seen")
                assert await reader == Entry(b"seen", 0, "t")
                assert await observer.consumers("t") == {"c": 1}
                assert await observer.get_topic_entry_count("t", consumer="c") == 0

        run(main)
        assert writer_here.consumers("t") == {"c": 1}
        assert writer_here.get_topic_entry_count("t") == 1


# --- 5. bad arguments of the two combined ----------------------------------------------------


BAD_NAMES: list[object] = ["", "a\0b", "x" * 256, 5, b"c", ["c"]]
BAD_TIMEOUTS: list[object] = [-1, math.nan, "1", True]


@pytest.mark.parametrize("name", BAD_NAMES,
                         ids=["empty", "nul", "too-long", "int", "bytes", "list"])
def test_a_bad_consumer_with_a_timeout_raises_before_waiting(wal: Walrus, name: object) -> None:
    wal.batch_append_for_topic("t", [b"0", b"1"])
    for call in (
            lambda: wal.read_next("t", consumer=name, timeout=None),  # type: ignore[arg-type]
            lambda: wal.read_next("new", consumer=name, timeout=None),  # type: ignore[arg-type]
            lambda: wal.batch_read_for_topic("t", 100, consumer=name,  # type: ignore[arg-type]
                                             timeout=None),
            lambda: next(wal.follow("t", consumer=name))):  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="consumer name"):
            Background(call).join()  # raises, does not hang
    assert not wal._waits.waiting()
    assert wal.consumers("t") == {}
    assert wal.get_topic_entry_count("t") == 2
    assert wal.topics() == ["t"]


@pytest.mark.parametrize("timeout", BAD_TIMEOUTS, ids=repr)
def test_a_bad_timeout_with_a_consumer_changes_nothing(wal: Walrus, timeout: object) -> None:
    wal.batch_append_for_topic("t", [b"0", b"1"])
    for call in (
            lambda: wal.read_next("t", consumer="c", timeout=timeout),  # type: ignore[arg-type]
            lambda: wal.batch_read_for_topic("t", 100, consumer="c",
                                             timeout=timeout)):  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="timeout"):
            call()
    assert not wal._waits.waiting()
    assert wal.consumers("t") == {}  # not even created
    assert wal.get_topic_entry_count("t", consumer="c") == 2


def test_bad_arguments_of_a_named_waiting_task_change_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncWalrus(tmp_path / "wal") as wal:
            await wal.append_for_topic("t", b"0")
            calls = [wal.read_next("t", consumer="", timeout=None),
                     wal.batch_read_for_topic("t", 100, consumer=5,  # type: ignore[arg-type]
                                              timeout=None),
                     wal.read_next("t", consumer="c", timeout=-1),
                     wal.batch_read_for_topic("t", 100, consumer="c",
                                              timeout="1")]  # type: ignore[arg-type]
            for call in calls:
                with pytest.raises(InvalidArgumentError):
                    await call
            with pytest.raises(InvalidArgumentError):
                async for _ in wal.follow("t", consumer=""):
                    pass
            assert not wal.wal._waits.waiting()
            assert await wal.consumers("t") == {}
            assert await wal.get_topic_entry_count("t") == 1

    run(main)
