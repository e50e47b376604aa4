"""Recovery when bytes on disk are damaged: no single damaged field decides alone.

A damaged length, segment header or TOPIC record must never make recovery drop durable entries
silently, hand their offsets out again, or give a topic's id (and entries) to another name.
What was lost or cannot be read is listed by ``Walrus.damage()``, logged at WARNING and listed
by ``walrus verify``; what a crash or power cut leaves behind by design is not damage. Every
scan is linear in the bytes it passes, whatever they are.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import walrus
from walrus import CorruptionError, Damage, _codec
from walrus._segment import index_name, segment_name
from walrus._verify import verify_directory

from ._forks import run_interpreter
from .conftest import PLUGINS, ROOT, peek_all, segment_files

SEGMENT = 8192


def crashed(directory: Path, backend: str, code: str, segment_size: int = 64 << 20,
            schedule: str = "SyncEach") -> str:
    """Open ``directory`` under ``schedule`` (an ``FsyncSchedule`` name) in a child process,
    run ``code`` (with the log as ``w``), then SIGKILL the child; returns what it printed."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        from walrus import FsyncSchedule, Walrus
        w = Walrus(data_dir={str(directory)!r}, backend={backend!r},
                   fsync_schedule=FsyncSchedule.{schedule}, segment_size={segment_size})
    """) + textwrap.dedent(code) + "\nsys.stdout.flush()\nos.kill(os.getpid(), signal.SIGKILL)\n"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(PLUGINS)]))
    result = run_interpreter(["-c", script], env, 120, ROOT)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()
    return result.stdout.decode()


def flip_bit(path: Path, at: int, bit: int = 0) -> None:
    with open(path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)[0]
        f.seek(at)
        f.write(bytes([byte ^ (1 << bit)]))


def readable_or_reported(wal: walrus.Walrus, topic: str, count: int) -> tuple[list[int], list[int]]:
    """Offsets of ``topic`` below ``count`` that read back, and those that raise
    CorruptionError; an offset in neither list was lost silently."""
    readable, damaged = [], []
    for offset in range(count):
        try:
            got = wal.batch_read_for_topic(topic, 0, checkpoint=False, start_offset=offset)
        except CorruptionError:
            damaged.append(offset)
            continue
        if got and got[0].offset == offset:
            readable.append(offset)
    return readable, damaged


def reported_offsets(damage: list[Damage], topic: str) -> set[int]:
    """The offsets of ``topic`` that ``damage`` lists."""
    return {o for d in damage if d.topic == topic
            and d.first_offset is not None and d.last_offset is not None
            for o in range(d.first_offset, d.last_offset + 1)}


# --- a damaged TOPIC record ---------------------------------------------------------------------


def _secret_between_others(directory: Path, backend: str) -> Path:
    crashed(directory, backend, """
        w.append_for_topic('other', b'o0')
        w.batch_append_for_topic('secret', [b'secret-0', b'secret-1'])
        w.append_for_topic('other', b'o1')
    """)
    segment = segment_files(directory)[0]  # (a spare may have been made ahead of need)
    return segment


def _name_copies(segment: Path) -> list[int]:
    data = segment.read_bytes()
    found, at = [], data.find(b"secret")
    while at >= 0:
        if data[at - 32 + 12] == _codec.TOPIC:  # the name of a TOPIC record, not an entry
            found.append(at)
        at = data.find(b"secret", at + 1)
    return found


def test_one_damaged_topic_record_loses_neither_the_name_nor_the_id(tmp_path: Path,
                                                                    backend: str) -> None:
    directory = tmp_path / "wal"
    segment = _secret_between_others(directory, backend)
    with open(segment, "r+b") as f:  # one byte of the name in the record that creates it
        f.seek(_name_copies(segment)[0])
        f.write(b"S")
    topics = crashed(directory, backend, """
        print(','.join(w.topics()))
        w.append_for_topic('public', b'public-0')
    """).strip().split(",")
    assert topics == ["other", "secret"]
    with walrus.Walrus(data_dir=directory, backend=backend) as wal:
        assert [e.data for e in peek_all(wal, "public")] == [b"public-0"]
        assert [e.data for e in peek_all(wal, "secret")] == [b"secret-0", b"secret-1"]
        assert [(d.topic, d.first_offset) for d in wal.damage()] == [(None, None)]


def test_entries_of_a_topic_whose_name_is_lost_are_reported_and_its_id_never_reused(
        tmp_path: Path, backend: str, caplog: pytest.LogCaptureFixture) -> None:
    directory = tmp_path / "wal"
    segment = _secret_between_others(directory, backend)
    for at in _name_copies(segment):  # every copy of the name
        with open(segment, "r+b") as f:
            f.seek(at)
            f.write(b"S")
    with caplog.at_level(logging.WARNING, logger="walrus"):
        topics = crashed(directory, backend, """
            print(','.join(w.topics()))
            w.append_for_topic('public', b'public-0')
        """).strip().split(",")
    assert topics == ["other"]
    with caplog.at_level(logging.WARNING, logger="walrus"):
        wal = walrus.Walrus(data_dir=directory, backend=backend)
    with wal:
        assert [e.data for e in peek_all(wal, "public")] == [b"public-0"]
        assert [e.data for e in peek_all(wal, "other")] == [b"o0", b"o1"]
        lost = [d for d in wal.damage() if d.first_offset is not None]
        assert [(d.topic, d.first_offset, d.last_offset, d.path) for d in lost] == [
            (None, 0, 1, str(segment))]
        assert "topic id 2" in lost[0].reason
    assert "topic id 2" in caplog.text
    report = verify_directory(directory)
    assert any("topic id 2" in d.problem for d in report.damage)


def test_a_lost_creating_batch_is_reported_at_its_offsets(tmp_path: Path, backend: str) -> None:
    """Every record of a topic's first batch destroyed: its name survives in later segments'
    preambles, and its first offsets were never consumed, so they cannot have been reclaimed:
    they are damaged, not gone."""
    directory = tmp_path / "wal"
    crashed(directory, backend, """
        w.batch_append_for_topic('a', [b'a-0', b'a-1'])
        for i in range(80):
            w.append_for_topic('b', b'b-%d' % i + b'.' * 100)
        w.append_for_topic('a', b'a-2')
    """, segment_size=SEGMENT)
    for index in directory.glob("*.idx"):  # damage an indexed segment hides is found by reads
        index.unlink()
    first = segment_files(directory)[0]
    with open(first, "r+b") as f:  # the TOPIC record, both entries and the name's copy
        end = first.read_bytes().index(b"b-0") - 32
        f.seek(_codec.SEGMENT_HEADER_SIZE)
        f.write(bytes(end - _codec.SEGMENT_HEADER_SIZE))
    with walrus.Walrus(data_dir=directory, backend=backend, segment_size=SEGMENT) as wal:
        assert readable_or_reported(wal, "a", 3) == ([2], [0, 1])
        assert [(d.topic, d.first_offset, d.last_offset) for d in wal.damage()
                if d.topic is not None] == [("a", 0, 1)]
        assert len(readable_or_reported(wal, "b", 80)[0]) == 80
        wal.append_for_topic("a", b"a-3")
        assert [e.offset for e in peek_all(wal, "a", 3)] == [3]


# --- a damaged length field -----------------------------------------------------------------------


@pytest.fixture
def hundred_synced(tmp_path: Path, backend: str) -> Iterator[Path]:
    directory = tmp_path / "wal"
    crashed(directory, backend, """
        for i in range(100):
            w.append_for_topic('t', b'entry-%03d' % i + b'.' * 90)
    """)
    yield directory


@pytest.mark.parametrize("bit", [4, 20])
def test_a_flipped_length_bit_loses_only_its_own_entry(hundred_synced: Path, backend: str,
                                                       bit: int,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    segment = segment_files(hundred_synced)[0]  # (a spare may have been made ahead of need)
    length_field = segment.read_bytes().index(b"entry-010") - 32 + 4
    flip_bit(segment, length_field + bit // 8, bit % 8)
    with caplog.at_level(logging.WARNING, logger="walrus"):
        wal = walrus.Walrus(data_dir=hundred_synced, backend=backend)
    with wal:
        readable, damaged = readable_or_reported(wal, "t", 100)
        assert damaged == [10] and readable == [o for o in range(100) if o != 10]
        assert [(d.topic, d.first_offset, d.last_offset, d.path) for d in wal.damage()] == [
            ("t", 10, 10, str(segment))]
        wal.append_for_topic("t", b"next")
        assert [e.offset for e in peek_all(wal, "t", 100)] == [100]  # offsets never reused
    assert "entry 10" in caplog.text
    report = verify_directory(hundred_synced)
    assert [(d.topic, d.offset) for d in report.damage] == [("t", 10)]


@pytest.mark.parametrize("damaged", [1, 2, 3])
def test_a_batch_broken_by_damage_keeps_the_offsets_it_was_framed_with(
        tmp_path: Path, backend: str, damaged: int) -> None:
    """The damaged record's header is unreadable; the records of its batch before it say which
    entry it was, and how many the batch held: no offset of it is handed out again."""
    directory = tmp_path / "wal"
    crashed(directory, backend, """
        w.append_for_topic('t', b't-0')
        w.batch_append_for_topic('t', [b't-1', b't-2', b't-3'])
        w.append_for_topic('other', b'o-0')
    """)
    segment = segment_files(directory)[0]
    length_field = segment.read_bytes().index(b"t-%d" % damaged) - 32 + 4
    with open(segment, "r+b") as f:
        f.seek(length_field)
        f.write(b"\xf0\xff\xff\xff")  # an implausible length: the header says nothing
    with walrus.Walrus(data_dir=directory, backend=backend) as wal:
        readable, reported = readable_or_reported(wal, "t", 4)
        assert reported == [damaged] and readable == [o for o in range(4) if o != damaged]
        assert [(d.topic, d.first_offset, d.last_offset) for d in wal.damage()] == [
            ("t", damaged, damaged)]
        wal.append_for_topic("t", b"t-4")
        assert [e.offset for e in peek_all(wal, "t", 4)] == [4]


# --- a damaged segment header ---------------------------------------------------------------------


def assert_losses_reported_and_offsets_kept(wal: walrus.Walrus, damage: list[Damage],
                                            written: dict[str, list[bytes]]) -> None:
    """Every entry of each topic reads back or is reported damaged (by reads and by
    ``damage()`` alike), and the next append gets the offset after the last one written."""
    for topic, entries in written.items():
        readable, damaged = readable_or_reported(wal, topic, len(entries))
        assert damaged and sorted(readable + damaged) == list(range(len(entries)))
        assert reported_offsets(damage, topic) == set(damaged)
        wal.append_for_topic(topic, b"more")
        assert peek_all(wal, topic, len(entries))[0].offset == len(entries)


def _three_topics(directory: Path, backend: str) -> dict[str, list[bytes]]:
    written: dict[str, list[bytes]] = {"a": [], "b": [], "c": []}
    with walrus.Walrus(data_dir=directory, backend=backend, segment_size=SEGMENT) as wal:
        for i in range(150):
            topic = "abc"[i % 3]
            data = b"%s-%d|" % (topic.encode(), len(written[topic])) + b"." * 100
            wal.append_for_topic(topic, data)
            written[topic].append(data)
    return written


@pytest.mark.parametrize(("which", "index", "at"), [
    ("first", "indexed", 20), ("last", "indexed", 60), ("first", "crashed", 0),
    ("last", "crashed", 24)])
def test_a_damaged_segment_header_hides_nothing(tmp_path: Path, backend: str, which: str,
                                                index: str, at: int) -> None:
    directory = tmp_path / "wal"
    written = _three_topics(directory, backend)
    segments = segment_files(directory)
    assert len(segments) >= 3
    segment = segments[0] if which == "first" else segments[-1]
    if index == "crashed":  # no index to take the salt from: it comes from the records
        for path in directory.glob("*.idx"):
            path.unlink()
    flip_bit(segment, at)
    with walrus.Walrus(data_dir=directory, backend=backend, segment_size=SEGMENT) as wal:
        for topic, entries in written.items():
            assert [e.data for e in peek_all(wal, topic)] == entries
        [damage] = wal.damage()
        assert (damage.topic, damage.first_offset, damage.path) == (None, None, str(segment))
        assert "bad segment header" in damage.reason
        for topic, entries in written.items():
            wal.append_for_topic(topic, b"more")
            assert peek_all(wal, topic, len(entries))[0].offset == len(entries)
    with walrus.Walrus(data_dir=directory, backend=backend, segment_size=SEGMENT) as wal:
        for topic, entries in written.items():  # the damaged file is never written into
            assert [e.data for e in peek_all(wal, topic)] == [*entries, b"more"]
    assert any("bad segment header" in d.problem for d in verify_directory(directory).damage)


def _write_segment(path: Path, header: _codec.SegmentHeader,
                   records: list[tuple[int, int, int, bytes]]) -> list[int]:
    """A segment file of SEGMENT bytes holding ``records`` (kind, batch_left, seq, payload)
    of topic id 1; returns where each record starts."""
    data = bytearray(SEGMENT)
    data[:_codec.SEGMENT_HEADER_SIZE] = _codec.encode_segment_header(header)
    pos, starts = _codec.SEGMENT_HEADER_SIZE, []
    for kind, left, seq, payload in records:
        record = _codec.encode_record(kind, 1, left, seq, 0, payload, header.salt)
        starts.append(pos)
        data[pos:pos + len(record)] = record
        pos += len(record)
    path.write_bytes(bytes(data))
    return starts


@pytest.mark.parametrize("damaged", [False, True])
def test_undone_appends_before_a_recovered_header_never_come_back(tmp_path: Path, backend: str,
                                                                  damaged: bool) -> None:
    """Segment 1 holds valid records past where the log ended in it (appends undone after a
    failed sync, whose offsets segment 2 then used): segment 2's ``prev_end`` says where the
    log ended; with that header damaged, segment 2's preamble says it."""
    directory = tmp_path / "wal"
    directory.mkdir()
    kept = [b"e%d" % i for i in range(5)]
    first = [(_codec.TOPIC, 5, 0, b"t")] + [(_codec.ENTRY, 4 - i, i, d) for i, d in
                                           enumerate(kept)]
    starts = _write_segment(directory / segment_name(1), _codec.SegmentHeader(1, 11, 0), [
        *first, (_codec.TOPIC, 0, 5, b"t"), (_codec.ENTRY, 0, 5, b"undone-5"),
        (_codec.ENTRY, 0, 6, b"undone-6")])
    real = [b"real-5", b"real-6", b"real-7"]
    ended = 1 << _codec.SEG_SHIFT | starts[7]
    _write_segment(directory / segment_name(2), _codec.SegmentHeader(
        2, 22, ended, flags=_codec.FOLLOWS_FAILED_SYNC, prev_durable=ended), [
        (_codec.TOPIC, 0, 5, b"t"), *[(_codec.ENTRY, 0, 5 + i, d) for i, d in enumerate(real)]])
    if damaged:
        flip_bit(directory / segment_name(2), 33)  # in prev_end
    with walrus.Walrus(data_dir=directory, backend=backend) as wal:
        assert [e.data for e in peek_all(wal, "t")] == [*kept, *real]
        assert [d.path for d in wal.damage()] == (
            [str(directory / segment_name(2))] if damaged else [])


