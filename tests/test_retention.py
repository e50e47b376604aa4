"""Retention by age and size: expiry, disk bounds, agreement of counts, reads and consumers,
persistence, bad input."""

from __future__ import annotations

import math
import os
import random
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from walrus_faults import POLICIES, powered

from walrus import (
    FsyncSchedule,
    InvalidArgumentError,
    InvalidTopicError,
    OffsetOutOfRangeError,
    ReadOnlyError,
    Retention,
    Walrus,
    WalrusError,
)
from walrus._durability import Background

from . import _retention_child
from ._forks import Zygote
from ._quiesce import quiesced
from .conftest import FAULT_BACKENDS
from .test_consumers_process import ROUNDS, kill, lines, wait_for_line

SEGMENT = 16384
PAYLOAD = 200
RECORD = 232  # a 200-byte entry on disk: 32-byte header, 8-aligned
SCALE = float(os.environ.get("RELIABILITY_SCALE", "1"))


def payload(topic: str, offset: int) -> bytes:
    return f"{topic}:{offset}:".encode().ljust(PAYLOAD, b".")


def dir_bytes(path: Path) -> int:
    """Bytes of the files under ``path``; one deleted while they are summed (retention at
    work in another thread: a writer relieving the worker) counts for nothing."""
    total = 0
    for p in path.rglob("*"):
        try:
            total += p.stat().st_size if p.is_file() else 0
        except FileNotFoundError:
            pass
    return total


def open_wal(path: Path, **kw: object) -> Walrus:
    return Walrus(data_dir=path, segment_size=SEGMENT, fsync_schedule=FsyncSchedule.NoFsync,
                  **kw)  # type: ignore[arg-type]


def expire_now(wal: Walrus) -> None:
    with quiesced(wal):
        pass


def fill(wal: Walrus, topic: str, count: int, every: int = 0) -> None:
    start = wal.topic_info(topic).next_offset
    for i in range(start, start + count):
        wal.append_for_topic(topic, payload(topic, i))
        if every and i % every == 0:
            expire_now(wal)


def stored(wal: Walrus, topic: str) -> list[int]:
    """Every stored offset of ``topic``, each checked against what was appended there."""
    info = wal.topic_info(topic)
    offsets = []
    at = info.first_offset
    while at < info.next_offset:
        batch = wal.batch_read_for_topic(topic, 1 << 20, checkpoint=False, start_offset=at)
        for e in batch:
            assert e.data == payload(topic, e.offset)
            offsets.append(e.offset)
        at += len(batch)
    assert offsets == list(range(info.first_offset, info.next_offset))
    return offsets


def test_a_producer_nobody_consumes_runs_in_bounded_space(tmp_path: Path, backend: str) -> None:
    limit = 20_000
    bound = limit + 5 * SEGMENT  # the limit, one slice over it, active, spare, one unindexed
    with open_wal(tmp_path, backend=backend) as wal:
        wal.append_for_topic("metrics", payload("metrics", 0))
        wal.set_retention("metrics", max_bytes=limit)
        for _ in range(40):
            fill(wal, "metrics", 250)
            expire_now(wal)
            assert dir_bytes(tmp_path) <= bound
        info = wal.topic_info("metrics")
        assert info.next_offset == 10_001
        assert limit <= info.size < limit + SEGMENT
        assert info.first_offset > 9_000
        stored(wal, "metrics")


def test_a_dead_named_consumer_holds_no_space_beyond_the_limit(tmp_path: Path,
                                                               backend: str) -> None:
    limit = 20_000
    with open_wal(tmp_path, backend=backend) as wal:
        fill(wal, "orders", 10)
        assert wal.read_next("orders", consumer="dead") is not None  # and then never again
        wal.set_retention("orders", max_bytes=limit)
        for _ in range(20):
            fill(wal, "orders", 250)
            expire_now(wal)
            assert dir_bytes(tmp_path) <= limit + 5 * SEGMENT
        first = wal.topic_info("orders").first_offset
        assert first > 1
        assert wal.consumers("orders") == {"dead": 1}  # its own position is not rewritten
        assert wal.get_topic_entry_count("orders", consumer="dead") == 5010 - first
        entry = wal.read_next("orders", consumer="dead")  # it comes back: no error
        assert entry is not None and entry.offset == first
        assert entry.data == payload("orders", first)


