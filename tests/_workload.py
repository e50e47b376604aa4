"""What a crash test wrote and read, and what the log must show after recovery.

Payloads are a pure function of (topic, offset), so any entry read back can be checked
without keeping the data. A :class:`Ledger` records each acknowledged call (in order, with
the tick or time of its acknowledgement) and the call that was in flight when the crash came;
:func:`check_topic` compares a recovered topic with it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from walrus import CorruptionError, Walrus
from walrus.testing.suite._checks import payload as payload  # the kit's: one definition

TOPICS = ("a", "b", "ü-topic")
FIGURES: Counter[str] = Counter()
"""What the reliability tests ran (crashes, cuts, faults, inputs); printed after the run."""


@dataclass
class Ledger:
    """One topic's acknowledged history."""

    written: int = 0
    """Entries acknowledged so far (the next offset)."""
    calls: list[tuple[int, int]] = field(default_factory=list)
    """(entries written after the call, acknowledgement tick), per acknowledged append."""
    inflight: int = 0
    """Entries of an append that was running when the crash came (whole or absent)."""
    delivered: int = 0
    """Entries handed to the consumer by acknowledged checkpointing reads."""
    persisted: int = 0
    """Where the consistency mode says the cursor is persisted (written to the log)."""
    reads: list[tuple[int, int, int]] = field(default_factory=list)
    """(tick, delivered, persisted) after each acknowledged read (and flush)."""
    reading: bool = False
    """A checkpointing read was running when the crash came."""
    seeking: int | None = None
    """Where a seek that was running when the crash came was moving the consumer: it may
    have persisted that position (back as well as forward) before the crash stopped it."""
    flushing: bool = False
    """A ``flush()`` was running when the crash came: it may have persisted the exact
    position (``delivered``) before the crash stopped it."""

    def appended(self, count: int, tick: int) -> None:
        self.written += count
        self.calls.append((self.written, tick))

    def append(self, wal: Walrus, topic: str, n: int, batch: bool, now: Callable[[], int]) -> None:
        """Append ``n`` entries of ``topic`` (one ``append_for_topic``, or a batch), noting
        them in flight until acknowledged, then acknowledged at ``now()``."""
        self.inflight = n
        data = [payload(topic, self.written + i) for i in range(n)]
        if batch:
            wal.batch_append_for_topic(topic, data)
        else:
            wal.append_for_topic(topic, data[0])
        self.inflight = 0
        self.appended(n, now())

    def read(self, start: int, count: int, tick: int, persist_every: int | None) -> None:
        """A checkpointing read returned ``count`` entries from ``start``.

        ``persist_every``: None for StrictlyAtOnce, N for AtLeastOnce(N).
        """
        assert start == self.delivered, (start, self.delivered)
        if persist_every is None:
            self.persisted = start + count
        elif start - self.persisted >= persist_every:
            self.persisted = start
        self.delivered = start + count
        self.reads.append((tick, self.delivered, self.persisted))

    def flushed(self, tick: int) -> None:
        """``flush()`` returned; ``tick`` was taken before it began."""
        self.persisted = self.delivered
        self.reads.append((tick, self.delivered, self.persisted))

    def boundaries(self) -> set[int]:
        """Entry counts the topic may recover to: a prefix of whole calls."""
        ends = {0, *(end for end, _ in self.calls)}
        if self.inflight:
            ends.add(self.written + self.inflight)
        return ends

    def durable_entries(self, before: int) -> int:
        """Entries acknowledged before tick ``before``."""
        return max([end for end, tick in self.calls if tick < before], default=0)

    def durable_cursor(self, before: int) -> int:
        """The persisted cursor as of tick ``before``."""
        return max([p for tick, _, p in self.reads if tick < before], default=0)


@dataclass
class Recovered:
    """A topic as a reopened log shows it."""

    first: int
    cursor: int
    end: int
    """The next offset the topic would hand out."""
    entries: dict[int, bytes]
    """Readable entries by offset (from ``first``)."""
    damaged: list[int]
    """Offsets whose reads raised CorruptionError."""

    @property
    def count(self) -> int:
        """Length of the readable prefix from ``first``."""
        n = self.first
        while n in self.entries:
            n += 1
        return n


def recovered(wal: Walrus, topic: str) -> Recovered:
    """Read every retained entry of ``topic`` one by one, without moving the cursor.

    The cursor and the retained range come from the engine's topic state (no public call
    exposes the first retained offset); everything else goes through public reads.
    """
    t = wal._log.by_name.get(topic)
    if t is None:
        return Recovered(0, 0, 0, {}, [])
    first, cursor, end = t.first_seq, t.cursor, t.next_seq
    entries: dict[int, bytes] = {}
    damaged = []
    for offset in range(first, end):
        try:
            got = wal.batch_read_for_topic(topic, 0, checkpoint=False, start_offset=offset)
        except CorruptionError as exc:
            assert (exc.topic, exc.offset) == (topic, offset), exc
            damaged.append(offset)
            continue
        if got:
            assert got[0].offset == offset and got[0].topic == topic, got[0]
            entries[offset] = got[0].data
    assert wal.get_topic_entry_count(topic) == max(0, end - cursor)
    if cursor < end:
        try:
            peek = wal.read_next(topic, checkpoint=False)
        except CorruptionError as exc:
            assert cursor in damaged and exc.offset == cursor, exc
        else:
            assert peek is not None and peek.offset == cursor, peek
    return Recovered(first, cursor, end, entries, damaged)


def check_content(topic: str, got: Recovered) -> None:
    """Every entry read back is exactly the one written at its offset."""
    for offset, data in got.entries.items():
        assert data == payload(topic, offset), f"{topic!r}@{offset}: wrong data {data[:40]!r}"


def dump(wal: Walrus) -> dict[str, tuple[object, ...]]:
    """Everything a reader can observe of a log, topic by topic (compare before and after)."""
    out: dict[str, tuple[object, ...]] = {}
    for topic in wal.topics():
        got = recovered(wal, topic)
        out[topic] = (got.first, got.cursor, got.end, got.entries, got.damaged,
                      wal.topic_is_clean(topic), wal.get_topic_entry_count(topic),
                      wal.get_topic_size(topic))
    return out
