"""``walrus bench compare`` run for real on a few systems, and every system once."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest

from walrus import available_backends
from walrus._cli import main
from walrus_bench import _compare_cli
from walrus_bench._compare import all_systems
from walrus_bench._rust_peer import RustPeerUnavailable, build

WORKLOADS = ["append", "append_sync1000", "consume", "batch1000", "sync_each", "batch_read"]
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
    summary = json.loads((tmp_path / "summary.json").read_text())
    results = summary["results"]  # the same figures, unrounded
    assert [(r["system"], r["workload"]) for r in results] == [
        (r["system"], r["workload"]) for r in table]
    for row, exact in zip(table, results, strict=True):
        runs = exact["runs"]
        assert len(runs) == 2 and all(x > 0 for x in runs) and exact["error"] is None
        rate = exact["entries_per_second"]
        assert rate == statistics.median(runs)
        baseline = next(b for b in results if b["system"] == "python-file-crc32"
                        and b["workload"] == exact["workload"])
        assert exact["ratio_to_baseline"] == pytest.approx(
            rate / baseline["entries_per_second"], rel=1e-12)
        # The CSV rounds them (a small ratio to 4 decimals is far off 1e-3 relative): compare
        # it with the exact figures rounded the same way, not with ratios of rounded rates.
        assert row["error"] == ""
        assert row["runs"] == ";".join(f"{x:.1f}" for x in runs)
        assert float(row["entries_per_second"]) == round(rate, 1)
        assert float(row["ratio_to_baseline"]) == round(exact["ratio_to_baseline"], 4)
    out = capsys.readouterr().out
    assert "ratio to python-file-crc32 (same run):" in out and "1.00x" in out
    assert summary["errors"] == []
    assert summary["resources"]["cpu_user_seconds"] > 0


@pytest.mark.slow
def test_every_system_runs_every_workload(tmp_path: Path) -> None:
    table = run_compare(tmp_path, "--seconds", "0.1", "--repeat", "1", "--no-rust")
    names = {r["system"] for r in table}
    expected = {f"walrus-{b.name}" for b in available_backends() if b.available}
    assert expected | {"python-file", "python-file-crc32", "python-pwrite", "sqlite3-wal"} <= names
    assert names == {s.name for s in all_systems()}
    assert [r for r in table if r["error"]] == []
    assert all(float(r["entries_per_second"]) > 0 for r in table)


def test_unknown_names_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # the walrus command line reports these on one line of stderr, with exit status 2; before
    # building the Rust original (seconds of cargo), which a refused command never needs
    def build() -> None:
        pytest.fail("built the Rust original for a command it refuses")

    monkeypatch.setattr(_compare_cli, "build", build)
    assert main(["bench", "compare", "--out", str(tmp_path), "--systems", "oracle"]) == 2
    assert "--systems" in capsys.readouterr().err
    assert main(["bench", "compare", "--out", str(tmp_path), "--workloads", "delete"]) == 2
    assert "--workloads" in capsys.readouterr().err
    assert main(["bench", "compare", "--out", str(tmp_path), "--systems", "walrus-mmap",
                 "--baseline", "python-file-crc32"]) == 2
    assert "--baseline" in capsys.readouterr().err


def test_the_rust_original_runs_in_the_same_run(tmp_path: Path) -> None:
    """Built from its pinned crate with cargo (cached between runs); skipped, with the reason,
    where cargo is missing or cannot fetch the crate."""
    try:
        build()
    except RustPeerUnavailable as exc:
        pytest.skip(str(exc))
    table = run_compare(tmp_path, "--seconds", "0.1", "--repeat", "1", "--systems",
                        "walrus-mmap,rust-original-mmap,rust-original-fd", "--workloads",
                        "append,append_sync1000,batch_read", "--baseline", "walrus-mmap")
    rates = {(r["system"], r["workload"]): r for r in table}
    for system in ("rust-original-mmap", "rust-original-fd"):
        for workload in ("append", "batch_read"):
            assert float(rates[system, workload]["entries_per_second"]) > 0
        assert rates[system, "append_sync1000"]["error"] == "unsupported"


def test_without_cargo_the_rust_original_is_refused_with_the_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Asked for by name: refused, saying why (without --systems it is left out with a note)."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("CARGO_HOME", str(tmp_path / "no-cargo"))
    assert main(["bench", "compare", "--out", str(tmp_path), "--systems",
                 "walrus-mmap,rust-original-mmap", "--baseline", "walrus-mmap"]) == 2
    assert "the Rust original (walrus-rust 0.2.0) is left out: cargo is not installed" in \
        capsys.readouterr().err