def test_a_lost_segment_is_reported_and_its_offsets_never_reused(tmp_path: Path,
                                                                 backend: str) -> None:
    directory = tmp_path / "wal"
    written = _three_topics(directory, backend)
    middle = segment_files(directory)[1]
    middle.write_bytes(bytes(middle.stat().st_size))  # header and records zeroed
    (directory / index_name(int(middle.name[:16], 16))).unlink()
    with walrus.Walrus(data_dir=directory, backend=backend, segment_size=SEGMENT) as wal:
        damage = wal.damage()
        assert any(d.path == str(middle) and d.first_offset is None for d in damage)
        assert_losses_reported_and_offsets_kept(wal, damage, written)


def test_a_segment_cut_short_opens_and_reports_what_it_lost(tmp_path: Path,
                                                             backend: str) -> None:
    directory = tmp_path / "wal"
    written = _three_topics(directory, backend)
    first = segment_files(directory)[0]
    for index in directory.glob("*.idx"):
        index.unlink()
    os.truncate(first, first.stat().st_size // 2 + 3)
    with walrus.Walrus(data_dir=directory, backend=backend, segment_size=SEGMENT) as wal:
        damage = wal.damage()
        assert_losses_reported_and_offsets_kept(wal, damage, written)


# --- what a crash leaves by design is not damage -----------------------------------------------


@pytest.mark.parametrize("leftovers", [[b"", b""], [bytes(SEGMENT), b""],
                                       [b"WALRUSPY\x01", bytes(SEGMENT)]])
def test_unfinished_new_segments_are_not_damage(tmp_path: Path, backend: str,
                                                leftovers: list[bytes]) -> None:
    directory = tmp_path / "wal"
    with walrus.Walrus(data_dir=directory, backend=backend, segment_size=SEGMENT) as wal:
        wal.append_for_topic("t", b"hello")
    last = int(segment_files(directory)[-1].name[:16], 16)
    ghosts = [directory / segment_name(last + 1 + i) for i in range(len(leftovers))]
    for ghost, data in zip(ghosts, leftovers, strict=True):
        ghost.write_bytes(data)  # created, header not (or not wholly) written: a power cut
    report = verify_directory(directory)
    assert report.ok, report.lines()
    assert all(any(g.name in n for n in report.notes) for g in ghosts)
    with walrus.Walrus(data_dir=directory, backend=backend, segment_size=SEGMENT) as wal:
        assert wal.damage() == []
        assert [e.data for e in peek_all(wal, "t")] == [b"hello"]
    assert not any(g.exists() for g in ghosts)
    assert verify_directory(directory).ok


def test_a_torn_tail_is_not_damage(tmp_path: Path, backend: str) -> None:
    directory = tmp_path / "wal"
    crashed(directory, backend, "for i in range(5):\n    w.append_for_topic('t', b'x%d' % i)\n")
    segment = segment_files(directory)[0]  # (a spare may have been made ahead of need)
    end = segment.read_bytes().rindex(b"x4") + 8
    with open(segment, "r+b") as f:  # half a record: a write the crash interrupted
        f.seek(end)
        f.write(_codec.encode_record(_codec.ENTRY, 1, 0, 5, 0, b"half", 1)[:20])
    with walrus.Walrus(data_dir=directory, backend=backend) as wal:
        assert wal.damage() == []
        assert [e.data for e in peek_all(wal, "t")] == [b"x%d" % i for i in range(5)]


def test_damage_is_a_frozen_public_value() -> None:
    damage = Damage("t", 3, 5, "/d/0000000000000001.wal", "damaged on disk")
    assert damage == Damage("t", 3, 5, "/d/0000000000000001.wal", "damaged on disk")
    with pytest.raises(AttributeError):
        damage.topic = "u"  # type: ignore[misc]
    assert "entries 3..5" in damage.describe()


# --- recovery time is linear -------------------------------------------------------------------

SALT = 0x5EED
BASE = 7 << _codec.SEG_SHIFT


@pytest.fixture
def counted_checks(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Count the record checks a scan makes; stop it (failing) past a generous bound."""
    calls = [0]
    real = _codec.check

    def check(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] > 20_000:
            raise AssertionError("the scan checks far more positions than there are records")
        return real(*args, **kwargs)

    monkeypatch.setattr(_codec, "check", check)
    yield calls


def _segment(records: list[bytes], size: int) -> tuple[bytearray, list[int]]:
    buf = bytearray(size)
    pos, offsets = _codec.SEGMENT_HEADER_SIZE, []
    for record in records:
        offsets.append(pos)
        buf[pos:pos + len(record)] = record
        pos += len(record)
    return buf, offsets


def test_a_damaged_header_before_incompressible_data_is_scanned_in_linear_time(
        counted_checks: list[int]) -> None:
    noise = random.Random(12).randbytes(256 << 10)
    records = [_codec.encode_record(_codec.ENTRY, 1, 0, i, BASE, data, SALT)
               for i, data in enumerate([b"first", noise, b"last"])]
    buf, offsets = _segment(records, 300 << 10)
    buf[offsets[1] + 12] = 9  # the big record's kind: its header is no longer plausible
    result = _codec.scan(bytes(buf), _codec.SEGMENT_HEADER_SIZE, len(buf) - 32, SALT, BASE,
                         durable=offsets[2])
    assert [r.pos for r in result.records] == [offsets[0], offsets[2]]
    assert [pos for pos, _ in result.damaged] == [offsets[1]]
    assert counted_checks[0] < 100


def test_many_damaged_records_are_judged_in_linear_time(counted_checks: list[int]) -> None:
    count = 3000
    records = [_codec.encode_record(_codec.ENTRY, 1, 0, i, 0, b"entry %d" % i, SALT)
               for i in range(count)]
    buf, offsets = _segment(records, 1 << 20)
    end = offsets[-1] + len(records[-1])  # only the last record says all before it was synced
    buf[end:end + 32] = _codec.encode_record(_codec.CURSOR, 1, 0, 0, BASE | end, b"", SALT)
    for pos in offsets[1:count:2]:  # every other entry's payload damaged
        buf[pos + 33] ^= 0xFF
    result = _codec.scan(bytes(buf), _codec.SEGMENT_HEADER_SIZE, len(buf) - 32, SALT, BASE)
    assert [pos for pos, _ in result.damaged] == offsets[1:count:2]
    assert len(result.records) == count // 2 + 1
    assert counted_checks[0] < 4 * count


def test_damage_found_on_open_is_printed_without_any_logging_configured(tmp_path: Path) -> None:
    """Damage is loud by default: a program that configured no logging still sees it on
    stderr (and quiet mode keeps warnings)."""
    d = tmp_path / "w"
    with walrus.Walrus(data_dir=d, segment_size=8192) as wal:
        for i in range(150):
            wal.append_for_topic("abc"[i % 3], b"%d|" % i + b"." * 100)
    flip_bit(segment_files(d)[0], 20)  # the first segment's header: its number field
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(PLUGINS)])}
    env.pop("WALRUS_QUIET", None)
    code = ("import sys, walrus\n"
            "with walrus.Walrus(data_dir=sys.argv[1], segment_size=8192) as wal:\n"
            "    assert wal.damage(), 'nothing reported'\n")
    for quiet in (False, True):
        done = subprocess.run([sys.executable, "-c", code, str(d)], capture_output=True,
                              text=True, timeout=60, env={**env, **(
                                  {"WALRUS_QUIET": "1"} if quiet else {})})
        assert done.returncode == 0, done.stderr
        assert "damage found on open" in done.stderr, done.stderr


def test_a_lost_segment_holding_every_entry_of_a_topic_is_reported(tmp_path: Path,
                                                                    backend: str) -> None:
    """Only consumed entries are ever reclaimed: a topic whose every stored entry went with a
    deleted segment has them reported damaged, not taken for reclaimed."""
    d = tmp_path / "w"
    with walrus.Walrus(data_dir=d, backend=backend, segment_size=8192) as wal:
        wal.batch_append_for_topic("big", [b"%d" % i + b"." * 200 for i in range(100)])
        for _ in range(10):
            wal.read_next("big")
        for i in range(200):  # later segments, whose preambles name "big" and its cursor
            wal.append_for_topic("other", b"%d" % i + b"." * 100)
        t = wal._log.by_name["big"]
        holding = {lsn >> _codec.SEG_SHIFT for lsn in t.lsns}
    assert len(holding) == 1  # the batch got a segment of its own
    number = holding.pop()
    (d / segment_name(number)).unlink()
    (d / index_name(number)).unlink(missing_ok=True)
    with walrus.Walrus(data_dir=d, backend=backend, segment_size=8192) as wal:
        assert reported_offsets(wal.damage(), "big") == set(range(10, 100))
        with pytest.raises(CorruptionError):
            wal.read_next("big", checkpoint=False)
        wal.append_for_topic("big", b"after")
        assert wal.get_topic_entry_count("big") == 91  # 90 reported damaged, then the new one
