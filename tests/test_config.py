"""Constructors, environment variables and the key sanitising rule."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import walrus
from walrus import FsyncSchedule, ReadConsistency, StorageError, Walrus
from walrus._config import fnv1a64, resolve_root, sanitize_key

from .conftest import run_child


@pytest.mark.parametrize("key, expected", [
    ("prod/payments::v1", "prod_payments__v1"),
    ("simple-key_1.2", "simple-key_1.2"),
    ("日本", "__"),
    ("with space", "with_space"),
    ("...", "..."),
])
def test_sanitize_keeps_safe_characters(key: str, expected: str) -> None:
    if expected.strip("_"):
        assert sanitize_key(key) == expected
    else:
        assert sanitize_key(key) == "ns_" + format(fnv1a64(key.encode()), "x")


@pytest.mark.parametrize("key", ["", ".", "..", "/", "///", "::", "_", "__"])
def test_sanitize_hashes_keys_that_would_vanish_or_escape(key: str) -> None:
    name = sanitize_key(key)
    assert name == "ns_" + format(fnv1a64(key.encode()), "x")
    assert name not in (".", "..") and "/" not in name


def test_fnv1a64_reference_values() -> None:
    assert fnv1a64(b"") == 0xCBF29CE484222325
    assert fnv1a64(b"a") == 0xAF63DC4C8601EC8C


@given(st.text())
def test_a_key_never_escapes_its_base(key: str) -> None:
    base = Path("/base")
    root = resolve_root(base, key)
    assert root.parent == base and root.name not in ("", ".", "..")
    assert "/" not in root.name and "\0" not in root.name


def test_default_root_and_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert resolve_root(None, None) == Path("wal_files")
    monkeypatch.setenv("WALRUS_DATA_DIR", str(tmp_path / "base"))
    assert resolve_root(None, None) == tmp_path / "base"
    monkeypatch.setenv("WALRUS_INSTANCE_KEY", "svc/a")
    assert resolve_root(None, None) == tmp_path / "base" / "svc_a"
    assert resolve_root(None, "other") == tmp_path / "base" / "other"
    assert resolve_root(tmp_path / "explicit", None) == tmp_path / "explicit"
    assert resolve_root(tmp_path / "explicit", "k") == tmp_path / "explicit" / "k"
    monkeypatch.setenv("WALRUS_DATA_DIR", "")
    monkeypatch.setenv("WALRUS_INSTANCE_KEY", "")
    assert resolve_root(None, None) == Path("wal_files")  # empty counts as unset


def test_every_constructor(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, backend: str) -> None:
    monkeypatch.setenv("WALRUS_DATA_DIR", str(tmp_path / "base"))
    monkeypatch.setenv("WALRUS_BACKEND", backend)
    alo = ReadConsistency.AtLeastOnce(persist_every=7)
    cases = [
        (Walrus.new, (), tmp_path / "base", ReadConsistency.StrictlyAtOnce,
         FsyncSchedule.Milliseconds(1000)),
        (Walrus.with_consistency, (alo,), tmp_path / "base", alo, FsyncSchedule.Milliseconds(1000)),
        (Walrus.with_consistency_and_schedule, (alo, FsyncSchedule.SyncEach), tmp_path / "base",
         alo, FsyncSchedule.SyncEach),
        (Walrus.new_for_key, ("k/1",), tmp_path / "base" / "k_1", ReadConsistency.StrictlyAtOnce,
         FsyncSchedule.Milliseconds(1000)),
        (Walrus.with_consistency_for_key, ("k", alo), tmp_path / "base" / "k", alo,
         FsyncSchedule.Milliseconds(1000)),
        (Walrus.with_consistency_and_schedule_for_key, ("k", alo, FsyncSchedule.NoFsync),
         tmp_path / "base" / "k", alo, FsyncSchedule.NoFsync),
    ]
    for make, args, root, consistency, schedule in cases:
        with make(*args) as wal:
            assert (wal.data_dir, wal.consistency, wal.fsync_schedule) == (
                root, consistency, schedule)
            assert wal.backend == backend
            wal.append_for_topic("t", b"x")


def test_keyed_instances_are_isolated_and_recover_independently(tmp_path: Path,
                                                                backend: str) -> None:
    for key in ("a", "b"):
        with Walrus(data_dir=tmp_path, key=key, backend=backend) as wal:
            wal.append_for_topic("shared-name", key.encode() * 3)
            wal.append_for_topic("shared-name", key.encode())
            wal.read_next("shared-name")
    with Walrus(data_dir=tmp_path, backend=backend) as root:
        assert root.topics() == []  # key folders are not part of the root instance
    for key in ("a", "b"):
        with Walrus(data_dir=tmp_path, key=key, backend=backend) as wal:
            assert wal.read_next("shared-name").data == key.encode()  # type: ignore[union-attr]
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["a", "b"]


@pytest.mark.parametrize("kwargs", [
    {"consistency": "strict"}, {"fsync_schedule": 5}, {"read_only": 1}, {"segment_size": 10},
    {"segment_size": "big"}, {"backend": 3}, {"data_dir": 3.5}, {"key": 7},
])
def test_invalid_arguments_are_named(tmp_path: Path, kwargs: dict[str, object]) -> None:
    kwargs.setdefault("data_dir", tmp_path / "w")
    with pytest.raises(walrus.InvalidArgumentError):
        Walrus(**kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "w").exists()


def test_an_empty_data_dir_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """"" is a slip (an unset setting), not the current directory: the log is not put there."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(walrus.InvalidArgumentError, match="data_dir must not be empty"):
        Walrus(data_dir="")
    assert list(tmp_path.iterdir()) == []


