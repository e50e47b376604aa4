"""The built-in NATS JetStream sink: each topic to subject ``<prefix>.<topic>``, exactly once.

Exactly once rests on the stream, never on a position kept elsewhere nor on the duplicate
window. Per topic:

- the resume point is the subject's last message, read back from the stream leader with its
  ``Walrus-Offset`` header: the next offset to send is that + 1, and its stream sequence is
  what the next message expects;
- one batch is in flight at a time, sent as a JetStream atomic batch (all or nothing, at most
  1000 messages) whose first message carries ``Nats-Expected-Last-Subject-Sequence``: the
  stream stores it only right after the message it continues, so no entry is ever stored twice
  or after a gap, whatever arrives late;
- an atomic batch ends where a walrus batch ends (it holds whole walrus batches), so the
  stream never holds part of one; only a walrus batch larger than the server's batch limit is
  sent in several;
- any error or missing answer goes back to the resume point (go-back-N) after a backoff.

Topics are forwarded side by side, one task each. ``nats-py`` is imported only when the sink
runs (the optional extra ``walrus-wal[nats]``).
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import logging
import math
import re
import threading
import uuid
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from .._entry import Entry
from .._errors import (
    CorruptionError,
    ForwardError,
    InvalidArgumentError,
    OffsetOutOfRangeError,
    WalrusError,
)
from ..backends._base import Availability
from ._base import Source
from ._names import check_prefix, covers, encode_topic

log = logging.getLogger("walrus.forward")

EXTRA = "walrus-wal[nats]"
MISSING = f"the NATS sink needs nats-py, which is not installed: pip install '{EXTRA}'"
TOPIC_HEADER = "Walrus-Topic"
"""The topic, as its subject token (see ``walrus.sinks.decode_topic``)."""
OFFSET_HEADER = "Walrus-Offset"
"""The entry's offset in its topic, in decimal."""
MAX_BATCH = 1000
"""Messages in one JetStream atomic batch (the server's default limit, ``max_msgs`` of
``jetstream.limits.batch``; a server that refuses a batch as too large names its own limit,
which is then used)."""
BATCH_BYTES = 4 << 20
"""Payload bytes read for one batch (the first entry is sent even if larger)."""
CHECK_BATCH = 1000
"""Messages compared with the log at a time when resuming (see ``_check_unacknowledged``)."""
HEADER_ROOM = 1024
"""Bytes of a message's max_payload kept for its headers (the server counts both)."""
NOT_FOUND = 10037
BATCH_TOO_LARGE = 10199
ATOMIC_DISABLED = 10174
SUBJECTS_OVERLAP = 10065
STREAM_NAME_IN_USE = 10058
NO_PEERS = 10005
"""No nodes to place the stream's replicas on: retried when the refusal says a peer is
offline (a node restarting, or one the cluster has not heard from yet just after it
started), since that passes; otherwise permanent."""
PERMANENT = frozenset({10074})
"""Refusals of a stream creation that waiting does not cure (replicas on a single server);
others (no meta leader, too few nodes up) may pass, so they are retried."""
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 5.0
DISCOVER_EVERY = 1.0
"""Seconds between two listings of the log's topics when forwarding every topic: a topic
created meanwhile joins within this (nothing wakes a wait on "a topic was created")."""
STOP_RECHECK = 1.0
"""Seconds after which the thread that carries ``stop`` into the loop checks whether the
run is over (``stop`` itself wakes it at once)."""


def probe() -> Availability:
    """Can the sink run here: is nats-py installed?"""
    try:
        found = importlib.util.find_spec("nats") is not None
    except ValueError:  # a module set to None in sys.modules: importing it fails
        found = False
    if not found:
        return Availability(False, MISSING)
    return Availability(True, "")


def _nats() -> ModuleType:
    try:
        return importlib.import_module("nats")
    except ImportError as exc:
        raise ForwardError(MISSING) from exc


def default_stream(prefix: str) -> str:
    """The stream's name when none is given: the prefix, upper case, dots as underscores."""
    return prefix.replace(".", "_").upper()


