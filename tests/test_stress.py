"""Concurrency stress: many producer and consumer threads, shared and separate topics.

Producers append a fixed number of self-describing entries each, mixing single appends and
batches; consumers mix read_next and batch reads; observers peek and count meanwhile. Checked:
every entry consumed exactly once, each producer's entries in its order, batches contiguous,
each consumer's entries in offset order, and a reopen shows the same log with every cursor at
the end. The soak variant (``-m soak``) runs a producer and a consumer for minutes and shows
memory, descriptors, files and disk use staying bounded.
"""

from __future__ import annotations

import os
import random
import resource
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from walrus import FsyncSchedule, OffsetOutOfRangeError, ReadConsistency, Walrus

from ._workload import FIGURES

PRODUCERS = 6
PER_PRODUCER = 500
SHARED = "shared"
SCHEDULES = {"sync_each": FsyncSchedule.SyncEach, "ms5": FsyncSchedule.Milliseconds(5),
             "no_fsync": FsyncSchedule.NoFsync}
MODES = {"strict": ReadConsistency.StrictlyAtOnce,
         "alo": ReadConsistency.AtLeastOnce(persist_every=5)}


def entry(producer: int, seq: int, batch: int) -> bytes:
    """Producer, its sequence number and the batch (call) it came in, padded to vary sizes."""
    return b"%d:%d:%d:" % (producer, seq, batch) + b"x" * ((producer * 31 + seq * 7) % 300)


def parse(data: bytes) -> tuple[int, int, int]:
    producer, seq, batch, _ = data.split(b":", 3)
    return int(producer), int(seq), int(batch)


def topic_of(producer: int) -> str:
    """Half the producers share a topic, the others have one each."""
    return SHARED if producer % 2 == 0 else f"own-{producer}"


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_threads_lose_nothing_duplicate_nothing_and_keep_order(
        tmp_path: Path, backend: str, schedule: str, mode: str) -> None:
    path = tmp_path / "w"
    wal = Walrus(data_dir=path, backend=backend, segment_size=64 << 10,
                 fsync_schedule=SCHEDULES[schedule], consistency=MODES[mode])
    topics = sorted({topic_of(p) for p in range(PRODUCERS)})
    consumed: dict[str, list[tuple[int, bytes]]] = defaultdict(list)
    per_consumer: list[list[int]] = []
    lock = threading.Lock()
    producing = threading.Event()
    producing.set()
    errors: list[BaseException] = []

    def guarded(fn: Callable[..., None]) -> Callable[..., None]:
        def run(*args: object) -> None:
            try:
                fn(*args)
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)
        return run

    @guarded
    def produce(p: int) -> None:
        rng = random.Random(p)
        topic, seq, call = topic_of(p), 0, 0
        while seq < PER_PRODUCER:
            call += 1
            if rng.random() < 0.3:
                n = min(rng.randint(2, 12), PER_PRODUCER - seq)
                wal.batch_append_for_topic(topic, [entry(p, seq + i, call) for i in range(n)])
                seq += n
            else:
                wal.append_for_topic(topic, entry(p, seq, call))
                seq += 1

    @guarded
    def consume(c: int, topic: str) -> None:
        rng = random.Random(1000 + c)
        mine: list[int] = []
        with lock:
            per_consumer.append(mine)
        while True:
            if rng.random() < 0.5:
                got = wal.batch_read_for_topic(topic, rng.randrange(0, 3000))
            else:
                one = wal.read_next(topic)
                got = [] if one is None else [one]
            mine.extend(e.offset for e in got)
            with lock:
                consumed[topic].extend((e.offset, e.data) for e in got)
            if not got:
                if not producing.is_set() and wal.get_topic_entry_count(topic) == 0:
                    return
                time.sleep(0.0005)

    @guarded
    def observe() -> None:
        rng = random.Random(7)
        while producing.is_set():
            topic = rng.choice(topics)
            try:
                got = wal.batch_read_for_topic(topic, 4000, checkpoint=False,
                                               start_offset=rng.randrange(0, 50))
            except OffsetOutOfRangeError:
                continue  # consumed and reclaimed meanwhile
            for e in got:
                assert e.data == entry(*parse(e.data))  # whole and well-formed
            assert wal.get_topic_entry_count(topic) >= 0
            time.sleep(0.001)

    producers = [threading.Thread(target=produce, args=(p,)) for p in range(PRODUCERS)]
    consumers = [threading.Thread(target=consume, args=(c, SHARED)) for c in range(4)]
    consumers += [threading.Thread(target=consume, args=(10 + i, t))
                  for i, t in enumerate(t for t in topics if t != SHARED)]
    observer = threading.Thread(target=observe)
    threads = [*producers, *consumers, observer]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in producers:
        t.join()
    producing.clear()
    for t in [*consumers, observer]:
        t.join(120)
        assert not t.is_alive(), "a thread hung"
    assert not errors, errors
    FIGURES["stress threads run"] += len(threads)
    FIGURES["stress operations (entries in and out)"] += 2 * PRODUCERS * PER_PRODUCER
    _check(consumed, per_consumer, topics)
    wal.close()
    with Walrus(data_dir=path, backend=backend, segment_size=64 << 10) as again:
        for topic in topics:
            assert again.get_topic_entry_count(topic) == 0
            assert again.read_next(topic) is None
    FIGURES["stress milliseconds"] += round(1000 * (time.monotonic() - start))


