"""Threads at once: appenders on their own topics and on a shared one, a consumer, an
observer and a flusher; nothing is lost, doubled or mixed up, before and after reopening."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from walrus import FsyncSchedule, ReadConsistency, Walrus

from .._instances import WalrusFactory
from ._checks import SEGMENT, broke, entries, expect_entries, payload

WRITERS = 4
PER_WRITER = 150


def run_all(jobs: list[Callable[[], None]]) -> None:
    """Run ``jobs`` in threads at once; re-raise the first failure."""
    errors: list[BaseException] = []
    start = threading.Barrier(len(jobs))

    def wrapped(job: Callable[[], None]) -> None:
        try:
            start.wait()
            job()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=wrapped, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


@pytest.mark.parametrize("schedule", ["SyncEach", "Milliseconds(2)"])
def test_concurrent_appenders_a_consumer_and_an_observer(open_walrus: WalrusFactory,
                                                          schedule: str) -> None:
    wal = open_walrus(segment_size=SEGMENT, consistency=ReadConsistency.AtLeastOnce(5),
                      fsync_schedule=FsyncSchedule.SyncEach if schedule == "SyncEach"
                      else FsyncSchedule.Milliseconds(2))
    wal.batch_append_for_topic("queue", [payload("queue", seq) for seq in range(200)])
    observer = open_walrus(read_only=True, segment_size=SEGMENT)
    shared: list[list[bytes]] = [[] for _ in range(WRITERS)]
    consumed: list[int] = []

    def writer(n: int) -> Callable[[], None]:
        def job() -> None:
            topic = f"w{n}"
            for seq in range(PER_WRITER):
                if seq % 10 == 9:
                    wal.batch_append_for_topic(topic, [payload(topic, seq)])
                else:
                    wal.append_for_topic(topic, payload(topic, seq))
                data = f"{n}:{seq}".encode()
                wal.append_for_topic("shared", data)
                shared[n].append(data)
        return job

    def consumer() -> None:
        while len(consumed) < 200:
            entry = wal.read_next("queue")
            if entry is not None:
                if entry.data != payload("queue", entry.offset):
                    broke(f"a consumer read wrong bytes for entry {entry.offset} while "
                          f"others appended")
                consumed.append(entry.offset)

    def watcher() -> None:
        for _ in range(20):
            for topic in (f"w{n}" for n in range(WRITERS)):
                seen = entries(observer, topic)
                if seen != [payload(topic, seq) for seq in range(len(seen))]:
                    broke(f"a read-only observer read wrong bytes of topic {topic!r} while the "
                          f"writer appended")

    def flusher() -> None:
        for _ in range(20):
            wal.flush()

    run_all([writer(n) for n in range(WRITERS)] + [consumer, watcher, flusher])
    if consumed != list(range(200)):
        broke("the consumer did not get entries 0 to 199 once each, in order")
    check(wal, shared, "with the threads done")
    wal.close()
    check(open_walrus(segment_size=SEGMENT), shared, "after reopening")


def check(wal: Walrus, shared: list[list[bytes]], when: str) -> None:
    for n in range(WRITERS):
        expect_entries(wal, f"w{n}", PER_WRITER, when)
    got = entries(wal, "shared")
    for n in range(WRITERS):
        mine = [data for data in got if data.startswith(f"{n}:".encode())]
        if mine != shared[n]:
            broke(f"the shared topic holds writer {n}'s appends out of order or incomplete "
                  f"{when}")
    if len(got) != WRITERS * PER_WRITER:
        broke(f"the shared topic holds {len(got)} entries {when}; "
              f"{WRITERS * PER_WRITER} were appended")
