"""The library's text spellings of settings, shared by the CLI, the benchmarks and variables."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from walrus import FsyncSchedule, InvalidArgumentError, ReadConsistency
from walrus._settings_parse import (
    fsync_label,
    parse_backend,
    parse_consistency,
    parse_duration,
    parse_fsync,
    parse_size,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("sync-each", FsyncSchedule.SyncEach),
    ("no-fsync", FsyncSchedule.NoFsync),
    ("none", FsyncSchedule.NoFsync),
    ("async", FsyncSchedule.Milliseconds(1000)),
    ("250ms", FsyncSchedule.Milliseconds(250)),
    ("500", FsyncSchedule.Milliseconds(500)),
])
def test_fsync_values_follow_the_original(text: str, expected: object) -> None:
    assert parse_fsync(text) == expected
    assert parse_fsync(fsync_label(parse_fsync(text))) == expected


@pytest.mark.parametrize("text", ["", "sync", "fast", "ms", "-5ms", "1.5ms", "10s"])
def test_fsync_rejects_what_the_original_would_ignore(text: str) -> None:
    with pytest.raises(ValueError):
        parse_fsync(text)


@pytest.mark.parametrize(("text", "expected"), [
    ("strictly-at-once", ReadConsistency.StrictlyAtOnce),
    ("Strict", ReadConsistency.StrictlyAtOnce),
    ("at-least-once:5", ReadConsistency.AtLeastOnce(persist_every=5)),
])
def test_consistency_values(text: str, expected: object) -> None:
    assert parse_consistency(text) == expected


@pytest.mark.parametrize("text", ["", "at-least-once", "at-least-once:x", "sometimes"])
def test_consistency_rejects_other_text(text: str) -> None:
    with pytest.raises(InvalidArgumentError, match="strictly-at-once or at-least-once:N"):
        parse_consistency(text)


def test_backend_names_must_be_registered() -> None:
    assert parse_backend("auto") == "auto"
    assert parse_backend("pwrite, mmap") == "pwrite,mmap"
    with pytest.raises(ValueError, match="nope"):
        parse_backend("nope")
    with pytest.raises(ValueError):
        parse_backend("mmap,")


def test_sizes_are_exact_and_bounded() -> None:
    """Sizes are read exactly (no float rounding, no infinity) and a size past what a file
    offset holds is refused as a ValueError, like any bad spelling."""
    assert parse_size("9007199254740993") == 9007199254740993  # 2**53 + 1: not a float
    assert parse_size("8388607.999999999999TiB") < 1 << 63
    for text in ("8388608TiB", "9" * 400):
        with pytest.raises(ValueError):
            parse_size(text)


@pytest.mark.parametrize(("parse", "text"), [
    (parse_fsync, "²ms"), (parse_fsync, "٣"), (parse_consistency, "at-least-once:٣"),
    (parse_size, "٣k"), (parse_duration, "٣h"),
])
def test_only_ascii_digits_are_numbers(parse: Callable[[str], object], text: str) -> None:
    """Other Unicode digits are a typo (or a trick), not a number: refused like any bad
    spelling, with the accepted forms."""
    with pytest.raises(ValueError, match=r"^expected "):
        parse(text)
