"""The on-disk format is the engine's, not the backend's: a directory written through the
backend under test reads back through a built-in backend, and the other way round."""

from __future__ import annotations

from pathlib import Path

from walrus import FsyncSchedule, Walrus

from ._checks import SEGMENT, broke, entries, first_difference_index, payload


def write(path: Path, backend: str, start: int, count: int) -> None:
    with Walrus(data_dir=path, backend=backend, segment_size=SEGMENT,
                fsync_schedule=FsyncSchedule.NoFsync) as wal:
        for seq in range(start, start + count):
            if seq % 3:
                wal.append_for_topic("f", payload("f", seq))
            else:
                wal.batch_append_for_topic("g", [payload("g", seq), payload("g", seq + 1000)])
        wal.mark_topic_clean("g")


def test_what_the_backend_wrote_reads_back_through_a_builtin(
        tmp_path: Path, walrus_backend: str, walrus_reference: str) -> None:
    write(tmp_path / "d", walrus_backend, 0, 60)
    with Walrus(data_dir=tmp_path / "d", backend=walrus_reference, read_only=True) as wal:
        expect_entries_of_write(wal, 60, f"written through {walrus_backend!r} and read through "
                                         f"{walrus_reference!r}")


def test_what_a_builtin_wrote_reads_back_and_grows_through_the_backend(
        tmp_path: Path, walrus_backend: str, walrus_reference: str) -> None:
    write(tmp_path / "d", walrus_reference, 0, 30)
    write(tmp_path / "d", walrus_backend, 30, 30)  # appends after what the built-in wrote
    for backend in (walrus_backend, walrus_reference):
        with Walrus(data_dir=tmp_path / "d", backend=backend, read_only=True) as wal:
            expect_entries_of_write(wal, 60, f"written through {walrus_reference!r} then "
                                             f"{walrus_backend!r}, read through {backend!r}")


def expect_entries_of_write(wal: Walrus, count: int, when: str) -> None:
    """What :func:`write` put there for ``seq`` below ``count``, entry by entry."""
    want = {"f": [payload("f", seq) for seq in range(count) if seq % 3],
            "g": [data for seq in range(count) if not seq % 3
                  for data in (payload("g", seq), payload("g", seq + 1000))]}
    for topic, expected in want.items():
        got = entries(wal, topic)
        if got != expected:
            bad = first_difference_index(got, expected)
            broke(f"entry {bad} of topic {topic!r} differs ({len(got)} entries, "
                  f"{len(expected)} expected) {when}: the backend does not write or read the "
                  f"format's bytes as they are")
    if not wal.topic_is_clean("g"):
        broke(f"the clean mark of topic 'g' was lost {when}")
