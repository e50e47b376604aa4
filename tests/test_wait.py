"""Waiting reads: ``timeout=`` on read_next and batch reads, ``follow()``, ``close()`` waking
the waiters, and observers in another process waiting for a live writer's appends.

No timed assertions: a thread is known to wait once its waker is registered (``_waits``),
and every join has a generous bound that only guards against a hang."""

from __future__ import annotations

import errno
import math
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from walrus_faults import powered

import walrus
from walrus import (
    Entry,
    FsyncSchedule,
    InvalidArgumentError,
    ReadConsistency,
    Walrus,
    WalrusClosedError,
)

from .cli_support import child_env
from .conftest import FAULT_BACKENDS, WalFactory

HANG = 30.0
"""Seconds after which a thread that should have finished counts as hung."""

SCHEDULES = [FsyncSchedule.NoFsync, FsyncSchedule.SyncEach]


class Background:
    """Runs ``call`` in a thread and keeps what it returned or raised."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None

        def run() -> None:
            try:
                self.result = call()
            except BaseException as exc:
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def join(self) -> Any:
        self.thread.join(HANG)
        assert not self.thread.is_alive(), "the waiting read did not return"
        if self.error is not None:
            raise self.error
        return self.result


def waiting_for(wal: Walrus, topic: str, count: int = 1) -> None:
    """Return once ``count`` readers wait for ``topic`` (registered, or about to sleep)."""
    end = time.monotonic() + HANG
    while wal._waits.count(topic) < count:
        assert time.monotonic() < end, f"nobody started waiting for {topic!r}"
        time.sleep(0.001)


@pytest.fixture(params=SCHEDULES, ids=["no-fsync", "sync-each"])
def wal(open_wal: WalFactory, request: pytest.FixtureRequest) -> Walrus:
    return open_wal(fsync_schedule=request.param)


def test_timeout_zero_is_the_default_and_returns_at_once(wal: Walrus) -> None:
    assert wal.read_next("t") is None
    assert wal.read_next("t", timeout=0) is None
    assert wal.read_next("t", timeout=0.0) is None
    assert wal.batch_read_for_topic("t", 100, timeout=0) == []
    wal.append_for_topic("t", b"a")
    assert wal.read_next("t", timeout=0) == Entry(b"a", 0, "t")


def test_a_positive_timeout_with_nothing_to_read_returns_nothing(wal: Walrus) -> None:
    assert wal.read_next("t", timeout=0.01) is None
    assert wal.batch_read_for_topic("t", 100, timeout=0.01) == []
    assert wal._waits.count("t") == 0


def test_an_entry_already_there_is_returned_without_waiting(wal: Walrus) -> None:
    wal.append_for_topic("t", b"a")
    wal.append_for_topic("t", b"b")
    assert wal.read_next("t", timeout=None) == Entry(b"a", 0, "t")
    assert wal.batch_read_for_topic("t", 100, timeout=None) == [Entry(b"b", 1, "t")]


@pytest.mark.parametrize("timeout", [None, HANG * 10])
def test_a_waiting_read_next_returns_the_entry_an_append_adds(wal: Walrus,
                                                              timeout: float | None) -> None:
    reader = Background(lambda: wal.read_next("t", timeout=timeout))
    waiting_for(wal, "t")
    wal.append_for_topic("t", b"hello")
    assert reader.join() == Entry(b"hello", 0, "t")
    assert wal.get_topic_entry_count("t") == 0  # consumed


@pytest.mark.parametrize("timeout", [None, HANG * 10])
def test_a_waiting_batch_read_returns_what_a_batch_append_adds(wal: Walrus,
                                                               timeout: float | None) -> None:
    wal.append_for_topic("t", b"before")
    assert wal.read_next("t") is not None
    reader = Background(lambda: wal.batch_read_for_topic("t", 1 << 20, timeout=timeout))
    waiting_for(wal, "t")
    wal.batch_append_for_topic("t", [b"a", b"b", b"c"])
    assert [e.data for e in reader.join()] == [b"a", b"b", b"c"]


def test_a_waiting_peek_from_an_offset_returns_that_offset(wal: Walrus) -> None:
    wal.batch_append_for_topic("t", [b"a", b"b"])
    reader = Background(lambda: wal.batch_read_for_topic("t", 100, checkpoint=False,
                                                         start_offset=2, timeout=None))
    waiting_for(wal, "t")
    wal.append_for_topic("t", b"c")
    assert reader.join() == [Entry(b"c", 2, "t")]
    assert wal.get_topic_entry_count("t") == 3  # nothing consumed


def test_waiting_for_a_topic_that_does_not_exist_yet(wal: Walrus) -> None:
    reader = Background(lambda: wal.read_next("new", checkpoint=False, timeout=None))
    waiting_for(wal, "new")
    wal.append_for_topic("new", b"first")
    assert reader.join() == Entry(b"first", 0, "new")


def test_an_append_wakes_the_waiters_of_its_topic_only(wal: Walrus) -> None:
    woken = {"a": threading.Event(), "b": threading.Event()}
    wal._waits.add("a", woken["a"].set)
    wal._waits.add("b", woken["b"].set)
    wal.append_for_topic("a", b"x")  # wakes before it returns (under SyncEach: once durable)
    assert woken["a"].is_set()
    assert not woken["b"].is_set()
    wal.batch_append_for_topic("b", [b"y"])
    assert woken["b"].is_set()


def test_a_waiter_of_another_topic_stays_asleep(wal: Walrus) -> None:
    other = Background(lambda: wal.read_next("b", timeout=None))
    waiting_for(wal, "b")
    mine = Background(lambda: wal.read_next("a", timeout=None))
    waiting_for(wal, "a")
    wal.append_for_topic("a", b"x")
    assert mine.join() == Entry(b"x", 0, "a")
    assert other.thread.is_alive()
    wal.append_for_topic("b", b"y")
    assert other.join() == Entry(b"y", 0, "b")


def test_close_wakes_every_waiter_with_walrus_closed_error(wal: Walrus) -> None:
    readers = [Background(lambda: wal.read_next("a", timeout=None)),
               Background(lambda: wal.read_next("a", checkpoint=False, timeout=HANG * 10)),
               Background(lambda: wal.batch_read_for_topic("b", 100, timeout=None))]
    waiting_for(wal, "a", 2)
    waiting_for(wal, "b")
    wal.close()
    for reader in readers:
        with pytest.raises(WalrusClosedError):
            reader.join()
    with pytest.raises(WalrusClosedError):
        wal.read_next("a", timeout=None)


@pytest.mark.parametrize("timeout", [-1, -0.001, math.nan, -math.inf, "1", b"1", True, False,
                                     [], 1j])
def test_a_bad_timeout_is_refused_and_changes_nothing(wal: Walrus, timeout: object) -> None:
    wal.batch_append_for_topic("t", [b"a", b"b"])
    for call in (lambda: wal.read_next("t", timeout=timeout),  # type: ignore[arg-type]
                 lambda: wal.batch_read_for_topic("t", 100, timeout=timeout)):  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="timeout"):
            call()
    assert wal.get_topic_entry_count("t") == 2
    assert wal._waits.count("t") == 0
    assert wal.read_next("t") == Entry(b"a", 0, "t")


@pytest.mark.parametrize("timeout", [math.inf, 1e10, 1e300, 10**400],
                         ids=["inf", "1e10", "1e300", "10**400"])
def test_an_infinite_timeout_waits_as_none_does(wal: Walrus, timeout: float) -> None:
    """So does one longer than a thread can wait at once (about 292 years): before, it
    raised OverflowError once the read found nothing."""
    reader = Background(lambda: wal.read_next("t", timeout=timeout))
    waiting_for(wal, "t")
    wal.append_for_topic("t", b"x")
    assert reader.join() == Entry(b"x", 0, "t")
    batch = Background(lambda: wal.batch_read_for_topic("t", 100, timeout=timeout))
    waiting_for(wal, "t")
    wal.append_for_topic("t", b"y")
    assert batch.join() == [Entry(b"y", 1, "t")]


def test_bad_arguments_of_a_waiting_read_raise_before_it_waits(wal: Walrus) -> None:
    with pytest.raises(walrus.InvalidTopicError):
        wal.read_next("", timeout=None)
    with pytest.raises(walrus.InvalidTopicError):
        wal.read_next(["t"], timeout=None)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        wal.batch_read_for_topic("t", -1, timeout=None)
    assert not wal._waits.waiting()


def test_concurrent_waiting_consumers_get_distinct_entries(wal: Walrus) -> None:
    readers = [Background(lambda: [wal.read_next("t", timeout=None) for _ in range(5)])
               for _ in range(4)]
    waiting_for(wal, "t", 1)
    for i in range(20):
        wal.append_for_topic("t", b"%d" % i)
    got = [e.data for reader in readers for e in reader.join()]
    assert sorted(got) == sorted(b"%d" % i for i in range(20))


# --- follow ----------------------------------------------------------------------------------


def test_follow_yields_entries_as_they_arrive_and_ends_on_close(wal: Walrus) -> None:
    wal.append_for_topic("t", b"0")
    seen: list[bytes] = []
    got_three = threading.Event()

    def follow() -> None:
        for entry in wal.follow("t"):
            seen.append(entry.data)
            if len(seen) == 3:
                got_three.set()

    follower = Background(follow)
    waiting_for(wal, "t")
    wal.append_for_topic("t", b"1")
    wal.batch_append_for_topic("t", [b"2"])
    assert got_three.wait(HANG)
    waiting_for(wal, "t")
    wal.close()
    follower.join()  # ended, without raising
    assert seen == [b"0", b"1", b"2"]


def test_a_peeking_follow_moves_no_cursor(wal: Walrus) -> None:
    wal.batch_append_for_topic("t", [b"0", b"1"])
    assert wal.read_next("t") is not None
    follower = wal.follow("t", checkpoint=False)
    assert next(follower) == Entry(b"1", 1, "t")
    wal.append_for_topic("t", b"2")
    assert next(follower) == Entry(b"2", 2, "t")
    assert wal.get_topic_entry_count("t") == 2
    assert wal.read_next("t") == Entry(b"1", 1, "t")


def test_a_consuming_follow_stopped_early_consumes_only_what_it_yielded(wal: Walrus) -> None:
    wal.batch_append_for_topic("t", [b"0", b"1", b"2"])
    for entry in wal.follow("t"):
        assert entry.data == b"0"
        break
    assert wal.read_next("t") == Entry(b"1", 1, "t")


def test_follow_checks_its_arguments_at_once(wal: Walrus) -> None:
    with pytest.raises(walrus.InvalidTopicError):
        wal.follow("")
    with pytest.raises(InvalidArgumentError):
        wal.follow("t", checkpoint="yes")  # type: ignore[arg-type]


def test_follow_under_at_least_once(open_wal: WalFactory) -> None:
    wal = open_wal(consistency=ReadConsistency.AtLeastOnce(persist_every=2))
    follower = wal.follow("t")
    wal.batch_append_for_topic("t", [b"a", b"b", b"c"])
    assert [next(follower).data for _ in range(3)] == [b"a", b"b", b"c"]


# --- observers in another process ------------------------------------------------------------

WRITER = r"""
import sys
from walrus import FsyncSchedule, Walrus
schedule = {"no-fsync": FsyncSchedule.NoFsync, "sync-each": FsyncSchedule.SyncEach,
            "ms": FsyncSchedule.Milliseconds(1000)}[sys.argv[2]]
