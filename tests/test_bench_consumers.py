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
        assert float(line.split()[-1]) > 0, lines
    assert list(tmp_path.iterdir()) == []  # scratch data removed


def test_a_tiny_ratio_is_not_printed_as_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A drain stalled on a loaded machine gave a ratio of about 0.004, printed as 0.00."""
    import walrus_bench._consumers as consumers

    monkeypatch.setattr(consumers, "measure", lambda base, entries, rounds: [
        ("read_next, StrictlyAtOnce", 300_000.0, 1_200.0)])
    assert main(["bench", "consumers", "--entries", "10", "--rounds", "1",
                 "--dir", str(tmp_path)]) == 0
    line = capsys.readouterr().out.splitlines()[1]
    assert float(line.split()[-1]) == pytest.approx(0.004)