def test_counts_reads_and_consumers_agree_on_the_first_stored_offset(tmp_path: Path,
                                                                     backend: str) -> None:
    with open_wal(tmp_path, backend=backend) as wal:
        fill(wal, "t", 50)
        assert wal.read_next("t") is not None  # shared cursor at 1
        assert wal.read_next("t", consumer="slow") is not None
        first_batch = wal.batch_read_for_topic("t", 1000, consumer="ahead")
        assert first_batch  # its read-ahead must not serve expired entries later
        wal.set_retention("t", max_bytes=10_000)
        fill(wal, "t", 500)
        expire_now(wal)
        info = wal.topic_info("t")
        first = info.first_offset
        assert first > 50
        assert wal.topics() == ["t"]
        assert wal.get_topic_entry_count("t") == info.next_offset - first
        assert wal.get_topic_entry_counts() == {"t": info.next_offset - first}
        assert wal.get_topic_entry_count("t", consumer="slow") == info.next_offset - first
        with pytest.raises(OffsetOutOfRangeError):
            wal.batch_read_for_topic("t", 1000, start_offset=first - 1)
        assert wal.batch_read_for_topic("t", 1000, start_offset=first)[0].offset == first
        for consumer in (None, "slow", "ahead", "new"):
            entry = wal.read_next("t", consumer=consumer)
            assert entry is not None and entry.offset == first, consumer
        batch = wal.batch_read_for_topic("t", 1000, consumer="later")
        assert batch[0].offset == first
        with pytest.raises(OffsetOutOfRangeError):
            wal.seek("t", first - 1)
        stored(wal, "t")


def test_max_age_expires_whole_segments_once_old_enough(tmp_path: Path, backend: str) -> None:
    now = [0]
    with open_wal(tmp_path, backend=backend) as wal:
        wal._retainer.expiry.clock = lambda: now[0]
        fill(wal, "old", 300)  # a few segments
        segments = sorted(wal._log.segments.values(), key=lambda s: s.number)
        sealed_at = segments[1].header.created_ns  # every entry of the first segment is older
        wal.set_retention("old", max_age=60)
        now[0] = sealed_at + 60 * 10**9 - 1  # one ns short of the limit: nothing expires
        expire_now(wal)
        assert wal.topic_info("old").first_offset == 0
        now[0] += 1
        expire_now(wal)
        first = wal.topic_info("old").first_offset
        assert first > 0
        assert wal.read_next("old") is not None
        assert not os.path.exists(segments[0].path)
        now[0] = 10**30  # everything sealed is old: the active segment's entries stay
        expire_now(wal)
        info = wal.topic_info("old")
        assert info.next_offset - info.first_offset > 0
        assert info.first_offset > first
        stored(wal, "old")


def test_topics_sharing_segments_are_untouched(tmp_path: Path, backend: str) -> None:
    with open_wal(tmp_path, backend=backend) as wal:
        wal.append_for_topic("short", payload("short", 0))
        oldest = min(wal._log.segments)
        wal.set_retention("short", max_bytes=5_000)
        for i in range(600):
            wal.append_for_topic("short", payload("short", i + 1))
            wal.append_for_topic("keep", payload("keep", i))
        expire_now(wal)
        assert wal.topic_info("short").first_offset > 100
        keep = wal.topic_info("keep")
        assert (keep.first_offset, keep.next_offset, keep.unconsumed) == (0, 600, 600)
        assert stored(wal, "keep") == list(range(600))
        stored(wal, "short")
        # "keep" holds every segment: nothing was deleted, its entries all read back
        assert min(wal._log.segments) == oldest


def test_retention_survives_restarts_and_expiry_is_not_damage(tmp_path: Path, backend: str) -> None:
    with open_wal(tmp_path, backend=backend) as wal:
        fill(wal, "t", 5)
        wal.set_retention("t", max_age=timedelta(hours=1), max_bytes=8_000)
        fill(wal, "t", 400)
        expire_now(wal)
        first = wal.topic_info("t").first_offset
        assert first > 0
    with open_wal(tmp_path, backend=backend) as wal:
        assert wal.get_retention("t") == Retention(max_age=3600.0, max_bytes=8_000)
        assert wal.damage() == []
        assert wal.topic_info("t").first_offset >= first
        assert wal.read_next("t").offset == wal.topic_info("t").first_offset  # type: ignore[union-attr]
        stored(wal, "t")
        wal.set_retention("t")  # lift both limits
    with open_wal(tmp_path, read_only=True, backend=backend) as observer:
        assert observer.get_retention("t") == Retention(None, None)
        assert observer.damage() == []


