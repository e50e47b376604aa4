"""The command line with retention: ``walrus retention`` and the retention and first stored
offset columns of ``walrus topics``; the human units both read and show."""

from __future__ import annotations

from pathlib import Path

import pytest

from walrus import Retention, Walrus
from walrus._settings_parse import duration_label, parse_duration, parse_size, size_label

from .cli_support import data_dir, quiet_isolated_env, tree_state  # noqa: F401 - fixtures
from .test_cli import fails, ok, topics_json


def test_retention_sets_shows_keeps_and_lifts_limits(data_dir: Path) -> None:  # noqa: F811
    ok("append", data_dir, "metrics", "x")
    out = ok("retention", data_dir, "metrics", "--max-age", "1h", "--max-bytes", "512MiB")
    assert out == b"metrics: max-age 1h, max-bytes 512MiB\n"
    assert ok("retention", data_dir, "metrics") == out
    assert ok("retention", data_dir, "metrics", "--max-age", "90m") == (
        b"metrics: max-age 90m, max-bytes 512MiB\n")  # the size is kept
    assert ok("retention", data_dir, "metrics", "--max-bytes", "none") == (
        b"metrics: max-age 90m\n")
    with Walrus(data_dir, read_only=True) as wal:
        assert wal.get_retention("metrics") == Retention(max_age=5400.0, max_bytes=None)
    row = topics_json(data_dir)["metrics"]
    assert row["retention"] == {"max_age": 5400.0, "max_bytes": None}
    assert row["first_offset"] == 0
    table = ok("topics", data_dir).decode().splitlines()
    assert table[0].split() == ["TOPIC", "ENTRIES", "FIRST", "OFFSET", "UNCONSUMED", "BYTES",
                                "CLEAN", "RETENTION"]
    assert table[1].split()[-2:] == ["max-age", "90m"]


def test_retention_refuses_bad_limits_and_unknown_topics(data_dir: Path) -> None:  # noqa: F811
    ok("append", data_dir, "t", "x")
    ok("retention", data_dir, "t", "--max-bytes", "1MiB")
    assert "--max-age '1x'" in fails("retention", data_dir, "t", "--max-age", "1x")
    assert "--max-age '-5'" in fails("retention", data_dir, "t", "--max-age", "-5")
    assert "max_bytes must be positive" in fails("retention", data_dir, "t", "--max-bytes", "0")
    assert "does not exist" in fails("retention", data_dir, "nope", "--max-age", "1h")
    assert "too large: must be less than 8 EiB" in fails("retention", data_dir, "t",
                                                         "--max-bytes", "9" * 400)
    assert ok("retention", data_dir, "t") == b"t: max-bytes 1MiB\n"  # nothing changed


def test_setting_retention_in_a_missing_directory_or_topic_changes_nothing(
        data_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    """A mistyped directory is not made into a new log, nor is a log touched for a topic it
    does not have: the command fails before it takes the directory as a writer."""
    typo = tmp_path / "wall"
    assert "does not exist" in fails("retention", typo, "t", "--max-age", "1h")
    assert not typo.exists()
    ok("append", data_dir, "t", "x")
    before = tree_state(data_dir)
    assert "topic 'nope' does not exist" in fails("retention", data_dir, "nope",
                                                  "--max-bytes", "1MiB")
    assert tree_state(data_dir) == before


@pytest.mark.parametrize(("text", "seconds", "label"), [
    ("1h", 3600.0, "1h"), ("90s", 90.0, "90s"), ("36h", 129600.0, "36h"),
    ("168h", 604800.0, "168h"),
    ("2.5", 2.5, "2.5s"), ("120", 120.0, "2m"),
])
def test_durations_read_and_show(text: str, seconds: float, label: str) -> None:
    assert parse_duration(text) == seconds
    assert duration_label(seconds) == label
    assert parse_duration(label) == seconds


@pytest.mark.parametrize(("text", "size", "label"), [
    ("512MiB", 512 << 20, "512MiB"), ("4k", 4096, "4KiB"), ("1000", 1000, "1000B"),
    ("1.5GiB", 1536 << 20, "1536MiB"), ("2TiB", 2 << 40, "2TiB"),
])
def test_sizes_read_and_show(text: str, size: int, label: str) -> None:
    assert parse_size(text) == size
    assert size_label(size) == label
    assert parse_size(label) == size


def test_retention_takes_a_config_file(data_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    ok("append", data_dir, "t", "x")
    config = tmp_path / "walrus.toml"
    config.write_text(f'[walrus]\ndata_dir = "{data_dir}"\n')
    ok("retention", "--config", config, "t", "--max-bytes", "1MiB")
    with Walrus(data_dir=data_dir, read_only=True) as wal:
        assert wal.get_retention("t") == Retention(None, 1 << 20)
    assert b"1MiB" in ok("retention", "--config", config, "t")
