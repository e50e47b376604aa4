"""The disk bound of ``max_bytes`` holds whatever the background worker's speed: a writer that
outruns it does the pending work itself at a roll. Deterministic: the worker is kept from
working at all, so only the writer's own backpressure can keep the bound."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from walrus import FsyncSchedule, Walrus
from walrus._backpressure import Throttle
from walrus._durability import Background
from walrus._segment import size_for

from .test_retention import SEGMENT, dir_bytes, payload, stored

LIMIT = 8 * SEGMENT
FILES = LIMIT // SEGMENT + 4
"""The bound docs/retention.md states for one topic: max_bytes in segments, rounded up, plus
four segment files (a slice over the limit, one waiting for the worker, the one being written,
the next one made ahead)..."""
BOUND = FILES * (size_for(SEGMENT) + 1024) + 1024
"""... each with its index file (661 bytes here), and the lock and retention files."""
ROLLS = 60


@pytest.fixture
def idle_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """The background worker thread ends at once: it never indexes, expires or reclaims."""
    monkeypatch.setattr(Background, "_run", lambda self: None)


@pytest.fixture
def reliefs(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every roll that waited for retention (the stalls), in order."""
    seen: list[object] = []
    relieve = Throttle.relieve

    def counted(self: Throttle, stall: object) -> None:
        seen.append(stall)
        relieve(self, stall)  # type: ignore[arg-type]

    monkeypatch.setattr(Throttle, "relieve", counted)
    return seen


def open_wal(path: Path, schedule: object = FsyncSchedule.NoFsync) -> Walrus:
    return Walrus(data_dir=path, segment_size=SEGMENT, fsync_schedule=schedule)  # type: ignore[arg-type]


def segments(wal: Walrus) -> int:
    return len(wal._log.segments)


def active(wal: Walrus) -> object:
    return wal._log.active


def measure(path: Path, peak: tuple[int, int]) -> tuple[int, int]:
    """The largest (segment files, directory bytes) seen so far."""
    files = sum(1 for p in path.iterdir() if p.suffix == ".wal")
    return max(peak[0], files), max(peak[1], dir_bytes(path))


@pytest.mark.parametrize("schedule", [FsyncSchedule.NoFsync, FsyncSchedule.SyncEach,
                                      FsyncSchedule.Milliseconds(1000)],
                         ids=["no_fsync", "sync_each", "milliseconds"])
def test_the_bound_holds_with_a_worker_that_does_nothing(
        tmp_path: Path, idle_worker: None, reliefs: list[object], schedule: object) -> None:
    with open_wal(tmp_path, schedule) as wal:
        wal.append_for_topic("t", payload("t", 0))
        wal.set_retention("t", max_bytes=LIMIT)
        peak, offset, rolls = (0, 0), 1, 0
        while rolls < ROLLS:
            before = active(wal)
            wal.append_for_topic("t", payload("t", offset))
            offset += 1
            if active(wal) is not before:  # files come at a roll, and go before one
                rolls += 1
                peak = measure(tmp_path, peak)
        assert peak[0] <= FILES and peak[1] <= BOUND, (peak, FILES, BOUND)
        assert reliefs  # the writer did the work itself
        assert LIMIT <= wal.get_topic_size("t") <= LIMIT + 2 * SEGMENT
        stored(wal, "t")  # what is kept is whole, in order, as appended


def test_batches_and_several_writers_keep_the_bound(tmp_path: Path, idle_worker: None) -> None:
    with open_wal(tmp_path) as wal:
        wal.append_for_topic("t", payload("t", 0))
        wal.set_retention("t", max_bytes=LIMIT)
        peak = [(0, 0)]
        lock = threading.Lock()
        errors: list[BaseException] = []

        def write(count: int) -> None:
            try:
                for _ in range(count):
                    with lock:  # payloads name their offsets: one batch at a time
                        at = wal.topic_info("t").next_offset
                        wal.batch_append_for_topic("t", [payload("t", at + i) for i in range(7)])
                    peak[0] = measure(tmp_path, peak[0])
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(300,)) for _ in range(3)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert not errors
        assert peak[0][0] <= FILES and peak[0][1] <= BOUND, (peak[0], FILES, BOUND)
        stored(wal, "t")


def test_appends_without_max_bytes_never_wait(tmp_path: Path, idle_worker: None,
                                              reliefs: list[object]) -> None:
    with open_wal(tmp_path) as wal:
        wal.append_for_topic("aged", payload("aged", 0))
        wal.set_retention("aged", max_age=3600)  # a limit, but not by size
        for i in range(1, 40 * SEGMENT // 232):
            wal.append_for_topic("plain", payload("plain", i))
            wal.append_for_topic("aged", payload("aged", i))
        assert segments(wal) > 40  # nothing reclaimed: the worker never ran
        assert reliefs == []


def test_a_segment_nothing_can_free_costs_one_relief_per_roll(
        tmp_path: Path, idle_worker: None, reliefs: list[object]) -> None:
    """A topic without retention that nobody consumes holds every segment: the writer goes on
    (no wait without end), relieving each roll at most once."""
    with open_wal(tmp_path) as wal:
        wal.append_for_topic("t", payload("t", 0))
        wal.set_retention("t", max_bytes=LIMIT)
        rolls = 0
        for i in range(1, 30 * SEGMENT // 232):
            before = active(wal)
            wal.append_for_topic("t", payload("t", i))
            rolls += active(wal) is not before
            before = active(wal)
            wal.append_for_topic("kept", payload("kept", i - 1))
            rolls += active(wal) is not before
        assert 0 < len(reliefs) <= rolls
        assert len({id(s) for s in reliefs}) == len(reliefs)  # never twice for one roll
        assert wal.get_topic_size("t") <= LIMIT + 2 * SEGMENT  # expired all the same
        assert wal.topic_info("kept").first_offset == 0


def test_a_failing_relief_is_logged_and_the_append_goes_on(
        tmp_path: Path, idle_worker: None, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Nothing of the append was written when its roll stalled: a failure of the worker's work
    done there is the worker's (logged), not the append's."""
    failures: list[Background] = []

    def fail(self: Background) -> None:
        failures.append(self)
        raise OSError(5, "the disk went away")

    monkeypatch.setattr(Background, "run_once", fail)
    with open_wal(tmp_path) as wal:
        wal.append_for_topic("t", payload("t", 0))
        wal.set_retention("t", max_bytes=LIMIT)
        for i in range(1, 20 * SEGMENT // 232):
            wal.append_for_topic("t", payload("t", i))
        assert failures
        assert "retention work at a segment roll failed" in caplog.text
        assert stored(wal, "t") == list(range(20 * SEGMENT // 232))
