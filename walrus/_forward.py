"""``walrus.forward``: send topics of a data directory to a sink, beside the live writer.

The forwarder opens the directory as a read-only observer and reads without consuming
(``start_offset``), so it never moves the shared cursor nor blocks the writer. The sink (a
plugin; NATS JetStream is built in) decides where each topic resumes, from what the target
holds. Two places here wait for work that is being built elsewhere, each in one method:
``WalrusSource.ack_position`` (tell a named consumer how far the target has acknowledged) and
``WalrusSource.wait_for_entries`` (wait for new entries).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from urllib.parse import urlsplit

from ._entry import Entry
from ._errors import InvalidArgumentError
from ._validate import check_topic
from ._walrus import Walrus
from .plugins._manager import sink_spec
from .sinks._base import ForwardProgress

WAIT_BOUND = 0.5
"""Seconds one ``wait_for_entries`` call polls before it returns empty-handed."""
POLL_FIRST = 0.001
POLL_MAX = 0.05

ProgressCallback = Callable[[ForwardProgress], None]


class WalrusSource:
    """The walrus side of forwarding: the chosen topics of a read-only observer."""

    def __init__(self, wal: Walrus, topics: Sequence[str] | None,
                 progress: ProgressCallback | None, interval: float) -> None:
        self.wal = wal
        self.chosen = None if topics is None else [check_topic(t) for t in topics]
        self.progress = progress
        self.interval = interval
        self.acked: dict[str, int] = {}
        self.forwarded = 0
        self.started = time.monotonic()
        self._last_report = (self.started, 0)

    def topics(self) -> list[str]:
        """The chosen topics that exist now (every topic when none was chosen)."""
        existing = self.wal.topics()
        if self.chosen is None:
            return existing
        present = set(existing)
        return [t for t in self.chosen if t in present]

    def offsets(self, topic: str) -> tuple[int, int]:
        """The topic's first retained offset and its next offset."""
        info = self.wal.topic_info(topic)
        return info.first_offset, info.next_offset

    def read(self, topic: str, start: int, max_entries: int, max_bytes: int) -> list[Entry]:
        """Up to ``max_entries`` entries from offset ``start``, without consuming."""
        entries = self.wal.batch_read_for_topic(topic, max_bytes, checkpoint=False,
                                                start_offset=start)
        return entries[:max_entries]

    async def wait_for_entries(self, topic: str, start: int, max_entries: int,
                               max_bytes: int) -> list[Entry]:
        """Wait up to ``WAIT_BOUND`` seconds for entries at ``start``: a short poll with
        backoff for now.

        TODO: replace the loop by one waiting read, ``batch_read_for_topic(topic, max_bytes,
        checkpoint=False, start_offset=start, timeout=WAIT_BOUND)`` (or its ``walrus.aio``
        form), once waiting reads exist.
        """
        delay = POLL_FIRST
        end = time.monotonic() + WAIT_BOUND
        while True:
            entries = self.read(topic, start, max_entries, max_bytes)
            if entries or time.monotonic() >= end:
                return entries
            await asyncio.sleep(delay)
            delay = min(POLL_MAX, delay * 2)

    def ack_position(self, topic: str, next_offset: int, count: int) -> None:
        """The target holds everything of ``topic`` before ``next_offset`` (``count`` more).

        TODO: once named consumers exist, move the forwarder's own consumer here,
        ``wal.seek(topic, next_offset, consumer=NAME)``, so that the log keeps (and reclaims
        only) what the target has not acknowledged, and ``walrus topics`` shows the lag.
        """
        self.acked[topic] = next_offset
        self.forwarded += count

    def snapshot(self, since: tuple[float, int]) -> ForwardProgress:
        """Entries forwarded, the rate since ``since`` (a time and a count) and lag per topic."""
        now = time.monotonic()
        elapsed = max(now - since[0], 1e-9)
        lag = {t: max(0, self.offsets(t)[1] - self.acked.get(t, self.offsets(t)[0]))
               for t in self.topics()}
        return ForwardProgress(self.forwarded, (self.forwarded - since[1]) / elapsed, lag)

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
            backend: str | None = None) -> ForwardProgress:
    """Forward every entry of ``topics`` (all, including topics created later, by default)
    of the log in ``data_dir`` to ``to`` (``nats://HOST:PORT``, several comma-separated or as
    a list), each to subject ``<subject_prefix>.<topic>`` of ``stream``, in order, exactly once.

    Runs beside the live writer (a read-only observer; nothing is consumed). ``once=True``
    returns when every topic has caught up with its state at the start; otherwise it follows
    the topics until ``stop`` is set (run it in a thread, or ``asyncio.to_thread``).
    ``progress`` receives a :class:`walrus.sinks.ForwardProgress` every ``progress_interval``
    seconds; the last one (over the whole run) is returned. ``replicas`` applies when the
    stream is created (default: 3 when the cluster has three nodes or more, else 1).
    Raises :class:`walrus.ForwardError` when forwarding cannot go on safely.
    """
    if isinstance(topics, str):
        raise InvalidArgumentError(f"topics must be a list of topic names, not the str {topics!r}")
    if not isinstance(progress_interval, int | float) or not progress_interval > 0:
        raise InvalidArgumentError(f"progress_interval must be a positive number of seconds, "
                                   f"got {progress_interval!r}")
    name, urls = _split_targets(to)
    spec = sink_spec(name)
    sink = spec.factory(urls, stream=stream, subject_prefix=subject_prefix, replicas=replicas)
    stop = threading.Event() if stop is None else stop
    with Walrus(data_dir, key=key, backend=backend, read_only=True) as wal:
        source = WalrusSource(wal, topics, progress, progress_interval)
        sink.run(source, once=once, stop=stop)
        return source.snapshot((source.started, 0))
