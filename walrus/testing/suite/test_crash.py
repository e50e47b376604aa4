"""Real crashes: a writer in another process is killed with SIGKILL under each fsync schedule.

A process crash leaves the operating system holding every byte ``write()`` handed it, so
under every schedule each acknowledged append must be recovered, whole and exact, and under
``StrictlyAtOnce`` no acknowledged read may be replayed.
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from walrus import ReadConsistency, Walrus

from ._checks import SEGMENT, broke, entries, payload
from ._crash_child import SCHEDULES


def crash(backend: str, path: Path, schedule: str, stop: int,
          env: dict[str, str]) -> tuple[int, int, int]:
    """Run the writer until ``stop`` acknowledgements, SIGKILL it; what it acknowledged."""
    with tempfile.TemporaryFile() as err:
        child = subprocess.Popen(
            [sys.executable, "-m", "walrus.testing.suite._crash_child", backend, str(path),
             schedule], stdout=subprocess.PIPE, stderr=err, env=env)
        assert child.stdout is not None
        seen = b""
        for count, line in enumerate(child.stdout, 1):
            seen = line
            if count >= stop:
                break
        child.send_signal(signal.SIGKILL)
        seen += child.stdout.read()  # what it acknowledged before the signal landed
        child.stdout.close()
        child.wait(timeout=60)
        err.seek(0)
        said = err.read().decode(errors="replace")
    lines = [line for line in seen.split(b"\n")[:-1] if line]  # whole lines only
    if not lines:
        broke(f"the writer on {backend!r} acknowledged nothing before it was killed; it said:\n"
              f"{said[-3000:]}")
    a, b, consumed = map(int, lines[-1].split())
    return a, b, consumed


@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_sigkill_loses_no_acknowledged_append(tmp_path: Path, walrus_backend: str,
                                              walrus_reference: str, schedule: str,
                                              child_environment: dict[str, str],
                                              pytestconfig: pytest.Config) -> None:
    rng = random.Random(f"{schedule}")
    for n in range(pytestconfig.getoption("walrus_crashes")):
        path = tmp_path / f"crash{n}"
        acked = crash(walrus_backend, path, schedule, rng.randint(40, 400), child_environment)
        copy = tmp_path / f"crash{n}-copy"
        shutil.copytree(path, copy)
        for backend, where in ((walrus_backend, path), (walrus_reference, copy)):
            check(backend, where, schedule, acked, walrus_backend)


def check(backend: str, path: Path, schedule: str, acked: tuple[int, int, int],
          writer: str) -> None:
    how = "" if backend == writer else f" (recovered through {backend!r})"
    with Walrus(data_dir=path, backend=backend, segment_size=SEGMENT,
                consistency=ReadConsistency.StrictlyAtOnce) as wal:
        for topic, count in zip("ab", acked[:2], strict=False):
            got = entries(wal, topic)
            if len(got) < count:
                broke(f"an acknowledged append was lost after SIGKILL under {schedule}{how}: "
                      f"topic {topic!r} recovered {len(got)} entries, {count} were "
                      f"acknowledged; write() did not hand the bytes to the OS (what the OS "
                      f"holds survives a process crash, whatever the schedule)")
            if len(got) > count + 3:
                broke(f"topic {topic!r} recovered {len(got)} entries after SIGKILL under "
                      f"{schedule}{how}; only {count} were written (and 3 at most in flight)")
            for seq, data in enumerate(got):
                if data != payload(topic, seq):
                    broke(f"entry {seq} of topic {topic!r} came back with other bytes after "
                          f"SIGKILL under {schedule}{how}")
        info = wal.topic_info("a")
        cursor = info.next_offset - info.unconsumed
        if cursor < acked[2]:
            broke(f"an acknowledged read was delivered again after SIGKILL under "
                  f"StrictlyAtOnce and {schedule}{how}: the cursor of topic 'a' recovered at "
                  f"{cursor}, {acked[2]} entries had been consumed (the cursor record written "
                  f"through write() was lost)")
