"""Recovery: torn tails are cut, corruption is reported (never returned), nothing durable lost."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import walrus
from walrus import CorruptionError, Walrus, _codec

from .conftest import WalFactory, drain, peek_all, run_child, segment_files

WRITER = """
import os, sys
from walrus import Walrus, FsyncSchedule
path, backend, schedule, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
fsync = {"sync": FsyncSchedule.SyncEach, "none": FsyncSchedule.NoFsync}[schedule]
wal = Walrus(data_dir=path, backend=backend, fsync_schedule=fsync)
for i in range(n):
    wal.append_for_topic("t", b"entry-%04d" % i)
wal.batch_append_for_topic("t", [b"batch-%d" % i for i in range(4)])
os._exit(0)
"""


def crashed_writer(path: Path, backend: str, schedule: str = "none", n: int = 20) -> None:
    run_child(WRITER, str(path), backend, schedule, str(n))


def positions(path: Path, backend: str, topic: str) -> list[tuple[Path, int]]:
    """(file, byte offset) of each entry's record, found through a read-only observer."""
    with Walrus(data_dir=path, backend=backend, read_only=True) as wal:
        wal.topics()
        t = wal._log.by_name[topic]
        out = []
        for lsn in t.lsns:
            seg = wal._log.segments[lsn >> _codec.SEG_SHIFT]
            out.append((Path(seg.path), lsn & _codec.OFFSET_MASK))
        return out


def poke(file: Path, offset: int, data: bytes) -> None:
    with open(file, "r+b") as f:
        f.seek(offset)
        f.write(data)


