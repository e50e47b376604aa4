"""``walrus bench compare`` run for real on a few systems, and every system once."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from walrus import available_backends
from walrus._cli import main
from walrus_bench._compare import all_systems

WORKLOADS = ["append", "append_sync1000", "consume", "batch1000", "sync_each"]
COLUMNS = ["system", "kind", "workload", "entries_per_second", "ratio_to_baseline", "baseline",
           "runs", "entry_bytes", "seconds_per_run", "error"]


def run_compare(out: Path, *flags: str) -> list[dict[str, str]]:
    assert main(["bench", "compare", "--out", str(out), "--data-dir", str(out / "data"),
                 *flags]) == 0
    with (out / "compare_results.csv").open() as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS
        return list(reader)


def test_compare_rates_and_ratios(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    systems = "walrus-mmap,python-file-crc32,sqlite3-wal"
    table = run_compare(tmp_path, "--seconds", "0.15", "--repeat", "2", "--systems", systems)
    assert [(r["system"], r["workload"]) for r in table] == [
        (s, w) for s in systems.split(",") for w in WORKLOADS]
    for r in table:
        runs = [float(x) for x in r["runs"].split(";")]
        assert len(runs) == 2 and all(x > 0 for x in runs) and r["error"] == ""
        assert float(r["entries_per_second"]) == pytest.approx(sum(runs) / 2, rel=1e-3)
        baseline = next(b for b in table if b["system"] == "python-file-crc32"
                        and b["workload"] == r["workload"])
        assert float(r["ratio_to_baseline"]) == pytest.approx(
            float(r["entries_per_second"]) / float(baseline["entries_per_second"]), rel=1e-3)
    out = capsys.readouterr().out
    assert "ratio to python-file-crc32 (same run):" in out and "1.00x" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert len(summary["results"]) == len(table) and summary["errors"] == []
    assert summary["resources"]["cpu_user_seconds"] > 0


@pytest.mark.slow
def test_every_system_runs_every_workload(tmp_path: Path) -> None:
    table = run_compare(tmp_path, "--seconds", "0.1", "--repeat", "1")
    names = {r["system"] for r in table}
    expected = {f"walrus-{b.name}" for b in available_backends() if b.available}
    assert expected | {"python-file", "python-file-crc32", "python-pwrite", "sqlite3-wal"} <= names
    assert names == {s.name for s in all_systems()}
    assert [r for r in table if r["error"]] == []
    assert all(float(r["entries_per_second"]) > 0 for r in table)


def test_unknown_names_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the walrus command line reports these on one line of stderr, with exit status 2
    assert main(["bench", "compare", "--out", str(tmp_path), "--systems", "oracle"]) == 2
    assert "--systems" in capsys.readouterr().err
    assert main(["bench", "compare", "--out", str(tmp_path), "--workloads", "delete"]) == 2
    assert "--workloads" in capsys.readouterr().err
    assert main(["bench", "compare", "--out", str(tmp_path), "--systems", "walrus-mmap",
                 "--baseline", "python-file-crc32"]) == 2
    assert "--baseline" in capsys.readouterr().err
