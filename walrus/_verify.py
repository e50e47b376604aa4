"""``walrus verify``: check every segment, record and index file of a data directory.

Read-only and lock-free, so it is safe beside a live writer. Every segment is scanned in full
(index files are not trusted, they are checked against the scan), segment summaries are folded
into topics exactly as recovery folds them, and every damaged entry is reported with its topic,
offset, file and byte position. What recovery handles by design (a torn tail after a crash, a
segment that was never durable) is reported as a note, not as damage.
"""

from __future__ import annotations

import bisect
import errno
import itertools
import os
import time
from collections.abc import Iterable

import attrs

from . import _codec
from ._codec import (
    DAMAGED,
    OFFSET_MASK,
    SEG_SHIFT,
    SEGMENT_HEADER_SIZE,
    Record,
    ScanResult,
    SegmentSummary,
)
from ._directory import Directory, parse_index_name, scan_limit, settled_scan
from ._errors import StorageError
from ._recovery import Rebuilder, went_on_past
from ._segment import Segment, index_name, list_directory, parse_name, segment_name
from .backends._base import Backend
from .plugins._selection import select_backend

HEADER_TRIES = 5


@attrs.frozen
class Damage:
    """One damaged thing: an entry (topic and offset known), a record, a header or an index."""

    file: str
    position: int | None
    topic: str | None
    offset: int | None
    problem: str

    def describe(self) -> str:
        where = self.file if self.position is None else f"{self.file} at byte {self.position}"
        what = (f"topic {self.topic!r} entry {self.offset}: " if self.topic is not None
                and self.offset is not None else "")
        return f"DAMAGED {what}{self.problem} ({where})"


@attrs.define
class Report:
    """What a verification found."""

    directory: str
    segments: int = 0
    records: int = 0
    entries: int = 0
    topics: int = 0
    damage: list[Damage] = attrs.field(factory=list)
    notes: list[str] = attrs.field(factory=list)

    @property
    def ok(self) -> bool:
        return not self.damage

    def lines(self) -> list[str]:
        """The report as text, one finding a line, a summary last."""
        out = [d.describe() for d in self.damage] + [f"note: {n}" for n in self.notes]
        status = "OK" if self.ok else f"{len(self.damage)} problem(s) found"
        out.append(f"{self.directory}: {self.segments} segment(s), {self.records} record(s), "
                   f"{self.entries} entries in {self.topics} topic(s): {status}")
        return out


@attrs.define
class _Scanned:
    segment: Segment
    result: ScanResult
    summary: SegmentSummary
    evidence: bool
    """Something in this segment proves it was durable once (an index, a durability claim)."""
    index: SegmentSummary | None
    """The segment's index file, when it has a valid one."""
    index_problem: str | None
    """Why its index file cannot be used, when it has one that cannot."""


def verify_directory(directory: str | os.PathLike[str], backend: str | None = None) -> Report:
    """Check a data directory; raises StorageError if it is not one that can be read."""
    path = os.fspath(directory)
    if not os.path.isdir(path):
        if os.path.exists(path):
            raise StorageError(errno.ENOTDIR, f"data directory {path} is not a directory")
        raise StorageError(2, f"data directory {path} does not exist")
    _, io = select_backend(backend)
    try:
        return _Verifier(path, io).run()
    finally:
        io.close()


