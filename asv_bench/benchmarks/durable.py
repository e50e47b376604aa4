"""I/O-bound paths, wall clock: what a durable append costs a caller, noise included.

Under SyncEach an append waits for the device's fsync: on a shared virtio disk its median
moves tenfold within minutes with what else writes. So these are asv ``time_`` benchmarks:
many samples (each a run of durable appends), the median shown, and asv's spread statistics
kept with it (``asv compare`` prints them as ``±``; ``asv show`` gives the quartiles). Read
them as a range, for context; regressions are judged on the counted series in ``cost``
(the system calls these appends make), which the device's mood does not move.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading

from walrus import FsyncSchedule, Walrus

from ._probe import backends

BACKENDS = backends()
PAYLOAD = b"w" * 100


_OPEN: dict[str, Walrus] = {}


def _wal(backend: str) -> Walrus:
    """One walrus per backend for the life of the benchmark's process, opened on first use.

    Not in ``setup``: asv re-runs setup hooks before every timed call, which would time a
    fresh log (its first segment) each call and leave the previous one open."""
    wal = _OPEN.get(backend)
    if wal is None:
        folder = tempfile.mkdtemp(prefix="walrus-asv-")
        wal = _OPEN[backend] = Walrus(data_dir=folder, backend=backend,
                                      fsync_schedule=FsyncSchedule.SyncEach)
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        atexit.register(wal.close)  # runs first: atexit is last in, first out
    return wal


class SyncEach:
    """Durable appends (FsyncSchedule.SyncEach), 100 bytes, wall clock per call."""

    params = (BACKENDS,)
    param_names = ("backend",)
    number = 20  # calls per sample: asv divides, so the figure is per call
    repeat = (20, 60, 30.0)  # 20 to 60 samples a round, at most 30 s
    rounds = 2
    warmup_time = 0.0
    timeout = 300

    def time_append(self, backend: str) -> None:
        """One durable ``append_for_topic``: mostly the device's fsync latency."""
        _wal(backend).append_for_topic("t", PAYLOAD)

    def time_append_4_threads(self, backend: str) -> None:
        """Four threads each making one durable append at once (group commit shares syncs)."""
        append = _wal(backend).append_for_topic
        workers = [threading.Thread(target=append, args=(f"t{i}", PAYLOAD)) for i in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
