"""``Walrus.from_config``: a ``[walrus]`` table from a mapping or a TOML file, spelled as the
command line and the ``WALRUS_*`` variables spell it; a bad table creates nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from walrus import FsyncSchedule, InvalidArgumentError, ReadConsistency, Walrus
from walrus._cli import build_parser
from walrus._cli_options import walrus_keywords

from .cli_support import walrus_cmd


def test_every_key_from_a_mapping(tmp_path: Path) -> None:
    table = {"data_dir": str(tmp_path / "base"), "key": "orders/eu", "backend": "pwrite",
             "fsync": "250ms", "consistency": "at-least-once:50", "segment_size": 1 << 16}
    with Walrus.from_config(table) as wal:
        wal.append_for_topic("t", b"x")
        assert wal.data_dir == tmp_path / "base" / "orders_eu"
        assert wal.backend == "pwrite"
        assert wal.fsync_schedule == FsyncSchedule.Milliseconds(250)
        assert wal.consistency == ReadConsistency.AtLeastOnce(persist_every=50)
        assert not wal.read_only
    with Walrus.from_config({"walrus": {**table, "read_only": True}}) as observer:
        assert observer.read_only and observer.read_next("t", checkpoint=False) is not None


@pytest.mark.parametrize("spelling, schedule", [
    ("sync-each", FsyncSchedule.SyncEach), ("no-fsync", FsyncSchedule.NoFsync),
    ("5ms", FsyncSchedule.Milliseconds(5))])
def test_fsync_spellings(tmp_path: Path, spelling: str, schedule: object) -> None:
    with Walrus.from_config({"data_dir": str(tmp_path), "fsync": spelling}) as wal:
        assert wal.fsync_schedule == schedule


def test_a_file_with_other_tables_and_a_relative_directory(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    config = folder / "service.toml"
    config.write_text('[server]\nport = 8080\n\n[walrus]\ndata_dir = "var/wal"\n'
                      'backend = ["pwrite", "mmap"]\nfsync = "sync-each"\n'
                      'consistency = "strictly-at-once"\n')
    monkeypatch.chdir(tmp_path)  # the directory is relative to the file, not to the caller
    with Walrus.from_config(str(config)) as wal:
        assert wal.data_dir == folder / "var" / "wal"
        assert (wal.backend, wal.fsync_schedule) == ("pwrite", FsyncSchedule.SyncEach)
    with Walrus.from_config(config) as again:  # a Path works too
        assert again.consistency == ReadConsistency.StrictlyAtOnce


def test_a_fallback_list_and_auto(tmp_path: Path) -> None:
    with Walrus.from_config({"data_dir": str(tmp_path / "a"),
                             "backend": ["pwrite", "mmap"]}) as wal:
        assert wal.backend == "pwrite"
    with Walrus.from_config({"data_dir": str(tmp_path / "b"), "backend": "auto"}) as wal:
        assert wal.backend


@pytest.mark.parametrize("table, words", [
    ({"fsynk": "sync-each"}, ["unknown key 'fsynk' in [walrus]", "known: backend, "]),
    ({"fsync": "often"}, ["walrus.fsync: expected sync-each", "accepted: \"sync-each\""]),
    ({"fsync": 100}, ["walrus.fsync: expected a string, got int 100"]),
    ({"consistency": "exactly-once"}, ["walrus.consistency: expected strictly-at-once",
                                       "at-least-once:<N>"]),
    ({"backend": "no-such-backend"}, ["walrus.backend: unknown backend no-such-backend",
                                      "a fallback list"]),
    ({"backend": []}, ["walrus.backend: an empty fallback list"]),
    ({"segment_size": "64MiB"}, ["walrus.segment_size: expected a whole number of bytes"]),
    ({"segment_size": True}, ["walrus.segment_size: expected a whole number of bytes"]),
    ({"segment_size": 100}, ["segment_size must be at least 4096 bytes"]),
    ({"read_only": "yes"}, ["walrus.read_only: expected true or false"]),
    ({"key": 7}, ["walrus.key: expected a string"]),
])
def test_a_bad_table_names_the_key_and_creates_nothing(tmp_path: Path, table: dict[str, Any],
                                                       words: list[str]) -> None:
    where = tmp_path / "never"
    with pytest.raises(InvalidArgumentError) as caught:
        Walrus.from_config({"data_dir": str(where), **table})
    for word in words:
        assert word in str(caught.value)
    assert not where.exists()


def test_a_bad_file_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(InvalidArgumentError, match="cannot read the configuration file"):
        Walrus.from_config(missing)
    broken = tmp_path / "broken.toml"
    broken.write_text("[walrus\n")
    with pytest.raises(InvalidArgumentError, match=r"broken\.toml is not valid TOML"):
        Walrus.from_config(broken)
    other = tmp_path / "other.toml"
    other.write_text("[server]\nport = 1\n")
    with pytest.raises(InvalidArgumentError, match=r"other.toml has no \[walrus\] table"):
        Walrus.from_config(other)
    bad = tmp_path / "bad.toml"
    bad.write_text('[walrus]\nfsync = "weekly"\n')
    with pytest.raises(InvalidArgumentError, match=r"walrus.fsync in .*bad.toml: expected"):
        Walrus.from_config(bad)
    with pytest.raises(InvalidArgumentError, match="a mapping or the path of a TOML file"):
        Walrus.from_config(42)  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml", "broken.toml",
                                                          "other.toml"]


def test_a_file_that_is_not_utf8_or_a_path_with_nul_is_named(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(b'[walrus]\ndata_dir = "caf\xe9"\n')
    with pytest.raises(InvalidArgumentError, match=r"latin1\.toml is not valid TOML: byte 24 "
                                                   r"is not UTF-8"):
        Walrus.from_config(latin1)
    with pytest.raises(InvalidArgumentError, match="its name has a NUL character"):
        Walrus.from_config(str(tmp_path / "a\0b.toml"))
    assert list(tmp_path.iterdir()) == [latin1]


def test_a_tilde_is_the_home_folder_in_a_file_and_a_mapping(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same table means the same directory, whether it comes from a file or a mapping."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "svc.toml"
    config.write_text('[walrus]\ndata_dir = "~/wal"\n')
    for source in (config, {"data_dir": "~/wal"}):
        with Walrus.from_config(source) as wal:
            assert wal.data_dir == tmp_path / "home" / "wal"
    assert not (tmp_path / "~").exists()


def test_an_empty_data_dir_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty data_dir would put the log in the file's folder (or the current directory):
    it is refused, naming the key, and nothing is created."""
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "svc.toml"
    config.write_text('[walrus]\ndata_dir = ""\n')
    for source in (config, {"data_dir": ""}):
        with pytest.raises(InvalidArgumentError, match=r"walrus\.data_dir.*an empty path"):
            Walrus.from_config(source)
    assert list(tmp_path.iterdir()) == [config]
    status, _, err = cli("append", "--config", config, "t", "x")
    assert status == 2 and "an empty path" in err
    status, _, err = cli("append", "", "t", "x")
    assert status == 2 and "argument DIR: an empty path" in err
    assert list(tmp_path.iterdir()) == [config]