w = Walrus(data_dir=sys.argv[1], fsync_schedule=schedule, segment_size=4096)
w.append_for_topic("other", b"o")
print("ready", flush=True)
for line in sys.stdin:
    topic, data = line.split()
    w.append_for_topic(topic, data.encode())
    print("done", flush=True)
"""


@pytest.fixture(params=["no-fsync", "sync-each", "ms"])
def writer(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[[str, str], None]]:
    """A live writer in another process: ``writer(topic, data)`` has it append an entry."""
    data_dir = tmp_path / "wal"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(data_dir), request.param],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=child_env(),
                            text=True)
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline() == "ready\n"

    def append(topic: str, data: str) -> None:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(f"{topic} {data}\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "done\n"

    try:
        yield append
    finally:
        proc.kill()
        proc.wait()


def test_an_observer_waits_for_a_writer_process(tmp_path: Path,
                                               writer: Callable[[str, str], None]) -> None:
    with Walrus(data_dir=tmp_path / "wal", read_only=True) as observer:
        reader = Background(lambda: observer.read_next("t", checkpoint=False, timeout=HANG * 10))
        waiting_for(observer, "t")
        writer("t", "first")
        assert reader.join() == Entry(b"first", 0, "t")
        # Many entries, several segment rolls (4 KiB segments): a follow sees each once.
        follower = observer.follow("t", checkpoint=False)
        assert next(follower) == Entry(b"first", 0, "t")
        for i in range(1, 60):
            reader = Background(lambda: next(follower))
            writer("t", f"e{i}-" + "x" * 100)
            assert reader.join() == Entry(f"e{i}-".encode() + b"x" * 100, i, "t")


def test_an_observer_wakes_only_the_waiters_of_the_topic_written(
        tmp_path: Path, writer: Callable[[str, str], None]) -> None:
    with Walrus(data_dir=tmp_path / "wal", read_only=True) as observer:
        other = threading.Event()
        observer._waits.add("b", other.set)
        reader = Background(lambda: observer.read_next("a", checkpoint=False, timeout=HANG))
        waiting_for(observer, "a")
        writer("a", "x")
        assert reader.join() == Entry(b"x", 0, "a")
        assert not other.is_set()
        observer._waits.remove("b", other.set)


def test_closing_an_observer_wakes_its_waiters(tmp_path: Path,
                                              writer: Callable[[str, str], None]) -> None:
    observer = Walrus(data_dir=tmp_path / "wal", read_only=True)
    reader = Background(lambda: observer.read_next("t", checkpoint=False, timeout=None))
    waiting_for(observer, "t")
    observer.close()
    with pytest.raises(WalrusClosedError):
        reader.join()


def test_an_observer_refuses_a_waiting_consuming_read_at_once(
        tmp_path: Path, writer: Callable[[str, str], None]) -> None:
    with Walrus(data_dir=tmp_path / "wal", read_only=True) as observer:
        with pytest.raises(walrus.ReadOnlyError):
            observer.read_next("other", timeout=None)
        assert not observer._waits.waiting()


# --- under SyncEach a waiter gets an entry only once it is durable ----------------------------


def test_a_waiter_gets_a_sync_each_entry_only_once_durable(tmp_path: Path) -> None:
    with powered() as machine, Walrus(tmp_path / "wal", backend=FAULT_BACKENDS[0],
                                      fsync_schedule=FsyncSchedule.SyncEach) as wal:
        wal.append_for_topic("t", b"first")
        assert wal.read_next("t") is not None
        reader = Background(lambda: wal.read_next("t", timeout=None))
        waiting_for(wal, "t")
        gate = machine.hold("sync")
        writer = held_append(machine, wal, "t", b"held")
        assert reader.thread.is_alive()  # written, not durable: not readable, nobody woken
        assert wal.get_topic_entry_count("t") == 0
        gate.set()
        assert writer.join() == 1
        assert reader.join() == Entry(b"held", 1, "t")
        reader = Background(lambda: wal.read_next("t", timeout=None))
        assert undone_then_kept(machine, wal, reader) == Entry(b"kept", 2, "t")


def held_append(machine: Any, wal: Walrus, topic: str, data: bytes) -> Background:
    """An append running in a thread, once its sync started and is held by ``machine``'s
    gate (its entry written, not durable)."""
    writer = Background(lambda: wal.append_for_topic(topic, data))
    end = time.monotonic() + HANG
    while "sync" in machine.gates:  # until the writer's sync runs (and is held)
        assert time.monotonic() < end
        time.sleep(0.001)
    return writer


def undone_then_kept(machine: Any, wal: Walrus, reader: Background) -> Any:
    """A failed sync undoes an append of "t": ``reader``, waiting for "t", never sees it,
    and gets (returns) what follows."""
    waiting_for(wal, "t")
    machine.arm("sync", errno.EIO, times=1)
    with pytest.raises(walrus.StorageError):
        wal.append_for_topic("t", b"undone")
    assert reader.thread.is_alive()
    wal.append_for_topic("t", b"kept")
    return reader.join()


def test_an_observers_watching_thread_runs_only_while_somebody_waits(tmp_path: Path) -> None:
    def watching() -> int:
        return sum(t.name == "walrus-watch" for t in threading.enumerate())

    with Walrus(tmp_path / "wal") as writer, \
            Walrus(tmp_path / "wal", read_only=True) as observer:
        assert watching() == 0
        reader = Background(lambda: observer.read_next("t", checkpoint=False, timeout=None))
        waiting_for(observer, "t")
        end = time.monotonic() + HANG
        while watching() != 1:  # started by the reader right after it registered
            assert time.monotonic() < end, "no watching thread for a waiting observer"
            time.sleep(0.001)
        writer.append_for_topic("t", b"x")
        assert reader.join() == Entry(b"x", 0, "t")
        end = time.monotonic() + HANG
        while watching():  # nobody waits: the thread ends at its next turn
            assert time.monotonic() < end, "the watching thread outlived the waiters"
            time.sleep(0.001)


def test_an_observers_waiting_peek_from_an_offset_wakes_on_the_writers_append(
        tmp_path: Path, writer: Callable[[str, str], None]) -> None:
    """What a forwarder does: a peek by ``start_offset`` (no cursor) at the topic's end."""
    writer("t", "a")
    writer("t", "b")
    with Walrus(data_dir=tmp_path / "wal", read_only=True) as observer:
        reader = Background(lambda: observer.batch_read_for_topic(
            "t", 100, checkpoint=False, start_offset=2, timeout=HANG * 10))
        waiting_for(observer, "t")
        writer("other", "o2")  # an append of another topic is no answer to this wait
        writer("t", "c")
        assert reader.join() == [Entry(b"c", 2, "t")]
        assert observer.get_topic_entry_count("t") == 3  # no cursor moved