class Rejected(Exception):
    """The stream refused a batch or acknowledged something other than what was sent."""


class _Backoff:
    """Delays between retries: doubling from 0.1 s to 5 s, reset by a success."""

    def __init__(self) -> None:
        self.delay = 0.0

    def next(self) -> float:
        self.delay = min(BACKOFF_MAX, max(BACKOFF_FIRST, self.delay * 2))
        return self.delay

    def reset(self) -> None:
        self.delay = 0.0


class NatsSink:
    """Forwards into one JetStream stream, creating it when it is missing."""

    def __init__(self, urls: Sequence[str], *, stream: str | None = None,
                 subject_prefix: str = "walrus", replicas: int | None = None,
                 ack_timeout: float = 10.0) -> None:
        if not urls:
            raise InvalidArgumentError("forwarding needs at least one nats:// URL")
        self.urls = list(urls)
        try:
            self.prefix = check_prefix(subject_prefix)
        except ValueError as exc:
            raise InvalidArgumentError(str(exc)) from None
        self.stream = stream or default_stream(self.prefix)
        if not self.stream or any(c in self.stream for c in ". *>\t\r\n"):
            raise InvalidArgumentError(f"invalid stream name {self.stream!r}")
        if replicas is not None and (not isinstance(replicas, int) or not 1 <= replicas <= 5):
            raise InvalidArgumentError(f"replicas must be 1..5, got {replicas!r}")
        self.replicas = replicas
        self.ack_timeout = ack_timeout
        self.atomic = True
        self.max_batch = MAX_BATCH
        self.subjects: list[str] = []
        self._nc: Any = None
        self._jsm: Any = None
        self._stop = threading.Event()
        self._stopping: asyncio.Future[None] | None = None
        """Resolved on the loop once ``_stop`` is set: what every wait of the run also
        waits for, so a stop is seen at once without polling."""

    @property
    def target(self) -> str:
        """What this sink forwards into (the stream): names the forwarder's consumer."""
        return self.stream

    # --- running ----------------------------------------------------------------------------

    def run(self, source: Source, *, once: bool, stop: threading.Event) -> None:
        """Forward until caught up (``once``) or until ``stop`` is set."""
        self._stop = stop
        asyncio.run(self._main(source, once))

    async def _main(self, source: Source, once: bool) -> None:
        nats = _nats()
        over = threading.Event()
        self._carry_stop(over)
        try:
            await self._forward(nats, source, once)
        finally:
            over.set()

    def _carry_stop(self, over: threading.Event) -> None:
        """Resolve ``_stopping`` on the running loop when ``_stop`` is set (by a signal
        handler or another thread: neither can wake the loop), from a thread that ends
        once ``over`` is set."""
        loop = asyncio.get_running_loop()
        stopping = self._stopping = loop.create_future()

        def resolve() -> None:
            if not stopping.done():
                stopping.set_result(None)

        def carry() -> None:
            while not self._stop.wait(STOP_RECHECK):
                if over.is_set():
                    return
            try:
                loop.call_soon_threadsafe(resolve)
            except RuntimeError:  # the loop is closed: the run is over
                pass

        threading.Thread(target=carry, name="walrus-forward-stop", daemon=True).start()

    async def _until_stopped(self, waits: set[asyncio.Future[Any]],
                             timeout: float | None) -> bool:
        """Wait until one of ``waits`` is done, ``timeout`` passes, or the run is stopped;
        True when stopped."""
        assert self._stopping is not None
        await asyncio.wait({*waits, self._stopping}, timeout=timeout,
                           return_when=asyncio.FIRST_COMPLETED)
        return self._stopping.done()

    async def _forward(self, nats: ModuleType, source: Source, once: bool) -> None:
        """Connect, find or create the stream, and forward."""
        self._nc = await self._connect(nats)
        if self._nc is None:
            return  # stopped before the cluster answered
        try:
            self._jsm = self._nc.jetstream()
            if not await self._retrying(self._ensure_stream, f"setting up stream {self.stream}"):
                return
            await self._supervise(source, once)
        finally:
            await self._nc.close()

    async def _supervise(self, source: Source, once: bool) -> None:
        """One task per topic (new topics join as they appear unless ``once``); the first
        task that fails stops the others and its error is raised."""
        tasks: dict[str, asyncio.Task[None]] = {}
        topics = source.topics()
        while True:
            for topic in topics:
                if topic not in tasks:
                    self._check_covered(topic)
                    tasks[topic] = asyncio.create_task(self._forward_topic(source, topic, once))
            failed = [t for t in tasks.values() if t.done() and t.exception() is not None]
            if failed:
                for task in tasks.values():
                    task.cancel()
                await asyncio.gather(*tasks.values(), return_exceptions=True)
                raise failed[0].exception()  # type: ignore[misc]
            running = {t for t in tasks.values() if not t.done()}
            if not running and (once or self._stop.is_set()):
                break
            source.tick()
            pause = min(source.due_in(), math.inf if once else DISCOVER_EVERY)
            if self._stop.is_set():
                await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            else:
                await self._until_stopped(set(running), None if math.isinf(pause) else pause)
            if not once and not self._stop.is_set():
                topics = source.topics()
        source.tick()

    async def _connect(self, nats: ModuleType) -> Any:
        """Connect, retrying with backoff while the cluster is away; None if stopped first."""
        async def quiet(exc: Exception) -> None:
            log.debug("NATS connection: %s: %s", type(exc).__name__, exc)

        async def lost() -> None:
            log.info("NATS connection lost; reconnecting")

        async def restored() -> None:
            log.info("NATS connection restored")

        async def connect() -> Any:
            return await nats.connect(
                servers=self.urls, connect_timeout=2, reconnect_time_wait=0.5,
                max_reconnect_attempts=-1, error_cb=quiet, disconnected_cb=lost,
                reconnected_cb=restored)

        return await self._retrying(connect, f"cannot reach NATS at {','.join(self.urls)}")

    async def _retrying(self, step: Any, what: str) -> Any:
        """What ``step()`` returns, retried with backoff while it fails with a transient
        error (anything else, a ForwardError first, ends forwarding); None when stopped."""
        backoff = _Backoff()
        while not self._stop.is_set():
            try:
                return await step()
            except Exception as exc:
                if not _transient(exc):
                    raise
                delay = backoff.next()
                log.warning("%s (%s); retrying in %.1f s", what, _describe(exc), delay)
                await self._pause(delay)
        return None

    async def _pause(self, seconds: float) -> None:
        """Sleep, waking early when stopped."""
        await self._until_stopped(set(), seconds)

    # --- the stream -------------------------------------------------------------------------

    async def _ensure_stream(self) -> bool:
        """Find or create the stream; learn its subjects and whether it takes atomic batches."""
        from nats.js.api import StorageType, StreamConfig
        from nats.js.errors import APIError, NotFoundError

        try:
            info = await self._jsm.stream_info(self.stream)
        except NotFoundError:
            replicas = self.replicas or (3 if self._cluster_size() >= 3 else 1)
            config = StreamConfig(name=self.stream, subjects=[f"{self.prefix}.>"],
                                  num_replicas=replicas, storage=StorageType.FILE,
                                  allow_atomic=True)
            try:
                info = await self._jsm.add_stream(config)
                log.info("created stream %s (subjects %s.>, %d replicas)", self.stream,
                         self.prefix, replicas)
            except APIError as exc:
                if exc.err_code == STREAM_NAME_IN_USE:
                    info = await self._jsm.stream_info(self.stream)
                elif exc.err_code == SUBJECTS_OVERLAP:
                    raise ForwardError(
                        f"cannot create stream {self.stream!r}: subjects {self.prefix}.> "
                        f"overlap another stream's; name that stream with --stream, or "
                        f"choose another --subject-prefix") from None
                elif exc.err_code == NO_PEERS and "offline" in (exc.description or ""):
                    raise  # a node is down or not yet seen by the cluster: it may come back
                elif exc.err_code in PERMANENT or (exc.code is not None and exc.code < 500):
                    raise ForwardError(
                        f"cannot create stream {self.stream!r} with {replicas} replicas: "
                        f"{exc.description}") from None
                else:
                    raise
        self.subjects = list(info.config.subjects or [])
        self.atomic = bool(info.config.allow_atomic)
        if not self.atomic:
            log.warning("stream %s does not allow atomic batches (server before 2.12, or "
                        "allow_atomic off): forwarding one message at a time, which is slow",
                        self.stream)
        return True

    def _cluster_size(self) -> int:
        """Nodes of the cluster the connection reached, as its INFO lists them."""
        urls = (self._nc._server_info or {}).get("connect_urls") or []
        return max(1, len(set(urls)))

    def _subject(self, topic: str) -> str:
        return f"{self.prefix}.{encode_topic(topic)}"

    def _check_covered(self, topic: str) -> None:
        subject = self._subject(topic)
        if not any(covers(pattern, subject) for pattern in self.subjects):
            raise ForwardError(
                f"stream {self.stream!r} takes subjects {', '.join(self.subjects) or 'none'}, "
                f"which do not cover {subject} (topic {topic!r}); add {self.prefix}.> to the "
                f"stream, or choose another --stream or --subject-prefix")

    # --- one topic --------------------------------------------------------------------------

    async def _forward_topic(self, source: Source, topic: str, once: bool) -> None:
        """Forward one topic: resume from the stream, then send batch after batch."""
        target = source.offsets(topic)[1] if once else None
        backoff = _Backoff()
        position: tuple[int, int] | None = None
        while not self._stop.is_set():
            try:
                if position is None:
                    position = await self._resume(source, topic)
                start, last_seq = position
                if target is not None and start >= target:
                    return
                limit = self.max_batch if self.atomic else 1
                entries = source.read_batches(topic, start, limit, BATCH_BYTES)
                if not entries:
                    if target is not None:
                        raise ForwardError(f"topic {topic!r}: no entry at offset {start}, "
                                           f"below its next offset {target}")
                    entries = await self._wait_for_entries(source, topic, start, limit)
                    if not entries:
                        continue
                last_seq = await self._send(topic, entries, last_seq)
                position = (entries[-1].offset + 1, last_seq)
                await source.acknowledged(topic, position[0], len(entries))
                backoff.reset()
            except Exception as exc:  # go back to what the stream holds, if worth it
                if not _transient(exc):
                    raise
                position = None
                delay = backoff.next()
                log.warning("topic %r: %s; resuming from the stream's last message in %.1f s",
                            topic, _describe(exc), delay)
                await self._pause(delay)

    async def _wait_for_entries(self, source: Source, topic: str, start: int,
                                limit: int) -> list[Entry]:
        """The source's wait for entries at ``start``, given up (nothing) when stopped."""
        waiting = asyncio.ensure_future(
            source.wait_for_entries(topic, start, limit, BATCH_BYTES))
        if not await self._until_stopped({waiting}, None) or waiting.done():
            return waiting.result()
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        return []

    async def _resume(self, source: Source, topic: str) -> tuple[int, int]:
        """The next offset to send and the subject's last stream sequence, read back from the
        stream leader (the last message of the subject, with its offset header); the source
        moves its consumer there (or says what is gone)."""
        from nats.js.errors import NotFoundError

        subject = self._subject(topic)
        end = source.offsets(topic)[1]
        try:
            msg = await self._jsm.get_last_msg(self.stream, subject)
        except NotFoundError:
            nxt, seq = 0, 0
        else:
            headers = msg.headers or {}
            offset = headers.get(OFFSET_HEADER, "")
            if headers.get(TOPIC_HEADER) != encode_topic(topic) or not offset.isdigit():
                raise ForwardError(
                    f"subject {subject} of stream {self.stream!r} ends with a message walrus "
                    f"did not forward (sequence {msg.seq}): refusing to write after it")
            nxt, seq = int(offset) + 1, int(msg.seq)
            self._check_same(source, topic, [(nxt - 1, msg.data or b"")])
        if nxt > end:
            raise ForwardError(
                f"stream {self.stream!r} holds offset {nxt - 1} of topic {topic!r}, but the log "
                f"ends at offset {end - 1}: the stream was fed by another log, or the log lost "
                f"entries it had (a power loss before they were synced)")
        await self._check_unacknowledged(source, topic, nxt, seq)
        return source.resume(topic, nxt), seq

    async def _check_unacknowledged(self, source: Source, topic: str, nxt: int,
                                    last_seq: int) -> None:
        """Check every message the stream holds past what the forwarder's consumer says was
        acknowledged, not only the last one (checked already).

        Those were sent, but the consumer's position was not stored after, or not made
        durable: a power cut can take back both it and the entries sent, and the writer then
        gives their offsets to other entries. Only the entries at every offset tell the two
        histories apart: a last entry that happens to be the same (a heartbeat) must not let
        the forwarder go on after the others, unsent."""
        recorded = source.position(topic)
        if recorded is None:  # a new consumer: what holds the stream is not this log's to know
            return
        first = max(recorded, source.offsets(topic)[0])
        if first >= nxt - 1:
            return
        subject = self._subject(topic)
        seq = await self._seq_of(subject, first, last_seq)
        batch: list[tuple[int, bytes]] = []
        while seq < last_seq:
            found = await self._next_msg(subject, topic, seq)
            if found is None or found[1] >= nxt - 1:
                break
            seq, offset, data = found
            batch.append((offset, data))
            if len(batch) >= CHECK_BATCH:
                self._check_same(source, topic, batch)
                batch = []
            seq += 1
        self._check_same(source, topic, batch)

    async def _seq_of(self, subject: str, offset: int, last_seq: int) -> int:
        """The stream sequence of the subject's first message at ``offset`` or past it (at
        most ``last_seq``, the subject's last message): a binary search, the subject's
        offsets growing with its sequences."""
        low, high = 1, last_seq
        while low < high:
            mid = (low + high) // 2
            found = await self._next_msg(subject, None, mid)
            if found is None or found[1] >= offset:
                high = mid
            else:
                low = found[0] + 1
        return low

    async def _next_msg(self, subject: str, topic: str | None,
                        seq: int) -> tuple[int, int, bytes] | None:
        """(sequence, offset, data) of the subject's first message at stream sequence
        ``seq`` or after it; None if there is none. ``topic``: refuse a message walrus did
        not forward."""
        from nats.js.errors import NotFoundError

        try:
            msg = await self._jsm.get_msg(self.stream, seq, subject=subject, next=True)
        except NotFoundError:
            return None
        headers = msg.headers or {}
        offset = headers.get(OFFSET_HEADER, "")
        if not offset.isdigit() or (topic is not None
                                    and headers.get(TOPIC_HEADER) != encode_topic(topic)):
            raise ForwardError(
                f"subject {subject} of stream {self.stream!r} holds a message walrus did not "
                f"forward (sequence {msg.seq}): refusing to write after it")
        return int(msg.seq), int(offset), msg.data or b""

    def _check_same(self, source: Source, topic: str, held: list[tuple[int, bytes]]) -> None:
        """Each (offset, data) the stream holds must be the log's entry at that offset (where
        the log still has it): else the stream continues another history than this log's."""
        first = source.offsets(topic)[0]
        held = [(offset, data) for offset, data in held if offset >= first]
        if not held:
            return
        mine: dict[int, bytes] = {}
        start, last = held[0][0], held[-1][0]
        while start <= last:
            try:
                entries = source.read(topic, start, last - start + 1, BATCH_BYTES)
            except CorruptionError:  # damaged on disk since it was sent: nothing to compare
                entries = []
                start += 1
                continue
            if not entries:
                break
            mine.update((e.offset, e.data) for e in entries)
            start = entries[-1].offset + 1
        for offset, data in held:
            if offset in mine and mine[offset] != data:
                raise ForwardError(
                    f"stream {self.stream!r} holds other data at offset {offset} of topic "
                    f"{topic!r} than the log: it was fed by another log, or the log lost "
                    f"entries it had (a power loss before they were synced) and wrote others "
                    f"since")

    async def _send(self, topic: str, entries: list[Entry], last_seq: int) -> int:
        """Send one batch that must follow stream sequence ``last_seq`` on its subject;
        returns the sequence of its last message."""
        subject = self._subject(topic)
        token = encode_topic(topic)
        batch = uuid.uuid4().hex if self.atomic else ""
        count = len(entries)
        offset = entries[0].offset
        limit = self._nc.max_payload - HEADER_ROOM
        reply = None
        for i, entry in enumerate(entries, 1):
            if entry.offset != offset + i - 1:
                raise ForwardError(f"topic {topic!r}: read offset {entry.offset} where "
                                   f"{offset + i - 1} was due")
            if len(entry.data) > limit:
                raise ForwardError(
                    f"entry {entry.offset} of topic {topic!r} is {len(entry.data)} bytes: with "
                    f"its headers, more than the NATS server's max_payload "
                    f"({self._nc.max_payload}); raise max_payload in the server's configuration")
            headers = {TOPIC_HEADER: token, OFFSET_HEADER: str(entry.offset),
                       "Nats-Msg-Id": f"{token}:{entry.offset}"}
            if i == 1:
                headers["Nats-Expected-Last-Subject-Sequence"] = str(last_seq)
            if batch:
                headers["Nats-Batch-Id"] = batch
                headers["Nats-Batch-Sequence"] = str(i)
            if i < count:
                await self._nc.publish(subject, entry.data, headers=headers)
                continue
            if batch:
                headers["Nats-Batch-Commit"] = "1"
            reply = await self._nc.request(subject, entry.data, headers=headers,
                                           timeout=self.ack_timeout)
        assert reply is not None
        ack = json.loads(reply.data)
        if "error" in ack:
            error = ack["error"]
            self._learn(error, count)
            raise Rejected(f"stream refused offsets {offset}..{offset + count - 1}: "
                           f"{error.get('description')} (err_code {error.get('err_code')})")
        if ack.get("duplicate") or (batch and ack.get("count") != count):
            raise Rejected(f"stream acknowledged {ack} for offsets {offset}..{offset + count - 1}")
        seq = int(ack["seq"])
        if seq < last_seq + count:
            raise Rejected(f"stream acknowledged sequence {seq} after {last_seq} for {count} "
                           f"messages")
        return seq

    def _learn(self, error: dict[str, Any], count: int) -> None:
        """Take in what a refused batch says about the server: its own batch limit (a
        server configured below the default names it), or a stream whose atomic batches were
        turned off since it was looked at. The go-back-N that follows retries accordingly."""
        code = error.get("err_code")
        if code == BATCH_TOO_LARGE:
            found = re.search(r"(\d+)\s*$", str(error.get("description", "")))
            limit = int(found.group(1)) if found else count // 2
            self.max_batch = max(1, min(limit, count - 1))
            log.warning("stream %s takes atomic batches of at most %d messages: a walrus batch "
                        "larger than that arrives in several", self.stream, self.max_batch)
        elif code == ATOMIC_DISABLED and self.atomic:
            self.atomic = False
            log.warning("stream %s no longer allows atomic batches: forwarding one message at "
                        "a time, which is slow", self.stream)


def _transient(exc: Exception) -> bool:
    """Is ``exc`` worth a retry: the cluster away or electing, a refused or unanswered
    batch, entries reclaimed under a read (the resume point moves past them)? Damage in the
    log and a target that does not continue it are not."""
    if isinstance(exc, WalrusError):
        return isinstance(exc, OffsetOutOfRangeError)
    errors = _nats().errors
    return isinstance(exc, Rejected | OSError | TimeoutError | errors.Error)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {text}" if text and text != name else name


def factory(urls: Sequence[str], **options: Any) -> NatsSink:
    """The sink for ``--to nats://...``: keywords ``stream``, ``subject_prefix``, ``replicas``."""
    _nats()
    return NatsSink(urls, **options)
