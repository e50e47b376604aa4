"""A power cut that loses a roll: a disk image the conformance kit's power-loss test produced
(``walrus.testing``, NoFsync, the ``tear`` policy), on which recovery once reported damage.

Before the cut the log ran through segments 3, 4 and 5, none of it synced past byte 2704 of
segment 3 (every record claims that durable point). The image keeps segment 3 up to its MARK
at 2704 and tears what followed; loses segment 4's header rewrite (the file still holds the
header of a prepared, unused segment, which opening removes); keeps segment 5's header
(``prev_end`` in segment 4) and its first record. Nothing durable was lost, so nothing may be
reported damaged: the log ends in segment 3, whose torn tail is cut, and segment 5 on were
never durable. Recovery once kept segment 5, leaving segment 3's torn tail in the middle of
the log, reported as damage (four entries of topic 'b' raising ``CorruptionError``).
"""

from __future__ import annotations

import tarfile
from pathlib import Path

from walrus import Walrus
from walrus._segment import segment_name
from walrus._verify import verify_directory

from ._workload import payload

IMAGE = Path(__file__).parent / "data" / "power-cut-lost-roll.tar.gz"


def unpack(tmp_path: Path, name: str, source: Path = IMAGE) -> Path:
    """The image's files (regular files only) in a fresh directory."""
    image = tmp_path / name
    image.mkdir()
    with tarfile.open(source) as archive:
        for member in archive.getmembers():
            data = archive.extractfile(member) if member.isfile() else None
            if data is not None:
                (image / Path(member.name).name).write_bytes(data.read())
    return image


def test_a_lost_roll_leaves_no_damage_and_keeps_every_durable_entry(tmp_path: Path) -> None:
    recovers_cleanly(tmp_path, IMAGE, breaks_after=3, counts={"a": 25, "b": 29}, gone=5)


def recovers_cleanly(tmp_path: Path, source: Path, breaks_after: int, counts: dict[str, int],
                     gone: int) -> None:
    """The image ``source`` opens without damage, the log ending in segment ``breaks_after``
    with exactly ``counts`` entries (every one before the durable point, no later); it goes
    on, and segment ``gone`` (never durable) was discarded."""
    report = verify_directory(unpack(tmp_path, "verified", source), "pwrite")
    assert report.ok and not report.damage, report.lines()
    assert any(f"breaks off after {segment_name(breaks_after)}" in note
               for note in report.notes), report.lines()
    image = unpack(tmp_path, "image", source)
    with Walrus(data_dir=image, backend="pwrite", segment_size=8192) as wal:
        assert wal.damage() == []
        assert wal.get_topic_entry_counts() == counts
        for topic in counts:
            got = wal.batch_read_for_topic(topic, 1 << 30, checkpoint=False, start_offset=0)
            assert [e.data for e in got] == [payload(topic, i) for i in range(counts[topic])]
        wal.append_for_topic("b", payload("b", counts["b"]))  # the log goes on
    with Walrus(data_dir=image, backend="pwrite", segment_size=8192) as again:
        assert again.get_topic_entry_counts()["b"] == counts["b"] + 1
        assert again.damage() == []
    assert not (image / segment_name(gone)).exists()  # never durable: discarded