def test_data_dir_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(StorageError, match="not a directory"):
        Walrus(data_dir=tmp_path / "file")
    assert (tmp_path / "file").read_text() == "not a directory"


def test_data_dir_that_cannot_be_created() -> None:
    with pytest.raises(StorageError, match="cannot create data directory"):
        Walrus(data_dir="/proc/walrus-cannot-exist")


def test_invalid_backend_env_names_the_variable(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    monkeypatch.setenv("WALRUS_BACKEND", "no-such-backend")
    with pytest.raises(walrus.BackendUnavailableError, match="WALRUS_BACKEND"):
        Walrus(data_dir=tmp_path / "w")
    monkeypatch.setenv("WALRUS_BACKEND", "mmap,,pwrite")
    with pytest.raises(walrus.InvalidArgumentError, match="WALRUS_BACKEND"):
        Walrus(data_dir=tmp_path / "w")


def test_walrus_quiet_raises_the_logger_level() -> None:
    code = "import logging, walrus; print(logging.getLogger('walrus').level)"
    quiet = run_child(code).stdout.strip()
    env = dict(os.environ)
    env.pop("WALRUS_QUIET", None)
    import subprocess
    import sys

    from .conftest import ROOT
    loud = subprocess.run([sys.executable, "-c", code], env=dict(env, PYTHONPATH=str(ROOT)),
                          capture_output=True, text=True, check=True).stdout.strip()
    assert int(quiet) == logging.WARNING and int(loud) == logging.NOTSET


def test_closed_instance_raises_everywhere(tmp_path: Path, backend: str) -> None:
    wal = Walrus(data_dir=tmp_path / "w", backend=backend)
    wal.append_for_topic("t", b"x")
    wal.close()
    wal.close()  # idempotent
    calls = [
        lambda: wal.append_for_topic("t", b"x"), lambda: wal.append_for_topic("new", b"x"),
        lambda: wal.batch_append_for_topic("t", [b"x"]), lambda: wal.read_next("t"),
        lambda: wal.read_next("new"), lambda: wal.batch_read_for_topic("t", 5),
        lambda: wal.flush(), lambda: wal.topics(), lambda: wal.get_topic_entry_count("t"),
        lambda: wal.get_topic_entry_counts(), lambda: wal.get_topic_size("t"),
        lambda: wal.mark_topic_clean("t"), lambda: wal.mark_topic_dirty("t"),
        lambda: wal.topic_is_clean("t"),
    ]
    for call in calls:
        with pytest.raises(walrus.WalrusClosedError):
            call()
    assert "closed" in repr(wal)
