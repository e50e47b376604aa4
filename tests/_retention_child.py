"""A producer with retention that the crash tests SIGKILL while expiry runs.

Run as ``python -m tests._retention_child DIR SCHEDULE JOURNAL BACKEND``. It appends to topic ``r``
(which has a size limit) and now and then to ``k`` (no limit, consumed at once), journaling
``A topic offset`` after each acknowledged append with ``os.write`` on an ``O_APPEND`` file
(kept through SIGKILL), and ``F first`` with ``r``'s first stored offset every 50 appends.
"""

from __future__ import annotations

import os
import sys

from walrus import FsyncSchedule, Walrus
from walrus._config import Schedule

SEGMENT = 8192
LIMIT = 6000
SCHEDULES: dict[str, Schedule] = {"sync_each": FsyncSchedule.SyncEach,
                                  "no_fsync": FsyncSchedule.NoFsync}


def payload(topic: str, offset: int) -> bytes:
    return f"{topic}:{offset}:".encode().ljust(100 + offset % 50, b"*")


def main(argv: list[str]) -> None:
    path, schedule, journal, backend = argv
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    wal = Walrus(data_dir=path, segment_size=SEGMENT, fsync_schedule=SCHEDULES[schedule],
                 backend=backend)
    if "r" not in wal.topics():
        wal.append_for_topic("r", payload("r", 0))
        os.write(fd, b"A r 0\n")
    wal.set_retention("r", max_bytes=LIMIT)
    n = 0
    while True:
        n += 1
        topic = "k" if n % 10 == 0 else "r"
        offset = wal.topic_info(topic).next_offset
        wal.append_for_topic(topic, payload(topic, offset))
        os.write(fd, f"A {topic} {offset}\n".encode())
        if topic == "k":
            wal.read_next("k")  # consumed: segments are deleted once "r" expired too
        if n % 50 == 0:
            os.write(fd, f"F {wal.topic_info('r').first_offset}\n".encode())


if __name__ == "__main__":
    main(sys.argv[1:])
