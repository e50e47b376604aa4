"""A disk image the conformance kit's power-loss test produced (``walrus.testing``, NoFsync,
the ``tear`` policy), kept because recovery misjudges it.

Before the cut the log ran through segments 3, 4 and 5, none of it synced past byte 2704 of
segment 3 (every record claims that durable point). The image keeps segment 3 up to its MARK
at 2704 and tears what followed; loses segment 4's header rewrite (the file still holds the
header of a prepared, unused segment); keeps segment 5's header (``prev_end`` in segment 4)
and its first record. Nothing durable was lost. Recovery keeps segment 4 as the end of the log,
so segment 3 is not the newest segment and its torn, never durable tail is reported as
damage (entries of topic 'b' that raise ``CorruptionError``) instead of being cut.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from walrus import CorruptionError, Walrus

from ._workload import payload

IMAGE = Path(__file__).parent / "data" / "power-cut-lost-roll.tar.gz"


def unpack(tmp_path: Path) -> Path:
    """The image's files (regular files only) in a fresh directory."""
    image = tmp_path / "image"
    image.mkdir()
    with tarfile.open(IMAGE) as archive:
        for member in archive.getmembers():
            data = archive.extractfile(member) if member.isfile() else None
            if data is not None:
                (image / Path(member.name).name).write_bytes(data.read())
    return image


@pytest.mark.xfail(strict=True, reason="recovery reports a torn tail that was never durable as "
                                       "damage when the next segment's header rewrite was lost")
def test_a_lost_roll_leaves_no_damage(tmp_path: Path) -> None:
    with Walrus(data_dir=unpack(tmp_path), backend="pwrite", segment_size=8192) as wal:
        assert wal.damage() == []
        for topic in ("a", "b"):
            offset = 0
            while batch := wal.batch_read_for_topic(topic, 1 << 30, checkpoint=False,
                                                    start_offset=offset):
                for entry in batch:
                    assert entry.data == payload(topic, entry.offset)
                offset = batch[-1].offset + 1


def test_the_image_is_what_the_note_says(tmp_path: Path) -> None:
    """Today's reading of the image (so the expected failure above is this one)."""
    with Walrus(data_dir=unpack(tmp_path), backend="pwrite", segment_size=8192) as wal:
        assert [(d.topic, d.first_offset, d.last_offset) for d in wal.damage()] == [
            ("b", 29, 32)]
        with pytest.raises(CorruptionError):
            wal.batch_read_for_topic("b", 1 << 30, checkpoint=False, start_offset=29)
