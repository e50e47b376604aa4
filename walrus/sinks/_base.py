"""The contract between the forwarder and a sink.

The forwarder (``walrus.forward``) owns the walrus side: which topics, reading entries by
offset, waiting for new ones, holding what the target has not acknowledged (a named
consumer), progress. A sink owns the target side, including exactly once: it reads its
resume point back from the target, so it never trusts a position kept anywhere else.
"""

from __future__ import annotations

import threading
from typing import Protocol

import attrs

from .._entry import Entry


@attrs.frozen
class ForwardProgress:
    """What a forwarder has done so far (what ``progress`` callbacks and ``forward`` get)."""

    forwarded: int
    """Entries the target acknowledged in this run."""
    rate: float
    """Entries per second since the previous report (over the whole run in the last one)."""
    lag: dict[str, int]
    """Per topic: entries in the log that the target has not acknowledged yet."""


class Source(Protocol):
    """The walrus side as a sink sees it."""

    def topics(self) -> list[str]:
        """The chosen topics that exist now (topics created later appear in later calls)."""

    def offsets(self, topic: str) -> tuple[int, int]:
        """The topic's first retained offset and its next offset."""

    def read(self, topic: str, start: int, max_entries: int, max_bytes: int) -> list[Entry]:
        """Entries from offset ``start`` on (at most ``max_entries``), without consuming."""

    def read_batches(self, topic: str, start: int, max_entries: int,
                     max_bytes: int) -> list[Entry]:
        """Like ``read``, but ends where a walrus batch (one ``batch_append_for_topic``)
        ends, so a sink that stores what it gets atomically never stores part of a batch.
        Only a batch larger than ``max_entries`` (or than what one read takes in bytes)
        comes in parts."""

    async def wait_for_entries(self, topic: str, start: int, max_entries: int,
                               max_bytes: int) -> list[Entry]:
        """Like ``read_batches``, but waits a while (seconds) for entries when there are none
        yet; an append wakes it. It may be cancelled (it moves nothing)."""

    def position(self, topic: str) -> int | None:
        """Where the forwarder's consumer of ``topic`` stands: the target acknowledged every
        entry before it. What the target holds past it was sent, but that was not recorded
        (or a power cut took the record back): a sink checks those entries when it resumes.
        None when the consumer is new (nothing recorded: only the last entry is checked)."""

    def resume(self, topic: str, next_offset: int) -> int:
        """The target holds ``topic`` up to ``next_offset`` (the sink read that back from
        it): returns where to go on, ``next_offset`` or the first entry still in the log."""

    def ack_position(self, topic: str, next_offset: int, count: int) -> None:
        """The target acknowledged ``count`` more entries: everything before ``next_offset``.
        The log keeps (does not reclaim) the entries from the last such position on."""

    async def acknowledged(self, topic: str, next_offset: int, count: int) -> None:
        """``ack_position`` for a sink on an event loop: the log's side runs off the loop."""

    def due_in(self) -> float:
        """Seconds until ``tick`` has a progress report to make (``math.inf``: never)."""

    def tick(self) -> None:
        """Called regularly by the sink (at the latest when ``due_in`` says): reports
        progress when it is due."""


class Sink(Protocol):
    """What a sink factory returns. It may also have a ``target`` attribute (a str naming
    what it forwards into, for NATS the stream): the forwarder's default consumer name is
    ``forward:<target>`` (``forward:<scheme>`` without one)."""

    def run(self, source: Source, *, once: bool, stop: threading.Event) -> None:
        """Forward the source's topics until caught up (``once``) or until ``stop`` is set."""