def test_an_observer_sees_what_the_writer_sets(tmp_path: Path, backend: str) -> None:
    with open_wal(tmp_path, backend=backend) as wal:
        fill(wal, "t", 1)
        with open_wal(tmp_path, read_only=True, backend=backend) as observer:
            assert observer.get_retention("t") == Retention()
            wal.set_retention("t", max_bytes=1 << 20)
            assert observer.get_retention("t") == Retention(None, 1 << 20)
            with pytest.raises(ReadOnlyError):
                observer.set_retention("t", max_age=1)


@pytest.mark.parametrize("kw", [
    {"max_age": 0}, {"max_age": -1}, {"max_age": math.nan}, {"max_age": math.inf},
    {"max_age": "1h"}, {"max_age": True}, {"max_age": timedelta(0)},
    {"max_bytes": 0}, {"max_bytes": -5}, {"max_bytes": 1.5}, {"max_bytes": "1MiB"},
    {"max_bytes": True}, {"max_age": 10, "max_bytes": 0},
    {"max_age": 10**400}, {"max_age": 1e300}, {"max_age": timedelta.max},
    {"max_age": -10**400}, {"max_age": -math.inf},
])
def test_bad_limits_change_nothing(tmp_path: Path, kw: dict[str, object]) -> None:
    with open_wal(tmp_path) as wal:
        fill(wal, "t", 1)
        wal.set_retention("t", max_age=5, max_bytes=4096)
        before = (tmp_path / "retention+").read_bytes()
        with pytest.raises(InvalidArgumentError):
            wal.set_retention("t", **kw)  # type: ignore[arg-type]
        assert wal.get_retention("t") == Retention(5.0, 4096)
        assert (tmp_path / "retention+").read_bytes() == before


def test_an_unknown_or_invalid_topic_is_refused(tmp_path: Path) -> None:
    with open_wal(tmp_path) as wal:
        with pytest.raises(InvalidArgumentError, match="unknown topic"):
            wal.set_retention("nope", max_age=1)
        with pytest.raises(InvalidTopicError):
            wal.set_retention("", max_age=1)
        assert wal.topics() == []
        assert not (tmp_path / "retention+").exists()
        assert wal.get_retention("nope") == Retention()


@pytest.mark.parametrize("schedule", ["no_fsync", "sync_each"])
def test_sigkill_during_expiry_loses_nothing_unexpired(tmp_path: Path, schedule: str,
                                                       backend: str, zygote: Zygote) -> None:
    """Each round kills the producer at a random point after expiry began; reopening must
    report no damage, hold every entry from the first stored offset on as written (the limited
    topic's at least up to its limit, the other's all), and count no expired entry."""
    rng = random.Random(16)
    data, journal = tmp_path / "data", tmp_path / "journal"
    for round_ in range(ROUNDS):
        proc = zygote.start("tests._retention_child", str(data), schedule, str(journal),
                            backend)
        try:
            wait_for_line(journal, "F", count=2 * (round_ + 1))
            time.sleep(rng.random() * 0.05)  # a random point, not a timing assumption
        finally:
            kill(proc)
        acked: dict[str, int] = {}
        for fields in lines(journal):
            if fields and fields[0] == "A":
                acked[fields[1]] = max(acked.get(fields[1], -1), int(fields[2]))
        with Walrus(data_dir=data, segment_size=_retention_child.SEGMENT,
                    backend=backend) as wal:
            assert wal.damage() == []
            assert wal.get_retention("r") == Retention(None, _retention_child.LIMIT)
            for topic in ("r", "k"):
                info = wal.topic_info(topic)
                assert info.next_offset > acked[topic]
                at = info.first_offset
                while at < info.next_offset:
                    batch = wal.batch_read_for_topic(topic, 1 << 20, checkpoint=False,
                                                     start_offset=at)
                    assert [e.offset for e in batch] == list(range(at, at + len(batch)))
                    for e in batch:
                        assert e.data == _retention_child.payload(topic, e.offset)
                    at += len(batch)
            assert wal.get_topic_size("r") >= _retention_child.LIMIT
            expire_now(wal)  # expired entries a restart found still on disk expire again
            assert wal.get_topic_size("r") >= _retention_child.LIMIT
            info = wal.topic_info("r")
            assert info.first_offset > 0
            assert info.size < _retention_child.LIMIT + 8192


