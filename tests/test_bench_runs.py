"""Each ``walrus bench`` subcommand, run for real for about a second into a temporary folder."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from walrus._cli import main

# The original's file names and columns, spelled out here so a change in the code fails.
WRITES_COLUMNS = ["timestamp", "elapsed_seconds", "writes_per_second", "bytes_per_second",
                  "total_writes", "total_bytes", "dirty_pages_kb", "dirty_ratio_percent"]
READS_COLUMNS = ["timestamp", "elapsed_seconds", "phase", "write_mb_per_sec",
                 "read_mb_per_sec", "total_write_mb", "total_read_mb", "dirty_pages_kb",
                 "dirty_ratio_percent"]
BATCH_COLUMNS = ["timestamp", "elapsed_seconds", "batches_per_second", "entries_per_second",
                 "bytes_per_second", "total_batches", "total_entries", "total_bytes",
                 "dirty_pages_kb", "dirty_ratio_percent"]
SCALING_COLUMNS = ["threads", "throughput"]
BATCH_SCALING_COLUMNS = ["threads", "entries_per_second", "mb_per_second",
                         "batches_per_second"]
LATENCY_KEYS = {"samples", "p50", "p90", "p99", "p99.9", "max"}
RESOURCE_KEYS = {"cpu_user_seconds", "cpu_system_seconds", "peak_rss_bytes",
                 "disk_write_bytes", "write_call_bytes"}

RUNS = {
    "writes": ["--threads", "2", "--duration", "1"],
    "reads": ["--threads", "2", "--write-duration", "0.5", "--read-duration", "20",
              "--disk-budget", "150MiB"],
    "scaling": ["--threads", "1-2", "--duration", "0.5"],
    "batch": ["--threads", "2", "--duration", "1", "--batch-size", "100"],
    "batch-scaling": ["--threads", "2-3", "--duration", "0.5", "--batch-size", "50"],
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WALRUS_FSYNC", "WALRUS_THREADS", "WALRUS_DURATION", "WALRUS_WRITE_DURATION",
                 "WALRUS_READ_DURATION", "WALRUS_BATCH_SIZE", "WALRUS_BACKEND",
                 "WALRUS_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every benchmark once, each into its own folder."""
    root = tmp_path_factory.mktemp("bench")
    out = {}
    for name, flags in RUNS.items():
        folder = root / name
        code = main(["bench", name, "--out", str(folder), "--data-dir", str(root / "data"),
                     "--fsync", "no-fsync", *flags])
        assert code == 0, name
        out[name] = folder
    assert not (root / "data").exists(), "scratch data left behind"
    return out


def rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open() as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def summary(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / "summary.json").read_text())
    return data


def check_operation(op: dict[str, Any]) -> None:
    assert op["calls"] > 0 and op["entries"] >= op["calls"] and op["bytes"] > 0
    assert op["seconds"] > 0 and op["entries_per_second"] > 0 and op["mib_per_second"] > 0
    latency = op["latency_us"]
    assert set(latency) == LATENCY_KEYS and latency["samples"] > 0
    ordered = [latency[k] for k in ("p50", "p90", "p99", "p99.9", "max")]
    assert ordered == sorted(ordered) and ordered[0] > 0


def check_summary(folder: Path, benchmark: str, operations: list[str]) -> dict[str, Any]:
    data = summary(folder)
    assert data["benchmark"] == benchmark and data["errors"] == []
    assert [op["operation"] for op in data["operations"]] == operations
    for op in data["operations"]:
        check_operation(op)
    resources = data["resources"]
    assert set(resources) == RESOURCE_KEYS
    assert resources["cpu_user_seconds"] > 0 and resources["peak_rss_bytes"] > 1 << 20
    assert data["config"]["fsync"] == "no-fsync"
    assert data["config"]["backend"] in {"mmap", "pwrite", "io_uring"}
    for name in data["files"]:
        assert (folder / name).is_file()
    return data


