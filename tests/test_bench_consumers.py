"""``walrus bench consumers``, run small and for real (no timing is asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from walrus._cli import main


def test_consumers_bench_compares_each_workload(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "consumers", "--entries", "2000", "--rounds", "1",
                 "--dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line[:40].strip() for line in lines[1:]] == [
        "read_next, StrictlyAtOnce", "read_next, AtLeastOnce(1000)",
        "batch reads of 64 KiB, StrictlyAtOnce", "64 consumers against one (read_next)"]
    for line in lines[1:]:
        assert float(line.split()[-1]) > 0
    assert list(tmp_path.iterdir()) == []  # scratch data removed
