"""On-disk corruption: bit flips and zeroed ranges in segments and index files.

A cleanly closed log (every segment synced and indexed, cursors and clean marks in it) is
damaged at random places, then reopened. Reopening never fails with anything but a
documented error, reads never return wrong data (payloads check themselves), every damaged
entry that a read reaches raises CorruptionError naming its topic and offset, consuming reads
step over it, and the log takes new entries afterwards. A single flip inside one entry's
record damages exactly that entry.
"""

from __future__ import annotations

import random
import shutil
from contextlib import nullcontext
from pathlib import Path
from typing import NamedTuple

import pytest

from walrus import CorruptionError, Walrus, _codec

from ._workload import FIGURES, TOPICS, Recovered, check_content, payload, recovered

SEGMENT = 8192
ENTRIES = 40
"""Per topic: about 20 segments in all."""


class Where(NamedTuple):
    topic: str
    offset: int
    file: str
    pos: int
    size: int
    """Header and payload (padding excluded)."""


def build(path: Path, backend: str) -> list[Where]:
    """The pristine log; returns where every entry's record lies."""
    with Walrus(data_dir=path, backend=backend, segment_size=SEGMENT) as wal:
        for i in range(ENTRIES):
            for topic in TOPICS:
                if i % 4 == 3:
                    wal.batch_append_for_topic(topic, [payload(topic, i)])
                else:
                    wal.append_for_topic(topic, payload(topic, i))
        for _ in range(5):
            wal.read_next(TOPICS[0])
        wal.mark_topic_clean(TOPICS[2])
        where = []
        for topic in TOPICS:
            t = wal._log.by_name[topic]
            for i, lsn in enumerate(t.lsns):
                seg = wal._log.segments[lsn >> _codec.SEG_SHIFT]
                where.append(Where(topic, t.first_seq + i, Path(seg.path).name,
                                   lsn & _codec.OFFSET_MASK,
                                   _codec.HEADER_SIZE + len(payload(topic, t.first_seq + i))))
    return where


@pytest.fixture
def pristine(tmp_path_factory: pytest.TempPathFactory, backend: str) -> tuple[Path, list[Where]]:
    path = tmp_path_factory.mktemp("pristine") / "w"
    return path, build(path, backend)


def damage(path: Path, rng: random.Random, count: int) -> list[tuple[str, int, int]]:
    """``count`` random bit flips or zeroed ranges in random data and index files."""
    files = sorted(p for p in path.iterdir() if p.suffix in (".wal", ".idx"))
    done = []
    for _ in range(count):
        target = rng.choice(files)
        data = bytearray(target.read_bytes())
        pos = rng.randrange(len(data))
        if rng.random() < 0.5:
            data[pos] ^= 1 << rng.randrange(8)
            size = 1
        else:
            size = min(rng.choice([1, 8, 32, 64, 600]), len(data) - pos)
            data[pos:pos + size] = bytes(size)
        target.write_bytes(bytes(data))
        done.append((target.name, pos, size))
    return done


def consume_all(wal: Walrus, topic: str, got: Recovered) -> None:
    """Checkpointing reads step over damage: each offset comes once, as data or as an error."""
    seen = []
    for _ in range(got.end - got.cursor + 1):
        try:
            entry = wal.read_next(topic)
        except CorruptionError as exc:
            assert exc.topic == topic and exc.offset in got.damaged, exc
            seen.append(exc.offset)
            continue
        if entry is None:
            break
        assert entry.data == payload(topic, entry.offset)
        seen.append(entry.offset)
    assert seen == list(range(got.cursor, got.end))


def test_random_damage_never_returns_wrong_data(pristine: tuple[Path, list[Where]],
                                                tmp_path: Path, backend: str) -> None:
    source, _ = pristine
    rng = random.Random(f"damage-{backend}")
    for trial in range(60):
        path = tmp_path / f"t{trial}"
        shutil.copytree(source, path)
        damage(path, rng, rng.randint(1, 8))
        FIGURES["corruption trials (random damage)"] += 1
        with Walrus(data_dir=path, backend=backend, segment_size=SEGMENT) as wal:
            for topic in wal.topics():
                assert topic in TOPICS
                got = recovered(wal, topic)
                check_content(topic, got)
                FIGURES["damaged entries reported"] += len(got.damaged)
                consume_all(wal, topic, got)
                wal.append_for_topic(topic, payload(topic, got.end))
        with Walrus(data_dir=path, backend=backend, segment_size=SEGMENT) as wal:
            for topic in wal.topics():
                got = recovered(wal, topic)
                check_content(topic, got)
                assert got.end - 1 in got.entries  # the entry added after the damage


def test_a_flip_inside_one_record_damages_exactly_that_entry(
        pristine: tuple[Path, list[Where]], tmp_path: Path, backend: str) -> None:
    source, where = pristine
    rng = random.Random(f"flip-{backend}")
    for trial in range(60):
        hit = rng.choice(where)
        path = tmp_path / f"t{trial}"
        shutil.copytree(source, path)
        file = path / hit.file
        data = bytearray(file.read_bytes())
        pos = hit.pos + rng.randrange(hit.size)
        if rng.random() < 0.5:
            data[pos] ^= 1 << rng.randrange(8)
        else:  # a zeroed run that stays inside the record
            end = min(hit.pos + hit.size, pos + rng.choice([1, 8, 32]))
            if any(data[pos:end]):
                data[pos:end] = bytes(end - pos)
            else:  # zero there already: zeroing would change nothing
                data[pos] ^= 0xFF
        file.write_bytes(bytes(data))
        FIGURES["corruption trials (one record)"] += 1
        with Walrus(data_dir=path, backend=backend, segment_size=SEGMENT) as wal:
            for topic in TOPICS:
                got = recovered(wal, topic)
                check_content(topic, got)
                expected = [hit.offset] if topic == hit.topic else []
                assert got.damaged == expected, (hit, got.damaged)
                assert len(got.entries) == ENTRIES - len(expected)
                with pytest.raises(CorruptionError) if expected else nullcontext():
                    wal.batch_read_for_topic(topic, 0, checkpoint=False,
                                             start_offset=hit.offset)


def test_damaged_index_files_fall_back_to_the_segments(pristine: tuple[Path, list[Where]],
                                                      tmp_path: Path, backend: str) -> None:
    source, _ = pristine
    rng = random.Random(f"index-{backend}")
    path = tmp_path / "w"
    shutil.copytree(source, path)
    for index in sorted(path.glob("*.idx")):
        data = bytearray(index.read_bytes())
        for _ in range(3):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        index.write_bytes(bytes(data))
        FIGURES["corruption trials (index files)"] += 1
    with Walrus(data_dir=path, backend=backend, segment_size=SEGMENT) as wal:
        for topic in TOPICS:
            got = recovered(wal, topic)
            check_content(topic, got)
            assert not got.damaged and len(got.entries) == ENTRIES
        assert wal.get_topic_entry_count(TOPICS[0]) == ENTRIES - 5
        assert wal.topic_is_clean(TOPICS[2]) and not wal.topic_is_clean(TOPICS[1])
