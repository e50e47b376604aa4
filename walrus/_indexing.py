"""Index files: a segment's summary built from memory, and written so reopening skips it."""

from __future__ import annotations

import os

from . import _codec
from ._codec import SegmentSummary, TopicSummary
from ._log import Log
from ._making import sync_directory
from ._segment import Segment, index_name
from ._speedups import record_bytes


def summary_of(log: Log, seg: Segment, end: int | None = None) -> SegmentSummary:
    """The index of a segment, built from memory (no rescan).

    With ``end``, only records before that offset (a checkpoint of the active segment
    while appends go on: entries before ``end`` never change).
    """
    covered = seg.end if end is None else end
    summary = SegmentSummary(seg.number, seg.salt, covered, seg.sealed and end is None)
    meta = log.states.in_segment(seg.number)
    buf, _ = seg.region(0, covered)  # the records' headers: read no further than they go
    for tid, t in list(log.by_tid.items()):
        lo, hi = t.lsn_range(seg.number, covered)
        m = meta.get(tid)
        if hi == lo and m is None:
            continue
        entry = TopicSummary()
        if m is not None:
            entry.name, entry.next_seq = m.name, m.next_seq
            entry.cursor, entry.mark = m.cursor, m.mark
        if hi > lo:
            entry.first_seq = t.first_seq + lo
            entry.lsns = t.lsns[lo:hi]
            entry.nbytes = record_bytes(buf, entry.lsns)
        summary.topics[tid] = entry
    return summary


def write_index(directory: str, seg: Segment, summary: SegmentSummary) -> None:
    """Persist a segment's index: write, fsync, rename (the segment is synced already)."""
    path = os.path.join(directory, index_name(seg.number))
    tmp = path + ".tmp"
    data = _codec.encode_index(summary)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    sync_directory(directory)


def index_segment(log: Log, seg: Segment) -> SegmentSummary:
    """Write the whole index of ``seg`` (sealed, or active at a clean close); returns it."""
    summary = summary_of(log, seg)
    write_index(log.directory, seg, summary)
    return summary
