"""The zygote the kill and command-line tests fork their children from (tests/_forks.py)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from ._forks import Zygote, run_interpreter, zygote_for
from .conftest import ROOT, child_environment

SHOW = "import os, sys; print(os.getpid(), os.getppid(), sys.argv[1:], sys.stdin.read(), " \
       "os.getcwd(), os.environ.get('WALRUS_EXTRA'), __name__); sys.exit(int(sys.argv[1]))"


def test_a_child_is_a_process_of_its_own_with_its_arguments_input_and_folder(
        tmp_path: Path) -> None:
    done = run_interpreter(["-c", SHOW, "3", "x"], child_environment(), 60, ROOT, b"in")
    pid, parent, *rest = done.stdout.decode().split(maxsplit=2)
    assert done.returncode == 3, done.stderr
    assert int(pid) != os.getpid() and int(parent) != os.getpid()  # the zygote's child
    assert rest == [f"['3', 'x'] in {tmp_path} None __main__\n"]


def test_a_child_sees_the_environment_it_is_given() -> None:
    """A zygote forks only for the environment it was started with: walrus reads some
    variables at import. Another environment gets a zygote of its own, or once there are
    enough, a fresh interpreter."""
    env = dict(child_environment(), WALRUS_EXTRA="seen")
    done = run_interpreter(["-c", SHOW, "0"], env, 60, ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().split()[-2:] == ["seen", "__main__"]
    assert zygote_for(dict(env, WALRUS_EXTRA="other"), ROOT, limit=0) is None


def test_a_killed_child_reports_the_signal_and_none_outlives_the_zygote(
        zygote: Zygote, tmp_path: Path) -> None:
    journal, log = tmp_path / "journal", tmp_path / "child.log"
    child = zygote.start("tests._crash_child", str(tmp_path / "w"), "pwrite", "no_fsync",
                         "strict", "1", str(journal), "0:0:0,1:0:0,2:0:0", out=log)
    deadline = time.monotonic() + 60
    while b"P\n" not in (journal.read_bytes() if journal.exists() else b""):
        assert child.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "the child never opened the log"
        time.sleep(0.005)
    child.kill()
    assert child.wait() == -signal.SIGKILL
    child.kill()  # reaped: a no-op, never a signal to a pid reused by another process

    alone = Zygote(child_environment(), ROOT)
    orphan = alone.start("tests._crash_child", str(tmp_path / "v"), "pwrite", "no_fsync",
                         "strict", "1", str(tmp_path / "j2"), "0:0:0,1:0:0,2:0:0")
    assert alone.process.stdin is not None
    alone.process.stdin.close()  # the test process went away without killing it
    alone.process.wait(timeout=60)
    assert not Path(f"/proc/{orphan.pid}").exists() or \
        "zombie" in Path(f"/proc/{orphan.pid}/status").read_text()
