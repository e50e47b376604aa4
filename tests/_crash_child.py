"""A producer and consumer that the crash tests SIGKILL at random points.

Run as ``python -m tests._crash_child DIR BACKEND SCHEDULE MODE SEED JOURNAL STATE``. It opens
the log, then appends (single entries and batches) and reads (read_next and batch reads) at
random until killed. Every call is journaled with ``os.write`` on an ``O_APPEND`` file (the
kernel keeps it through SIGKILL, and unlike a pipe it never fills up): a ``B`` line before the
call and an ``A`` line after it returned, so the parent knows what was acknowledged and what
was in flight. ``STATE`` gives each topic's next offset and cursor as the parent verified them.
"""

from __future__ import annotations

import os
import random
import sys

from walrus import FsyncSchedule, ReadConsistency, Walrus
from walrus._config import Consistency

from ._workload import TOPICS, payload

SCHEDULES = {"sync_each": FsyncSchedule.SyncEach, "ms5": FsyncSchedule.Milliseconds(5),
             "no_fsync": FsyncSchedule.NoFsync}
SEGMENT = 8192


def consistency(mode: str) -> Consistency:
    """``strict`` or ``alo=N``."""
    return ReadConsistency.StrictlyAtOnce if mode == "strict" else ReadConsistency.AtLeastOnce(
        persist_every=int(mode.split("=")[1]))


def main(argv: list[str]) -> None:
    path, backend, schedule, mode, seed, journal, state = argv
    rng = random.Random(int(seed))
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def note(*fields: object) -> None:
        os.write(fd, (" ".join(map(str, fields)) + "\n").encode())

    written: dict[str, int] = {}
    delivered: dict[str, int] = {}
    for item in state.split(","):
        topic_index, nxt, cursor = (int(x) for x in item.split(":"))
        written[TOPICS[topic_index]] = nxt
        delivered[TOPICS[topic_index]] = cursor
    note("O")
    wal = Walrus(data_dir=path, backend=backend, segment_size=SEGMENT,
                 fsync_schedule=SCHEDULES[schedule], consistency=consistency(mode))
    note("P")
    while True:
        index = rng.randrange(len(TOPICS))
        topic = TOPICS[index]
        roll = rng.random()
        if roll < 0.55:
            n = 1 if roll < 0.35 else rng.randint(2, 30)
            data = [payload(topic, written[topic] + i) for i in range(n)]
            note("B", "append", index, n)
            if n == 1:
                wal.append_for_topic(topic, data[0])
            else:
                wal.batch_append_for_topic(topic, data)
            written[topic] += n
            note("A", "append", index, n)
        elif roll < 0.97:
            note("B", "read", index, 0)
            if roll < 0.75:
                entry = wal.read_next(topic)
                got = [] if entry is None else [entry]
            else:
                got = wal.batch_read_for_topic(topic, rng.randrange(0, 4000))
            start = delivered[topic]
            for i, e in enumerate(got):
                if (e.offset, e.data) != (start + i, payload(topic, start + i)):
                    note("X", "wrong entry", index, e.offset, start + i)
                    os._exit(3)
            delivered[topic] += len(got)
            note("A", "read", index, len(got))
        else:
            note("B", "flush", 0, 0)
            wal.flush()
            note("A", "flush", 0, 0)


if __name__ == "__main__":
    main(sys.argv[1:])