def flip(file: Path, offset: int) -> None:
    with open(file, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


ALL = [b"entry-%04d" % i for i in range(20)] + [b"batch-%d" % i for i in range(4)]


@pytest.mark.parametrize("schedule", ["none", "sync"])
def test_a_process_crash_loses_nothing_acknowledged(tmp_path: Path, backend: str,
                                                    open_wal: WalFactory, schedule: str) -> None:
    crashed_writer(tmp_path / "w", backend, schedule)
    wal = open_wal(tmp_path / "w")
    assert drain(wal, "t") == ALL
    wal.append_for_topic("t", b"after")
    wal.close()
    wal = open_wal(tmp_path / "w")
    assert [e.data for e in peek_all(wal, "t")] == [*ALL, b"after"]


def test_torn_tail_is_cut_and_the_log_goes_on(tmp_path: Path, backend: str,
                                              open_wal: WalFactory) -> None:
    crashed_writer(tmp_path / "w", backend, n=20)
    where = positions(tmp_path / "w", backend, "t")
    file, last = where[19]  # the last single entry: tear its payload (no claim covers it)
    poke(tmp_path / "w" / file.name, last + _codec.HEADER_SIZE + 3, b"\xde\xad")
    wal = open_wal(tmp_path / "w")
    # The tear cuts entry 19 and the batch written after it: a prefix survives.
    assert [e.data for e in peek_all(wal, "t")] == ALL[:19]
    wal.append_for_topic("t", b"new")
    assert wal.batch_read_for_topic("t", 1 << 20, checkpoint=False, start_offset=19)[0] == \
        walrus.Entry(b"new", 19, "t")
    wal.close()
    for _ in range(2):  # recovery is idempotent
        wal = open_wal(tmp_path / "w")
        assert [e.data for e in peek_all(wal, "t")] == [*ALL[:19], b"new"]
        wal.close()


def test_an_unfinished_batch_disappears_whole(tmp_path: Path, backend: str,
                                              open_wal: WalFactory) -> None:
    crashed_writer(tmp_path / "w", backend)
    where = positions(tmp_path / "w", backend, "t")
    file, last = where[-1]
    poke(tmp_path / "w" / file.name, last, bytes(_codec.HEADER_SIZE))  # the commit record
    wal = open_wal(tmp_path / "w")
    assert [e.data for e in peek_all(wal, "t")] == ALL[:20]
    assert wal.get_topic_entry_count("t") == 20


def test_corruption_in_the_crash_tail_is_reported_when_durable_data_follows(
        tmp_path: Path, backend: str, open_wal: WalFactory) -> None:
    """Under SyncEach every record claims what was durable: damage before a claim is
    corruption, not a torn tail, so nothing after it is cut."""
    crashed_writer(tmp_path / "w", backend, "sync")
    file, pos = positions(tmp_path / "w", backend, "t")[5]
    flip(tmp_path / "w" / file.name, pos + _codec.HEADER_SIZE + 1)
    wal = open_wal(tmp_path / "w")
    assert [wal.read_next("t").data for _ in range(5)] == ALL[:5]  # type: ignore[union-attr]
    with pytest.raises(CorruptionError) as info:
        wal.read_next("t")
    assert (info.value.topic, info.value.offset) == ("t", 5)
    assert drain(wal, "t") == ALL[6:]  # the checkpointing read moved past the damage


def test_zeroed_header_in_an_unclaimed_tail_cuts_the_log(tmp_path: Path, backend: str,
                                                         open_wal: WalFactory) -> None:
    crashed_writer(tmp_path / "w", backend, "none")
    file, pos = positions(tmp_path / "w", backend, "t")[2]
    poke(tmp_path / "w" / file.name, pos, bytes(_codec.HEADER_SIZE * 12))
    wal = open_wal(tmp_path / "w")
    assert drain(wal, "t") == ALL[:2]
    wal.append_for_topic("t", b"again")
    assert drain(wal, "t") == [b"again"]


def test_corruption_in_an_indexed_segment_is_reported_at_read(open_wal: WalFactory,
                                                              tmp_path: Path,
                                                              backend: str) -> None:
    wal = open_wal(tmp_path / "w")
    wal.batch_append_for_topic("t", [b"%03d" % i * 10 for i in range(30)])
    wal.close()
    file, pos = positions(tmp_path / "w", backend, "t")[10]
    flip(tmp_path / "w" / file.name, pos + _codec.HEADER_SIZE + 4)
    wal = open_wal(tmp_path / "w")
    assert len(wal.batch_read_for_topic("t", 1 << 20)) == 10  # stops before the damage
    for _ in range(2):  # a peek never moves past it
        with pytest.raises(CorruptionError, match="entry 10"):
            wal.read_next("t", checkpoint=False)
    with pytest.raises(CorruptionError, match="entry 10"):
        wal.batch_read_for_topic("t", 1 << 20)  # this one consumes it
    assert [e.offset for e in wal.batch_read_for_topic("t", 1 << 20)] == list(range(11, 30))
    assert wal.get_topic_entry_count("t") == 0


def test_zeroed_header_in_an_indexed_segment(open_wal: WalFactory, tmp_path: Path,
                                             backend: str) -> None:
    wal = open_wal(tmp_path / "w")
    for i in range(20):
        wal.append_for_topic("t", b"%02d" % i * 100)
    wal.close()
    file, pos = positions(tmp_path / "w", backend, "t")[10]
    poke(tmp_path / "w" / file.name, pos, bytes(384))
    wal = open_wal(tmp_path / "w")
    got, errors = [], 0
    while wal.get_topic_entry_count("t"):
        try:
            entry = wal.read_next("t")
        except CorruptionError:
            errors += 1
            continue
        assert entry is not None and entry.data == b"%02d" % entry.offset * 100
        got.append(entry.offset)
    assert errors >= 1 and got[:10] == list(range(10)) and got[-1] == 19


def test_a_damaged_index_falls_back_to_scanning(open_wal: WalFactory, tmp_path: Path) -> None:
    wal = open_wal(tmp_path / "w")
    wal.batch_append_for_topic("t", [b"x", b"y"])
    wal.close()
    for index in (tmp_path / "w").glob("*.idx"):
        flip(index, 20)
    assert drain(open_wal(tmp_path / "w"), "t") == [b"x", b"y"]


def test_garbage_at_the_start_of_a_segment_never_crashes(open_wal: WalFactory, tmp_path: Path,
                                                         backend: str) -> None:
    wal = open_wal(tmp_path / "w")
    wal.append_for_topic("t", b"lost with its segment header")
    wal.close()
    [segment] = segment_files(tmp_path / "w")
    poke(segment, 0, b"\xff\xff")
    wal = open_wal(tmp_path / "w")
    # The header's salt is recovered from the records: never wrong, and never silently lost.
    assert [e.data for e in peek_all(wal, "t")] == [b"lost with its segment header"]
    assert [d.path for d in wal.damage()] == [str(segment)]
    wal.append_for_topic("t", b"fresh")
    wal.close()
    assert segment.exists()  # the damaged file is kept for inspection, never overwritten
    assert drain(open_wal(tmp_path / "w"), "t") == [b"lost with its segment header", b"fresh"]


def test_an_unfinished_segment_file_is_removed(open_wal: WalFactory, tmp_path: Path) -> None:
    wal = open_wal(tmp_path / "w")
    wal.append_for_topic("t", b"x")
    wal.close()
    ghost = tmp_path / "w" / "00000000000000ff.wal"
    ghost.write_bytes(bytes(8192))  # created, allocated, header never written
    (tmp_path / "w" / "0000000000000001.idx.tmp").write_bytes(b"half an index")
    (tmp_path / "w" / "notes.wal").write_text("not ours")
    wal = open_wal(tmp_path / "w")
    assert drain(wal, "t") == [b"x"]
    assert not ghost.exists() and (tmp_path / "w" / "notes.wal").exists()
    assert not (tmp_path / "w" / "0000000000000001.idx.tmp").exists()


def test_kill_during_recovery_is_harmless(tmp_path: Path, backend: str,
                                          open_wal: WalFactory) -> None:
    crashed_writer(tmp_path / "w", backend, n=300)
    file, pos = positions(tmp_path / "w", backend, "t")[-1]
    poke(tmp_path / "w" / file.name, pos, bytes(_codec.HEADER_SIZE))
    for _ in range(3):  # open (recover) and die at once, repeatedly
        run_child("""
            import os, sys
            from walrus import Walrus
            Walrus(data_dir=sys.argv[1], backend=sys.argv[2])
            os._exit(0)
        """, str(tmp_path / "w"), backend)
    wal = open_wal(tmp_path / "w")
    assert [e.data for e in peek_all(wal, "t")] == [b"entry-%04d" % i for i in range(300)]


def _build_log(path: Path, claims: bool) -> list[tuple[Path, int]]:
    """Three segments of five entries each, written with the codec alone.

    ``claims``: records in later segments say earlier bytes were durable (as after syncs).
    Returns the (file, offset) of every entry.
    """
    path.mkdir()
    where = []
    prev_end = 0
    seq = 0
    for number in (1, 2, 3):
        header = _codec.SegmentHeader(number, 1000 + number, prev_end, 0)
        buf = bytearray(8192)
        buf[:_codec.SEGMENT_HEADER_SIZE] = _codec.encode_segment_header(header)
        base = number << _codec.SEG_SHIFT
        pos = _codec.SEGMENT_HEADER_SIZE
        pos = _codec.encode_into(buf, pos, _codec.TOPIC, 1, 0, seq, 0, b"t", header.salt)
        for _ in range(5):
            durable = base | pos if claims and number > 1 else 0
            where.append((path / f"{number:016x}.wal", pos))
            pos = _codec.encode_into(buf, pos, _codec.ENTRY, 1, 0, seq, durable, b"%02d" % seq,
                                     header.salt)
            seq += 1
        prev_end = base | pos
        if number < 3:
            _codec.encode_into(buf, pos, _codec.SEAL, 0, 0, 0, 0, b"", header.salt)
        (path / f"{number:016x}.wal").write_bytes(buf)
    return where


@pytest.mark.parametrize("claims", [False, True])
def test_a_hole_before_later_segments(tmp_path: Path, backend: str, claims: bool) -> None:
    """Damage in segment 1: without any durability claim after it, the hole was a lost
    write and nothing later was ever synced (later segments are discarded, the log is a
    prefix); with claims, it is corruption and everything else stays readable."""
    path = tmp_path / "w"
    where = _build_log(path, claims)
    file, pos = where[3]
    poke(file, pos, bytes(_codec.HEADER_SIZE))
    with Walrus(data_dir=path, backend=backend) as wal:
        entries = []
        for offset in range(15):
            try:
                batch = wal.batch_read_for_topic("t", 1, checkpoint=False, start_offset=offset)
            except CorruptionError:
                entries.append(None)
                continue
            entries.append(batch[0].data if batch else None)
        if claims:
            assert entries == [b"%02d" % i if i != 3 else None for i in range(15)]
        else:
            assert entries == [b"00", b"01", b"02"] + [None] * 12
            assert wal.get_topic_entry_count("t") == 3
            wal.append_for_topic("t", b"next")  # continues at offset 3, in a new segment
    if not claims:
        assert not (path / f"{2:016x}.wal").exists() and not (path / f"{3:016x}.wal").exists()
        with Walrus(data_dir=path, backend=backend) as wal:
            assert [e.data for e in peek_all(wal, "t")] == [b"00", b"01", b"02", b"next"]


def test_reading_never_returns_wrong_data_under_random_damage(tmp_path: Path,
                                                              backend: str) -> None:
    import random

    rng = random.Random(11)
    path = tmp_path / "w"
    with Walrus(data_dir=path, backend=backend, segment_size=16384) as wal:
        for i in range(400):
            wal.append_for_topic(f"t{i % 3}", b"%05d" % i * 7)
    files = sorted(path.glob("*.wal")) + sorted(path.glob("*.idx"))
    for _ in range(40):
        target = rng.choice(files)
        size = target.stat().st_size
        offset = rng.randrange(size)
        if rng.random() < 0.5:
            flip(target, offset)
        else:
            poke(target, offset, bytes(min(64, size - offset)))
    with Walrus(data_dir=path, backend=backend, segment_size=16384) as wal:
        for topic in wal.topics():
            for _ in range(500):
                try:
                    entry = wal.read_next(topic)
                except CorruptionError:
                    continue
                if entry is None:
                    break
                i = int(entry.data[:5])
                assert entry.data == b"%05d" % i * 7 and f"t{i % 3}" == topic


def test_stray_files_and_directories_are_ignored(open_wal: WalFactory, tmp_path: Path) -> None:
    path = tmp_path / "w"
    wal = open_wal(path)
    wal.append_for_topic("t", b"x")
    wal.close()
    (path / "other-instance").mkdir()
    (path / "README").write_text("hello")
    os.mkdir(path / "0000000000000099.wal.d")
    assert drain(open_wal(path), "t") == [b"x"]


def test_close_and_reopen_read_no_more_of_the_file_than_they_need(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a mapping, every byte looked at is read. Closing indexes the records written
    (it reads those, not the unwritten rest of the segment), and a reopen reads the rest once
    (to find anything written after the index), not once more to judge where the log ends."""
    from walrus.backends._pwrite import PwriteFile

    read: list[int] = []
    plain = PwriteFile.read

    def counted(self: PwriteFile, pos: int, size: int) -> bytes:
        read.append(size)
        return plain(self, pos, size)

    monkeypatch.setattr(PwriteFile, "read", counted)
    segment = 4 << 20
    wal = Walrus(tmp_path / "w", backend="pwrite", segment_size=segment)
    wal.batch_append_for_topic("t", [b"x" * 100] * 50)
    read.clear()
    wal.close()
    assert sum(read) < 50 * 200, read
    (file,) = segment_files(tmp_path / "w")
    read.clear()
    wal = Walrus(tmp_path / "w", backend="pwrite", segment_size=segment)
    assert sum(read) < file.stat().st_size + 8192, read
    assert [e.data for e in wal.batch_read_for_topic("t", 1 << 20)] == [b"x" * 100] * 50
    wal.close()


def test_a_sealed_segment_with_only_a_checkpoint_index_is_synced_and_indexed_again(
        tmp_path: Path, backend: str) -> None:
    """A segment checkpointed while it was written (an index of its first part, written once
    that part was durable), then sealed by a roll, and the process killed before the worker
    synced and indexed it whole: its tail past the checkpoint may never have been synced.
    The next writer must sync it and index it whole, not take the checkpoint for the index
    of a durable segment (its flushes would then promise a tail a power cut could take)."""
    from .test_recovery_damage import crashed

    out = crashed(tmp_path, backend, """
        first = w._log.active.number
        for _ in range(9):  # past CHECKPOINT_BYTES
            w.batch_append_for_topic('t', [b'a' * 1000] * 1000)
        w._background.checkpoint_active()
        w._background.index_sealed = lambda: None  # killed before the whole index
        while w._log.active.number == first:
            w.append_for_topic('t', b'b' * 1000)
        print(first)
    """, 32 << 20, "NoFsync")
    first = int(out.split()[-1])
    with Walrus(data_dir=tmp_path, backend=backend, segment_size=32 << 20) as wal:
        seg = wal._log.segments[first]
        assert seg in wal._log.to_index and seg in wal._log.unsynced
        wal._background.run_once()  # type: ignore[union-attr]
        assert seg not in wal._log.unsynced
    reopened = walrus.Walrus(data_dir=tmp_path, backend=backend, segment_size=32 << 20,
                             read_only=True)
    try:
        assert first in reopened._rebuilder.indexed_whole
    finally:
        reopened.close()
