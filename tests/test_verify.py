"""``walrus verify``: finds every kind of damage, names it precisely, and changes nothing."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from walrus import CorruptionError, FsyncSchedule, Walrus
from walrus._codec import OFFSET_MASK, SEG_SHIFT, SegmentSummary, decode_index, encode_index
from walrus._segment import index_name, list_directory, segment_name
from walrus._verify import verify_directory

from .cli_support import data_dir, quiet_isolated_env, start_python, tree_state, walrus_cmd
from .test_recovery import flip

__all__ = ["data_dir", "quiet_isolated_env"]  # fixtures

ENTRIES = 300


def populate(path: Path, schedule: object = FsyncSchedule.NoFsync) -> None:
    """Three topics over several sealed (indexed) segments and an active one; some consumed."""
    with Walrus(data_dir=path, segment_size=8 << 10, fsync_schedule=schedule) as wal:  # type: ignore[arg-type]
        for i in range(ENTRIES):
            wal.append_for_topic(f"t{i % 3}", f"entry {i} ".encode() * (1 + i % 9))
        wal.read_next("t0")
        wal.mark_topic_clean("t2")


def locate(path: Path, topic: str, offset: int) -> tuple[Path, int]:
    """The segment file and byte position of an entry's record."""
    with Walrus(data_dir=path, read_only=True) as wal:
        t = wal._log.by_name[topic]
        lsn = t.lsns[offset - t.first_seq]
    return path / segment_name(lsn >> SEG_SHIFT), lsn & OFFSET_MASK


def test_a_healthy_directory_verifies(data_dir: Path) -> None:
    populate(data_dir)
    report = verify_directory(data_dir)
    assert report.ok, report.lines()
    assert report.segments > 3 and report.topics == 3 and report.entries == ENTRIES
    result = walrus_cmd("verify", data_dir)
    assert result.returncode == 0
    assert result.stdout.decode().splitlines()[-1].endswith(
        f"{ENTRIES} entries in 3 topic(s): OK")


def test_verify_writes_nothing(data_dir: Path) -> None:
    populate(data_dir)
    before = tree_state(data_dir)
    assert walrus_cmd("verify", data_dir).returncode == 0
    assert tree_state(data_dir) == before


def test_a_flipped_payload_byte_is_reported_with_topic_offset_file_and_position(
        data_dir: Path) -> None:
    populate(data_dir)
    segment, pos = locate(data_dir, "t1", 40)
    flip(segment, pos + 40)  # inside the payload
    result = walrus_cmd("verify", data_dir)
    assert result.returncode == 1
    out = result.stdout.decode().splitlines()
    assert out[0] == (f"DAMAGED topic 't1' entry 40: checksum mismatch "
                      f"({segment.name} at byte {pos})")
    assert out[-1].endswith("1 problem(s) found")
    # the library agrees about the entry
    with Walrus(data_dir=data_dir) as wal, pytest.raises(CorruptionError, match="entry 40"):
        wal.batch_read_for_topic("t1", 1 << 20, checkpoint=False, start_offset=40)


def test_a_damaged_header_is_attributed_to_its_entry(data_dir: Path) -> None:
    populate(data_dir, FsyncSchedule.SyncEach)  # later records claim durability past it
    segment, pos = locate(data_dir, "t2", 50)
    with open(segment, "r+b") as f:
        f.seek(pos)
        f.write(bytes(32))
    report = verify_directory(data_dir)
    assert [(d.topic, d.offset, d.file, d.position) for d in report.damage] == [
        ("t2", 50, segment.name, pos)]


