"""The command line with named consumers: ``read --consumer`` and ``tail --consumer`` beside
a live writer, and consumers' positions and lag in ``topics``."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

from walrus import Walrus

from .cli_support import data_dir, quiet_isolated_env, start_walrus  # noqa: F401 - fixtures
from .test_cli import _Lines, fails, ok, topics_json


def test_read_consumer_consumes_beside_a_live_writer(data_dir: Path) -> None:  # noqa: F811
    with Walrus(data_dir) as wal:  # the writer stays open (holds the directory's lock)
        wal.batch_append_for_topic("t", [b"a", b"b", b"c"])
        assert ok("read", data_dir, "t", "--consumer", "job", "-n", "2") == b"a\nb\n"
        assert ok("read", data_dir, "t", "--consumer", "job", "--peek") == b"c\n"
        assert ok("read", data_dir, "t", "--consumer", "job") == b"c\n"
        assert ok("read", data_dir, "t", "--consumer", "job") == b""
        assert ok("read", data_dir, "t", "--consumer", "other") == b"a\n"
        assert wal.consumers("t") == {"job": 3, "other": 1}
        assert wal.get_topic_entry_count("t") == 3  # the shared cursor did not move
        wal.append_for_topic("t", b"d")
        row = topics_json(data_dir)["t"]
        assert row["consumers"] == {"job": {"next_offset": 3, "lag": 1},
                                    "other": {"next_offset": 1, "lag": 3}}
        table = ok("topics", data_dir).decode().splitlines()
        assert table[-3].split() == ["TOPIC", "CONSUMER", "NEXT", "OFFSET", "LAG"]
        assert table[-2].split() == ["t", "job", "3", "1"]
        assert table[-1].split() == ["t", "other", "1", "3"]


def test_read_consumer_refuses_bad_names_and_a_live_owner(data_dir: Path) -> None:  # noqa: F811
    ok("append", data_dir, "t", "x")
    assert "consumer" in fails("read", data_dir, "t", "--consumer", "")
    with Walrus(data_dir, read_only=True) as obs:
        obs.read_next("t", consumer="job")  # this process owns it now
        assert "in use by process" in fails("read", data_dir, "t", "--consumer", "job")


def test_tail_consumer_goes_on_where_it_stopped(data_dir: Path) -> None:  # noqa: F811
    with Walrus(data_dir) as wal:
        wal.batch_append_for_topic("t", [b"e%d" % i for i in range(5)])
        def more() -> None:
            for i in range(5, 300):
                wal.append_for_topic("t", b"e%d" % i)

        got = tail_until(data_dir, 300, more, "--interval", "0.02")
        assert got == [b"e%d" % i for i in range(300)]
        assert wal.consumers("t") == {"job": 300}
        wal.append_for_topic("t", b"after")
        got = tail_until(data_dir, 1, None, "--format", "json")
        assert [json.loads(x)["offset"] for x in got] == [300]


def tail_until(data_dir: Path, count: int, meanwhile: Callable[[], None] | None,  # noqa: F811
               *options: str) -> list[bytes]:
    """Run ``walrus tail --consumer job`` until it printed ``count`` lines (calling
    ``meanwhile`` once it printed its first), then stop it with SIGTERM; its lines."""
    tail = start_walrus("tail", data_dir, "t", "--consumer", "job", *options)
    lines = _Lines(tail)
    try:
        lines.wait_for(1)
        if meanwhile is not None:
            meanwhile()
        lines.wait_for(count)
        tail.send_signal(signal.SIGTERM)
        tail.communicate(timeout=30)
    finally:
        if tail.poll() is None:
            tail.kill()
    lines.join()
    assert tail.returncode == 0
    return list(lines.lines)


def test_tail_consumer_and_from_offset_conflict(data_dir: Path) -> None:  # noqa: F811
    ok("append", data_dir, "t", "x")
    assert "--consumer" in fails("tail", data_dir, "t", "--consumer", "a", "--from-offset", "0")


def test_tail_consumes_only_what_it_wrote_when_entries_arrive_between(
        data_dir: Path) -> None:  # noqa: F811
    """An entry appended after the tail read its batch is neither consumed nor lost."""
    import io

    from walrus._commands.tail import consume_batch

    with Walrus(data_dir) as wal:
        wal.append_for_topic("t", b"first")
        real = wal.batch_read_for_topic

        def read_then_append(*args: object, **kwargs: object) -> object:
            got = real(*args, **kwargs)  # type: ignore[arg-type]
            wal.append_for_topic("t", b"between")
            return got

        wal.batch_read_for_topic = read_then_append  # type: ignore[method-assign]
        out = io.BytesIO()
        assert consume_batch(wal, "t", "job", out, "raw")
        wal.batch_read_for_topic = real  # type: ignore[method-assign]
        assert b"first" in out.getvalue()
        assert [e.data for e in wal.batch_read_for_topic("t", 1 << 20, consumer="job")] == [
            b"between"]