class _Verifier:
    def __init__(self, directory: str, backend: Backend) -> None:
        self.directory = directory
        self.backend = backend
        self.report = Report(directory)
        self.files = Directory(directory, backend, read_only=True)
        self.damaged: dict[tuple[int, int], Record | None] = {}
        """Every damaged record found by a scan, by (segment number, byte position)."""
        self.damaged_until: dict[tuple[int, int], int] = {}
        """Where the next intact record after each damaged place begins."""
        self.recovered: set[int] = set()
        """Segments whose damaged header was recovered (their ``prev_end`` is unknown)."""

    def run(self) -> Report:
        names, _ = list_directory(self.directory)
        numbers = sorted(n for n in map(parse_name, names) if n is not None)
        segments = self._open(numbers)
        try:
            scanned = [self._scan(seg, segments[i + 1] if i + 1 < len(segments) else None)
                       for i, seg in enumerate(segments)]
            kept = self._check_continuity(scanned)
            for item in scanned:
                self._check_index(item)
            self._check_orphan_indexes(names, {seg.number for seg in segments})
            self._check_entries(kept)
        finally:
            for seg in segments:
                seg.close()
        return self.report

    # --- segments -------------------------------------------------------------------------------

    def _open(self, numbers: list[int]) -> list[Segment]:
        """Open the segments as recovery does (a damaged header is recovered from the
        segment's records or index), noting what recovery would remove."""
        # A live writer may be stamping a header right now (a segment it is creating, or
        # a spare it is putting to use): look again before calling it damaged.
        for attempt in range(HEADER_TRIES):
            files = Directory(self.directory, self.backend, read_only=True)
            opened = files.open_segments(numbers)
            if not files.damage or attempt + 1 == HEADER_TRIES:
                break
            for seg in opened:
                seg.close()
            time.sleep(0.05)
        self.recovered = files.recovered
        for found in files.damage:
            self.report.damage.append(Damage(os.path.basename(found.path), 0, None, None,
                                             found.reason))
        for path in files.blank:
            self.report.notes.append(
                f"{os.path.basename(path)} is a new segment without a header yet (being "
                "created, or a crash while it was created; recovery removes it)")
        gone = set(numbers) - {seg.number for seg in opened} - {
            parse_name(os.path.basename(p)) for p in [*files.blank, *(
                d.path for d in files.damage)]}
        for number in sorted(gone):
            if not os.path.exists(os.path.join(self.directory, segment_name(number))):
                self.report.notes.append(
                    f"{segment_name(number)} was deleted while verifying (reclaimed)")
        self.report.segments = len(opened)
        return opened

    def _scan(self, seg: Segment, nxt: Segment | None) -> _Scanned:
        limit = scan_limit(seg, nxt)
        index, problem = self._read_index(seg)
        # An index is written once what it covers was synced: damage below its end is
        # corruption, never a torn tail (recovery trusts the index the same way).
        durable = min(index.end, limit) if index is not None else 0
        buf, base, result = settled_scan(seg, SEGMENT_HEADER_SIZE, limit, live=True,
                                         durable=durable)
        summary = _codec.summarize(seg.number, seg.salt, result, buf, base)
        self.report.records += result.counted
        self._note_damage(seg.number, result)
        evidence = (index is not None or problem is not None
                    or any(r.durable >= seg.lsn_base for r in result.records))
        return _Scanned(seg, result, summary, evidence, index, problem)

    def _note_damage(self, number: int, result: ScanResult) -> None:
        """Remember damaged records, and the holes where a record with an unreadable header
        must start (records are contiguous: one ends where the next begins)."""
        for pos, record in result.damaged:
            self.damaged[(number, pos)] = record
        spans = sorted([(r.pos, r.end) for r in result.records]
                       + [(pos, r.end) for pos, r in result.damaged if r is not None])
        for (_, end), (start, _) in itertools.pairwise(spans):
            if end < start:
                self.damaged.setdefault((number, end), None)
        # Each damaged place reaches to the next intact record: records an index puts in
        # there are damaged too, even where the damage hides where they begin.
        intact = sorted(r.pos for r in result.records)
        for key in [k for k in self.damaged if k[0] == number]:
            after = bisect.bisect_right(intact, key[1])
            self.damaged_until[key] = intact[after] if after < len(intact) else result.end

    def _read_index(self, seg: Segment) -> tuple[SegmentSummary | None, str | None]:
        return self.files.read_index(seg.number, seg.salt)

    def _check_continuity(self, scanned: list[_Scanned]) -> list[_Scanned]:
        """Segments recovery keeps; a break in the log before durable data is damage."""
        for i, item in enumerate(scanned):
            name = os.path.basename(item.segment.path)
            nxt = scanned[i + 1].segment if i + 1 < len(scanned) else None
            if nxt is None:
                if item.result.torn:
                    self.report.notes.append(
                        f"{name} ends in an interrupted write at byte {item.result.end} "
                        "(a write in progress, or a crash; recovery cuts it)")
                continue
            if (nxt.number in self.recovered
                    and went_on_past([s.summary for s in scanned[:i + 1]],
                                     scanned[i + 1].summary)
                    and not any(later.evidence for later in scanned[i + 1:])):
                self.report.notes.append(
                    f"the log breaks off after {name}: the header of the segment after it is "
                    "unreadable and its records say the log went on past what is here, so "
                    "it and the segments after it were never durable; recovery discards them")
                gone = {os.path.basename(later.segment.path) for later in scanned[i + 1:]}
                self.report.damage = [d for d in self.report.damage if d.file not in gone]
                return scanned[:i + 1]
            if nxt.prev_end >> SEG_SHIFT != item.segment.number:
                if (item.segment.number < nxt.prev_end >> SEG_SHIFT < nxt.number
                        and not any(later.evidence for later in scanned[i + 1:])):
                    self.report.notes.append(
                        f"the log breaks off after {name}: the segment it went on in is "
                        "missing or never got its header, and the segments after it were never "
                        "durable; recovery discards them")
                    return scanned[:i + 1]
                continue
            expected = nxt.prev_end & OFFSET_MASK
            if item.result.end >= expected:
                continue
            if any(later.evidence for later in scanned[i + 1:]):
                # The log went on after this segment, so what stopped the scan is corruption,
                # not a torn tail: read on past it, reporting each damaged record.
                self._rescan_as_durable(item, expected)
                continue
            self.report.notes.append(
                f"the log breaks off in {name} at byte {item.result.end}; the segments after "
                "it were never durable and recovery discards them")
            return scanned[:i + 1]
        return scanned

    def _rescan_as_durable(self, item: _Scanned, limit: int) -> None:
        seg = item.segment
        buf, base, result = settled_scan(seg, SEGMENT_HEADER_SIZE, limit, live=True,
                                         durable=limit)
        self._note_damage(seg.number, result)
        self.report.records += result.counted - item.result.counted
        item.result = result
        item.summary = _codec.summarize(seg.number, seg.salt, result, buf, base)

    # --- index files --------------------------------------------------------------------------

    def _check_index(self, item: _Scanned) -> None:
        seg = item.segment
        name = index_name(seg.number)
        if item.index_problem is not None:
            self.report.damage.append(Damage(name, None, None, None, item.index_problem))
            return
        index = item.index
        if index is None:
            index, _ = self._read_index(seg)  # written since we scanned?
            if index is None:
                return
        result = item.result
        if index.end > result.end:
            # A live writer may have filled the segment and indexed it since we scanned it.
            _, _, result = settled_scan(seg, SEGMENT_HEADER_SIZE, index.end, live=True,
                                     durable=index.end)
        if index.end > result.end:
            self.report.damage.append(Damage(
                name, None, None, None, f"index covers the segment to byte {index.end}, but "
                f"its records end at byte {result.end}"))
            return
        prefix = ScanResult([r for r in result.records if r.pos < index.end], index.end,
                            False, [d for d in result.damaged if d[0] < index.end], False)
        expected = _codec.summarize(seg.number, seg.salt, prefix, seg.whole())
        for tid in sorted(set(index.topics) | set(expected.topics)):
            field = _difference(index.topics.get(tid), expected.topics.get(tid),
                                entries=not prefix.damaged)
            if field is not None:
                self.report.damage.append(Damage(
                    name, None, None, None,
                    f"index disagrees with its segment about topic id {tid} ({field})"))

    def _check_orphan_indexes(self, names: Iterable[str], numbers: set[int]) -> None:
        """Index files whose segment was not opened (``numbers``) and is not there now: a
        writer deletes a segment file before its index."""
        for name in sorted(names):
            number = parse_index_name(name)
            if number is not None and number not in numbers and not os.path.exists(
                    os.path.join(self.directory, segment_name(number))):
                self.report.notes.append(f"{name} has no segment (it was reclaimed)")

    # --- entries ------------------------------------------------------------------------------

    def _check_entries(self, kept: list[_Scanned]) -> None:
        """Fold the scans into topics as recovery does; report every damaged entry.

        A damaged record that a valid index file places is that entry, exactly (recovery
        trusts the index too); the others are placed by the gaps they leave in the topics.
        """
        rebuilder = Rebuilder(self.directory, self.backend, read_only=True)
        rebuilder.fold([(item.segment, item.summary) for item in kept])
        rebuilder.finish()
        if rebuilder.last_unopened:
            self.report.notes.append(
                f"{os.path.basename(kept[-1].segment.path)} lacks the records that open a "
                "segment with each topic's name and state (a crash interrupted the step that "
                "started it); a writer goes on in a new segment when it opens the directory")
        for tid, places in sorted(rebuilder.unnamed.items()):
            for path, first, last in places:
                self.report.damage.append(Damage(
                    os.path.basename(path), None, None, None,
                    f"entries {first}..{last} of topic id {tid}, whose name was lost with its "
                    "damaged TOPIC records"))
        files = {item.segment.number: os.path.basename(item.segment.path) for item in kept}
        unclaimed = sorted(self.damaged)
        names = {tid: t.name for tid, t in rebuilder.topics.items()}
        reported: set[tuple[int, int]] = set()
        indexed = _indexed_entries(item.index for item in kept)
        for key in list(unclaimed):
            inside = [k for k in indexed
                      if k[0] == key[0] and key[1] <= k[1] < self.damaged_until[key]]
            for place in sorted(inside):
                tid, offset = indexed[place]
                if tid not in names or (tid, offset) in reported:
                    continue
                record = self.damaged.get(place)
                problem = ("checksum mismatch" if record is not None
                           and (record.topic_id, record.seq) == (tid, offset) else
                           "damaged record")
                self.report.damage.append(Damage(files.get(place[0], segment_name(place[0])),
                                                 place[1], names[tid], offset, problem))
                reported.add((tid, offset))
            if inside:
                unclaimed.remove(key)
        pending = []
        for t in sorted(rebuilder.topics.values(), key=lambda t: t.tid):
            self.report.topics += 1
            self.report.entries += len(t.lsns)
            for i, lsn in enumerate(t.lsns):
                if lsn & DAMAGED and (t.tid, t.first_seq + i) not in reported:
                    pending.append((t, t.first_seq + i, lsn & ~DAMAGED))
        # Damaged records whose header still names their entry are that entry, exactly: they
        # are claimed first, so the guesses below never hand one to another topic's gap.
        guessed = []
        for t, offset, lsn in pending:
            key = (lsn >> SEG_SHIFT, lsn & OFFSET_MASK)
            record = self.damaged.get(key)
            if key in unclaimed and record is not None and (record.topic_id, record.seq) == (
                    t.tid, offset):
                self._report_entry(t.name, t.tid, offset, lsn, files, unclaimed)
            else:
                guessed.append((t, offset, lsn))
        for t, offset, lsn in guessed:
            self._report_entry(t.name, t.tid, offset, lsn, files, unclaimed)
        for number, pos in unclaimed:
            self.report.damage.append(Damage(files.get(number, segment_name(number)), pos, None,
                                             None, "damaged record (not an entry of any topic)"))

    def _report_entry(self, topic: str, tid: int, offset: int, lsn: int, files: dict[int, str],
                      unclaimed: list[tuple[int, int]]) -> None:
        key = (lsn >> SEG_SHIFT, lsn & OFFSET_MASK)
        record = self.damaged.get(key)
        if key in unclaimed and record is not None and (record.topic_id, record.seq) == (
                tid, offset):
            problem = "checksum mismatch"
        else:
            # The entry's header itself is damaged: recovery noted the gap after the entry
            # before it, so the first damaged record after that one is this entry's.
            after = key
            key = next((k for k in unclaimed if k >= key), (key[0], -1))
            problem = "damaged record"
            if key[1] < 0:
                # Several records lost in one damaged stretch: where each began is lost too.
                stretch = next((k for k in sorted(self.damaged) if k >= after), None)
                problem = "lost in a damaged stretch" + (
                    f" from byte {stretch[1]} to {self.damaged_until[stretch]}"
                    if stretch is not None and stretch[0] == after[0] else "")
        if key in unclaimed:
            unclaimed.remove(key)
        position = key[1] if key[1] >= 0 else None
        self.report.damage.append(Damage(files.get(key[0], segment_name(key[0])), position,
                                         topic, offset, problem))


