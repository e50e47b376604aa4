"""Reclamation: the oldest segments every persisted cursor has passed are deleted."""

from __future__ import annotations

import os
from collections.abc import Iterator

from ._codec import SEG_SHIFT
from ._log import Log
from ._segment import Segment, index_name


def settled(log: Log, segments: list[Segment] | None = None) -> Iterator[Segment]:
    """The oldest segments that are sealed, synced and indexed, oldest first: the only ones
    that may expire or be deleted (the first segment that is not ends them). ``segments``:
    a copy of the log's, taken by the caller (else taken here: a roll may add one)."""
    for seg in list(log.segments.values()) if segments is None else segments:
        if seg is log.active or seg in log.unsynced or seg in log.to_index:
            return
        yield seg


def low_watermark(log: Log, persisted: dict[int, int]) -> int:
    """LSN below which every entry is consumed by the given (durable) cursors."""
    active = log.active
    assert active is not None
    low = active.lsn_base
    for tid, cursor in persisted.items():
        t = log.by_tid.get(tid)
        if t is None:
            continue
        lsn = t.first_unconsumed_lsn(max(cursor, t.first_seq))
        if lsn is not None and lsn < low:
            low = lsn
    return low


def delete_before(log: Log, low: int) -> list[Segment]:
    """Forget and delete the oldest segments wholly below ``low``.

    The caller has synced the cursors that ``low`` was computed from. Only a prefix of the
    log is ever deleted, and never a segment still waiting to be synced or indexed. (That
    also keeps what was appended while the caller read and synced the cursors: ``low`` does
    not account for it, but the segments it filled are not indexed yet.)
    """
    doomed = []
    for seg in settled(log):
        if (seg.number + 1) << SEG_SHIFT > low:
            break
        doomed.append(seg)
    if not doomed:
        return []
    oldest_kept = doomed[-1].number + 1
    buffers = [(seg.number, seg.whole()) for seg in doomed]
    for t in list(log.by_tid.values()):
        with t.read_lock:
            log.trim(t, *t.stored_from(oldest_kept, buffers))
    log.forget(doomed)
    for seg in doomed:
        seg.close()
        # The index first: a crash between the two leaves a segment that reopens by a scan
        # and is deleted again, not an index file nothing ever deletes.
        for path in (os.path.join(log.directory, index_name(seg.number)), seg.path):
            try:
                os.unlink(path)
            except (FileNotFoundError, IsADirectoryError):  # not ours (a folder so named)
                pass
    return doomed