def test_expiry_holds_across_restarts_and_in_observers(tmp_path: Path, backend: str) -> None:
    """Entries that expired while another topic still needs their segments stay expired for
    an observer and after a restart: nothing reads them again."""
    with open_wal(tmp_path, backend=backend) as wal:
        wal.append_for_topic("short", payload("short", 0))
        wal.set_retention("short", max_bytes=5_000)
        with open_wal(tmp_path, read_only=True, backend=backend) as observer:
            assert observer.read_next("short", consumer="obs").offset == 0  # type: ignore[union-attr]
            for i in range(600):
                wal.append_for_topic("short", payload("short", i + 1))
                wal.append_for_topic("keep", payload("keep", i))
            expire_now(wal)
            first = wal.topic_info("short").first_offset
            assert first > 100
            assert observer.topic_info("short") == wal.topic_info("short")
            assert observer.read_next("short", consumer="obs").offset == first  # type: ignore[union-attr]
            with pytest.raises(OffsetOutOfRangeError):
                observer.batch_read_for_topic("short", 1000, start_offset=first - 1)
    with open_wal(tmp_path, read_only=True, backend=backend) as observer:
        assert observer.topic_info("short").first_offset == first
    with open_wal(tmp_path, backend=backend) as wal:
        assert wal.damage() == []
        info = wal.topic_info("short")
        assert info.first_offset == first
        assert info.unconsumed == info.next_offset - first
        with pytest.raises(OffsetOutOfRangeError):
            wal.batch_read_for_topic("short", 1000, start_offset=first - 1)
        assert wal.read_next("short", consumer="late").offset == first  # type: ignore[union-attr]
        assert wal.get_topic_size("short") == sum(
            RECORD for _ in range(first, info.next_offset))
        stored(wal, "short")
        assert stored(wal, "keep") == list(range(600))


@pytest.mark.parametrize("expirer", ["worker", "writer"])
@pytest.mark.parametrize("schedule", ["sync_each", "no_fsync"])
@pytest.mark.parametrize("faulty", FAULT_BACKENDS)
def test_power_cut_during_expiry(tmp_path: Path, faulty: str, schedule: str, expirer: str,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The power goes at a random disk operation while a limited topic expires beside a
    consumed one; the disk image a cut may leave recovers with no damage, every stored entry
    as written, the consumed topic's cursor inside what is stored, and (under SyncEach) every
    acknowledged entry of the limited topic within its limit still there. ``writer``: the
    background worker does nothing, so expiry runs only in the appends that a roll holds back
    (retention's backpressure), and the cuts land there."""
    if expirer == "writer":
        monkeypatch.setattr(Background, "_run", lambda self: None)
    sched = FsyncSchedule.SyncEach if schedule == "sync_each" else FsyncSchedule.NoFsync
    expired = 0
    for seed in range(int(12 * SCALE)):
        rng = random.Random(seed)
        live, image = tmp_path / f"live{seed}", tmp_path / f"image{seed}"
        live.mkdir()
        acked = {"r": -1, "k": -1}
        with powered() as m:
            m.watch(live)
            wal = Walrus(data_dir=live, backend=faulty, segment_size=8192,
                         fsync_schedule=sched)
            wal.append_for_topic("r", payload("r", 0))
            acked["r"] = 0
            wal.set_retention("r", max_bytes=5_000)
            cut_after = rng.randrange(100, 400)
            try:
                for n in range(1, 500):
                    if n == cut_after:
                        m.cut_at = m.clock + rng.randint(1, 40)
                    topic = "k" if n % 5 == 0 else "r"
                    offset = acked[topic] + 1
                    wal.append_for_topic(topic, payload(topic, offset))
                    acked[topic] = offset
                    if topic == "k":
                        wal.read_next("k")
                    if n % 25 == 0 and expirer == "worker":
                        wal._background.run_once()  # type: ignore[union-attr]
            except OSError:
                pass  # the power went
            m.cut()
            m.image(live, image, rng, rng.choice(POLICIES))
            try:
                wal.close()
            except OSError:
                pass
        with Walrus(data_dir=image, segment_size=8192) as after:
            assert after.damage() == []
            for topic in ("r", "k"):
                info = after.topic_info(topic)
                stored(after, topic)
                if schedule == "sync_each":
                    assert info.next_offset > acked[topic]
            k = after.topic_info("k")
            assert k.first_offset <= k.next_offset - k.unconsumed <= k.next_offset
            if schedule == "sync_each" and acked["r"] * RECORD >= 5_000:
                assert after.get_topic_size("r") >= 5_000
            expired += after.topic_info("r").first_offset > 0
    assert expired  # the cuts came after expiry had begun


def test_consumers_racing_expiry_get_whole_entries_in_order(tmp_path: Path, backend: str) -> None:
    """Readers (the shared cursor, a named consumer, start_offset reads) running while the
    worker expires under them get whole entries as written, in order, or skip them."""
    with open_wal(tmp_path, backend=backend) as wal:
        wal.append_for_topic("t", payload("t", 0))
        wal.set_retention("t", max_bytes=5_000)
        done = threading.Event()
        seen: dict[str, list[int]] = {"shared": [], "named": [], "start": []}
        errors: list[BaseException] = []

        def consume(kind: str) -> None:
            try:
                while True:
                    finished = done.is_set()
                    if kind == "shared":
                        got = wal.batch_read_for_topic("t", 3000)
                    elif kind == "named":
                        e = wal.read_next("t", consumer="n")
                        got = [] if e is None else [e]
                    else:
                        first = wal.topic_info("t").first_offset
                        try:
                            got = wal.batch_read_for_topic("t", 3000, checkpoint=False,
                                                           start_offset=first)
                        except OffsetOutOfRangeError:
                            continue  # expired between the two calls: ask again
                    for e in got:
                        assert e.data == payload("t", e.offset)
                    seen[kind].extend(e.offset for e in got)
                    if finished and (not got or kind == "start"):
                        return
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=consume, args=(k,)) for k in seen]
        for th in threads:
            th.start()
        for i in range(1, 4000):
            wal.append_for_topic("t", payload("t", i))
        done.set()
        for th in threads:
            th.join()
        assert errors == []
        for kind in ("shared", "named"):
            offsets = seen[kind]
            assert offsets == sorted(set(offsets)), kind
            assert offsets[-1] == 3999, kind
        assert wal.topic_info("t").first_offset > 0


