"""Benchmark settings: the original's parsing, flags over variables, errors naming the source."""

from __future__ import annotations

import argparse

import pytest

from walrus import FsyncSchedule, InvalidArgumentError
from walrus_bench._options import parse_batch_size, parse_duration, parse_size, parse_threads
from walrus_bench._settings import resolve_settings


@pytest.mark.parametrize(("text", "expected"), [
    ("4", (1, 4)), ("2-8", (2, 8)), ("1", (1, 1)), ("128", (1, 128)), ("3-3", (3, 3)),
])
def test_threads_single_number_means_one_to_n(text: str, expected: tuple[int, int]) -> None:
    assert parse_threads(text) == expected


@pytest.mark.parametrize("text", ["0", "129", "5-2", "0-3", "a", "1-", "-4", "2-200", "1.5"])
def test_threads_out_of_range(text: str) -> None:
    with pytest.raises(ValueError):
        parse_threads(text)


@pytest.mark.parametrize(("text", "seconds"), [
    ("30", 30.0), ("30s", 30.0), ("2m", 120.0), ("1h", 3600.0), ("0.5", 0.5), ("1.5s", 1.5),
])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "0s", "5d", "m", "1 m", "-3", "abc"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_batch_size_limits() -> None:
    assert parse_batch_size("2000") == 2000
    for bad in ("0", "2001", "10000", "x", "-1"):
        with pytest.raises(ValueError):
            parse_batch_size(bad)


def test_sizes() -> None:
    assert parse_size("512MiB") == 512 << 20
    assert parse_size("2GB") == 2 << 30
    assert parse_size("100k") == 100 << 10
    assert parse_size("4096") == 4096
    with pytest.raises(ValueError):
        parse_size("lots")


def _args(**flags: object) -> argparse.Namespace:
    return argparse.Namespace(**flags)


def test_defaults_are_the_originals() -> None:
    writes = resolve_settings("writes", _args(), {})
    assert (writes.threads, writes.duration, writes.fsync) == (
        (10, 10), 120.0, FsyncSchedule.Milliseconds(1000))
    reads = resolve_settings("reads", _args(), {})
    assert (reads.threads, reads.duration, reads.read_duration) == ((5, 5), 60.0, 60.0)
    assert resolve_settings("scaling", _args(), {}).threads == (1, 10)
    assert resolve_settings("batch", _args(), {}).batch_size == 2000
    assert resolve_settings("batch-scaling", _args(), {}).batch_size == 256


def test_variables_apply_and_flags_win() -> None:
    env = {"WALRUS_FSYNC": "sync-each", "WALRUS_THREADS": "2-4", "WALRUS_DURATION": "3s",
           "WALRUS_BATCH_SIZE": "64", "WALRUS_BACKEND": "pwrite"}
    s = resolve_settings("batch-scaling", _args(), env)
    assert (s.fsync, s.threads, s.duration, s.batch_size, s.backend) == (
        FsyncSchedule.SyncEach, (2, 4), 3.0, 64, "pwrite")
    s = resolve_settings("batch-scaling", _args(fsync="none", threads="3", duration="1m",
                                                batch_size="8", backend="mmap"), env)
    assert (s.fsync, s.threads, s.duration, s.batch_size, s.backend) == (
        FsyncSchedule.NoFsync, (1, 3), 60.0, 8, "mmap")


def test_empty_variables_count_as_unset() -> None:
    assert resolve_settings("writes", _args(), {"WALRUS_THREADS": ""}).threads == (10, 10)


def test_read_and_write_durations() -> None:
    env = {"WALRUS_WRITE_DURATION": "10", "WALRUS_READ_DURATION": "20"}
    s = resolve_settings("reads", _args(), env)
    assert (s.duration, s.read_duration) == (10.0, 20.0)
    s = resolve_settings("reads", _args(), {"WALRUS_WRITE_DURATION": "7"})
    assert s.read_duration == 7.0  # the read phase defaults to the write phase's length
    s = resolve_settings("reads", _args(duration="2"), env)
    assert (s.duration, s.read_duration) == (2.0, 2.0)  # a flag beats every variable
    s = resolve_settings("reads", _args(read_duration="5"), env)
    assert (s.duration, s.read_duration) == (10.0, 5.0)


def test_fixed_count_benchmarks_refuse_a_range() -> None:
    with pytest.raises(InvalidArgumentError, match="WALRUS_THREADS"):
        resolve_settings("writes", _args(), {"WALRUS_THREADS": "1-4"})
    assert resolve_settings("writes", _args(), {"WALRUS_THREADS": "4"}).threads == (4, 4)


@pytest.mark.parametrize(("variable", "value"), [
    ("WALRUS_FSYNC", "sometimes"), ("WALRUS_THREADS", "0"), ("WALRUS_DURATION", "soon"),
    ("WALRUS_BATCH_SIZE", "5000"), ("WALRUS_BACKEND", "floppy"),
])
def test_invalid_variables_name_themselves(variable: str, value: str) -> None:
    with pytest.raises(InvalidArgumentError, match=f"{variable}='{value}'"):
        resolve_settings("batch", _args(), {variable: value})


def test_invalid_flag_names_the_flag() -> None:
    with pytest.raises(InvalidArgumentError, match="--fsync='often'"):
        resolve_settings("writes", _args(fsync="often"), {"WALRUS_FSYNC": "often"})
