"""``walrus.forward``: send topics of a data directory to a sink, beside the live writer.

The forwarder opens the directory as a read-only observer and reads by offset
(``start_offset``), so it never moves the shared cursor nor blocks the writer. The sink (a
plugin; NATS JetStream is built in) decides where each topic resumes, from what the target
holds. The forwarder owns a named consumer of each topic it forwards, registered before it
reads anything and moved only to what the target has acknowledged: the writer never reclaims
an entry the target does not hold yet. The consumer only holds; where forwarding resumes is
still the target's word. Waiting for new entries is a waiting read (``walrus.aio``): an
asyncio sink holds no thread per idle topic, and nothing polls the topic.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from urllib.parse import urlsplit

from ._batches import batch_ends
from ._entry import Entry
from ._errors import CorruptionError, InvalidArgumentError, WalrusLockedError
from ._validate import check_consumer, check_topic
from ._walrus import Walrus
from .aio import AsyncWalrus
from .plugins._manager import sink_spec
from .sinks._base import ForwardProgress

log = logging.getLogger("walrus.forward")

WAIT_BOUND = 60.0
"""Seconds one ``wait_for_entries`` call waits before it returns empty-handed: a bound on a
wait, not a polling period (an append wakes it at once, and a sink can stop it sooner). Kept
long: when every topic's wait ends at once, nobody waits for a moment, and an observer's
watching thread then ends and starts again (with its first seconds of faster looks)."""
WHOLE_BATCH_BYTES = 64 << 20
"""Payload bytes read to keep one walrus batch whole when it is larger than a sink's usual
read: a batch larger still is sent in parts."""
CONSUMER_PREFIX = "forward:"
"""The default consumer name is this and the sink's target (for NATS, the stream)."""

ProgressCallback = Callable[[ForwardProgress], None]