# --- the command line's --config FILE ------------------------------------------------------------

def cli(*args: str | Path) -> tuple[int, str, str]:
    """The real ``walrus ARGS``: exit status, standard output, standard error."""
    result = walrus_cmd(*args)
    return result.returncode, result.stdout.decode(), result.stderr.decode()


def test_every_command_takes_config_in_place_of_dir(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "svc.toml"
    config.write_text('[walrus]\ndata_dir = "wal"\nfsync = "sync-each"\nbackend = "pwrite"\n')
    assert cli("append", "--config", config, "events", "one")[0] == 0
    assert cli("append", tmp_path / "wal", "events", "two")[0] == 0  # the same directory
    status, out, _ = cli("topics", f"--config={config}", "--format", "json")
    assert status == 0 and '"entries": 2' in out
    assert cli("read", "--config", config, "events", "--peek", "-n", "5")[1] == "one\ntwo\n"
    assert cli("read", "events", "--config", config)[1] == "one\n"  # consumes
    status, out, _ = cli("verify", "--config", config)
    assert status == 0 and out.rstrip().endswith("OK")


def test_options_given_win_over_the_file(tmp_path: Path) -> None:
    config = tmp_path / "svc.toml"
    config.write_text('[walrus]\ndata_dir = "wal"\nfsync = "sync-each"\nbackend = "mmap"\n'
                      'key = "k"\nconsistency = "at-least-once:5"\nsegment_size = 8192\n')
    args = build_parser().parse_args(["append", "--config", str(config), "--fsync", "no-fsync",
                                      "--backend", "pwrite", "t", "x"])
    assert walrus_keywords(args) == {
        "data_dir": tmp_path / "wal", "key": "k", "backend": "pwrite",
        "fsync_schedule": FsyncSchedule.NoFsync,
        "consistency": ReadConsistency.AtLeastOnce(persist_every=5), "segment_size": 8192}
    plain = build_parser().parse_args(["append", "d", "t", "x"])
    assert walrus_keywords(plain) == {"data_dir": Path("d")}  # the constructor's defaults


def test_a_config_without_a_directory_or_with_a_bad_value_is_refused(tmp_path: Path) -> None:
    (tmp_path / "nodir.toml").write_text('[walrus]\nfsync = "sync-each"\n')
    status, _, err = cli("topics", "--config", tmp_path / "nodir.toml")
    assert status == 2 and "names no data_dir in its [walrus] table" in err
    (tmp_path / "bad.toml").write_text('[walrus]\ndata_dir = "wal"\nfsync = "hourly"\n')
    status, _, err = cli("append", "--config", tmp_path / "bad.toml", "t", "x")
    assert status == 2 and "walrus.fsync in" in err
    assert not (tmp_path / "wal").exists()
