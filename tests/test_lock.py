"""One writer per directory: flock, with the holder's pid in the error."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from walrus import Walrus, WalrusLockedError

from .conftest import ROOT


def test_second_open_in_this_process_is_refused(tmp_path: Path, backend: str) -> None:
    with Walrus(data_dir=tmp_path, backend=backend) as wal:
        wal.append_for_topic("t", b"x")
        with pytest.raises(WalrusLockedError, match=str(os.getpid())) as info:
            Walrus(data_dir=tmp_path, backend=backend)
        assert info.value.pid == os.getpid()
        wal.append_for_topic("t", b"still works")
    with Walrus(data_dir=tmp_path, backend=backend) as wal:
        assert wal.get_topic_entry_count("t") == 2


def test_open_in_another_live_process_is_refused_until_it_dies(tmp_path: Path) -> None:
    code = ("import sys, time; from walrus import Walrus; w = Walrus(data_dir=sys.argv[1]);"
            "print('ready', flush=True); time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE,
                             text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        with pytest.raises(WalrusLockedError, match=f"process {child.pid}") as info:
            Walrus(data_dir=tmp_path)
        assert info.value.pid == child.pid
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    deadline = time.monotonic() + 10
    while True:
        try:
            Walrus(data_dir=tmp_path).close()
            break
        except WalrusLockedError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
