"""Sinks as plugins (``walrus_register_sinks``), the forwarder's contract with them, the subject
mapping of topic names, and the error when nats-py is missing. No NATS server needed."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

import walrus
from walrus import Availability, ForwardError, SinkSpec, Walrus, hookimpl
from walrus.plugins._manager import registered_sinks, sink_spec
from walrus.sinks import Source, decode_topic, encode_topic
from walrus.sinks._names import covers

from .cli_support import child_env, quiet_isolated_env
from .test_plugins import register

__all__ = ["quiet_isolated_env", "register"]  # fixtures


class MemorySink:
    """A sink that keeps what it is sent, resuming from what it already holds."""

    held: ClassVar[dict[str, list[tuple[int, bytes]]]] = {}

    def __init__(self, urls: list[str], **options: Any) -> None:
        self.urls = urls
        self.options = options

    def run(self, source: Source, *, once: bool, stop: threading.Event) -> None:
        for topic in source.topics():
            held = self.held.setdefault(topic, [])
            start = held[-1][0] + 1 if held else 0
            source.ack_position(topic, start, 0)
            while entries := source.read(topic, start, 10, 1 << 20):
                held.extend((e.offset, e.data) for e in entries)
                start = entries[-1].offset + 1
                source.ack_position(topic, start, len(entries))


class _SinkPlugin:
    def __init__(self, result: Any = None, fail: bool = False) -> None:
        self.result = result
        self.fail = fail

    @hookimpl
    def walrus_register_sinks(self) -> Any:
        if self.fail:
            raise RuntimeError("sink plugin exploded")
        return self.result


def test_the_nats_sink_is_registered_like_any_plugin() -> None:
    names = {spec.name: plugin for spec, plugin in registered_sinks()}
    assert "nats" in names


def test_a_broken_sink_plugin_is_logged_and_skipped(register: Any, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    MemorySink.held = {}
    register(_SinkPlugin(fail=True))
    register(_SinkPlugin(result=["not a spec"]))
    register(_SinkPlugin(result=SinkSpec("memory", MemorySink)))
    with Walrus(tmp_path / "wal") as wal:
        wal.batch_append_for_topic("a", [b"0", b"1", b"2"])
        wal.append_for_topic("b", b"x")
        with caplog.at_level(logging.WARNING, logger="walrus.plugins"):
            final = walrus.forward(tmp_path / "wal", "memory://here", once=True)
        assert final.forwarded == 4 and final.lag == {"a": 0, "b": 0}
        assert MemorySink.held == {"a": [(0, b"0"), (1, b"1"), (2, b"2")], "b": [(0, b"x")]}
        wal.append_for_topic("a", b"3")
        assert walrus.forward(tmp_path / "wal", ["memory://here"], once=True).forwarded == 1
    assert MemorySink.held["a"][-1] == (3, b"3")
    messages = caplog.text
    assert "failed to register sinks: RuntimeError: sink plugin exploded" in messages
    assert "returned 'not a spec', not a SinkSpec" in messages
    assert {spec.name for spec, _ in registered_sinks()} >= {"nats", "memory"}


def test_an_unknown_or_unavailable_sink_is_a_clear_error(register: Any) -> None:
    register(_SinkPlugin(result=SinkSpec("never", MemorySink,
                                         probe=lambda: Availability(False, "no client here"))))
    with pytest.raises(ForwardError, match="no sink named 'kafka' is registered"):
        sink_spec("kafka")
    with pytest.raises(ForwardError, match="sink 'never' is unavailable: no client here"):
        sink_spec("never")
    with pytest.raises(walrus.InvalidArgumentError, match="one scheme"):
        walrus.forward(".", "127.0.0.1:4222")
    with pytest.raises(walrus.InvalidArgumentError, match="a list of topic names"):
        walrus.forward(".", "nats://127.0.0.1:4222", topics="orders")


def test_missing_nats_py_names_the_extra(tmp_path: Path) -> None:
    Walrus(tmp_path / "wal").close()
    code = ("import sys\n"
            "sys.modules['nats'] = None  # as if nats-py were not installed\n"
            "from walrus._cli import main\n"
            "sys.exit(main(['forward', sys.argv[1], '--to', 'nats://127.0.0.1:4222', '--once']))")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "wal")],
                            capture_output=True, timeout=60, env=child_env())
    assert result.returncode == 2
    assert b"nats-py, which is not installed: pip install 'walrus-wal[nats]'" in result.stderr


@given(st.text(min_size=1, max_size=60).filter(lambda t: "\0" not in t))
def test_topic_names_map_to_subject_tokens_one_to_one(topic: str) -> None:
    token = encode_topic(topic)
    assert token.isascii() and token.isprintable()
    assert not set(token) & set(". *>\t\r\n")
    assert decode_topic(token) == topic


def test_subject_coverage() -> None:
    assert covers("walrus.>", "walrus.orders")
    assert covers("walrus.*", "walrus.orders")
    assert covers(">", "walrus.orders")
    assert not covers("walrus.>", "walrus")
    assert not covers("walrus.x", "walrus.orders")
    assert not covers("walrus.*", "walrus.a.b")
