"""``walrus bench wakeup`` runs end to end (a short run; its figures are not judged here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from walrus._cli import main
from walrus_bench._wakeup import _percentiles


def test_wakeup_prints_every_measurement(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "wakeup", "--count", "20", "--duration", "0.2",
                 "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for row in ("threads: append -> waiting read_next", "processes: writer -> waiting observer",
                "asyncio loop lag, 100 appending + 100 waiting", "SyncEach appends/s: asyncio"):
        assert row in out
    assert list(tmp_path.iterdir()) == []  # scratch data removed


def test_wakeup_refuses_a_count_too_small(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="--count"):
        main(["bench", "wakeup", "--count", "1", "--dir", str(tmp_path)])


def test_a_lone_sample_is_its_own_median_and_99th_percentile() -> None:
    """A run so loaded that the asyncio probe woke once still prints its row (it raised)."""
    assert _percentiles([7.5]) == (7.5, 7.5)
    assert _percentiles([float(i) for i in range(1, 101)]) == (50.5, 99.01)
