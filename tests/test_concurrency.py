"""Many threads, shared and separate topics: no loss, no duplicate, per-producer order."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest

from walrus import FsyncSchedule, ReadConsistency

from .conftest import WalFactory


@pytest.mark.parametrize("consistency", [ReadConsistency.StrictlyAtOnce,
                                         ReadConsistency.AtLeastOnce(persist_every=7)])
def test_producers_and_consumers_on_shared_topics(open_wal: WalFactory, consistency: object,
                                                  tmp_path: Path) -> None:
    wal = open_wal(tmp_path / "w", segment_size=128 << 10, consistency=consistency)
    producers, per_producer, topics = 6, 400, ["a", "b"]
    consumed: dict[str, list[tuple[int, bytes]]] = {t: [] for t in topics}
    lock = threading.Lock()
    done = threading.Event()

    def produce(p: int) -> None:
        rng = random.Random(p)
        i = 0
        while i < per_producer:
            topic = topics[p % 2]
            if rng.random() < 0.3:
                n = min(rng.randrange(1, 8), per_producer - i)
                wal.batch_append_for_topic(topic, [b"%d:%d" % (p, i + k) for k in range(n)])
                i += n
            else:
                wal.append_for_topic(topic, b"%d:%d" % (p, i))
                i += 1

    def consume(c: int) -> None:
        rng = random.Random(100 + c)
        topic = topics[c % 2]
        while True:
            if rng.random() < 0.5:
                got = wal.batch_read_for_topic(topic, rng.randrange(1, 64))
            else:
                entry = wal.read_next(topic)
                got = [] if entry is None else [entry]
            with lock:
                consumed[topic] += [(e.offset, e.data) for e in got]
            if not got and done.is_set() and wal.get_topic_entry_count(topic) == 0:
                return

    threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
    readers = [threading.Thread(target=consume, args=(c,)) for c in range(4)]
    for t in threads + readers:
        t.start()
    for t in threads:
        t.join()
    done.set()
    for t in readers:
        t.join()
    for topic in topics:
        got = sorted(consumed[topic])
        # Every entry exactly once, offsets dense...
        assert [offset for offset, _ in got] == list(range(per_producer * producers // 2))
        assert len({data for _, data in got}) == len(got)
        # ... and, per producer, in the order it wrote them.
        last: dict[int, int] = {}
        for _, data in got:
            p, i = map(int, data.split(b":"))
            assert last.get(p, -1) == i - 1
            last[p] = i


def test_concurrent_read_next_consumers_never_share_an_entry(open_wal: WalFactory) -> None:
    """Original bug 16.6: concurrent read_next consumers got duplicates while tailing."""
    wal = open_wal(segment_size=64 << 10)
    total = 6000
    got: list[list[int]] = [[] for _ in range(6)]
    writer_done = threading.Event()

    def writer() -> None:
        for i in range(total):
            wal.append_for_topic("q", b"%d" % i)
        writer_done.set()

    def reader(k: int) -> None:
        while True:
            entry = wal.read_next("q")
            if entry is None:
                if writer_done.is_set() and wal.get_topic_entry_count("q") == 0:
                    return
                continue
            got[k].append(int(entry.data))

    threads = [threading.Thread(target=writer)] + [
        threading.Thread(target=reader, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = sorted(x for g in got for x in g)
    assert everything == list(range(total))
    for g in got:
        assert g == sorted(g)


def test_sync_each_group_commit_from_many_threads(open_wal: WalFactory) -> None:
    wal = open_wal(fsync_schedule=FsyncSchedule.SyncEach)

    def writer(w: int) -> None:
        for i in range(50):
            wal.append_for_topic(f"w{w % 3}", b"%d:%d" % (w, i))

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(wal.get_topic_entry_counts().values()) == 400
    log = wal._log
    assert log.durable >= log.active.lsn_base | log.active.end  # type: ignore[union-attr]
    assert not log.pending
