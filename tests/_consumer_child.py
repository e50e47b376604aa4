"""Processes for the multi-process consumer tests: a writer and named consumers.

Run as ``python -m tests._consumer_child ROLE DIR SCHEDULE MODE SEED JOURNAL [NAME]``:

- ``writer``: opens DIR writable and appends to topic ``t`` until killed (or until it has
  appended ``SEED`` entries when it is negative: then it closes and exits); journals ``A n``
  after each acknowledged append of offset n. With ``MODE`` ``churn`` it also consumes
  through the shared cursor and reclaims as often as it can (for the registration race).
- ``consumer``: opens DIR as a read-only observer and consumes through named consumer NAME
  (read_next and batch reads at random) until killed; journals ``B`` before each call and
  ``A o1 o2 ...`` with the offsets it returned. ``D`` when it found nothing new.
- ``register``: a read-only observer that, for consumers NAME-0, NAME-1, ..., registers each
  (its first read), notes where it was placed (``R name start``) and reads on from there
  (``G name first last count peeked`` for what it read), then deletes it; ``E`` lines
  for errors.

Every line is written with ``os.write`` on an ``O_APPEND`` file: the kernel keeps it through
SIGKILL.
"""

from __future__ import annotations

import os
import random
import sys
import time

from walrus import Walrus

from ._crash_child import SCHEDULES, SEGMENT, consistency

TOPIC = "t"


def main(argv: list[str]) -> None:
    role, path, schedule, mode, seed, journal = argv[:6]
    name = argv[6] if len(argv) > 6 else ""
    fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def note(*fields: object) -> None:
        os.write(fd, (" ".join(map(str, fields)) + "\n").encode())

    rng = random.Random(int(seed))
    if role == "writer":
        churn = mode == "churn"
        wal = Walrus(path, fsync_schedule=SCHEDULES[schedule], segment_size=SEGMENT,
                     consistency=consistency("strict" if churn else mode))
        limit = -int(seed) if int(seed) < 0 else None
        n = 0
        while limit is None or n < limit:
            offset = wal.append_for_topic(TOPIC, b"%d" % n * rng.randint(1, 30))
            note("A", offset)
            n += 1
            if churn:
                wal.batch_read_for_topic(TOPIC, 1 << 20)
                wal._background.run_once()  # type: ignore[union-attr]
            elif rng.random() < 0.3:
                time.sleep(0.001)
        wal.close()
        return
    wal = Walrus(path, read_only=True, fsync_schedule=SCHEDULES[schedule],
                 consistency=consistency("strict" if role == "register" else mode))
    note("O")
    if role == "consumer":
        while True:
            note("B")
            if rng.random() < 0.5:
                e = wal.read_next(TOPIC, consumer=name)
                got = [] if e is None else [e]
            else:
                got = wal.batch_read_for_topic(TOPIC, rng.randint(1, 400), consumer=name)
            note("A", *(e.offset for e in got))
            if not got:
                note("D")
                time.sleep(0.002)
    for i in range(int(seed)):
        who = f"{name}-{i}"
        try:
            first = wal.read_next(TOPIC, checkpoint=False, consumer=who)
            start = wal.consumers(TOPIC)[who]
            note("R", who, start)
            got = []
            while batch := wal.batch_read_for_topic(TOPIC, 1 << 20, consumer=who):
                got += [e.offset for e in batch]
            if first is not None:
                note("G", who, got[0], got[-1], len(got), first.offset)
            wal.delete_consumer(TOPIC, who)  # its hold goes: reclamation goes on
        except Exception as exc:  # the parent fails the test on any
            note("E", who, type(exc).__name__, str(exc).replace("\n", " "))
    wal.close()


if __name__ == "__main__":
    main(sys.argv[1:])
