"""Power cuts under SyncEach with the C append and the C pass's own settling at work.

The fault backends present no mapping, so under them the C append hands every write to
``Log.append`` and the pass settles in Python. Here the files are the mmap backend's (the C
append writes into the mapping, the pass packs its MARK there), but each sync keeps a copy
of the file as it stands after it: the disk a power cut leaves. Every append acknowledged
before the cut must be read back from that disk, at the offset it was given."""

from __future__ import annotations

import errno
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from walrus import FsyncSchedule, StorageError, Walrus, _durability, _speedups
from walrus.backends import _mmap
from walrus.backends._base import create_file, open_file
from walrus.testing.suite._checks import payload

from .test_sync_each_paths import _append_until_cut, _read

needs_hot = pytest.mark.skipif(_speedups.hot_append is None, reason=_speedups.HOT_REASON)


class Disk:
    """What each file held after its last sync; syncs fail from the cut on."""

    def __init__(self, cut_after: int) -> None:
        self.lock = threading.Lock()
        self.images: dict[str, bytes] = {}
        self.syncs = 0
        self.cut_after = cut_after
        self.dead = False


class SnapshotFile(_mmap.MmapFile):
    """An mmap file whose sync copies the file as it is when the sync begins into ``disk``
    (what the sync covers for sure), then lets writers go on while it "syncs" (a subclass:
    the C pass calls its sync through the backend, and the C append writes the mapping)."""

    disk: Disk

    def sync(self) -> None:
        disk = self.disk
        with disk.lock:
            if disk.dead or disk.syncs >= disk.cut_after:
                disk.dead = True
                raise OSError(errno.EIO, "power cut")
            with open(self.path, "rb") as f:  # what the sync covers for sure: all before it
                disk.images[self.path] = f.read()
            disk.syncs += 1
        super().sync()
        time.sleep(0.001)  # the sync takes a while: writers go on meanwhile


@needs_hot
@pytest.mark.parametrize("writers", [1, 3])
@pytest.mark.parametrize("cut_after", [8, 20, 45, 90])
def test_every_append_acknowledged_before_a_cut_is_on_the_synced_disk(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writers: int, cut_after: int) -> None:
    live, image = tmp_path / "live", tmp_path / "image"
    live.mkdir()
    disk = Disk(cut_after)
    monkeypatch.setattr(SnapshotFile, "disk", disk, raising=False)

    def opened(self: _mmap.MmapBackend, path: str, *, size: int = 0, create: bool = False,
               writable: bool = True) -> _mmap.MmapFile:
        fd = create_file(path, size) if create else open_file(path, writable)
        return SnapshotFile(path, fd, writable or create, create)

    monkeypatch.setattr(_mmap.MmapBackend, "open", opened)
    passes: list[object] = []
    c_pass = _speedups.hot_sync_pass
    assert c_pass is not None

    def counted(durability: _durability.Durability, lsn: int) -> object:
        answer = c_pass(durability, lsn)
        passes.append(answer)
        return answer

    monkeypatch.setattr(_durability, "_sync_pass", counted)
    acked = {f"w{i}": 0 for i in range(writers)}
    before = sum(_speedups.hot_fallbacks().values())
    wal = Walrus(data_dir=live, backend="mmap", segment_size=16384,
                 fsync_schedule=FsyncSchedule.SyncEach)
    _append_until_cut(wal, acked, lambda: disk.dead)
    assert sum(_speedups.hot_fallbacks().values()) - before < sum(acked.values()), \
        "the C append was not at work"
    assert True in passes, "the C pass was not at work"
    with disk.lock:
        images = dict(disk.images)
    try:
        wal.close()
    except StorageError:
        pass
    shutil.copytree(live, image)
    for path, data in images.items():
        (image / os.path.relpath(path, live)).write_bytes(data)
    for name in os.listdir(image):
        if str(live / name) not in images and name.endswith(".wal"):
            os.unlink(image / name)  # never synced: not on the disk
    with Walrus(data_dir=image, backend="pwrite") as again:
        for topic, n in acked.items():
            got = _read(again, topic)
            assert len(got) >= n, f"{topic}: {n} acknowledged, {len(got)} found"
            assert got == [payload(topic, i) for i in range(len(got))]
