"""``walrus bench plot``: a readable PNG for every benchmark's CSV."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from walrus._cli import main

pytest.importorskip("matplotlib")
pytest.importorskip("pandas")

QUICK = {
    "writes": ["--threads", "1", "--duration", "0.6"],
    "reads": ["--threads", "1", "--duration", "0.3", "--disk-budget", "20MiB"],
    "scaling": ["--threads", "1-2", "--duration", "0.3"],
    "batch": ["--threads", "1", "--duration", "0.6", "--batch-size", "50"],
    "batch-scaling": ["--threads", "1-2", "--duration", "0.3", "--batch-size", "50"],
    "compare": ["--seconds", "0.05", "--repeat", "1", "--systems",
                "walrus-mmap,python-file-crc32"],
}
PNG = {"writes": "benchmark_throughput.png", "reads": "read_benchmark_throughput.png",
       "scaling": "scaling_results.png", "batch": "batch_benchmark_throughput.png",
       "batch-scaling": "batch_scaling_results.png", "compare": "compare_results.png"}


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


@pytest.mark.parametrize("kind", list(QUICK))
def test_plot(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["bench", kind, "--out", str(tmp_path), "--data-dir", str(tmp_path / "d"),
                 *QUICK[kind]]) == 0
    capsys.readouterr()
    assert main(["bench", "plot", kind, "--out", str(tmp_path), "--show"]) == 0
    printed = capsys.readouterr().out.splitlines()
    path = tmp_path / PNG[kind]
    assert printed[0] == str(path) and "no display" in printed[1]
    width, height = png_size(path)
    assert width >= 800 and height >= 500


def test_plot_without_results_says_what_to_run(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "plot", "writes", "--out", str(tmp_path)]) == 2  # one line, exit 2
    assert "run the benchmark first" in capsys.readouterr().err


def test_show_opens_with_a_display(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a display, ``--show`` hands the PNG to the desktop's opener (a stand-in here)."""
    from walrus_bench import _plot_cli

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "opened"
    fake = bin_dir / "xdg-open"
    fake.write_text(f"#!/bin/sh\necho \"$1\" > {log}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("DISPLAY", ":0")
    assert _plot_cli.opener() == ["xdg-open"]
    assert shutil.which("xdg-open") == str(fake)
    assert main(["bench", "writes", "--out", str(tmp_path), "--data-dir", str(tmp_path / "d"),
                 "--threads", "1", "--duration", "0.3"]) == 0
    assert main(["bench", "plot", "writes", "--out", str(tmp_path), "--show"]) == 0
    import time

    deadline = time.monotonic() + 60  # the opener is a detached process: a busy machine is slow
    while not (log.exists() and log.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert log.read_text().strip() == str(tmp_path / "benchmark_throughput.png")
