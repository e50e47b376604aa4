"""The end of the newest segment: damage to the last synced records is never a torn write.

Each record claims the durable point known when it was written, so damage to a record is told
from a write a crash cut short by a later record's claim. The records of the last sync pass
have none after them: after each sync pass the writer leaves a MARK record just past the end
of the log, claiming the new durable point, which the next write goes over. These tests damage
the last records of a directory left by a killed writer (no index for its newest segment) and
check that recovery reports the loss and never hands the offsets out again; and that bytes cut
out of the newest segment, or its end cut off, are said as damage rather than taken for a
torn write.
"""

from __future__ import annotations

import os
from pathlib import Path

import walrus
from walrus import CorruptionError, _codec

from .conftest import segment_files
from .test_fuzz_corruption import last_segment
from .test_recovery_damage import crashed, flip_bit

ENTRIES = 20
PAYLOAD = b"x" * 300


def killed_after_appends(directory: Path, backend: str) -> Path:
    """A directory whose writer synced ``ENTRIES`` appends to topic "a" and was killed; returns
    its newest segment."""
    crashed(directory, backend, f"""
        for i in range({ENTRIES}):
            w.append_for_topic("a", {PAYLOAD!r})
    """, segment_size=65536)
    newest = Path(directory / last_segment(directory))  # not a spare made ahead of need
    assert not newest.with_suffix(".idx").exists()
    return newest


def records(path: Path) -> list[_codec.Record]:
    data = path.read_bytes()
    header = _codec.decode_segment_header(data[:_codec.SEGMENT_HEADER_SIZE])
    found = []
    pos = _codec.SEGMENT_HEADER_SIZE
    while True:
        status, record = _codec.check(data, pos, len(data), header.salt,
                                      header.number << _codec.SEG_SHIFT)
        if status != _codec.OK or record is None:
            return found
        found.append(record)
        if record.kind == _codec.MARK:
            return found
        pos = record.end


def last_entry(path: Path) -> _codec.Record:
    return [r for r in records(path) if r.kind == _codec.ENTRY][-1]


def reopen(directory: Path, backend: str) -> walrus.Walrus:
    return walrus.Walrus(data_dir=str(directory), backend=backend, segment_size=65536)


def test_a_mark_follows_the_last_synced_record(tmp_path: Path, backend: str) -> None:
    newest = killed_after_appends(tmp_path / "w", backend)
    found = records(newest)
    assert found[-1].kind == _codec.MARK
    assert found[-1].durable == (found[-1].pos | newest_base(newest))
    assert [r.kind for r in found].count(_codec.MARK) == 1  # each next write went over it


def newest_base(path: Path) -> int:
    return int(path.stem, 16) << _codec.SEG_SHIFT


def test_damage_to_the_last_synced_entry_is_reported_and_its_offset_kept(
        tmp_path: Path, backend: str) -> None:
    directory = tmp_path / "w"
    newest = killed_after_appends(directory, backend)
    flip_bit(newest, last_entry(newest).payload_pos + 7)
    with reopen(directory, backend) as wal:
        assert [(d.topic, d.first_offset, d.last_offset) for d in wal.damage()] == [
            ("a", ENTRIES - 1, ENTRIES - 1)]
        try:
            wal.batch_read_for_topic("a", 1 << 20, checkpoint=False, start_offset=ENTRIES - 1)
        except CorruptionError as exc:
            assert exc.offset == ENTRIES - 1
        else:
            raise AssertionError("the damaged entry read back")
        wal.append_for_topic("a", b"new")
        assert wal.get_topic_entry_count("a") == ENTRIES + 1


def test_a_damaged_header_of_the_last_entry_still_keeps_its_offset(
        tmp_path: Path, backend: str) -> None:
    directory = tmp_path / "w"
    newest = killed_after_appends(directory, backend)
    flip_bit(newest, last_entry(newest).pos + 6, 7)  # the length: points past the file
    with reopen(directory, backend) as wal:
        assert ("a", ENTRIES - 1, ENTRIES - 1) in [
            (d.topic, d.first_offset, d.last_offset) for d in wal.damage()]
        assert wal.get_topic_entry_count("a") == ENTRIES


