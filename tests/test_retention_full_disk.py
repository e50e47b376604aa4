"""Retention on a really full disk (a small tmpfs in a mount namespace of its own): the
directory drains once consumers catch up or entries expire, whatever expiry can write."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import PLUGINS, ROOT

CHILD = r"""
import os, sys, time
from walrus import FsyncSchedule, StorageError, Walrus

small, mode = sys.argv[1], sys.argv[2]
d = os.path.join(small, "wal")
w = Walrus(data_dir=d, segment_size=64 * 1024, fsync_schedule=FsyncSchedule.NoFsync)
w.append_for_topic("t", b"t" * 100)
w.set_retention("t", max_age=1)
n = 0
try:
    while True:
        w.append_for_topic("other", b"o" * 1000)
        n += 1
        if n % 10 == 0:
            w.append_for_topic("t", b"t" * 100)
except StorageError as exc:
    assert "No space left" in str(exc), exc
with w._background.work:  # the worker stands still meanwhile
    spare = os.path.join(d, "retention+.tmp")
    if mode == "no-spare" and os.path.exists(spare):  # as an earlier version leaves it
        os.unlink(spare)
    fd = os.open(os.path.join(small, "filler"), os.O_WRONLY | os.O_CREAT)
    for _ in range(100):  # another program takes the last free pages, and any that a
        try:  # segment made ahead of need gives back once it found no room
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        time.sleep(0.02)
        if os.statvfs(d).f_bavail == 0:
            break
    os.close(fd)
assert os.statvfs(d).f_bavail == 0
time.sleep(1.5)  # t's slices are older than max_age now: expiry has work to record
if mode == "no-spare":  # only consuming frees space: expiry cannot write its record
    while w.read_next("t") is not None:
        pass
while w.batch_read_for_topic("other", 1 << 20):
    pass
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        w.append_for_topic("other", b"o" * 1000)
        break
    except StorageError:
        time.sleep(0.1)
else:
    wal = [f for f in os.listdir(d) if f.endswith(".wal")]
    sys.exit(f"the disk never drained: {len(wal)} segment files, "
             f"{os.statvfs(d).f_bavail} blocks free")
w.close()
print("drained")
"""


def _tmpfs_or_skip(tmp_path: Path) -> None:
    """Skip where a mount namespace with a tmpfs of its own cannot be made (not root, or a
    container that forbids it)."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) here: a small tmpfs cannot be mounted")
    probe = subprocess.run(["unshare", "-m", "sh", "-c", 'mount -t tmpfs -o size=1m tmpfs "$1"',
                            "sh", str(tmp_path)], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs in a mount namespace here: {probe.stderr.strip()}")


def _run(tmp_path: Path, mode: str) -> subprocess.CompletedProcess[str]:
    small = tmp_path / "small"
    small.mkdir()
    _tmpfs_or_skip(small)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(PLUGINS)])}
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD))
    return subprocess.run(
        ["unshare", "-m", "sh", "-c",
         'mount -t tmpfs -o size=3m tmpfs "$1" && exec "$2" "$3" "$1" "$4"', "sh",
         str(small), sys.executable, str(script), mode],
        env=env, capture_output=True, text=True, timeout=120)


def test_a_full_disk_drains_by_expiry_alone(tmp_path: Path) -> None:
    """Nobody consumes the topic with retention: only its expiry frees the segments it shares
    with a consumed topic, and expiry must record itself with no free block left."""
    done = _run(tmp_path, "expiry")
    assert done.returncode == 0 and "drained" in done.stdout, done.stderr[-3000:]


def test_a_full_disk_drains_when_expiry_cannot_write(tmp_path: Path) -> None:
    """Expiry fails (no spare settings file, no block for a new one): consumed segments are
    deleted all the same."""
    done = _run(tmp_path, "no-spare")
    assert done.returncode == 0 and "drained" in done.stdout, done.stderr[-3000:]
