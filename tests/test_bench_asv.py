"""A quick offline run of the asv suite, so it cannot rot.

One backend only, smoke sizes (``WALRUS_ASV_SMOKE=1``: a few rounds, fewer pairs and
topics; every benchmark's code still runs), and of the instruction counts (valgrind, seconds
each) only the append's: the rest of the counted series runs the same probe.

asv's fork server runs the benchmarks here: it imports the suite once and forks a process for
each benchmark, where asv's default starts a new interpreter for each (about 1 s apiece on 2
shared cores: 54 s for the run, against 21 s forked). The benchmarks' own code is the same
either way; the dashboard's runs keep asv's default.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ASV_DIR = Path(__file__).resolve().parent.parent / "asv_bench"


@pytest.mark.slow
def test_asv_quick_run_passes_offline(tmp_path: Path) -> None:
    asv = shutil.which("asv", path=str(Path(sys.executable).parent)) or shutil.which("asv")
    if asv is None:
        pytest.skip("asv is not installed (pip install 'walrus-wal[dev]')")
    # asv keeps its machine file in $HOME
    env = {**os.environ, "HOME": str(tmp_path), "WALRUS_ASV_BACKENDS": "mmap",
           "WALRUS_ASV_SMOKE": "1"}
    subprocess.run([asv, "machine", "--yes"], cwd=ASV_DIR, env=env, check=True,
                   capture_output=True)
    done = subprocess.run([asv, "run", "--quick", "--python=same", "--show-stderr",
                           "--launch-method", "forkserver",
                           "--bench", r"^(?!cost\.Instructions)",
                           "--bench", r"^cost\.Instructions\.track_append"],
                          cwd=ASV_DIR, env=env, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    for name in ("track_append", "track_batch_append", "track_read_next", "track_batch_read",
                 "track_threaded_append",
                 "peakmem_append", "peakmem_batch_append", "peakmem_batch_read",
                 "cost.Instructions.track_append", "cost.Syscalls.track_durable_append",
                 "cost.Syscalls.track_durable_read_next", "durable.SyncEach.time_append"):
        assert f"{name}" in output and "failed" not in output, output
    assert "ok" in output