def test_writes(results: dict[str, Path]) -> None:
    folder = results["writes"]
    columns, table = rows(folder / "benchmark_throughput.csv")
    assert columns == WRITES_COLUMNS
    assert table[0]["total_writes"] == "0" and float(table[0]["writes_per_second"]) == 0
    assert int(table[-1]["total_writes"]) > 1000
    totals = [int(r["total_writes"]) for r in table]
    assert totals == sorted(totals)
    data = check_summary(folder, "writes", ["append"])
    assert data["operations"][0]["calls"] == totals[-1]
    assert 500 <= data["operations"][0]["bytes"] / totals[-1] <= 1024  # 500-1024-byte entries


def test_reads_drain_what_was_written(results: dict[str, Path]) -> None:
    folder = results["reads"]
    columns, table = rows(folder / "read_benchmark_throughput.csv")
    assert columns == READS_COLUMNS
    assert {r["phase"] for r in table} == {"write", "read"}
    last = table[-1]
    assert last["phase"] == "read"
    assert float(last["total_read_mb"]) == pytest.approx(float(last["total_write_mb"]))
    data = check_summary(folder, "reads", ["batch_append", "batch_read"])
    written, read = data["operations"]
    assert read["entries"] == written["entries"] and written["entries"] % 2000 == 0
    assert written["bytes"] == written["entries"] * 100 * 1024


def test_scaling(results: dict[str, Path]) -> None:
    folder = results["scaling"]
    for name in ("scaling_results.csv", "scaling_results_live.csv"):
        columns, table = rows(folder / name)
        assert columns == SCALING_COLUMNS
        assert [r["threads"] for r in table] == ["1", "2"]
        assert all(float(r["throughput"]) > 0 for r in table)
    check_summary(folder, "scaling", ["append x1", "append x2"])


def test_batch(results: dict[str, Path]) -> None:
    folder = results["batch"]
    columns, table = rows(folder / "batch_benchmark_throughput.csv")
    assert columns == BATCH_COLUMNS
    last = table[-1]
    assert int(last["total_entries"]) == 100 * int(last["total_batches"]) > 0
    data = check_summary(folder, "batch", ["batch_append"])
    assert data["config"]["batch_size"] == 100


def test_batch_scaling(results: dict[str, Path]) -> None:
    folder = results["batch-scaling"]
    columns, table = rows(folder / "batch_scaling_results.csv")
    assert columns == BATCH_SCALING_COLUMNS
    assert [r["threads"] for r in table] == ["2", "3"]
    for r in table:
        entries, batches = float(r["entries_per_second"]), float(r["batches_per_second"])
        assert entries == pytest.approx(50 * batches, rel=1e-6) and float(r["mb_per_second"]) > 0
    check_summary(folder, "batch-scaling", ["batch_append x2", "batch_append x3"])


def test_summary_table_is_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["bench", "writes", "--out", str(tmp_path), "--data-dir", str(tmp_path / "d"),
          "--threads", "1", "--duration", "0.3"])
    out = capsys.readouterr().out
    assert "walrus bench writes: threads=1" in out
    assert "p99.9 us" in out and "append" in out and "peak RSS" in out


def test_disk_budget_stops_writers_early(tmp_path: Path) -> None:
    code = main(["bench", "batch", "--out", str(tmp_path), "--data-dir", str(tmp_path / "d"),
                 "--threads", "1", "--duration", "60", "--disk-budget", "2MiB"])
    assert code == 0
    data = summary(tmp_path)
    assert data["operations"][0]["seconds"] < 20  # the writers' own time, not the machine's
    assert data["operations"][0]["bytes"] >= 2 << 20
    assert data["notes"] == ["batch_append: stopped by disk budget"]


def test_variables_reach_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WALRUS_FSYNC", "sync-each")
    monkeypatch.setenv("WALRUS_BACKEND", "pwrite")
    monkeypatch.setenv("WALRUS_DURATION", "0.3")
    monkeypatch.setenv("WALRUS_THREADS", "1")
    assert main(["bench", "writes", "--out", str(tmp_path), "--data-dir",
                 str(tmp_path / "d")]) == 0
    config = summary(tmp_path)["config"]
    assert (config["fsync"], config["backend"], config["threads"], config["duration_s"]) == (
        "sync-each", "pwrite", 1, 0.3)


def test_invalid_variable_fails_before_running(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("WALRUS_DURATION", "forever")
    assert main(["bench", "writes", "--out", str(tmp_path / "o")]) == 2  # one line, exit 2
    assert "WALRUS_DURATION" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