class WalrusSource:
    """The walrus side of forwarding: the chosen topics of a read-only observer."""

    def __init__(self, wal: Walrus, topics: Sequence[str] | None,
                 progress: ProgressCallback | None, interval: float, *,
                 consumer: str, target: str) -> None:
        self.wal = wal
        self.chosen = None if topics is None else [check_topic(t) for t in topics]
        self.progress = progress
        self.interval = interval
        self.consumer = consumer
        self.target = target
        self.acked: dict[str, int] = {}
        self.held: dict[str, int] = {}
        """Per topic: where the forwarder's consumer stands (what it holds on disk)."""
        self.fresh: set[str] = set()
        """Topics whose consumer this run created (it held nothing before)."""
        self.waiting = AsyncWalrus.wrapping(wal)
        """The same instance seen through ``walrus.aio``, for waiting reads."""
        self.forwarded = 0
        self.started = time.monotonic()
        self._last_report = (self.started, 0)

    def topics(self) -> list[str]:
        """The chosen topics that exist now (every topic when none was chosen), each held by
        the forwarder's consumer from the moment it is first listed."""
        existing = self.wal.topics()
        if self.chosen is not None:
            present = set(existing)
            existing = [t for t in self.chosen if t in present]
        self.hold(existing)
        return existing

    def hold(self, topics: Iterable[str]) -> None:
        """Own the forwarder's consumer of each of ``topics`` not held yet, creating it at
        the topic's first stored entry (offset 0 for a topic not created yet): from then on
        the writer keeps every entry from its position on. ``WalrusLockedError`` when
        another process uses the consumer (another forwarder with the same name)."""
        for topic in topics:
            if topic in self.held:
                continue
            listed = self.wal.consumers(topic).get(self.consumer)
            try:  # a peek through the consumer owns it (and creates it if missing)
                self.wal.batch_read_for_topic(topic, 0, checkpoint=False,
                                              consumer=self.consumer)
            except WalrusLockedError as exc:
                raise WalrusLockedError(
                    f"{exc}: another forwarder runs on this directory with consumer name "
                    f"{self.consumer!r}; stop it, or give this one another name with "
                    f"--consumer (consumer= in walrus.forward)", exc.pid) from None
            except CorruptionError:
                pass  # owned before the read; the entry is the sink's to meet (or skip)
            if listed is None:  # created now, at the first stored entry (which it holds)
                self.fresh.add(topic)
                listed = self.offsets(topic)[0]
            self.held[topic] = listed

    def offsets(self, topic: str) -> tuple[int, int]:
        """The topic's first retained offset and its next offset."""
        info = self.wal.topic_info(topic)
        return info.first_offset, info.next_offset

    def read(self, topic: str, start: int, max_entries: int, max_bytes: int) -> list[Entry]:
        """Up to ``max_entries`` entries from offset ``start``, without consuming."""
        entries = self.wal.batch_read_for_topic(topic, max_bytes, checkpoint=False,
                                                start_offset=start)
        return entries[:max_entries]

    def read_batches(self, topic: str, start: int, max_entries: int,
                     max_bytes: int) -> list[Entry]:
        """``read``, ending where a walrus batch ends (see :meth:`whole`)."""
        return self.whole(topic, self.read(topic, start, max_entries, max_bytes), max_entries)

    def whole(self, topic: str, entries: list[Entry], max_entries: int) -> list[Entry]:
        """``entries`` (read from one offset on) cut after the last one that ends a walrus
        batch, so a target that stores them atomically never holds part of a batch. When
        none of them ends one, the batch started before the budget in bytes ran out: it is
        read again whole, up to ``max_entries`` and ``WHOLE_BATCH_BYTES`` (a larger batch is
        cut there)."""
        whole_budget = False
        while entries:
            ends = batch_ends(self.wal, topic, entries[0].offset, len(entries))
            for i in range(len(entries) - 1, -1, -1):
                if ends[i]:
                    return entries[:i + 1]
            if len(entries) >= max_entries or whole_budget:
                return entries  # larger than a target's batch, or damage ends the read
            entries = self.read(topic, entries[0].offset, max_entries, WHOLE_BATCH_BYTES)
            whole_budget = True
        return entries

    async def wait_for_entries(self, topic: str, start: int, max_entries: int,
                               max_bytes: int) -> list[Entry]:
        """Wait up to ``WAIT_BOUND`` seconds for entries at ``start``: one waiting read, woken
        by the writer's appends of ``topic`` (the observer follows the writer's files), that
        holds no thread while it waits. Cancelling it is safe: it moves nothing. What it
        returns ends where a walrus batch ends (see :meth:`whole`)."""
        entries = await self.waiting.batch_read_for_topic(
            topic, max_bytes, checkpoint=False, start_offset=start, timeout=WAIT_BOUND)
        return self.whole(topic, entries[:max_entries], max_entries)

    def position(self, topic: str) -> int | None:
        """Where the forwarder's consumer of ``topic`` stands (see ``Source.position``);
        None when this run made it (nothing was recorded)."""
        self.hold([topic])
        return None if topic in self.fresh else self.held[topic]

    def resume(self, topic: str, next_offset: int) -> int:
        """The target holds ``topic`` up to ``next_offset`` (read back from it, the truth):
        returns where forwarding goes on (``next_offset``, or the first stored offset when
        the entries before it are gone) and moves the forwarder's consumer there."""
        self.hold([topic])
        first = self.offsets(topic)[0]
        start = max(next_offset, first)
        held = self.held[topic]
        if held > next_offset and topic not in self.fresh:
            holds = f"offsets up to {next_offset - 1} only" if next_offset else "nothing"
            log.warning("the target %r holds %s of topic %r, but had acknowledged offsets up "
                        "to %d (was it deleted, purged or recreated?): forwarding again what "
                        "the log still holds, from offset %d", self.target, holds, topic,
                        held - 1, start)
        if next_offset < first:
            log.error("topic %r: offsets %d..%d are neither in the target %r nor in the log "
                      "any more: they cannot be forwarded; resuming at %d", topic,
                      next_offset, first - 1, self.target, first)
        if held != start:
            self._seek(topic, start)
        self.fresh.discard(topic)
        self.acked[topic] = start
        return start

    def ack_position(self, topic: str, next_offset: int, count: int) -> None:
        """The target acknowledged ``count`` more entries of ``topic``: it holds everything
        before ``next_offset``. The forwarder's consumer moves there, so the writer may
        reclaim them (once every other cursor has passed them too)."""
        if self._acknowledged(topic, next_offset, count):
            self.hold([topic])
            self._seek(topic, next_offset)

    async def acknowledged(self, topic: str, next_offset: int, count: int) -> None:
        """``ack_position`` for a sink on an event loop: the consumer's move runs off the
        loop (a seek takes the consumers' registry lock, which the writer's reclamation may
        hold across a sync). The move follows the acknowledgement, as in ``ack_position``:
        the consumer never passes what the target holds."""
        if self._acknowledged(topic, next_offset, count):
            self.hold([topic])  # held since the sink's resume: nothing to do
            await self.waiting.seek(topic, next_offset, consumer=self.consumer)
            self.held[topic] = next_offset

    def _acknowledged(self, topic: str, next_offset: int, count: int) -> bool:
        """Count an acknowledgement; True when the consumer must move forward to it."""
        self.acked[topic] = next_offset
        self.forwarded += count
        return next_offset > self.held.get(topic, -1)

    def _seek(self, topic: str, offset: int) -> None:
        self.wal.seek(topic, offset, consumer=self.consumer)
        self.held[topic] = offset

    def snapshot(self, since: tuple[float, int]) -> ForwardProgress:
        """Entries forwarded, the rate since ``since`` (a time and a count) and lag per topic."""
        now = time.monotonic()
        elapsed = max(now - since[0], 1e-9)
        lag = {t: max(0, self.offsets(t)[1] - self.acked.get(t, self.offsets(t)[0]))
               for t in self.topics()}
        return ForwardProgress(self.forwarded, (self.forwarded - since[1]) / elapsed, lag)

    def due_in(self) -> float:
        """Seconds until :meth:`tick` has a report to make (``math.inf``: never)."""
        if self.progress is None:
            return math.inf
        return max(0.0, self._last_report[0] + self.interval - time.monotonic())

    def tick(self) -> None:
        """Report progress when ``interval`` seconds have passed since the last report."""
        if self.progress is None or time.monotonic() - self._last_report[0] < self.interval:
            return
        report = self.snapshot(self._last_report)
        self._last_report = (time.monotonic(), self.forwarded)
        self.progress(report)