def test_asyncio_sets_and_gets_retention(tmp_path: Path) -> None:
    import asyncio

    from walrus.aio import AsyncWalrus

    async def main() -> Retention:
        async with AsyncWalrus(str(tmp_path / "a")) as wal:
            await wal.append_for_topic("t", b"x")
            await wal.set_retention("t", max_age=3600, max_bytes=1 << 20)
            return await wal.get_retention("t")

    assert asyncio.run(main()) == Retention(3600.0, 1 << 20)
    with Walrus(data_dir=str(tmp_path / "a")) as reopened:
        assert reopened.get_retention("t") == Retention(3600.0, 1 << 20)


@pytest.mark.parametrize("damage", [
    b"{not json",
    b'{"format": "walrus-retention", "version": 2, "topics": {}, "expired": {}}',
], ids=["damaged", "newer"])
def test_an_unreadable_settings_file_is_never_rewritten(tmp_path: Path, damage: bytes) -> None:
    """Rewriting it from what could be read (nothing) would lose every other topic's limits
    and expiry points: setting a limit is refused, naming the file, and nothing changes;
    once the file reads again, setting works."""
    with open_wal(tmp_path) as wal:
        wal.append_for_topic("a", payload("a", 0))
        wal.append_for_topic("b", payload("b", 0))
        wal.set_retention("b", max_bytes=1 << 20)
    good = (tmp_path / "retention+").read_bytes()
    (tmp_path / "retention+").write_bytes(damage)
    with open_wal(tmp_path) as wal:
        with pytest.raises(WalrusError, match="retention\\+") as raised:
            wal.set_retention("a", max_age=60)
        assert not isinstance(raised.value, InvalidArgumentError)
        assert (tmp_path / "retention+").read_bytes() == damage
        assert wal.get_retention("a") == Retention()
    (tmp_path / "retention+").write_bytes(good)
    with open_wal(tmp_path) as wal:
        wal.set_retention("a", max_age=60)
        assert wal.get_retention("b") == Retention(None, 1 << 20)
        assert wal.get_retention("a") == Retention(60.0, None)


