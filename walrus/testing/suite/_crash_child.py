"""The writer a crash test kills: appends and reads until SIGKILL, one line per acknowledged
call on stdout (``topic entries-written consumed-of-a``)."""

from __future__ import annotations

import os
import sys

from walrus import FsyncSchedule, ReadConsistency, Schedule, Walrus

from ._checks import SEGMENT, payload

SCHEDULES: dict[str, Schedule] = {
    "SyncEach": FsyncSchedule.SyncEach, "Milliseconds(5)": FsyncSchedule.Milliseconds(5),
    "NoFsync": FsyncSchedule.NoFsync}


def main(backend: str, path: str, schedule: str) -> None:
    wal = Walrus(data_dir=path, backend=backend, segment_size=SEGMENT,
                 fsync_schedule=SCHEDULES[schedule], consistency=ReadConsistency.StrictlyAtOnce)
    written = {"a": 0, "b": 0}
    consumed = 0
    i = 0
    while True:
        topic = "ab"[i % 2]
        n = 3 if i % 7 == 3 else 1
        data = [payload(topic, written[topic] + k) for k in range(n)]
        if n == 1:
            wal.append_for_topic(topic, data[0])
        else:
            wal.batch_append_for_topic(topic, data)
        written[topic] += n
        if i % 5 == 4 and wal.read_next("a") is not None:
            consumed += 1
        os.write(1, f"{written['a']} {written['b']} {consumed}\n".encode())
        i += 1


if __name__ == "__main__":
    main(*sys.argv[1:4])