def test_damage_in_the_active_segment_is_found(data_dir: Path) -> None:
    populate(data_dir, FsyncSchedule.SyncEach)
    segment, pos = locate(data_dir, "t0", ENTRIES // 3 - 5)
    flip(segment, pos + 33)
    report = verify_directory(data_dir)
    assert [(d.topic, d.offset) for d in report.damage] == [("t0", ENTRIES // 3 - 5)]


def test_a_damaged_segment_header_is_reported(data_dir: Path) -> None:
    populate(data_dir)
    second = data_dir / segment_name(2)
    flip(second, 20)
    report = verify_directory(data_dir)
    assert any(d.file == second.name and "bad segment header" in d.problem
               for d in report.damage)
    assert not report.ok


def test_an_unreadable_index_is_reported(data_dir: Path) -> None:
    populate(data_dir)
    index = data_dir / index_name(1)
    flip(index, 30)
    report = verify_directory(data_dir)
    assert [(d.file, d.problem.split(":")[0]) for d in report.damage] == [
        (index.name, "unreadable index")]


def test_an_index_that_disagrees_with_its_segment_is_reported(data_dir: Path) -> None:
    populate(data_dir)
    index = data_dir / index_name(2)
    summary: SegmentSummary = decode_index(index.read_bytes())
    topic = next(iter(summary.topics.values()))
    topic.lsns = topic.lsns[:-1]  # an index that forgets an entry (recovery would trust it)
    index.write_bytes(encode_index(summary))
    report = verify_directory(data_dir)
    assert len(report.damage) == 1
    assert report.damage[0].file == index.name
    assert "disagrees with its segment" in report.damage[0].problem


def test_a_torn_tail_is_a_note_not_damage(data_dir: Path) -> None:
    populate(data_dir)
    last = sorted(data_dir.glob("*.wal"))[-1]
    with Walrus(data_dir=data_dir, read_only=True) as wal:
        end = wal._log.active.end  # type: ignore[union-attr]
    with open(last, "r+b") as f:  # half a record, as a crash mid-write leaves it
        f.seek(end)
        f.write(b"\x13\x37" * 20)
    report = verify_directory(data_dir)
    assert report.ok, report.lines()
    assert any("interrupted write" in note for note in report.notes)


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    result = walrus_cmd("verify", tmp_path / "absent")
    assert result.returncode == 2
    assert b"does not exist" in result.stderr


LIVE_WRITER = """
import sys, threading
from walrus import Walrus
done = threading.Event()  # set once the test closes our stdin
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
with Walrus(data_dir=sys.argv[1], segment_size=32 << 10) as wal:
    print("ready", flush=True)
    i = 0
    while not done.is_set():
        wal.append_for_topic("t%d" % (i % 4), b"x" * (i % 700))
        if i % 5 == 0:
            wal.batch_append_for_topic("b", [b"y" * 100] * 7)
        if i % 3 == 0:
            wal.read_next("t%d" % (i % 4))  # consumers let old segments be reclaimed
        i += 1
"""


def test_verify_beside_a_live_writer_finds_no_false_damage(data_dir: Path) -> None:
    writer = start_python(LIVE_WRITER, str(data_dir))
    try:
        assert writer.stdout is not None and writer.stdout.readline() == b"ready\n"
        runs = 0
        deadline = time.monotonic() + 3
        while runs < 3 or time.monotonic() < deadline:  # the writer writes on until told
            report = verify_directory(data_dir)
            assert report.ok, report.lines()
            runs += 1
        assert writer.poll() is None  # it was live all along
    finally:
        _, err = writer.communicate(b"", timeout=60)
    assert writer.returncode == 0, err.decode()
    assert verify_directory(data_dir).ok


def listing_without(missed: str) -> Callable[[str], tuple[list[str], list[str]]]:
    """A directory listing that misses one file, as one taken while a live writer creates
    it may (a listing is not a snapshot: a later file can be in it and that one not)."""
    def listing(directory: str) -> tuple[list[str], list[str]]:
        files, others = list_directory(directory)
        return [name for name in files if name != missed], others
    return listing


def test_a_segment_the_listing_missed_is_found_through_the_log_links(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    populate(data_dir)
    missed = sorted(data_dir.glob("*.wal"))[-3].name  # a sealed one between two others
    monkeypatch.setattr("walrus._verify.list_directory", listing_without(missed))
    report = verify_directory(data_dir)
    assert report.ok, report.lines()
    assert report.entries == ENTRIES and not report.notes
    # an observer that opens beside a live writer lists the directory the same way
    monkeypatch.setattr("walrus._directory.list_directory", listing_without(missed))
    with Walrus(data_dir=data_dir, read_only=True) as wal:
        assert wal.damage() == []
        assert len(wal.batch_read_for_topic("t1", 1 << 20, checkpoint=False,
                                            start_offset=0)) == ENTRIES // 3
    # a segment that is really gone from the middle of the log is still damage, and so is
    # one whose name something other than a file has taken
    (data_dir / missed).unlink()
    report = verify_directory(data_dir)
    assert {d.topic for d in report.damage} == {"t0", "t1", "t2"}
    (data_dir / missed).mkdir()
    assert verify_directory(data_dir).damage == report.damage


def test_verify_beside_a_live_writer_that_rolls_while_it_lists(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow listing: the writer makes segments while it runs, some of which it misses.

    The directory is made bigger than one ``getdents`` call returns (a few hundred names),
    so that the writer can make files between the calls of one listing."""
    def slow_listing(directory: str) -> tuple[list[str], list[str]]:
        files: list[str] = []
        others: list[str] = []
        with os.scandir(directory) as entries:
            for i, entry in enumerate(entries):
                if i % 8 == 0:
                    time.sleep(0.001)
                (files if entry.is_file() else others).append(entry.name)
        return files, others

    monkeypatch.setattr("walrus._verify.list_directory", slow_listing)
    # Bounded: the topic "b" is never read, so no segment is reclaimed, and each one the
    # writer keeps holds open files; on a loaded machine the two verifications ran long
    # enough for it to reach the process's limit of open files (EMFILE). It stops making
    # segments once the directory holds 4,000 files (segments and their indexes: five times
    # the 800 segments the listing needs) and waits.
    script = LIVE_WRITER.replace("32 << 10", "8 << 10").replace(
        "        i += 1\n",
        "        i += 1\n"
        "        if i % 1000 == 0 and len(os.listdir(sys.argv[1])) > 4000:\n"
        "            done.wait()\n").replace("import sys,", "import os, sys,")
    writer = start_python(script, str(data_dir))
    try:
        assert writer.stdout is not None and writer.stdout.readline() == b"ready\n"
        while writer.poll() is None and len(list(data_dir.glob("*.wal"))) < 800:
            time.sleep(0.05)
        for _ in range(2):
            report = verify_directory(data_dir)
            assert report.ok, report.lines()[:5]
        assert writer.poll() is None
    finally:
        _, err = writer.communicate(b"", timeout=60)
    assert writer.returncode == 0, err.decode()


def test_a_listed_segment_that_cannot_be_opened_is_reported_once(data_dir: Path) -> None:
    populate(data_dir)
    segment = sorted(data_dir.glob("*.wal"))[-3]  # linked to by the one after it
    segment.write_bytes(bytes(segment.stat().st_size))  # nothing in it readable
    (data_dir / index_name(int(segment.stem, 16))).unlink()
    headers = [d for d in verify_directory(data_dir).damage if d.file == segment.name
               and "bad segment header" in d.problem]
    assert len(headers) == 1
    with Walrus(data_dir=data_dir, read_only=True) as wal:
        assert len([d for d in wal.damage() if "bad segment header" in d.reason]) == 1
