"""SyncEach's group commit: the lone writer's pass, the leader and its followers.

Each append returns only once its entry is durable, whether its writer led the pass alone,
shared one, or came back to lead the next; a pass wakes only the writers it covered, and the
others share the next pass with a writer coming back from the last one.
"""

from __future__ import annotations

import asyncio
import errno
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from walrus import FsyncSchedule, StorageError, Walrus, _durability
from walrus.aio import AsyncWalrus
from walrus.testing._faults import Machine, powered

from ._workload import check_content, payload, recovered
from .conftest import BACKENDS, FAULT_BACKENDS

SEGMENT = 8192
"""Small segments: rolls every few dozen entries, so passes also cover sealed segments."""


def _until(test: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not test():
        assert time.monotonic() < deadline, "the writers never got there"
        time.sleep(0.001)


def _read(wal: Walrus, topic: str) -> list[bytes]:
    """Every entry of ``topic``, without moving its cursor."""
    return [e.data for e in wal.batch_read_for_topic(topic, 1 << 20, checkpoint=False,
                                                     start_offset=0)]


def _append_until_cut(wal: Walrus, acked: dict[str, int], dead: Callable[[], bool]) -> None:
    """One thread per topic of ``acked`` appends to it until an append fails, which only
    the power cut may make (``dead``); ``acked`` counts the appends that returned."""

    def writer(topic: str) -> None:
        try:
            while True:
                offset = wal.append_for_topic(topic, payload(topic, acked[topic]))
                assert offset == acked[topic], "an offset handed out twice"
                acked[topic] += 1
        except StorageError:
            assert dead()  # only the power cut fails an append

    threads = [threading.Thread(target=writer, args=(t,)) for t in acked]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive()


def _quiet(wal: Walrus) -> None:
    """Let the worker make the spare segment first: its syncs are not the writers'."""
    _until(lambda: wal._log.spare is not None)


@pytest.mark.parametrize("faulty", FAULT_BACKENDS)
@pytest.mark.parametrize("writers", [1, 4])
@pytest.mark.parametrize("depth", [60, 150, 300, 600, 900, 1500])
def test_every_acknowledged_append_survives_a_power_cut(tmp_path: Path, faulty: str,
                                                        writers: int, depth: int) -> None:
    """The power goes at the ``depth``-th disk operation while ``writers`` threads append;
    the disk keeps only what a completed sync covered. Every append that returned is there,
    and at most the one each writer had in flight besides. (With several writers, one whose
    write a failed pass undid after it was made must raise, not lead a pass that covers
    nothing of it and report success.)"""
    live, image = tmp_path / "live", tmp_path / "image"
    live.mkdir()
    acked = {f"w{i}": 0 for i in range(writers)}
    with powered() as m:
        m.watch(live)
        wal = Walrus(data_dir=live, backend=faulty, segment_size=SEGMENT,
                     fsync_schedule=FsyncSchedule.SyncEach)
        _quiet(wal)
        m.cut_at = m.now() + depth
        _append_until_cut(wal, acked, lambda: m.dead)
        m.image(live, image, random.Random(depth), "lose_all")
        try:
            wal.close()
        except StorageError:
            pass  # no power to flush
    with Walrus(data_dir=image, backend=BACKENDS[0], segment_size=SEGMENT) as after:
        for topic, count in acked.items():
            got = recovered(after, topic)
            check_content(topic, got)
            assert not got.damaged, f"{topic}: a power cut is not damage: {got.damaged}"
            assert count <= got.count <= count + 1, \
                f"{topic}: {got.count} entries after the cut, {count} acknowledged"
    assert sum(acked.values()) > 0


def _three_topics(wal: Walrus) -> None:
    """Where the pass tests start: topics "a", "b" and "c" with an entry each, the worker
    done making the spare segment."""
    for topic in ("a", "b", "c"):
        wal.append_for_topic(topic, topic.encode() + b"0")
    _quiet(wal)


def _held_pass(m: Machine, wal: Walrus) -> tuple[threading.Thread, threading.Event]:
    """Writer "a" appends and leads a pass that stops at its sync until the event is set."""
    gate = m.hold("sync")
    first = threading.Thread(target=wal.append_for_topic, args=("a", b"a1"))
    first.start()
    _until(lambda: "sync" not in m.gates)  # the pass took its targets and waits at the sync
    return first, gate


def _followers(wal: Walrus) -> list[threading.Thread]:
    """Writers "b" and "c" append while the held pass syncs: it does not cover them."""
    others = [threading.Thread(target=wal.append_for_topic, args=(t, t.encode() + b"1"))
              for t in ("b", "c")]
    for t in others:
        t.start()
    _until(lambda: len(wal._durability.sleepers) == 2)
    return others


@pytest.mark.parametrize("faulty", FAULT_BACKENDS[:1])
def test_writers_a_pass_did_not_cover_share_the_next_with_a_writer_coming_back(
        tmp_path: Path, faulty: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The held pass covers "a" only: it wakes "a" and leaves "b" and "c" asleep, and the
    pass "a" leads with its next append covers all three (two syncs for four appends, not
    a third for the two left behind)."""
    monkeypatch.setattr(_durability, "RECHECK", 60.0)  # no sleeper leads by the clock here
    monkeypatch.setattr(_durability, "GATHER_FLOOR", 60.0)
    with powered() as m, Walrus(data_dir=tmp_path, backend=faulty,
                                fsync_schedule=FsyncSchedule.SyncEach) as wal:
        _three_topics(wal)
        wal._durability.gather = 60.0
        syncs = m.counts["sync"]
        first, gate = _held_pass(m, wal)
        others = _followers(wal)
        gate.set()
        first.join(30)
        assert not first.is_alive()
        assert len(wal._durability.sleepers) == 2, "a pass woke writers it did not cover"
        assert all(t.is_alive() for t in others)
        assert wal.append_for_topic("a", b"a2") == 2
        for t in others:
            t.join(30)
            assert not t.is_alive()
        assert m.counts["sync"] - syncs == 2
        assert _read(wal, "b") == [b"b0", b"b1"]


@pytest.mark.parametrize("faulty", FAULT_BACKENDS[:1])
def test_writers_sleep_through_a_pass_longer_than_the_last_sync(
        tmp_path: Path, faulty: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writers that find a pass running sleep until a pass covers them: the held pass lasts
    longer than the last sync did, and none of them wakes by the clock meanwhile, nor before
    the pass "a" leads coming back wakes them (each such wake-up costs the GIL and a
    thread's wake-up, and four writers took one for a third of their appends)."""
    monkeypatch.setattr(_durability, "RECHECK", 60.0)
    timeouts: list[threading.Thread] = []  # (the worker's own sleeps end by the clock too)
    wait = _durability.Cue.wait

    def counted(cue: _durability.Cue, timeout: float = -1) -> bool:
        given = wait(cue, timeout)
        if not given:
            timeouts.append(threading.current_thread())
        return given

    monkeypatch.setattr(_durability.Cue, "wait", counted)
    with powered() as m, Walrus(data_dir=tmp_path, backend=faulty,
                                fsync_schedule=FsyncSchedule.SyncEach) as wal:
        _three_topics(wal)
        wal._durability.gather = 1.0  # as if the last sync took a second
        syncs = m.counts["sync"]
        first, gate = _held_pass(m, wal)
        others = _followers(wal)
        time.sleep(1.5)  # the held pass outlasts the last sync's duration
        gate.set()
        first.join(30)
        assert not first.is_alive()
        assert wal.append_for_topic("a", b"a2") == 2  # "a" comes back and leads the next pass
        for t in others:
            t.join(30)
            assert not t.is_alive()
        woke = [t.name for t in timeouts if t in (first, *others)]
        assert woke == [], "a writer woke by the clock while passes would cover it"
        assert m.counts["sync"] - syncs == 2
        assert _read(wal, "c") == [b"c0", b"c1"]


@pytest.mark.parametrize("faulty", FAULT_BACKENDS[:1])
def test_writers_nobody_comes_back_for_lead_the_next_pass_themselves(tmp_path: Path,
                                                                     faulty: str) -> None:
    """Without a writer coming back, one of those left asleep leads the pass that covers
    both, about one sync's time later."""
    with powered() as m, Walrus(data_dir=tmp_path, backend=faulty,
                                fsync_schedule=FsyncSchedule.SyncEach) as wal:
        _three_topics(wal)
        syncs = m.counts["sync"]
        first, gate = _held_pass(m, wal)
        others = _followers(wal)
        gate.set()
        for t in [first, *others]:
            t.join(30)
            assert not t.is_alive()
        assert m.counts["sync"] - syncs == 2
        assert not wal._durability.sleepers and not wal._durability.busy
        assert _read(wal, "c") == [b"c0", b"c1"]


@pytest.mark.parametrize("faulty", FAULT_BACKENDS)
def test_a_failed_sync_fails_a_lone_writers_append(tmp_path: Path, faulty: str) -> None:
    """The lone writer's pass reports a failed fdatasync: the append raises, its entry is
    gone, and its offset goes to the next entry (it was never handed out)."""
    with powered() as m, Walrus(data_dir=tmp_path, backend=faulty,
                                fsync_schedule=FsyncSchedule.SyncEach) as wal:
        assert wal.append_for_topic("t", b"0") == 0
        _quiet(wal)
        m.arm("sync", errno.EIO, times=1)
        with pytest.raises(StorageError):
            wal.append_for_topic("t", b"lost")
        assert wal.append_for_topic("t", b"1") == 1
        assert _read(wal, "t") == [b"0", b"1"]
    with Walrus(data_dir=tmp_path, backend=BACKENDS[0]) as after:
        assert _read(after, "t") == [b"0", b"1"]


@pytest.mark.parametrize("faulty", FAULT_BACKENDS)
def test_the_pass_after_a_roll_syncs_the_sealed_segment_too(tmp_path: Path,
                                                            faulty: str) -> None:
    """"b" writes into a segment that "c"'s big entry then seals, while the held pass (which
    covers neither) syncs; the pass that covers them must sync the sealed segment as well as
    the new one, or "b"'s acknowledged entry is lost with the power."""
    live, image = tmp_path / "live", tmp_path / "image"
    live.mkdir()
    big = [b"c" * 4000, b"C" * 4000]  # the second does not fit beside the first: a roll
    with powered() as m:
        m.watch(live)
        wal = Walrus(data_dir=live, backend=faulty, segment_size=SEGMENT,
                     fsync_schedule=FsyncSchedule.SyncEach)
        for topic, data in (("a", b"a0"), ("b", b"b0"), ("c", big[0])):
            wal.append_for_topic(topic, data)
        _quiet(wal)
        segments = len(wal._log.segments)
        first, gate = _held_pass(m, wal)
        try:
            b = threading.Thread(target=wal.append_for_topic, args=("b", b"b1"))
            b.start()
            _until(lambda: len(wal._durability.sleepers) == 1)
            c = threading.Thread(target=wal.append_for_topic, args=("c", big[1]))
            c.start()
            _until(lambda: len(wal._durability.sleepers) == 2)
            assert len(wal._log.segments) == segments + 1  # "c" rolled: "b1" is sealed in
        finally:
            gate.set()
        for t in (first, b, c):
            t.join(30)
            assert not t.is_alive()
        m.cut()
        m.image(live, image, random.Random(0), "lose_all")
        try:
            wal.close()
        except StorageError:
            pass  # no power to write the indexes
    with Walrus(data_dir=image, backend=BACKENDS[0], segment_size=SEGMENT) as after:
        assert _read(after, "b") == [b"b0", b"b1"]
        assert _read(after, "c") == big


def _paused_before_its_wait(wal: Walrus, topic: str, data: bytes
                            ) -> tuple[threading.Thread, threading.Event, list[object]]:
    """A thread appends ``data`` to ``topic`` and stops between its write and its wait for
    the write's sync (where another thread taking the GIL stops it) until the returned event
    is set; the list gets the append's offset, or its StorageError."""
    log = wal._log
    wait = log._wait_durable
    arrived, go = threading.Event(), threading.Event()
    outcome: list[object] = []

    def late(lsn: int) -> None:
        if threading.current_thread() is writer:
            arrived.set()
            assert go.wait(30)
        wait(lsn)

    def append() -> None:
        try:
            outcome.append(wal.append_for_topic(topic, data))
        except StorageError as exc:
            outcome.append(exc)

    log.use_durability(late)
    writer = threading.Thread(target=append)
    writer.start()
    _until(arrived.is_set)
    return writer, go, outcome


@pytest.mark.parametrize("faulty", FAULT_BACKENDS)
@pytest.mark.parametrize("interrupted", [False, True])
def test_a_write_undone_before_its_writer_looks_fails_though_later_writes_are_durable(
        tmp_path: Path, faulty: str, interrupted: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Writer "a" made its write but has not begun to wait for it when another thread's
    pass fails and undoes it; a write made after that (in the next segment) is synced, so
    the log is durable past "a"'s LSN. "a" must raise all the same: its entry is gone, and
    its offset goes to the next entry. ``interrupted``: a KeyboardInterrupt lands in the
    failing pass's thread as soon as the log has undone the writes."""
    with powered() as m, Walrus(data_dir=tmp_path, backend=faulty,
                                fsync_schedule=FsyncSchedule.SyncEach) as wal:
        for topic in ("a", "b"):
            wal.append_for_topic(topic, topic.encode() + b"0")
        _quiet(wal)
        if interrupted:
            undo = wal._log.sync_failed

            def undo_then_interrupted(*args: int) -> None:
                undo(*args)
                raise KeyboardInterrupt

            monkeypatch.setattr(wal._log, "sync_failed", undo_then_interrupted)
        writer, go, outcome = _paused_before_its_wait(wal, "a", b"lost")
        m.arm("sync", errno.EIO, times=1)
        with pytest.raises(KeyboardInterrupt if interrupted else StorageError):
            wal.append_for_topic("b", b"lost too")  # leads the pass that fails
        assert wal.append_for_topic("b", b"b1") == 1
        go.set()
        writer.join(30)
        assert not writer.is_alive()
        assert len(outcome) == 1 and isinstance(outcome[0], StorageError), \
            f"an undone append returned {outcome[0]!r}"
        assert _read(wal, "a") == [b"a0"]
        assert wal.append_for_topic("a", b"a1") == 1


@pytest.mark.parametrize("faulty", FAULT_BACKENDS[:1])
def test_a_task_whose_write_a_failed_pass_undid_fails_beside_a_later_durable_one(
        tmp_path: Path, faulty: str) -> None:
    """asyncio: the committer thread, held still, has taken "z1"; "a" then writes and
    submits, a flush's pass fails and undoes both, and "b" writes after it (in the next
    segment) and submits. The committer's next turn takes "a" and "b" together: "b" is made
    durable, and "a" must raise all the same (its entry is gone, and its offset goes to the
    next entry)."""
    with powered() as m, Walrus(data_dir=tmp_path, backend=faulty,
                                fsync_schedule=FsyncSchedule.SyncEach) as wal:
        awal = AsyncWalrus.wrapping(wal)

        async def main() -> list[object]:
            try:
                return await appends()
            finally:
                await awal.close()

        async def appends() -> list[object]:
            await awal.append_for_topic("z", b"z0")  # the committer thread runs from now on
            _quiet(wal)
            committer = awal._committer
            assert committer is not None
            wait = committer._wait
            entered, go = threading.Event(), threading.Event()

            def held(lsn: int) -> None:
                if not go.is_set():
                    entered.set()
                    assert go.wait(30)
                wait(lsn)

            committer._wait = held  # type: ignore[method-assign]
            z = asyncio.ensure_future(awal.append_for_topic("z", b"z1"))
            await asyncio.to_thread(entered.wait, 30)
            a = asyncio.ensure_future(awal.append_for_topic("a", b"lost"))
            while not committer._queue:
                await asyncio.sleep(0.001)
            m.arm("sync", errno.EIO, times=1)
            with pytest.raises(StorageError):
                await asyncio.to_thread(wal.flush)  # its pass fails: undoes "z1" and "a"
            b = asyncio.ensure_future(awal.append_for_topic("b", b"b0"))
            while len(committer._queue) < 2:
                await asyncio.sleep(0.001)
            go.set()
            done = list(await asyncio.gather(z, a, b, return_exceptions=True))
            assert await awal.append_for_topic("a", b"a0") == 0
            return done

        z, a, b = asyncio.run(main())
        assert isinstance(z, StorageError) and b == 0
        assert isinstance(a, StorageError), f"an undone append returned {a!r}"


@pytest.mark.parametrize("faulty", FAULT_BACKENDS[:1])
def test_writes_a_pass_made_durable_survive_a_later_failed_pass_after_an_interrupt(
        tmp_path: Path, faulty: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The main thread leads the pass that covers "b1" and "c1" (their writers sleep behind
    the held pass before it) and is interrupted (Ctrl-C) while it publishes them, after the
    log became durable past them: "b" and "c" return. A later pass fails: it must not undo
    their acknowledged entries (nor hand their offsets out again)."""
    monkeypatch.setattr(_durability, "RECHECK", 60.0)  # no sleeper leads by the clock here
    monkeypatch.setattr(_durability, "GATHER_FLOOR", 60.0)
    with powered() as m, Walrus(data_dir=tmp_path, backend=faulty,
                                fsync_schedule=FsyncSchedule.SyncEach) as wal:
        for topic in ("a", "b", "c", "x"):
            wal.append_for_topic(topic, topic.encode() + b"0")
        _quiet(wal)
        wal._durability.gather = 60.0
        log = wal._log
        announce = log._announce
        interrupted: list[bool] = []

        def interrupting(t: object) -> None:
            if threading.current_thread() is threading.main_thread() and not interrupted:
                interrupted.append(True)
                raise KeyboardInterrupt
            announce(t)  # type: ignore[arg-type]

        monkeypatch.setattr(log, "_announce", interrupting)
        first, gate = _held_pass(m, wal)
        others = _followers(wal)
        gate.set()
        first.join(30)
        with pytest.raises(KeyboardInterrupt):
            wal.append_for_topic("x", b"x1")  # leads the pass that covers "b1" and "c1"
        for t in others:
            t.join(30)
            assert not t.is_alive()
        assert interrupted
        m.arm("sync", errno.EIO, times=1)
        with pytest.raises(StorageError):
            wal.append_for_topic("x", b"lost")
        assert wal.append_for_topic("b", b"b2") == 2  # its pass publishes "c1" too
        assert _read(wal, "b") == [b"b0", b"b1", b"b2"]
        assert _read(wal, "c") == [b"c0", b"c1"]
    with Walrus(data_dir=tmp_path, backend=BACKENDS[0]) as after:
        assert _read(after, "b") == [b"b0", b"b1", b"b2"]
        assert _read(after, "c") == [b"c0", b"c1"]
