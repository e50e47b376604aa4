"""``walrus bench retention``, run small and for real (no timing is asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from walrus._cli import main


def test_retention_bench_compares_and_reports_the_bound(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "retention", "--duration", "1", "--rounds", "1", "--reads", "2000",
                 "--max-bytes", "1MiB", "--segment-size", "256KiB", "--dir", str(tmp_path)])
    lines = capsys.readouterr().out.splitlines()
    assert [line[:34].strip() for line in lines[1:3]] == [
        "appends (entries/s)", "read_next (entries/s)"]
    for line in lines[1:3]:
        assert float(line.split()[-1]) > 0
    assert lines[3].startswith("largest data directory with --max-bytes 1MiB: ")
    assert code == (0 if "held" in lines[3] else 1)
    assert list(tmp_path.iterdir()) == []  # scratch data removed


def test_retention_bench_bound_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["bench", "retention", "--bound-only", "--duration", "1", "--max-bytes", "1MiB",
                 "--segment-size", "256KiB", "--dir", str(tmp_path)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("appends with --max-bytes 1MiB for 1 s: ")
    assert lines[1].startswith("largest data directory with --max-bytes 1MiB: ")
    assert "bound: " in lines[1] and " 8 segment files, " in lines[1]
    assert code == (0 if "held" in lines[1] else 1)
    assert list(tmp_path.iterdir()) == []