@pytest.mark.parametrize("link", ["hard", "symbolic"])
def test_a_spare_settings_file_with_another_name_is_never_written_into(
        tmp_path: Path, link: str) -> None:
    """The settings are written into a spare file (made when the last ones were written) so
    that a full disk can take them. A spare that is another name of the live file (linked by
    hand, say) must be replaced, not written into: the live settings would be overwritten in
    place, and a crash then could leave a mix."""
    with open_wal(tmp_path) as wal:
        fill(wal, "t", 1)
        wal.set_retention("t", max_age=5)
        live, spare = tmp_path / "retention+", tmp_path / "retention+.tmp"
        spare.unlink()
        if link == "hard":
            os.link(live, spare)
        else:
            spare.symlink_to(live)
        before = live.read_bytes()
        with open(live, "rb") as f:
            wal.set_retention("t", max_age=7)
            assert os.pread(f.fileno(), len(before) + 1, 0) == before
        assert wal.get_retention("t") == Retention(7.0, None)
    with open_wal(tmp_path) as again:
        assert again.get_retention("t") == Retention(7.0, None)


def test_settings_once_replaced_are_never_written_again(tmp_path: Path) -> None:
    """A reader that opened the settings file reads them whole, however many writes follow
    (a replaced file is not taken as the next spare)."""
    with open_wal(tmp_path) as wal:
        fill(wal, "t", 1)
        wal.set_retention("t", max_age=5)
        before = (tmp_path / "retention+").read_bytes()
        with open(tmp_path / "retention+", "rb") as f:
            for age in range(6, 10):
                wal.set_retention("t", max_age=age)
            assert os.pread(f.fileno(), len(before) + 1, 0) == before


def test_an_observer_sees_every_settings_write_whatever_the_file_system_stamps(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file system whose clock moves in coarse ticks and that gives a rewritten file the
    same inode and size makes two writes within one tick look alike. An observer that looked
    between them must still see the second."""
    from walrus import _retention

    real = _retention.file_stamp

    def coarse(path: str) -> tuple[int, int, int, int] | None:
        stamp = real(path)  # same inode, same size, times in ticks of 10 ms
        tick = 10_000_000
        return None if stamp is None else (1, stamp[1] // tick, stamp[2] // tick * tick, 1)

    monkeypatch.setattr(_retention, "file_stamp", coarse)
    with open_wal(tmp_path) as wal, Walrus(data_dir=tmp_path, read_only=True) as observer:
        fill(wal, "t", 1)
        for age in range(5, 10):
            wal.set_retention("t", max_age=age)
            assert observer.get_retention("t") == Retention(float(age), None)


def test_too_long_an_age_is_refused_by_name(tmp_path: Path) -> None:
    with open_wal(tmp_path) as wal:
        fill(wal, "t", 1)
        with pytest.raises(InvalidArgumentError, match=r"at most 9223372037 seconds .*None"):
            wal.set_retention("t", max_age=10**400)
        wal.set_retention("t", max_age=9_000_000_000)  # 285 years: the longest are taken
        assert wal.get_retention("t") == Retention(9e9, None)


def test_too_long_an_age_an_earlier_version_kept_breaks_nothing(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An earlier version took max_age=1e300 and kept it; every expiry then failed, and with
    it every deletion of consumed segments, of any topic. It is read as the longest age."""
    with open_wal(tmp_path) as wal:
        fill(wal, "quiet", 1)
    (tmp_path / "retention+").write_text(
        '{"expired": {}, "format": "walrus-retention", "topics": {"quiet": '
        '{"max_age": 1e+300, "max_bytes": null}}, "version": 1}')
    with open_wal(tmp_path) as wal:
        fill(wal, "busy", 300)
        while wal.read_next("busy") is not None:
            pass
        wal.read_next("quiet")
        for _ in range(3):
            wal._background.run_once()  # type: ignore[union-attr]
        assert len(list(tmp_path.glob("*.wal"))) <= 3, "consumed segments were kept"
        assert "max_age 1e+300 is longer than the longest" in caplog.text
        assert wal.get_retention("quiet") == Retention(max_age=(2**63 - 1) / 1e9)
        wal.set_retention("quiet", max_bytes=1 << 20)  # the setting can be changed too
    with open_wal(tmp_path) as wal:
        assert wal.get_retention("quiet") == Retention(None, 1 << 20)


def test_a_damaged_settings_file_is_warned_of_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Looks within the moment after the file was written read it again (its stamp is not
    trusted yet), but the same bytes that would not parse are not warned of again."""
    from walrus._retention import Settings

    (tmp_path / "retention+").write_bytes(b'{"damaged')
    settings = Settings(str(tmp_path))
    assert settings.problem is not None
    for _ in range(50):
        settings.reload()
    assert caplog.text.count("ignoring retention settings") == 1
    (tmp_path / "retention+").unlink()  # gone: no problem, no limits
    assert settings.reload() and settings.problem is None and settings.limits == {}
