"""A process killed in the middle of a roll: the next segment's header is written, the state
records that open it (every topic's name, next offset, cursor and mark) are not.

Every segment opens with those records so that the segments before it can be deleted. A log
that went on in a segment without them kept its topics' names and cursors only in older
segments; once reclamation or expiry deleted those, a reopen found no topic at all (its
entries unnamed, its offsets handed out again from 0), and found as its cursors only the
ones written since.
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from walrus import StorageError, Walrus
from walrus._verify import verify_directory
from walrus.testing._faults import powered

from ._quiesce import quiesced
from .conftest import segment_files
from .test_recovery_damage import crashed

SEGMENT = 8192


def killed_mid_roll(directory: Path, backend: str, schedule: str, written: int) -> int:
    """A child appends to 'a' and 'b' (and reads 'b', so that it has a cursor), then to 'a'
    until its first roll, and SIGKILLs itself once the next segment's header and the first
    ``written`` of its opening records (-1: all but the last) are written; returns how many
    entries of 'a' it acknowledged."""
    out = crashed(directory, backend, f"""
        from walrus import _making
        write_records = _making.write_records

        def killed(seg, at, records, *rest):  # the roll's first write after the header
            write_records(seg, at, records[:{written}], *rest)
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)

        _making.write_records = killed
        w.append_for_topic('a', b'a0' + b'.' * 200)
        w.append_for_topic('b', b'b0')
        w.read_next('b')
        n = 1
        print(n)
        while True:
            w.append_for_topic('a', b'a%d' % n + b'.' * 200)
            n += 1
            print(n)
    """, SEGMENT, schedule)
    return int(out.split()[-1])


def log_files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir()
            if p.is_file() and p.name != "LOCK"}


@pytest.mark.parametrize("written", [0, -1], ids=["none", "all-but-the-last"])
@pytest.mark.parametrize("schedule", ["NoFsync", "SyncEach"])
def test_a_roll_killed_before_the_segment_opening_records_loses_no_topic(
        tmp_path: Path, backend: str, schedule: str, written: int) -> None:
    """After the kill, a writer reads all of 'a' (so the first segment is passed by every
    cursor and deleted) and closes; reopening then must still know both topics, their next
    offsets and their cursors ('b''s was in the preamble's last record), and report no
    damage. ``walrus verify`` says what it found."""
    acked = killed_mid_roll(tmp_path, backend, schedule, written)
    first = segment_files(tmp_path)[0]
    report = verify_directory(tmp_path, backend)
    assert report.ok and not report.damage, report.lines()
    assert any("lacks the records that open a segment" in n for n in report.notes)
    with Walrus(data_dir=tmp_path, backend=backend, segment_size=SEGMENT) as wal:
        assert wal.damage() == []
        got = []
        while (e := wal.read_next("a")) is not None:
            got.append(e.data)
        assert got == [b"a%d" % i + b"." * 200 for i in range(acked)]
        with quiesced(wal):
            pass
    assert not first.exists(), "the first segment was not deleted: nothing was tested"
    with Walrus(data_dir=tmp_path, backend=backend, segment_size=SEGMENT) as wal:
        assert wal.damage() == []
        assert sorted(wal.topics()) == ["a", "b"]
        assert wal.topic_info("a").next_offset == acked
        assert wal.topic_info("b").next_offset == 1
        assert wal.read_next("a") is None  # the cursors are where they were
        assert wal.read_next("b") is None
        assert wal.append_for_topic("a", b"more") == acked  # no offset handed out twice
        assert wal.append_for_topic("b", b"more") == 1


def test_on_a_full_disk_the_open_that_must_start_a_segment_fails_and_changes_nothing(
        tmp_path: Path) -> None:
    """The new segment cannot be made (ENOSPC, even the small one for state records): the
    open raises StorageError and leaves every file of the log as it was (``LOCK`` names the
    last opener); once there is room, it opens."""
    acked = killed_mid_roll(tmp_path, "pwrite", "NoFsync", 0)
    before = log_files(tmp_path)
    with powered() as m:
        m.arm("create", errno.ENOSPC)
        with pytest.raises(StorageError, match="creating segment") as raised:
            Walrus(data_dir=tmp_path, backend="faults-pwrite", segment_size=SEGMENT)
    assert raised.value.errno == errno.ENOSPC
    assert log_files(tmp_path) == before
    with Walrus(data_dir=tmp_path, backend="pwrite", segment_size=SEGMENT) as wal:
        assert wal.topic_info("a").next_offset == acked
        assert len(segment_files(tmp_path)) == 3  # the one it had to start