def test_bytes_cut_out_of_the_newest_segment_are_damage(tmp_path: Path, backend: str) -> None:
    directory = tmp_path / "w"
    newest = killed_after_appends(directory, backend)
    data = newest.read_bytes()
    at = records(newest)[5].pos + 3
    newest.write_bytes(data[:at] + data[at + 1:])
    with reopen(directory, backend) as wal:
        reasons = [d.reason for d in wal.damage() if d.topic is None]
        assert any("cut out" in r for r in reasons), wal.damage()
        assert wal.get_topic_entry_count("a") == ENTRIES  # every offset is still accounted for


def test_a_newest_segment_cut_short_is_damage(tmp_path: Path, backend: str) -> None:
    directory = tmp_path / "w"
    newest = killed_after_appends(directory, backend)
    middle = records(newest)[ENTRIES // 2]
    os.truncate(newest, middle.pos + 100)
    with reopen(directory, backend) as wal:
        assert any("cut short" in d.reason for d in wal.damage()), wal.damage()


def test_a_torn_write_after_the_mark_is_no_damage(tmp_path: Path, backend: str) -> None:
    """What a crash leaves by design stays quiet: an unfinished record where the mark was."""
    directory = tmp_path / "w"
    newest = killed_after_appends(directory, backend)
    mark = records(newest)[-1]
    with open(newest, "r+b") as f:  # a record header half written over the mark
        f.seek(mark.pos + 4)
        f.write(b"\x07" * 12)
    with reopen(directory, backend) as wal:
        assert wal.damage() == []
        assert wal.get_topic_entry_count("a") == ENTRIES


def test_a_deleted_newest_segment_is_accounted_from_its_index(tmp_path: Path,
                                                               backend: str) -> None:
    """The log only ever deletes a prefix of itself: a newest segment gone with its index
    left says what it held, and those offsets stay taken."""
    directory = tmp_path / "w"
    with walrus.Walrus(data_dir=str(directory), backend=backend, segment_size=8192) as wal:
        for _ in range(40):
            wal.append_for_topic("a", PAYLOAD)
        wal.append_for_topic("late", b"created in the last segment")
    newest = segment_files(directory)[-1]
    assert newest.with_suffix(".idx").exists()
    newest.unlink()
    with reopen(directory, backend) as wal:
        lost = {(d.topic, d.first_offset, d.last_offset) for d in wal.damage()}
        assert ("late", 0, 0) in lost, wal.damage()
        assert any(d.topic == "a" and d.last_offset == 39 for d in wal.damage())
        wal.append_for_topic("a", b"new")
        wal.append_for_topic("late", b"new")
        assert (wal.get_topic_entry_count("a"), wal.get_topic_entry_count("late")) == (41, 2)


def test_an_unreadable_index_still_proves_its_segment_synced(tmp_path: Path,
                                                            backend: str) -> None:
    """An index is written only once its segment was synced: damage in that segment is
    corruption even when the index itself is damaged and nothing later claims durability,
    and the segments after it are kept."""
    directory = tmp_path / "w"
    with walrus.Walrus(data_dir=str(directory), backend=backend, segment_size=8192,
                       fsync_schedule=walrus.FsyncSchedule.NoFsync) as wal:
        for i in range(40):
            wal.append_for_topic("a", bytes([i + 1]) * 600)
    files = segment_files(directory)
    before, newest = files[-2], files[-1]
    flip_bit(before, last_entry(before).payload_pos + 7)
    before.with_suffix(".idx").write_bytes(b"not an index" * 8)
    newest.with_suffix(".idx").unlink(missing_ok=True)
    base = int(newest.stem, 16) << _codec.SEG_SHIFT
    with open(newest, "r+b") as f:  # nothing in the newest segment claims it durable
        for record in records(newest):
            if record.durable >= base:
                f.seek(record.pos)
                f.write(bytes(_codec.HEADER_SIZE))
    with reopen(directory, backend) as wal:
        lost = [(d.topic, d.first_offset, d.last_offset) for d in wal.damage()]
        assert len(lost) == 1 and lost[0][0] == "a", wal.damage()
        assert wal.get_topic_entry_count("a") == 40