def _indexed_entries(indexes: Iterable[SegmentSummary | None]
                     ) -> dict[tuple[int, int], tuple[int, int]]:
    """(segment, byte position) -> (topic id, offset) of every entry valid indexes list."""
    found = {}
    for index in indexes:
        if index is None:
            continue
        for tid, ts in index.topics.items():
            for i, lsn in enumerate(ts.lsns):
                found[(lsn >> SEG_SHIFT, lsn & OFFSET_MASK & ~DAMAGED)] = (tid, ts.first_seq + i)
    return found


def _difference(a: _codec.TopicSummary | None, b: _codec.TopicSummary | None,
                entries: bool) -> str | None:
    """The first field in which an index's topic summary differs from the scan's, or None.

    ``entries=False``: the scan found damaged records, which are reported as such; the entry
    lists then differ because of that damage, not because of the index.
    """
    if a is None or b is None:
        return "listed by only one of them"
    fields: list[tuple[str, object, object]] = [
        ("name", a.name, b.name), ("next offset", a.next_seq, b.next_seq),
        ("cursor", a.cursor, b.cursor), ("clean mark", a.mark, b.mark)]
    if entries:
        fields += [("first offset", a.first_seq, b.first_seq),
                   ("entries", list(a.lsns), list(b.lsns)), ("bytes", a.nbytes, b.nbytes)]
    for label, x, y in fields:
        if x != y:
            return label
    return None
