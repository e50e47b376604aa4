"""Reads under damage, and batches at the size limit.

A batch of exactly ``MAX_BATCH_ENTRIES`` entries must survive a crash after its
acknowledgement, on a new topic (whose batch carries one record more, the TOPIC record) as on
an existing one. A read that meets damage stops there without consuming what it did not
return: the good entries before a damaged one are delivered, the damaged one raises
``CorruptionError`` naming its topic and offset (and is consumed only by a checkpointing read
that reaches it), and the entries after it follow. A segment file cut short is damage like
any other, on every backend, never an exception from the bytes' unpacking.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from walrus import MAX_BATCH_ENTRIES, CorruptionError, Walrus, _codec
from walrus._verify import verify_directory

from .conftest import run_child

SIZES = (1, MAX_BATCH_ENTRIES - 1, MAX_BATCH_ENTRIES)
SCHEDULES = {"sync_each": "FsyncSchedule.SyncEach", "ms5": "FsyncSchedule.Milliseconds(5)",
             "no_fsync": "FsyncSchedule.NoFsync"}


def entry(topic: str, offset: int) -> bytes:
    return f"{topic}:{offset}".encode()


# --- batches at every boundary -----------------------------------------------------------------


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_batches_at_every_boundary_are_whole_after_a_crash(tmp_path: Path, backend: str,
                                                          schedule: str) -> None:
    """1, 1999 and 2000 entries, as a topic's first append and onto an existing topic,
    acknowledged, then the process dies: every entry is there after reopening, and
    ``walrus verify`` finds nothing wrong."""
    path = tmp_path / "wal"
    run_child(f"""
        import os, sys
        from walrus import FsyncSchedule, Walrus
        w = Walrus(data_dir=sys.argv[1], backend=sys.argv[2], fsync_schedule={SCHEDULES[schedule]})
        for n in {SIZES!r}:
            w.append_for_topic(f"old-{{n}}", b"old-%d:0" % n)
            for kind in ("new", "old"):
                topic = f"{{kind}}-{{n}}"
                first = 0 if kind == "new" else 1
                w.batch_append_for_topic(topic, [f"{{topic}}:{{first + i}}".encode()
                                                 for i in range(n)])
        os._exit(0)  # a crash right after the last acknowledgement
    """, str(path), backend)
    report = verify_directory(path, backend)
    assert report.ok, report.lines()
    with Walrus(data_dir=path, backend=backend) as wal:
        for n in SIZES:
            for kind, count in (("new", n), ("old", n + 1)):
                topic = f"{kind}-{n}"
                assert wal.get_topic_entry_count(topic) == count, topic
                got = wal.batch_read_for_topic(topic, 1 << 30, checkpoint=False)
                got += wal.batch_read_for_topic(topic, 1 << 30, checkpoint=False,
                                                start_offset=len(got))
                assert [(e.offset, e.data) for e in got] == [
                    (i, entry(topic, i)) for i in range(count)]
    assert verify_directory(path, backend).ok


@pytest.mark.parametrize(("kind", "left", "valid"), [
    (_codec.TOPIC, MAX_BATCH_ENTRIES, True),  # heads a full batch on a new topic
    (_codec.TOPIC, MAX_BATCH_ENTRIES + 1, False),
    (_codec.ENTRY, MAX_BATCH_ENTRIES - 1, True),  # first entry of a full batch
    (_codec.ENTRY, MAX_BATCH_ENTRIES, False),
    (_codec.CURSOR, 1, False),  # state records never belong to a batch
    (_codec.SEAL, 1, False),
])
def test_the_record_check_allows_exactly_what_a_batch_can_hold(kind: int, left: int,
                                                               valid: bool) -> None:
    salt = 7
    payload = b"topic" if kind in (_codec.TOPIC, _codec.ENTRY) else b""
    tid = 0 if kind == _codec.SEAL else 1
    record = _codec.encode_record(kind, tid, left, 0, 0, payload, salt)
    buf = bytes(64) + record
    status, _ = _codec.check(buf, 64, len(buf), salt, 0)
    assert status == (_codec.OK if valid else _codec.BAD_HEADER)


# --- a large damaged entry ---------------------------------------------------------------------


def flip(path: Path, marker: bytes, skip: int) -> None:
    """Flip one bit ``skip`` bytes after ``marker`` in the only segment that holds it."""
    for seg in sorted(path.glob("*.wal")):
        data = bytearray(seg.read_bytes())
        at = data.find(marker)
        if at >= 0:
            data[at + skip] ^= 0x10
            seg.write_bytes(bytes(data))
            return
    raise AssertionError(f"{marker!r} not found")


@pytest.fixture
def big_damaged(tmp_path: Path, backend: str) -> Path:
    """Topic ``t``: five small entries, a damaged one larger than a read window, one more."""
    path = tmp_path / "wal"
    with Walrus(data_dir=path, backend=backend) as wal:
        for i in range(5):
            wal.append_for_topic("t", entry("t", i))
        wal.append_for_topic("t", b"big-5|" + b"z" * (300 << 10))
        wal.append_for_topic("t", entry("t", 6))
    flip(path, b"big-5|", 1000)
    return path


def test_a_batch_read_delivers_the_entries_before_a_large_damaged_one(big_damaged: Path,
                                                                     backend: str) -> None:
    with Walrus(data_dir=big_damaged, backend=backend) as wal:
        assert [e.offset for e in wal.batch_read_for_topic("t", 10 << 20)] == [0, 1, 2, 3, 4]
        for _ in range(2):  # a peek at the damage moves nothing
            with pytest.raises(CorruptionError) as peeked:
                wal.batch_read_for_topic("t", 10 << 20, checkpoint=False)
            assert (peeked.value.topic, peeked.value.offset) == ("t", 5)
        assert wal.get_topic_entry_count("t") == 2
        with pytest.raises(CorruptionError) as raised:
            wal.batch_read_for_topic("t", 10 << 20)
        assert (raised.value.topic, raised.value.offset) == ("t", 5)
        assert [(e.offset, e.data) for e in wal.batch_read_for_topic("t", 10 << 20)] == [
            (6, entry("t", 6))]
        assert wal.batch_read_for_topic("t", 10 << 20) == []


def test_read_next_steps_over_a_large_damaged_entry(big_damaged: Path, backend: str) -> None:
    with Walrus(data_dir=big_damaged, backend=backend) as wal:
        assert [wal.read_next("t").offset for _ in range(5)] == [0, 1, 2, 3, 4]  # type: ignore[union-attr]
        with pytest.raises(CorruptionError) as peeked:
            wal.read_next("t", checkpoint=False)
        assert peeked.value.offset == 5
        with pytest.raises(CorruptionError) as raised:
            wal.read_next("t")
        assert (raised.value.topic, raised.value.offset) == ("t", 5)
        got = wal.read_next("t")
        assert got is not None and (got.offset, got.data) == (6, entry("t", 6))
        assert wal.read_next("t") is None


def test_a_start_offset_read_stops_before_a_large_damaged_entry(big_damaged: Path,
                                                               backend: str) -> None:
    with Walrus(data_dir=big_damaged, backend=backend) as wal:
        got = wal.batch_read_for_topic("t", 10 << 20, checkpoint=False, start_offset=2)
        assert [e.offset for e in got] == [2, 3, 4]
        with pytest.raises(CorruptionError):
            wal.batch_read_for_topic("t", 10 << 20, checkpoint=False, start_offset=5)
        assert wal.get_topic_entry_count("t") == 7


# --- a segment cut short -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pristine() -> dict[tuple[str, bool], Path]:
    """Logs written once per backend and ending, copied by each test that damages one."""
    return {}


@pytest.fixture
def truncated(tmp_path_factory: pytest.TempPathFactory,
              pristine: dict[tuple[str, bool], Path]) -> Callable[[Path, str, int, bool], None]:
    """100 entries in 8 KiB segments (about 35 a segment), then segment 2 cut to ``cut``.

    Written by another process, which closes the log or dies without closing it.
    """

    def make(path: Path, backend: str, cut: int, clean: bool = True) -> None:
        source = pristine.get((backend, clean))
        if source is None:
            source = pristine[(backend, clean)] = tmp_path_factory.mktemp("pristine") / "w"
            write_hundred(source, backend, clean)
        shutil.copytree(source, path)
        # The log's second segment, whatever its number: a roll that overtakes the spare the
        # writer's worker is still making takes the next number, and the spare's is skipped.
        os.truncate(sorted(path.glob("*.wal"))[1], cut)

    return make


def write_hundred(path: Path, backend: str, clean: bool) -> None:
    run_child(f"""
        import os, sys
        from walrus import FsyncSchedule, Walrus
        w = Walrus(data_dir=sys.argv[1], backend=sys.argv[2], segment_size=8192,
                   fsync_schedule=FsyncSchedule.SyncEach)
        for i in range(100):
            w.append_for_topic("t", b"t:%d" % i + b"." * 190)
        if {clean!r}:
            w.close()
        os._exit(0)
    """, str(path), backend)


def consume(wal: Walrus, batch: bool) -> tuple[list[int], list[int]]:
    """Consume ``t`` to its end: offsets delivered, offsets a CorruptionError named."""
    delivered: list[int] = []
    errors: list[int] = []
    for _ in range(300):
        try:
            got = (wal.batch_read_for_topic("t", 1 << 20) if batch
                   else [e for e in [wal.read_next("t")] if e is not None])
        except CorruptionError as exc:
            assert exc.topic == "t" and exc.offset is not None
            errors.append(exc.offset)
            continue
        if not got:
            return delivered, errors
        for e in got:
            assert e.data == entry("t", e.offset) + b"." * 190
        delivered += [e.offset for e in got]
    raise AssertionError("the consumer made no progress")


@pytest.mark.parametrize("cut", [100, 3000, 4000])
@pytest.mark.parametrize("batch", [False, True], ids=["read_next", "batch_read"])
def test_a_truncated_segment_costs_only_what_it_no_longer_holds(
        tmp_path: Path, backend: str, cut: int, batch: bool,
        truncated: Callable[[Path, str, int, bool], None]) -> None:
    path = tmp_path / "wal"
    truncated(path, backend, cut, True)
    with Walrus(data_dir=path, backend=backend, segment_size=8192) as wal:
        before = wal.get_topic_entry_count("t")
        delivered, errors = consume(wal, batch)
    # Every offset once, in order: delivered or reported, never skipped or repeated.
    assert sorted(delivered + errors) == list(range(before))
    assert len(set(errors)) == len(errors)
    assert errors, "the cut cost no entry?"
    # The entries before the cut are all delivered.
    assert delivered[:min(errors)] == list(range(min(errors)))


@pytest.mark.parametrize("clean", [True, False], ids=["closed", "crashed"])
def test_a_truncated_segment_is_reported_by_verify_and_peeks_raise(
        tmp_path: Path, backend: str, clean: bool,
        truncated: Callable[[Path, str, int, bool], None]) -> None:
    path = tmp_path / "wal"
    truncated(path, backend, 100, clean)
    report = verify_directory(path, backend)
    assert not report.ok
    with Walrus(data_dir=path, backend=backend, segment_size=8192) as wal:
        count = wal.get_topic_entry_count("t")
        peeks = 0
        for offset in range(count):
            try:
                got = wal.batch_read_for_topic("t", 0, checkpoint=False, start_offset=offset)
            except CorruptionError as exc:
                assert exc.offset == offset
                peeks += 1
                continue
            assert got and got[0].data == entry("t", offset) + b"." * 190
        assert peeks
        assert wal.get_topic_entry_count("t") == count


def test_record_decoding_stops_at_the_end_of_the_buffer() -> None:
    """The record check and entry decoding never read past their buffer (no struct.error)."""
    salt = 3
    record = _codec.encode_record(_codec.ENTRY, 1, 0, 0, 0, b"payload", salt)
    buf = bytes(64) + record
    for size in range(64, 64 + _codec.HEADER_SIZE + len(b"payload")):
        short = buf[:size]
        assert _codec.check(short, 64, len(buf), salt, 0)[0] == _codec.BAD_HEADER
        assert _codec.decode_entry(short, 64, salt) is None


def test_the_log_goes_on_after_its_last_segment_was_cut_short(
        tmp_path: Path, backend: str, truncated: Callable[[Path, str, int, bool], None]) -> None:
    """Appends after reopening roll past a last segment shorter than its index says."""
    path = tmp_path / "wal"
    truncated(path, backend, 3000, True)
    last = max(path.glob("*.wal"))
    os.truncate(last, 200)
    with Walrus(data_dir=path, backend=backend, segment_size=8192) as wal:
        start = wal.get_topic_entry_count("t")
        for i in range(60):
            wal.append_for_topic("t", b"after %d" % i)
    with Walrus(data_dir=path, backend=backend, segment_size=8192) as wal:
        got = wal.batch_read_for_topic("t", 1 << 20, checkpoint=False, start_offset=start)
        assert [(e.offset, e.data) for e in got] == [
            (start + i, b"after %d" % i) for i in range(60)]


def test_an_offset_no_record_holds_reads_as_damage(tmp_path: Path, backend: str) -> None:
    """A cursor persisted past the last entry recovery found (the entries between were lost)
    keeps those offsets from being handed out again; reading one raises, naming it."""
    path = tmp_path / "wal"
    with Walrus(data_dir=path, backend=backend) as wal:
        for i in range(5):
            wal.append_for_topic("t", entry("t", i))
        t = wal._log.by_name["t"]
        wal._log.write_state(t, _codec.CURSOR, 10)  # as if entries 5..9 had been lost
    with Walrus(data_dir=path, backend=backend) as wal:
        assert wal.read_next("t") is None
        got = wal.batch_read_for_topic("t", 1 << 20, checkpoint=False, start_offset=3)
        assert [e.offset for e in got] == [3, 4]
        for offset in (5, 9):
            with pytest.raises(CorruptionError) as raised:
                wal.batch_read_for_topic("t", 1 << 20, checkpoint=False, start_offset=offset)
            assert (raised.value.topic, raised.value.offset) == ("t", offset)


def test_a_new_topic_cut_off_with_its_batch_is_known_and_its_entries_lost(
        tmp_path: Path, backend: str) -> None:
    """A file cut short inside a batch that created its topic: the topic's name is read from
    the records past the end of the log (past what a backend without a mapping read for the
    scan), so the topic exists and its entries are reported lost, never handed out again."""
    path = tmp_path / "wal"
    run_child("""
        import os, sys
        from walrus import Walrus
        w = Walrus(data_dir=sys.argv[1], backend=sys.argv[2], segment_size=1 << 20)
        w.batch_append_for_topic("a", [b"a" * 100] * 3)
        w.batch_append_for_topic("late", [b"l" * 3000] * 4)
        os._exit(0)
    """, str(path), backend)
    (segment,) = sorted(path.glob("*.wal"))
    data = segment.read_bytes()
    os.truncate(segment, data.rindex(b"l" * 3000) + 1000)  # inside the batch's last entry
    with Walrus(data_dir=path, backend=backend) as wal:
        assert sorted(wal.topics()) == ["a", "late"]
        assert any("cut short" in d.reason for d in wal.damage()), wal.damage()
        assert [e.data for e in wal.batch_read_for_topic("a", 1 << 20)] == [b"a" * 100] * 3
        with pytest.raises(CorruptionError) as lost:
            wal.read_next("late")
        assert lost.value.offset == 0
        wal.append_for_topic("late", b"after")
        assert wal.topic_info("late").next_offset == 5  # offsets 0..3 are never handed out again
