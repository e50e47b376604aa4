"""Memory per topic: what each topic costs the process, on each backend.

20,000 topics with 10 entries of 100 bytes each; a consumer has read one entry of each (so
every topic has a moved cursor and could hold a read-ahead); the log is flushed and the
background worker given a moment. Two figures per backend, each divided by the topics:

* ``track_python_bytes_per_topic``: Python allocations still alive (tracemalloc), the
  deterministic one;
* ``track_private_bytes_per_topic``: growth of the process's private memory (``RssAnon``),
  what the machine pays, pymalloc's free lists included.

Pages of the log's own file that the mmap backend maps (``RssFile``) are the data, in the
page cache and given back under pressure, not state per topic: not counted.
"""

from __future__ import annotations

import gc
import shutil
import tempfile
import time
import tracemalloc

from walrus import FsyncSchedule, ReadConsistency, Walrus

from . import _series
from ._probe import backends, smoke

BACKENDS = backends()
TOPICS = smoke(20_000, 1_000)
ENTRIES = 10
PAYLOAD = b"m" * 100


def private_bytes() -> int:
    """This process's private resident memory (Linux ``RssAnon``; 0 where unknown)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def topic_memory(backend: str, topics: int = TOPICS, entries: int = ENTRIES,
                 trace: bool = False) -> float:
    """Bytes per topic after ``topics`` topics of ``entries`` entries were written and one
    entry of each read: Python allocations (``trace``) or private memory."""
    folder = tempfile.mkdtemp(prefix="walrus-asv-")
    try:
        with Walrus(data_dir=folder, backend=backend, fsync_schedule=FsyncSchedule.NoFsync,
                    consistency=ReadConsistency.AtLeastOnce(1000)) as wal:
            wal.append_for_topic("warm-up", PAYLOAD)
            wal.read_next("warm-up")
            gc.collect()
            if trace:
                tracemalloc.start()
            before = private_bytes()
            names = [f"topic-{i}" for i in range(topics)]
            batch = [PAYLOAD] * entries
            for name in names:
                wal.batch_append_for_topic(name, batch)
            for name in names:
                wal.read_next(name)
            del names  # the topics keep their own references to the names
            wal.flush()
            time.sleep(0.5)  # the background worker's tick after the flush
            gc.collect()
            if trace:
                used = tracemalloc.get_traced_memory()[0]
                tracemalloc.stop()
            else:
                used = private_bytes() - before
        return used / topics
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@_series.series(_series.MEMORY)
class TopicMemory:
    params = (BACKENDS,)
    param_names = ("backend",)
    timeout = 300
    unit = "bytes"

    def track_python_bytes_per_topic(self, backend: str) -> float:
        return topic_memory(backend, trace=True)

    def track_private_bytes_per_topic(self, backend: str) -> float:
        return topic_memory(backend)