def _check(consumed: dict[str, list[tuple[int, bytes]]], per_consumer: list[list[int]],
           topics: list[str]) -> None:
    for mine in per_consumer:
        assert mine == sorted(mine), "a consumer got entries out of offset order"
    for topic in topics:
        got = sorted(consumed[topic])
        offsets = [o for o, _ in got]
        producers = [p for p in range(PRODUCERS) if topic_of(p) == topic]
        assert offsets == list(range(len(producers) * PER_PRODUCER)), \
            f"{topic}: lost or duplicated entries"
        seqs: dict[int, list[int]] = defaultdict(list)
        batches: dict[tuple[int, int], list[int]] = defaultdict(list)
        for offset, data in got:
            p, seq, call = parse(data)
            assert data == entry(p, seq, call)
            seqs[p].append(seq)
            batches[p, call].append(offset)
        for p in producers:
            assert seqs[p] == list(range(PER_PRODUCER)), f"producer {p}: order broken"
        for members in batches.values():
            assert members == list(range(members[0], members[0] + len(members))), \
                "a batch was interleaved with other entries"


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _disk(path: Path) -> tuple[int, int]:
    """(files, bytes allocated) of the data directory."""
    files = used = 0
    for f in path.iterdir():
        try:
            used += f.stat().st_blocks * 512
        except FileNotFoundError:  # reclaimed while we looked
            continue
        files += 1
    return files, used


@pytest.mark.soak
def test_soak_memory_descriptors_and_disk_stay_bounded(tmp_path: Path, backend: str) -> None:
    """``SOAK_SECONDS`` (default 120) of a producer and a consumer that keeps up."""
    seconds = float(os.environ.get("SOAK_SECONDS", "120"))
    segment = 1 << 20
    path = tmp_path / "w"
    wal = Walrus(data_dir=path, backend=backend, segment_size=segment,
                 fsync_schedule=FsyncSchedule.Milliseconds(50))
    stop = threading.Event()
    counts = {"in": 0, "out": 0}

    def produce() -> None:
        i = call = 0
        while not stop.is_set():
            call += 1
            if call % 5 == 0:
                wal.batch_append_for_topic("soak", [entry(0, i + k, i) for k in range(20)])
                i += 20
            else:
                wal.append_for_topic("soak", entry(0, i, i))
                i += 1
            counts["in"] = i
            if wal.get_topic_entry_count("soak") > 5000:
                time.sleep(0.001)  # the consumer keeps up: the backlog stays small

    def consume() -> None:
        n = 0
        while not stop.is_set() or wal.get_topic_entry_count("soak"):
            got = wal.batch_read_for_topic("soak", 64 << 10)
            for e in got:
                assert parse(e.data)[1] == n
                n += 1
            counts["out"] = n
            if not got:
                time.sleep(0.001)

    threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for t in threads:
        t.start()
    rows = []
    start = time.monotonic()
    try:
        while time.monotonic() - start < seconds:
            time.sleep(min(5.0, seconds / 10))
            files, used = _disk(path)
            rows.append((round(time.monotonic() - start), counts["in"], counts["out"],
                         _rss_kib(), len(os.listdir("/proc/self/fd")), files, used))
    finally:
        stop.set()
        for t in threads:
            t.join()
        wal.close()
    print("\nseconds  appended  consumed  rss_kib  fds  files  disk_bytes")
    for sec, appended, read, rss, fds, files, used in rows:
        print(f"{sec:7d} {appended:9d} {read:9d} {rss:8d} {fds:4d} {files:6d} {used:11d}")
    assert rows[-1][1] > 0 and rows[-1][2] > 0
    # Bounded, not growing: the second half needs no more disk, descriptors or memory than
    # the first (up to the jitter of when the worker last reclaimed), and the directory
    # shrinks to the active segment once the consumer is done.
    first, second = rows[:len(rows) // 2], rows[len(rows) // 2:]
    for column, slack in ((6, 4 * segment), (4, 8), (3, 16384)):
        assert max(r[column] for r in second) <= 1.5 * max(r[column] for r in first) + slack
    with Walrus(data_dir=path, backend=backend, segment_size=segment) as again:
        assert again.get_topic_entry_count("soak") == 0
        again.flush()
        again._background.run_once()  # type: ignore[union-attr]
        assert len(list(path.glob("*.wal"))) <= 2
