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

from .test_recovery_lost_roll import recovers_cleanly

IMAGE = Path(__file__).parent / "data" / "power-cut-torn-header.tar.gz"


def test_a_torn_header_after_a_lost_tail_is_no_damage_and_keeps_every_durable_entry(
        tmp_path: Path) -> None:
    recovers_cleanly(tmp_path, IMAGE, breaks_after=2, counts={"a": 24, "b": 19}, gone=3)