def _split_targets(to: str | Iterable[str]) -> tuple[str, list[str]]:
    """The URL scheme (the sink's name) and the URLs of ``--to``."""
    items = [to] if isinstance(to, str) else list(to)
    urls = [u.strip() for item in items for u in str(item).split(",") if u.strip()]
    if not urls:
        raise InvalidArgumentError("forward needs a target URL, e.g. nats://127.0.0.1:4222")
    schemes = {urlsplit(u).scheme for u in urls}
    if len(schemes) != 1 or "" in schemes:
        raise InvalidArgumentError(
            f"target URLs need one scheme naming the sink (e.g. nats://...), got {urls}")
    return schemes.pop(), urls


def forward(data_dir: str | os.PathLike[str], to: str | Iterable[str], *,
            topics: Sequence[str] | None = None, stream: str | None = None,
            subject_prefix: str = "walrus", replicas: int | None = None, once: bool = False,
            stop: threading.Event | None = None, progress: ProgressCallback | None = None,
            progress_interval: float = 1.0, key: str | None = None,
            backend: str | None = None, consumer: str | None = None) -> ForwardProgress:
    """Forward every entry of ``topics`` (all, including topics created later, by default)
    of the log in ``data_dir`` to ``to`` (``nats://HOST:PORT``, several comma-separated or as
    a list), each to subject ``<subject_prefix>.<topic>`` of ``stream``, in order, exactly once.

    Runs beside the live writer as a read-only observer that owns named consumer
    ``consumer`` (default ``forward:<stream>``) of each forwarded topic: the writer keeps
    every entry the stream has not acknowledged yet, and ``walrus topics`` shows the lag.
    A second forwarder with the same consumer name raises :class:`walrus.WalrusLockedError`.
    ``once=True`` returns when every topic has caught up with its state at the start;
    otherwise it follows the topics until ``stop`` is set (run it in a thread, or
    ``asyncio.to_thread``). ``progress`` receives a :class:`walrus.sinks.ForwardProgress`
    every ``progress_interval`` seconds; the last one (over the whole run) is returned.
    ``replicas`` applies when the stream is created (default: 3 when the cluster has three
    nodes or more, else 1). Raises :class:`walrus.ForwardError` when forwarding cannot go on
    safely.
    """
    if isinstance(topics, str):
        raise InvalidArgumentError(f"topics must be a list of topic names, not the str {topics!r}")
    if not isinstance(progress_interval, int | float) or not progress_interval > 0:
        raise InvalidArgumentError(f"progress_interval must be a positive number of seconds, "
                                   f"got {progress_interval!r}")
    if consumer is not None:
        check_consumer(consumer)
    name, urls = _split_targets(to)
    spec = sink_spec(name)
    sink = spec.factory(urls, stream=stream, subject_prefix=subject_prefix, replicas=replicas)
    target = str(getattr(sink, "target", "") or name)
    consumer = consumer or check_consumer(CONSUMER_PREFIX + target)
    stop = threading.Event() if stop is None else stop
    with Walrus(data_dir, key=key, backend=backend, read_only=True) as wal:
        source = WalrusSource(wal, topics, progress, progress_interval, consumer=consumer,
                              target=target)
        source.hold(source.topics() if source.chosen is None else source.chosen)
        sink.run(source, once=once, stop=stop)
        return source.snapshot((source.started, 0))
