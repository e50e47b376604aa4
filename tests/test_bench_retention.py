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