def test_any_look_of_an_observer_wakes_the_waiters_of_a_topic_that_grew(
        tmp_path: Path, writer: Callable[[str, str], None]) -> None:
    """A query of the observer that picks up the writer's entry first wakes the waiting
    read: it does not sleep until the next append of its topic. The watching thread is kept
    from starting, so only the query looks (before, only the watcher's looks woke anybody,
    and one that came after the query's found nothing new)."""
    with Walrus(data_dir=tmp_path / "wal", read_only=True) as observer:
        watcher = observer._waits._watcher
        assert watcher is not None
        watcher.kick = lambda: None  # type: ignore[method-assign]
        reader = Background(lambda: observer.read_next("t", checkpoint=False, timeout=None))
        waiting_for(observer, "t")
        writer("t", "x")
        assert observer.get_topic_entry_count("t") == 1  # this call's look sees the entry
        assert reader.join() == Entry(b"x", 0, "t")


def test_an_observers_look_that_fails_late_still_wakes_the_waiters(
        tmp_path: Path, writer: Callable[[str, str], None]) -> None:
    """The look picked up the writer's entry, then a later step of it (applying retention's
    expiry points) failed: the waiting read is woken all the same, or no later look would
    (each compares with what this one already counted)."""
    with Walrus(data_dir=tmp_path / "wal", read_only=True) as observer:
        watcher = observer._waits._watcher
        assert watcher is not None
        watcher.kick = lambda: None  # type: ignore[method-assign]
        retainer = observer._retainer
        real_observe = retainer.observe

        def fails_once() -> None:
            if threading.current_thread() is not threading.main_thread():
                return real_observe()  # the reader's own attempt, if it comes this late
            retainer.observe = real_observe  # type: ignore[method-assign]
            raise OSError(5, "a segment could not be read")

        reader = Background(lambda: observer.read_next("t", checkpoint=False, timeout=None))
        waiting_for(observer, "t")
        writer("t", "x")
        retainer.observe = fails_once  # type: ignore[method-assign]
        with pytest.raises(walrus.StorageError):
            observer.get_topic_entry_count("t")
        assert reader.join() == Entry(b"x", 0, "t")
