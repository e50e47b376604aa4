"""The hot loops: append, batch append and batch read, each counting into a Tally.

Each call does a chunk of work and publishes once; one call per chunk is timed with
``perf_counter_ns`` so the latency samples cost a few nanoseconds per operation.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence

from walrus import Walrus

from ._payloads import CHUNK, Chunk
from ._runner import Worker
from ._sampling import Tally


class Appender:
    """``append_for_topic`` of pooled payloads to one topic."""

    def __init__(self, wal: Walrus, topic: str, chunks: Sequence[Chunk]) -> None:
        self._append = wal.append_for_topic
        self._topic = topic
        self._chunks = itertools.cycle(chunks)
        self._singles = itertools.cycle([p for c in chunks for p in c[0]])

    def chunk(self, tally: Tally) -> int:
        """CHUNK appends, the last one timed."""
        append, topic, clock = self._append, self._topic, time.perf_counter_ns
        untimed, timed, size = next(self._chunks)
        for payload in untimed:
            append(topic, payload)
        t0 = clock()
        append(topic, timed)
        tally.samples.append(clock() - t0)
        tally.ops += CHUNK
        tally.entries += CHUNK
        tally.bytes += size
        return CHUNK

    def one(self, tally: Tally) -> None:
        """A single untimed append (the scaling ramp-up paces appends one by one)."""
        payload = next(self._singles)
        self._append(self._topic, payload)
        tally.ops += 1
        tally.entries += 1
        tally.bytes += len(payload)


class BatchAppender:
    """``batch_append_for_topic`` cycling through prepared batches; every call is timed."""

    def __init__(self, wal: Walrus, topic: str, batches: Sequence[list[bytes]]) -> None:
        self._append = wal.batch_append_for_topic
        self._topic = topic
        self._batches = itertools.cycle([(b, sum(map(len, b))) for b in batches])

    def call(self, tally: Tally) -> None:
        batch, size = next(self._batches)
        clock = time.perf_counter_ns
        t0 = clock()
        self._append(self._topic, batch)
        tally.samples.append(clock() - t0)
        tally.ops += 1
        tally.entries += len(batch)
        tally.bytes += size


class BatchReader:
    """``batch_read_for_topic`` with a checkpoint; every call is timed."""

    def __init__(self, wal: Walrus, topic: str, max_bytes: int) -> None:
        self._read = wal.batch_read_for_topic
        self._topic = topic
        self._max = max_bytes

    def call(self, tally: Tally) -> bool:
        """One batch read; False once the topic has nothing left."""
        clock = time.perf_counter_ns
        t0 = clock()
        entries = self._read(self._topic, self._max)
        elapsed = clock() - t0
        if not entries:
            return False
        tally.samples.append(elapsed)
        tally.ops += 1
        tally.entries += len(entries)
        tally.bytes += sum(len(e.data) for e in entries)
        return True


def until_stopped(call: Callable[[Tally], object]) -> Worker:
    """A worker repeating ``call`` until the phase stops it or ``call`` returns False."""

    def work(tally: Tally, stop: threading.Event) -> None:
        while not stop.is_set():
            if call(tally) is False:
                return

    return work
