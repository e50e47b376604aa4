"""A hypothesis state machine drives the public API against an in-memory model."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import walrus
from walrus import (
    BatchTooLargeError,
    FsyncSchedule,
    OffsetOutOfRangeError,
    ReadConsistency,
    Walrus,
)

from .conftest import BACKENDS

TOPICS = st.sampled_from(["a", "b", "c"])
CONSUMERS = st.sampled_from(["x", "y"])
PAYLOADS = st.binary(max_size=200)


class WalModel(RuleBasedStateMachine):
    """Model: per topic the list of entries, the shared cursor and the named consumers'."""

    @initialize(backend=st.sampled_from(BACKENDS),
                consistency=st.sampled_from([ReadConsistency.StrictlyAtOnce,
                                             ReadConsistency.AtLeastOnce(persist_every=3)]))
    def open(self, backend: str, consistency: ReadConsistency) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="walrus-model-"))
        self.backend = backend
        self.consistency = consistency
        self.entries: dict[str, list[bytes]] = {}
        self.cursor: dict[str, int] = {}
        self.named: dict[tuple[str, str], int] = {}
        """(topic, consumer) -> the next offset it reads."""
        self.boundary_batches = 0
        self.wal = self._open()

    def _open(self) -> Walrus:
        return Walrus(data_dir=self.dir, backend=self.backend, segment_size=8192,
                      consistency=self.consistency,  # a clean close persists either exactly
                      fsync_schedule=FsyncSchedule.NoFsync)

    def teardown(self) -> None:
        if hasattr(self, "wal"):
            self.wal.close()
            shutil.rmtree(self.dir, ignore_errors=True)

    @rule(topic=TOPICS, data=PAYLOADS)
    def append(self, topic: str, data: bytes) -> None:
        self.wal.append_for_topic(topic, data)
        self.entries.setdefault(topic, []).append(data)
        self.cursor.setdefault(topic, 0)

    @rule(topic=TOPICS, batch=st.lists(PAYLOADS, max_size=30))
    def batch_append(self, topic: str, batch: list[bytes]) -> None:
        self.wal.batch_append_for_topic(topic, batch)
        if batch:
            self.entries.setdefault(topic, []).extend(batch)
            self.cursor.setdefault(topic, 0)

    @precondition(lambda self: self.boundary_batches < 2)  # they are slow: a few per run
    @rule(topic=TOPICS, size=st.sampled_from([walrus.MAX_BATCH_ENTRIES - 1,
                                              walrus.MAX_BATCH_ENTRIES,
                                              walrus.MAX_BATCH_ENTRIES + 1]))
    def boundary_batch(self, topic: str, size: int) -> None:
        """Batches at the size limit (on a new topic, the TOPIC record makes one more)."""
        self.boundary_batches += 1
        first = len(self.entries.get(topic, []))
        batch = [b"%d" % (first + i) for i in range(size)]
        if size > walrus.MAX_BATCH_ENTRIES:
            with pytest.raises(BatchTooLargeError):
                self.wal.batch_append_for_topic(topic, batch)
            return
        self.batch_append(topic, batch)

    @rule(topic=TOPICS, checkpoint=st.booleans())
    def read_next(self, topic: str, checkpoint: bool) -> None:
        entry = self.wal.read_next(topic, checkpoint=checkpoint)
        entries, at = self.entries.get(topic, []), self.cursor.get(topic, 0)
        if at >= len(entries):
            assert entry is None
            return
        assert entry == walrus.Entry(entries[at], at, topic)
        if checkpoint:
            self.cursor[topic] = at + 1

    @rule(topic=TOPICS, budget=st.integers(0, 1500), checkpoint=st.booleans())
    def batch_read(self, topic: str, budget: int, checkpoint: bool) -> None:
        got = self.wal.batch_read_for_topic(topic, budget, checkpoint=checkpoint)
        at = self.cursor.get(topic, 0)
        assert got == self._expect(topic, at, budget)
        if checkpoint:
            self.cursor[topic] = at + len(got)

    @rule(topic=TOPICS, start=st.integers(0, 300), budget=st.integers(0, 2000))
    def read_from_offset(self, topic: str, start: int, budget: int) -> None:
        entries = self.entries.get(topic, [])
        try:
            got = self.wal.batch_read_for_topic(topic, budget, checkpoint=False,
                                                start_offset=start)
        except OffsetOutOfRangeError:
            assert start < self._held(topic)  # only entries every cursor passed are reclaimed
            return
        assert all(e == walrus.Entry(entries[e.offset], e.offset, topic) for e in got)
        assert [e.offset for e in got] == list(range(start, start + len(got)))
        if start < len(entries):
            assert got

    def _held(self, topic: str) -> int:
        """The lowest cursor of ``topic``: nothing from there on may be reclaimed."""
        named = [at for (t, _), at in self.named.items() if t == topic]
        return min([self.cursor.get(topic, 0), *named])

    def _first(self, topic: str) -> int:
        """Where a new consumer starts: the first stored entry."""
        return self.wal.topic_info(topic).first_offset if topic in self.entries else 0

    def _start(self, topic: str) -> int:
        """Where a consumer created by the call just made started: the first stored entry
        when it came into being. The background worker may reclaim up to then (so it is not
        known before the call), never past it after (the consumer holds it), so the first
        stored entry now is that one."""
        return self._first(topic)

    def _expect(self, topic: str, at: int, budget: int) -> list[walrus.Entry]:
        entries = self.entries.get(topic, [])
        expected: list[walrus.Entry] = []
        total = 0
        for offset in range(at, min(len(entries), at + walrus.MAX_BATCH_ENTRIES)):
            data = entries[offset]
            if expected and total + len(data) > budget:
                break
            expected.append(walrus.Entry(data, offset, topic))
            total += len(data)
        return expected

    @rule(topic=TOPICS, name=CONSUMERS, checkpoint=st.booleans())
    def named_read_next(self, topic: str, name: str, checkpoint: bool) -> None:
        at = self.named.get((topic, name))
        entry = self.wal.read_next(topic, checkpoint=checkpoint, consumer=name)
        if at is None:  # a new consumer: see _start
            at = self._start(topic)
        self.named[(topic, name)] = at  # any use brings it into being
        expected = self._expect(topic, at, 0)
        assert entry == (expected[0] if expected else None)
        if checkpoint and entry is not None:
            self.named[(topic, name)] = at + 1

    @rule(topic=TOPICS, name=CONSUMERS, budget=st.integers(0, 1500), checkpoint=st.booleans())
    def named_batch_read(self, topic: str, name: str, budget: int, checkpoint: bool) -> None:
        at = self.named.get((topic, name))
        got = self.wal.batch_read_for_topic(topic, budget, checkpoint=checkpoint,
                                            consumer=name)
        if at is None:  # a new consumer: see _start
            at = self._start(topic)
        self.named[(topic, name)] = at
        assert got == self._expect(topic, at, budget)
        if checkpoint:
            self.named[(topic, name)] = at + len(got)

    @rule(topic=TOPICS, name=st.one_of(st.none(), CONSUMERS), offset=st.integers(0, 80))
    def seek(self, topic: str, name: str | None, offset: int) -> None:
        first = self._first(topic)
        last = len(self.entries.get(topic, []))
        if not first <= offset <= last or (name is None and topic not in self.entries):
            with pytest.raises(OffsetOutOfRangeError):
                self.wal.seek(topic, offset, consumer=name)
            return
        try:
            self.wal.seek(topic, offset, consumer=name)
        except OffsetOutOfRangeError:
            # the background worker reclaimed what every cursor had passed meanwhile
            assert offset < self._first(topic)
            return
        if name is None:
            self.cursor[topic] = offset
        else:
            self.named[(topic, name)] = offset

    @rule(topic=TOPICS, name=CONSUMERS)
    def delete_consumer(self, topic: str, name: str) -> None:
        self.wal.delete_consumer(topic, name)
        self.named.pop((topic, name), None)

    @invariant()
    def consumers_match(self) -> None:
        if not hasattr(self, "wal"):
            return
        for topic in ("a", "b", "c"):
            expected = {n: at for (t, n), at in self.named.items() if t == topic}
            assert self.wal.consumers(topic) == expected
            entries = len(self.entries.get(topic, []))
            for name, at in expected.items():
                assert self.wal.get_topic_entry_count(topic, consumer=name) == entries - at

    @rule()
    def reopen(self) -> None:
        self.wal.close()
        self.wal = self._open()

    @rule()
    def reopen_by_scanning(self) -> None:
        """Reopen without the index files: recovery rebuilds everything from the records."""
        self.wal.close()
        for index in self.dir.glob("*.idx"):
            index.unlink()
        self.wal = self._open()

    @rule()
    def reclaim(self) -> None:
        # Not a precondition: the background thread changes the number of segments at its
        # own pace, and a precondition that varies between runs of the same steps makes
        # hypothesis fail (FlakyStrategyDefinition).
        if len(self.wal._log.segments) > 1:
            self.wal._background.run_once()  # type: ignore[union-attr]

    @invariant()
    def counts_and_topics_match(self) -> None:
        if not hasattr(self, "wal"):
            return
        expected = {t: len(e) - self.cursor[t] for t, e in self.entries.items()}
        assert self.wal.get_topic_entry_counts() == expected
        assert sorted(self.wal.topics()) == sorted(self.entries)


TestWalModel = WalModel.TestCase
TestWalModel.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
