"""A power cut that tears the header of a segment nothing ever synced: a disk image the
conformance kit's power-loss test produced (``walrus.testing``, NoFsync, the ``tear`` policy),
on which recovery once reported damage.

Before the cut the log ran from segment 2 into segments 3 to 6; nothing was synced past byte
7488 of segment 2, where a MARK claims that durable point. The image keeps segment 2 up to its
MARK (the entries written over it later are lost), tears segment 3's header (so its salt, and
``prev_end`` with it, had to be recovered from its records) and keeps most of segment 3's
records, among them the TOPIC records that say topic 'a' went on at offset 25 and 'b' at 20.
Nothing durable was lost, so nothing may be reported damaged: the log ends at segment 2's MARK,
and segment 3 on were never durable. Recovery once kept segment 3 (its lost header hid that the
log went on from past segment 2's end), so the entries missing between the two were reported
as damage ('a' 24 and 'b' 19 raising ``CorruptionError``), as was the torn header.
"""

from __future__ import annotations

from pathlib import Path

from walrus import Walrus
from walrus._verify import verify_directory
from walrus.testing.suite._checks import payload

from .test_recovery_lost_roll import unpack

IMAGE = Path(__file__).parent / "data" / "power-cut-torn-header.tar.gz"


def test_a_torn_header_after_a_lost_tail_is_no_damage_and_keeps_every_durable_entry(
        tmp_path: Path) -> None:
    report = verify_directory(unpack(tmp_path, "verified", IMAGE), "pwrite")
    assert report.ok and not report.damage, report.lines()
    assert any("breaks off after 0000000000000002.wal" in note for note in report.notes)
    image = unpack(tmp_path, "image", IMAGE)
    with Walrus(data_dir=image, backend="pwrite", segment_size=8192) as wal:
        assert wal.damage() == []
        counts = wal.get_topic_entry_counts()
        assert counts == {"a": 24, "b": 19}  # every entry flushed before the cut, no later
        for topic in ("a", "b"):
            got = wal.batch_read_for_topic(topic, 1 << 30, checkpoint=False, start_offset=0)
            assert [e.data for e in got] == [payload(topic, i) for i in range(counts[topic])]
        wal.append_for_topic("a", payload("a", counts["a"]))  # the log goes on
    with Walrus(data_dir=image, backend="pwrite", segment_size=8192) as again:
        assert again.get_topic_entry_counts()["a"] == counts["a"] + 1
        assert again.damage() == []
    assert not (image / "0000000000000003.wal").exists()  # never durable: discarded
