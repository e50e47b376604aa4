"""Named consumers in one process (SPEC section 7): their own cursors beside the shared one,
persisted as the shared one is, holding disk space until they pass it; seek, delete, and bad
input that changes nothing."""

from __future__ import annotations

import os
import struct
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from walrus import (
    FsyncSchedule,
    InvalidArgumentError,
    InvalidTopicError,
    OffsetOutOfRangeError,
    ReadConsistency,
    ReadOnlyError,
    Walrus,
    WalrusClosedError,
    WalrusLockedError,
)
from walrus._consumers import (
    DIRECTORY,
    ConsumerFileError,
    Registry,
    decode_header,
    encode_slot,
    newest_slot,
    read_state,
)

from .conftest import WalFactory, segment_files

MODES = {"strict": ReadConsistency.StrictlyAtOnce,
         "alo3": ReadConsistency.AtLeastOnce(persist_every=3)}
SCHEDULES = {"sync_each": FsyncSchedule.SyncEach, "ms5": FsyncSchedule.Milliseconds(5),
             "no_fsync": FsyncSchedule.NoFsync}


def fill(wal: Walrus, topic: str, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        wal.append_for_topic(topic, b"e%d" % i)


def offsets(wal: Walrus, topic: str, consumer: str | None, n: int) -> list[int]:
    out = []
    for _ in range(n):
        e = wal.read_next(topic, consumer=consumer)
        if e is None:
            break
        out.append(e.offset)
    return out


def reclaim(wal: Walrus) -> None:
    wal._background.run_once()  # type: ignore[union-attr]


def test_each_consumer_sees_every_entry_and_the_shared_cursor_is_untouched(
        open_wal: WalFactory) -> None:
    wal = open_wal()
    fill(wal, "t", 10)
    assert offsets(wal, "t", "a", 4) == [0, 1, 2, 3]
    assert offsets(wal, "t", "b", 2) == [0, 1]
    assert wal.get_topic_entry_count("t") == 10
    assert wal.read_next("t").offset == 0  # type: ignore[union-attr]
    assert [e.offset for e in wal.batch_read_for_topic("t", 1 << 20, consumer="a")] == list(
        range(4, 10))
    assert wal.read_next("t", consumer="a") is None
    assert wal.get_topic_entry_count("t", consumer="a") == 0
    assert wal.get_topic_entry_count("t", consumer="b") == 8
    assert wal.get_topic_entry_count("t", consumer="never") == 10
    assert wal.get_topic_entry_count("t") == 9
    assert wal.consumers("t") == {"a": 10, "b": 2}
    assert wal.consumers("other") == {}


def test_peeks_move_nothing(open_wal: WalFactory) -> None:
    wal = open_wal()
    fill(wal, "t", 3)
    assert wal.read_next("t", checkpoint=False, consumer="a").offset == 0  # type: ignore[union-attr]
    assert wal.batch_read_for_topic("t", 1, checkpoint=False, consumer="a")[0].offset == 0
    assert wal.read_next("t", consumer="a").offset == 0  # type: ignore[union-attr]


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
@pytest.mark.parametrize("mode", sorted(MODES))
def test_positions_survive_a_clean_reopen(open_wal: WalFactory, tmp_path: Path, mode: str,
                                          schedule: str) -> None:
    kw = {"consistency": MODES[mode], "fsync_schedule": SCHEDULES[schedule]}
    wal = open_wal(**kw)
    fill(wal, "t", 20)
    assert offsets(wal, "t", "a", 7) == list(range(7))
    assert len(wal.batch_read_for_topic("t", 1 << 20, consumer="b")) == 20
    wal.close()
    wal = open_wal(**kw)
    assert wal.consumers("t") == {"a": 7, "b": 20}
    assert offsets(wal, "t", "a", 100) == list(range(7, 20))
    assert wal.get_topic_entry_count("t") == 20


def test_at_least_once_persists_only_what_earlier_calls_consumed(tmp_path: Path) -> None:
    wal = Walrus(tmp_path / "w", consistency=ReadConsistency.AtLeastOnce(persist_every=3))
    fill(wal, "t", 10)
    assert offsets(wal, "t", "a", 5) == list(range(5))
    stored = {n: p for _t, n, p, _ in Registry(str(tmp_path / "w"), None).list()}  # type: ignore[arg-type]
    # the read of offset 3 persisted 3 (what the calls before it consumed), never 4 or 5
    assert stored == {"a": 3}
    wal.close()
    stored = {n: p for _t, n, p, _ in Registry(str(tmp_path / "w"), None).list()}  # type: ignore[arg-type]
    assert stored == {"a": 5}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_readers_sharing_a_consumer_get_distinct_entries(open_wal: WalFactory,
                                                         mode: str) -> None:
    wal = open_wal(consistency=MODES[mode])
    n = 3000
    for i in range(0, n, 500):
        wal.batch_append_for_topic("t", [b"%d" % j for j in range(i, i + 500)])
    got: list[list[int]] = [[] for _ in range(4)]

    def work(k: int) -> None:
        while True:
            if k % 2:
                batch = wal.batch_read_for_topic("t", 64, consumer="w")
                if not batch:
                    return
                got[k] += [e.offset for e in batch]
            else:
                e = wal.read_next("t", consumer="w")
                if e is None:
                    return
                got[k].append(e.offset)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    everything = sorted(o for g in got for o in g)
    assert everything == list(range(n))


def test_seek_replays_and_skips_and_persists(open_wal: WalFactory) -> None:
    wal = open_wal()
    fill(wal, "t", 10)
    assert offsets(wal, "t", "a", 5) == list(range(5))
    wal.seek("t", 2, consumer="a")
    assert wal.consumers("t") == {"a": 2}
    assert offsets(wal, "t", "a", 2) == [2, 3]
    wal.seek("t", 9, consumer="a")
    assert offsets(wal, "t", "a", 5) == [9]
    wal.seek("t", 10, consumer="a")  # the next offset: nothing left
    assert wal.read_next("t", consumer="a") is None
    wal.seek("t", 4, consumer="fresh")  # a first use by seek creates it there
    assert wal.consumers("t") == {"a": 10, "fresh": 4}
    wal.seek("t", 3)  # the shared cursor too
    assert wal.read_next("t").offset == 3  # type: ignore[union-attr]
    wal.close()
    wal = open_wal()
    assert wal.consumers("t") == {"a": 10, "fresh": 4}
    assert wal.read_next("t").offset == 4  # type: ignore[union-attr]


def test_seek_out_of_range_changes_nothing(open_wal: WalFactory) -> None:
    wal = open_wal(segment_size=4096)
    fill(wal, "t", 300)
    assert len(segment_files(wal.data_dir)) > 2
    for _ in range(300):
        wal.read_next("t")
    offsets(wal, "t", "a", 300)
    reclaim(wal)
    first = wal.topic_info("t").first_offset
    assert first > 0
    before = wal.consumers("t")
    for bad in (first - 1, 301, 10**9):
        with pytest.raises(OffsetOutOfRangeError):
            wal.seek("t", bad, consumer="a")
        with pytest.raises(OffsetOutOfRangeError):
            wal.seek("t", bad, consumer="b")  # not created either
        with pytest.raises(OffsetOutOfRangeError):
            wal.seek("t", bad)
    with pytest.raises(OffsetOutOfRangeError, match=r"'nothing' does not exist yet.*offset 0"):
        wal.seek("nothing", 1, consumer="a")
    for offset in (0, 1):  # the shared cursor of a topic that does not exist
        with pytest.raises(OffsetOutOfRangeError, match="'nothing' does not exist"):
            wal.seek("nothing", offset)
    assert wal.consumers("t") == before
    assert wal.consumers("nothing") == {}


def test_a_consumer_holds_the_segments_it_has_not_passed(open_wal: WalFactory) -> None:
    wal = open_wal(segment_size=4096)
    fill(wal, "t", 300)
    assert offsets(wal, "t", "slow", 1) == [0]
    while wal.read_next("t") is not None:
        pass
    reclaim(wal)
    assert wal.topic_info("t").first_offset == 0  # held by "slow"
    n = len(segment_files(wal.data_dir))
    offsets(wal, "t", "slow", 200)
    reclaim(wal)
    first = wal.topic_info("t").first_offset
    assert 0 < first <= 201
    assert len(segment_files(wal.data_dir)) < n
    assert offsets(wal, "t", "slow", 1000) == list(range(201, 300))


def test_delete_consumer_releases_its_hold(open_wal: WalFactory) -> None:
    wal = open_wal(segment_size=4096)
    fill(wal, "t", 300)
    offsets(wal, "t", "slow", 1)
    while wal.read_next("t") is not None:
        pass
    reclaim(wal)
    assert wal.topic_info("t").first_offset == 0
    wal.delete_consumer("t", "slow")
    assert wal.consumers("t") == {}
    reclaim(wal)
    assert wal.topic_info("t").first_offset > 0
    wal.delete_consumer("t", "slow")  # gone already: nothing happens
    wal.delete_consumer("t", "never")
    fill(wal, "t", 5, 300)
    # used again, it starts afresh at the first stored entry
    assert wal.read_next("t", consumer="slow").offset == wal.topic_info("t").first_offset  # type: ignore[union-attr]


def test_a_consumer_of_a_topic_not_there_yet_sees_it_from_the_start(
        open_wal: WalFactory) -> None:
    """A worker may start before its producer: its first read registers it at offset 0, so
    nothing appended later is reclaimed before it reads it."""
    wal = open_wal(segment_size=4096)
    assert wal.read_next("later", consumer="early") is None
    assert wal.batch_read_for_topic("later", 100, consumer="early2") == []
    assert wal.consumers("later") == {"early": 0, "early2": 0}
    assert "later" not in wal.topics()  # reading creates no topic
    fill(wal, "later", 300)
    while wal.read_next("later") is not None:
        pass
    reclaim(wal)
    assert offsets(wal, "later", "early", 1000) == list(range(300))


def test_the_shared_cursor_still_holds_space(open_wal: WalFactory) -> None:
    """Seed programs behave as before: the shared cursor is a consumer like the others."""
    wal = open_wal(segment_size=4096)
    fill(wal, "t", 300)
    offsets(wal, "t", "a", 1000)
    reclaim(wal)
    assert wal.topic_info("t").first_offset == 0
    assert wal.get_topic_entry_count("t") == 300


BAD_NAMES = ["", "a\0b", "x" * 256, "é" * 128, "\udc80", b"bytes", 3, None.__class__]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_bad_consumer_names_change_nothing(open_wal: WalFactory, name: object) -> None:
    wal = open_wal()
    fill(wal, "t", 3)
    calls = [
        lambda: wal.read_next("t", consumer=name),  # type: ignore[arg-type]
        lambda: wal.read_next("t", checkpoint=False, consumer=name),  # type: ignore[arg-type]
        lambda: wal.batch_read_for_topic("t", 10, consumer=name),  # type: ignore[arg-type]
        lambda: wal.batch_read_for_topic("t", 10, start_offset=0, consumer=name),  # type: ignore[arg-type]
        lambda: wal.get_topic_entry_count("t", consumer=name),  # type: ignore[arg-type]
        lambda: wal.seek("t", 0, consumer=name),  # type: ignore[arg-type]
        lambda: wal.delete_consumer("t", name),  # type: ignore[arg-type]
        lambda: wal.read_next("nope", consumer=name),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises(InvalidArgumentError) as info:
            call()
        assert isinstance(info.value, ValueError)
    assert wal.consumers("t") == {}
    assert wal.get_topic_entry_count("t") == 3
    assert not os.path.isdir(wal.data_dir / DIRECTORY) or not os.listdir(
        wal.data_dir / DIRECTORY)


def test_bad_topics_offsets_and_flags_change_nothing(open_wal: WalFactory) -> None:
    wal = open_wal()
    fill(wal, "t", 3)
    with pytest.raises(InvalidTopicError):
        wal.read_next("", consumer="a")
    with pytest.raises(InvalidTopicError):
        wal.consumers("")
    with pytest.raises(InvalidTopicError):
        wal.delete_consumer("a\0", "a")
    for bad in (-1, 1.5, "2", True, None):
        with pytest.raises(InvalidArgumentError):
            wal.seek("t", bad, consumer="a")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        wal.read_next("t", "yes", consumer="a")  # type: ignore[arg-type]
    assert wal.consumers("t") == {}


def test_closed_and_read_only(open_wal: WalFactory, tmp_path: Path) -> None:
    wal = open_wal()
    fill(wal, "t", 3)
    wal.read_next("t", consumer="a")
    obs = open_wal(read_only=True)
    with pytest.raises(ReadOnlyError):
        obs.read_next("t")  # the shared cursor stays the writer's
    with pytest.raises(WalrusLockedError) as info:
        obs.read_next("t", consumer="a")  # the writer owns it
    assert info.value.pid == os.getpid()
    assert obs.read_next("t", consumer="b").offset == 0  # type: ignore[union-attr]
    with pytest.raises(WalrusLockedError):
        wal.delete_consumer("t", "b")
    obs.close()
    wal.delete_consumer("t", "b")  # free once its owner closed
    wal.close()
    for call in (lambda: wal.read_next("t", consumer="a"), lambda: wal.consumers("t"),
                 lambda: wal.seek("t", 0, consumer="a"),
                 lambda: wal.delete_consumer("t", "a"),
                 lambda: wal.get_topic_entry_count("t", consumer="a")):
        with pytest.raises(WalrusClosedError):
            call()


def test_sixty_four_consumers(open_wal: WalFactory) -> None:
    wal = open_wal()
    fill(wal, "t", 50)
    names = [f"c{i}" for i in range(64)]
    for k, name in enumerate(names):
        assert offsets(wal, "t", name, k % 50 + 1) == list(range(k % 50 + 1))
    assert wal.consumers("t") == {n: k % 50 + 1 for k, n in enumerate(names)}


def test_a_forked_child_cannot_use_or_release_a_consumer(tmp_path: Path) -> None:
    wal = Walrus(tmp_path / "w")
    fill(wal, "t", 3)
    assert wal.read_next("t", consumer="a").offset == 0  # type: ignore[union-attr]
    pid = os.fork()
    if pid == 0:  # the child: every call refused, and its exit releases nothing
        code = 0
        try:
            wal.read_next("t", consumer="a")
            code = 1
        except WalrusClosedError:
            pass
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with Walrus(tmp_path / "w", read_only=True) as obs, pytest.raises(WalrusLockedError):
        obs.read_next("t", consumer="a")  # still the parent's
    assert wal.read_next("t", consumer="a").offset == 1  # type: ignore[union-attr]
    wal.close()


def test_an_observer_persists_at_least_once_positions_exactly_on_close(tmp_path: Path) -> None:
    with Walrus(tmp_path / "w") as wal:
        fill(wal, "t", 10)
        obs = Walrus(tmp_path / "w", read_only=True,
                     consistency=ReadConsistency.AtLeastOnce(persist_every=100))
        assert offsets(obs, "t", "a", 7) == list(range(7))
        assert wal.consumers("t") == {"a": 0}  # nothing persisted yet: at least once
        obs.flush()
        assert wal.consumers("t") == {"a": 7}
        assert offsets(obs, "t", "a", 2) == [7, 8]
        obs.close()
        assert wal.consumers("t") == {"a": 9}


def test_named_reads_beside_reclamation_in_other_threads(tmp_path: Path) -> None:
    """Reclamation trims the topic's index while a named consumer reads it: every entry
    still comes once, in order, with its own data (never another's, never a false
    CorruptionError)."""
    wal = Walrus(tmp_path / "w", segment_size=4096)
    total = 6000
    done = threading.Event()
    failures: list[BaseException] = []

    def produce() -> None:
        try:
            for i in range(total):
                wal.append_for_topic("t", b"%d" % i * 8)
                wal.read_next("t")  # the shared cursor keeps up: segments become free
                if i % 50 == 0:
                    reclaim(wal)
        except BaseException as exc:  # reported below
            failures.append(exc)
        finally:
            done.set()

    # "n" exists before the first append, so it holds every entry from offset 0. Created by
    # its first read in the loop instead, it would start wherever reclamation had got to by
    # then: the first 50 entries were gone when a loaded machine ran the producer first.
    assert wal.read_next("t", consumer="n") is None
    producer = threading.Thread(target=produce)
    producer.start()
    seen: list[int] = []
    try:
        while not (done.is_set() and len(seen) == total) and not failures:
            for e in wal.batch_read_for_topic("t", 256, consumer="n") or []:
                assert e.data == b"%d" % e.offset * 8
                seen.append(e.offset)
            e = wal.read_next("t", consumer="n")
            if e is not None:
                assert e.data == b"%d" % e.offset * 8
                seen.append(e.offset)
            if done.is_set() and wal.get_topic_entry_count("t", consumer="n") == 0:
                break
    finally:
        producer.join()
        wal.close()  # also when an assertion failed: no thread of it outlives the test
    assert not failures, failures
    assert seen == list(range(total))


def test_named_reads_hold_the_topic_lock_reclamation_takes(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The race above is too narrow to hit at will (reclamation trims the index between two
    bytecodes of a read), so this pins what closes it: every read of the topic's index, by
    any cursor, happens under the topic's lock, which reclamation takes to trim it."""
    import walrus._cursors as cursors

    real = cursors.read_run
    checked: list[bool] = []

    def guarded(segments: Any, t: Any, *args: Any) -> list[bytes]:
        checked.append(t.read_lock.locked())
        return real(segments, t, *args)

    monkeypatch.setattr(cursors, "read_run", guarded)
    with Walrus(tmp_path / "w") as wal:
        fill(wal, "t", 5)
        wal.read_next("t", consumer="a")
        wal.batch_read_for_topic("t", 100, consumer="a")
        wal.read_next("t", consumer="b", checkpoint=False)
        wal.read_next("t")
    assert checked and all(checked), checked


def test_a_read_racing_delete_consumer_consumes_nothing(open_wal: WalFactory) -> None:
    """A reader that found the consumer just before another thread deleted it gets a clear
    error, and nothing is persisted into the deleted consumer's file."""
    wal = open_wal()
    fill(wal, "t", 3)
    assert wal.read_next("t", consumer="a").offset == 0  # type: ignore[union-attr]
    c = wal._cursor.named["a"]["t"]
    wal.delete_consumer("t", "a")
    wal._cursor.named.setdefault("a", {})["t"] = c  # as a thread that looked it up before
    with pytest.raises(InvalidArgumentError, match="deleted"):
        wal.read_next("t", consumer="a")
    del wal._cursor.named["a"]
    assert wal.consumers("t") == {}
    assert wal.read_next("t", consumer="a").offset == 0  # type: ignore[union-attr]


class _HandOff:
    """The consumers' mutex, handed to a waiting thread when the thread that set ``then``
    lets go of it: that thread runs to its end before this one goes on."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.then: threading.Thread | None = None

    def __enter__(self) -> None:
        self.real.acquire()

    def __exit__(self, *exc: object) -> None:
        self.real.release()
        waiting, self.then = self.then, None
        if waiting is not None:
            waiting.join(30)
            assert not waiting.is_alive()


@pytest.mark.parametrize("order", ["between", "either"])
def test_a_delete_racing_a_first_use_leaves_no_deleted_consumer_on_the_hot_path(
        open_wal: WalFactory, order: str) -> None:
    """A consumer's first use owns it, then links it to the cursor's fast table; a
    ``delete_consumer`` in between must not leave the deleted one linked there (every later
    read through that name would hit a closed file). ``between``: the delete is made to land
    exactly there; ``either``: it lands there or after the link, as the threads go."""
    wal = open_wal()
    wal.batch_append_for_topic("t", [b"a", b"b", b"c"])
    consumers = wal._consumers
    real_own, real_mutex = consumers._own, consumers._mutex
    hand_off = _HandOff(real_mutex)
    deleter: list[threading.Thread] = []

    def own_then_delete(topic: str, name: str) -> Any:
        owned = real_own(topic, name)
        if deleter:  # the first use takes the consumer again once the delete won: that one
            return owned  # stays (another deleter here would race the rest of the test)
        thread = threading.Thread(target=wal.delete_consumer, args=("t", "job"))
        thread.start()
        deleter.append(thread)
        if order == "between":
            hand_off.then = thread  # runs when the first use lets go of the mutex
        else:
            thread.join(0.5)  # it may wait for the first use to finish: both orders must hold
        return owned

    consumers._own = own_then_delete  # type: ignore[method-assign]
    consumers._mutex = hand_off  # type: ignore[assignment]
    try:
        first = wal.read_next("t", consumer="job")
    finally:
        consumers._own = real_own  # type: ignore[method-assign]
        consumers._mutex = real_mutex
    deleter[0].join()
    linked = wal._cursor.named.get("job", {}).get("t")
    assert linked is None or consumers.owned.get(("job", "t")) is linked
    assert first is not None and first.offset == 0
    again = wal.read_next("t", consumer="job")  # a consumer anew, or the one that stayed
    assert again is not None and again.offset in (0, 1)
    assert "job" in wal.consumers("t")


def test_a_consumer_file_nobody_can_read_holds_every_segment(open_wal: WalFactory) -> None:
    """Its topic is unknown (the header is damaged, or a newer walrus wrote it): reclamation
    must not take its hold for none."""
    wal = open_wal(segment_size=4096)
    fill(wal, "t", 300)
    assert offsets(wal, "t", "slow", 1) == [0]
    while wal.read_next("t") is not None:
        pass
    path = next(p for p in Path(wal.data_dir, DIRECTORY).iterdir() if p.suffix == ".cur")
    with open(path, "r+b") as f:
        f.write(b"\xff" * 64)  # the header, with the topic's name in it
    reclaim(wal)
    assert wal.topic_info("t").first_offset == 0


def _damage_header(wal: Walrus, how: str) -> Path:
    """Make the one consumer file unreadable: a flipped byte of its header, or a version this
    walrus does not read (checksummed, as a newer walrus would write it)."""
    (path,) = Path(wal.data_dir, DIRECTORY).glob("*.cur")
    data = bytearray(path.read_bytes())
    if how == "damaged":
        data[17] ^= 0xFF
    else:
        struct.pack_into("<H", data, 8, 3)
        _, _, tl, nl, _ = struct.unpack_from("<8sHHHH", data)
        end = 16 + tl + nl
        struct.pack_into("<I", data, end, zlib.crc32(bytes(data[:end])))
    path.write_bytes(bytes(data))
    return path


def _with_an_unreadable_consumer(open_wal: WalFactory, how: str) -> Walrus:
    """A log of 4 KiB segments with one entry of "t", whose consumer "slow" read it; its file
    then made unreadable (see ``_damage_header``)."""
    wal = open_wal(segment_size=4096)
    fill(wal, "t", 1)
    assert offsets(wal, "t", "slow", 1) == [0]
    wal.close()
    wal = open_wal(segment_size=4096)
    _damage_header(wal, how)
    return wal


@pytest.mark.parametrize("how", ["damaged", "newer"])
def test_expired_segments_go_beside_a_consumer_file_nobody_can_read(
        open_wal: WalFactory, how: str) -> None:
    """Its position is unknown, so it holds every entry still stored; but an entry that
    expired by retention is gone for every consumer, and its segment is deleted."""
    wal = _with_an_unreadable_consumer(open_wal, how)
    wal.set_retention("t", max_bytes=4096)
    fill(wal, "t", 2000, start=1)
    fill(wal, "u", 300)  # no limits: every entry held although the shared cursor read it
    while wal.batch_read_for_topic("u", 1 << 20):
        pass
    for _ in range(3):
        reclaim(wal)
    assert wal.topic_info("t").first_offset > 0
    assert len(segment_files(Path(wal.data_dir))) <= 8 + 300 * 24 // 4096, \
        "expired segments were kept"
    assert [e.offset for e in wal.batch_read_for_topic(
        "u", 1 << 20, checkpoint=False, start_offset=0)] == list(range(300))


@pytest.mark.parametrize("how", ["damaged", "newer"])
def test_deleting_a_consumer_file_nobody_can_read_frees_its_segments_at_once(
        open_wal: WalFactory, how: str) -> None:
    """The worker's next pass of its own deletes what the file held, although no cursor moved
    since the pass before (before, it waited for some cursor to move)."""
    wal = _with_an_unreadable_consumer(open_wal, how)
    fill(wal, "t", 500, start=1)
    while wal.batch_read_for_topic("t", 1 << 20):
        pass
    reclaim(wal)
    held = len(segment_files(Path(wal.data_dir)))
    assert held > 4
    wal.delete_consumer("t", "slow")
    deadline = time.monotonic() + 10  # the worker looks every 0.1 s
    while len(segment_files(Path(wal.data_dir))) > 3:
        assert time.monotonic() < deadline, "the deleted consumer still held"
        time.sleep(0.05)


@pytest.mark.parametrize("how", ["damaged", "newer"])
def test_delete_consumer_removes_a_file_nobody_can_read(
        open_wal: WalFactory, how: str, caplog: pytest.LogCaptureFixture) -> None:
    wal = open_wal()
    fill(wal, "t", 5)
    assert offsets(wal, "t", "slow", 2) == [0, 1]
    wal.close()
    wal = open_wal()
    path = _damage_header(wal, how)
    with pytest.raises(ConsumerFileError, match=r"delete_consumer\('t', 'slow'\) removes it"):
        wal.read_next("t", consumer="slow")
    wal.delete_consumer("t", "slow")
    assert not path.exists()
    assert "deleted consumer 'slow' of topic 't'" in caplog.text
    assert offsets(wal, "t", "slow", 1) == [0]  # a consumer anew


def as_version_1(path: Path, position: int) -> None:
    """Write consumer file ``path`` as walrus did before version 2: two slots (the newest
    position in the second, the one before it in the first), nothing after them."""
    topic, name, _, _ = decode_header(path.read_bytes())
    t, n = topic.encode(), name.encode()
    head = struct.pack("<8sHHHH", b"WALRUSCN", 1, len(t), len(n), 0) + t + n
    seed = zlib.crc32(head)
    data = bytearray(4096)
    data[:len(head) + 4] = head + struct.pack("<I", seed)
    data[2048:2068] = encode_slot(7, position - 1, seed)
    data[2560:2580] = encode_slot(8, position, seed)
    path.write_bytes(bytes(data))


def test_a_version_1_consumer_file_is_read_and_written_anew(open_wal: WalFactory) -> None:
    """Files of the two-slot format keep their position; an owner writes the file anew in
    the current format (whole, then renamed into place) before it moves the consumer, so
    that a walrus reading only two slots is never handed one it would misread."""
    wal = open_wal()
    fill(wal, "t", 10)
    assert offsets(wal, "t", "old", 3) == [0, 1, 2]
    wal.close()
    (path,) = Path(wal.data_dir, DIRECTORY).glob("*.cur")
    as_version_1(path, 3)
    assert read_state(str(path)) == ("t", "old", 3)
    wal = open_wal()
    assert wal.consumers("t") == {"old": 3}
    before = path.stat().st_ino
    assert offsets(wal, "t", "old", 2) == [3, 4]
    data = path.read_bytes()
    assert decode_header(data)[3] == 2
    assert path.stat().st_ino != before  # replaced whole, not patched in place
    assert not list(path.parent.glob("*.tmp"))
    wal.close()
    assert read_state(str(path)) == ("t", "old", 5)
    wal = open_wal()
    assert offsets(wal, "t", "old", 1) == [5]


def test_a_consumer_file_of_an_unknown_version_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "x.cur"
    head = struct.pack("<8sHHHH", b"WALRUSCN", 3, 1, 1, 0) + b"tc"
    path.write_bytes(head + struct.pack("<I", zlib.crc32(head)) + bytes(4096 - len(head) - 4))
    with pytest.raises(ConsumerFileError, match=r"version 3 \(this walrus reads 1 and 2\)"):
        read_state(str(path))
    assert newest_slot(path.read_bytes(), 0) is None
