"""Opening a data directory: rebuild topics, offsets, cursors and clean marks from disk.

Each segment is summarised either from its index file (written once the segment was durable,
so nothing sealed and indexed is ever rescanned) or by scanning it. Summaries are then folded
into topics in log order. The same folding serves read-only observers that follow a live
writer (:meth:`Rebuilder.refresh`).
"""

from __future__ import annotations

import logging
import os
from bisect import bisect_left
from collections.abc import Iterable

import attrs

from . import _codec
from ._codec import DAMAGED, NO_ENTRY, NO_MARK, SEG_SHIFT, SEGMENT_HEADER_SIZE, SegmentSummary
from ._directory import Directory, parse_index_name, scan_limit, settled_scan, unlink
from ._follow import Listing, follow, written_end
from ._log import Log, Recovered
from ._making import sync_directory
from ._segment import Segment, index_name, list_directory, segment_name, size_for
from ._topics import Topic
from .backends._base import Backend

log = logging.getLogger("walrus")

_END_WINDOW = 4096
"""Bytes after the end of an untorn log that ``judge_end`` reads first. On a backend without a
mapping, reading the rest of the file instead (what it needs only after a torn write) cost
about 37 ms of CPU time per reopen with the default 64 MiB segments."""


class Rebuilder(Directory):
    """Turns segment files into topics; keeps what it needs to pick up where it stopped."""

    def __init__(self, directory: str, backend: Backend, read_only: bool) -> None:
        super().__init__(directory, backend, read_only)
        self.topics: dict[int, Topic] = {}
        self.max_tid = 0
        self.segments: list[Segment] = []
        self.meta: dict[int, dict[int, _codec.TopicSummary]] = {}
        self.last_torn = False
        self.last_sealed = False
        self.last_unopened = False
        """The newest segment lacks state records a roll opens a segment with (see
        :meth:`opens_whole`): a writer goes on in a new segment before anything else."""
        self.scanned = 0
        """Bytes of segments scanned (not covered by an index): what reopening cost."""
        self.looked: tuple[int, int, int] | None = None
        """Observers: segment, stop position and file state of the last full look at the
        newest segment's unwritten end (see :meth:`_written`)."""
        self.listing = Listing(directory)
        """Observers: the directory's segment numbers as of the last look."""
        self.unanchored: set[int] = set()
        """Observers: topics whose every known entry was released (reclaimed by the writer)."""
        self.dropped = 0
        """The newest segment that opening found never durable (after a torn write): a writer
        deletes it when it opens the directory, so an observer never follows it either."""
        self.damaged_at: dict[int, list[tuple[int, _codec.Record | None]]] = {}
        """The damaged records each segment's last scan found: (position, header if any)."""
        self.names: dict[int, str] = {}
        """Every topic name any segment records, by id (a name can outlive a damaged copy)."""
        self.unnamed: dict[int, list[tuple[str, int, int]]] = {}
        """Entries of topic ids whose name no segment records: (file, first, last offset)."""
        self.indexed_whole: set[int] = set()
        """Segments whose index file held all of them (a sealed segment's full index, not the
        checkpoint of one that was still being written): synced before it was written."""
        self.synced_once: set[int] = set()
        """Segments whose index file is there but unusable: the segment was synced once (an
        index is written only then), so it is evidence like a usable one (as verify holds)."""

    # --- loading ------------------------------------------------------------------------------

    def summarize(self, seg: Segment, limit: int, start: SegmentSummary | None = None,
                  durable: int = 0) -> tuple[SegmentSummary, bool, bool]:
        """Summary of ``seg`` up to ``limit``; returns (summary, durable evidence, torn).

        ``durable``: a position below which the segment is known to have been synced.
        """
        summary = start
        if summary is None:
            summary = self._load_index(seg)
        if summary is not None and (summary.sealed or summary.end >= limit):
            if start is None:
                self.indexed_whole.add(seg.number)
            return summary, True, False
        self.indexed_whole.discard(seg.number)  # scanned (again): its index did not cover it
        begin = summary.end if summary is not None else SEGMENT_HEADER_SIZE
        buf, base, result = settled_scan(seg, begin, limit, live=self.read_only,
                                         durable=durable)
        self.scanned += max(0, result.end - begin)
        scanned = _codec.summarize(seg.number, seg.salt, result, buf, base)
        evidence = summary is not None or seg.number in self.synced_once or any(
            r.durable >= seg.lsn_base for r in result.records)
        if summary is not None:
            _merge(summary, scanned)
            summary.end, summary.sealed = scanned.end, scanned.sealed
        else:
            summary = scanned
        self.damaged_at[seg.number] = result.damaged
        return summary, evidence, result.torn

    def _load_index(self, seg: Segment) -> SegmentSummary | None:
        """The segment's index, if it has one recovery can trust (else it is scanned)."""
        try:
            summary, problem = self.read_index(seg.number, seg.salt)
        except IsADirectoryError:
            return None
        except OSError as exc:
            summary, problem = None, str(exc)
        if problem is not None:
            log.warning("ignoring index %s (%s); scanning the segment instead",
                        os.path.join(self.directory, index_name(seg.number)), problem)
            self.synced_once.add(seg.number)  # an index is written once its segment is synced
        return summary

    def load(self) -> None:
        """Read the whole directory."""
        segments = self.open_segments(self.segment_numbers())
        summaries: list[tuple[Segment, SegmentSummary, bool, bool]] = []
        for i, seg in enumerate(segments):
            nxt = segments[i + 1] if i + 1 < len(segments) else None
            limit = scan_limit(seg, nxt)
            summary, evidence, torn = self.summarize(seg, limit)
            summaries.append((seg, summary, evidence, torn))
        self._bound_before_recovered(summaries)
        # A segment that ends before its successor says it should: the gap was either lost
        # in a crash (then nothing after it was ever durable, and it goes) or is corruption
        # (a later segment proves it was synced: scan it again, skipping the damage).
        keep = len(summaries)
        for i in range(len(summaries) - 1):
            seg, summary, evidence, torn = summaries[i]
            nxt = summaries[i + 1][0]
            if (nxt.number in self.recovered
                    and went_on_past([s for _, s, _, _ in summaries[:i + 1]], summaries[i + 1][1])
                    and not any(e for _, _, e, _ in summaries[i + 1:])):
                # Its header is lost (so is prev_end), but its TOPIC records say the log went
                # on past what is here: the tail it went on from was never synced, so neither
                # was this segment (a power cut tears one file's unsynced writes and keeps
                # another's), and nothing after the tail was durable.
                keep = i + 1
                break
            if nxt.prev_end >> SEG_SHIFT != seg.number:
                if (seg.number < nxt.prev_end >> SEG_SHIFT < nxt.number
                        and not any(e for _, _, e, _ in summaries[i + 1:])):
                    # The log went on in a segment between them that is gone or never got
                    # its header (a roll lost in a power cut): nothing after it was durable.
                    keep = i + 1
                    break
                continue
            expected = nxt.prev_end & _codec.OFFSET_MASK
            if expected > seg.size - _codec.HEADER_SIZE:
                # The log went on past the end of the file: it was cut short (files are
                # allocated whole when created, so no crash does this). What it still holds
                # was written before what follows, which is kept; its lost tail is damage.
                expected = seg.size - _codec.HEADER_SIZE
                self.found(None, None, None, seg.path, f"file cut short at byte {seg.size}: "
                           "the entries it held after that are lost")
                durable = expected
            elif summary.end >= expected:
                continue
            elif seg.number in self.synced_once or any(e for _, _, e, _ in summaries[i + 1:]):
                durable = expected  # it, or a later segment, was synced: so all of it was
            elif nxt.header.flags & _codec.FOLLOWS_FAILED_SYNC:
                # The log moved on after a failed sync: what this segment held past the
                # durable point then may be lost, and nothing later is suspect for it.
                known = nxt.header.prev_durable
                durable = known & _codec.OFFSET_MASK if known >> SEG_SHIFT == seg.number else 0
            else:
                keep = i + 1
                break
            summary, _, torn = self.summarize(seg, expected, durable=durable)
            summaries[i] = (seg, summary, evidence, torn)
        for seg, _, _, _ in summaries[keep:]:
            log.info("discarding segment %s: it follows a torn write and was never durable",
                        seg.path)
            seg.close()
            self.dropped = max(self.dropped, seg.number)
            # A torn header of a segment that never held anything durable is no damage.
            self.damage = [d for d in self.damage if d.path != seg.path]
            if not self.read_only:  # the index first: one left alone would say it was lost
                unlink(os.path.join(self.directory, index_name(seg.number)))
                unlink(seg.path)
        self.fold([(seg, summary) for seg, summary, _, _ in summaries[:keep]])
        if summaries[:keep]:
            newest, summary, _, torn = summaries[keep - 1]
            self.judge_end(newest, summary.end, torn)
            self.account_deleted(newest.number)
            self.claim_tail_damage(newest)
        if summaries[:keep]:
            last_seg, last, _, torn = summaries[keep - 1]
            # Never append behind a header that failed: continue in a fresh segment.
            self.last_torn = torn or keep < len(summaries) or last_seg.number in self.recovered
            self.last_sealed = last.sealed
        self.finish()
        self.report_damage()

    def _bound_before_recovered(self,
                                summaries: list[tuple[Segment, SegmentSummary, bool, bool]]
                                ) -> None:
        """Where the log ended in a segment followed by one whose header was recovered.

        That header's ``prev_end`` is lost, and a segment abandoned after a failed write or
        sync may hold valid records past it (appends that were undone, whose offsets were
        then used again). The successor's preamble states each topic's next offset when the
        log moved on: the previous segment ends at its first entry at or past one of them.
        """
        for i in range(len(summaries) - 1):
            seg, summary, evidence, _ = summaries[i]
            later = summaries[i + 1]
            if later[0].number not in self.recovered or summary.sealed:
                continue
            cut = _first_entry_at_or_past(summary, later[1])
            if cut is not None and cut < summary.end:
                summary, _, torn = self.summarize(seg, cut)
                summaries[i] = (seg, summary, evidence, torn)

    def fold(self, kept: list[tuple[Segment, SegmentSummary]]) -> None:
        """Fold the segments recovery keeps into topics, oldest first."""
        self.learn_names(summary for _, summary in kept)
        for i, (seg, summary) in enumerate(kept):
            if i == len(kept) - 1:
                self.last_unopened = not self.opens_whole(summary)
            self.apply(seg, summary)

    def opens_whole(self, newest: SegmentSummary) -> bool:
        """Whether the newest segment holds, for every topic the segments before it know
        (folded so far), the records a roll opens a segment with: its TOPIC record (name and
        next offset), its cursor if one was persisted, its mark if it was marked clean.

        A process killed in a roll after the new segment's header and before those records
        leaves a segment without them (a power cut can too, before the segment was synced).
        The log must not go on in it: its topics would be named, and their cursors kept, only
        by older segments, and once retention or reclamation deleted those, a reopen would
        find the topics gone and hand their offsets out again.
        """
        for tid, t in self.topics.items():
            ts = newest.topics.get(tid)
            if (ts is None or ts.name is None or (t.persisted and ts.cursor < 0)
                    or (t.mark >= 0 and ts.mark == NO_MARK)):
                return False
        return True

    # --- folding ------------------------------------------------------------------------------

    def learn_names(self, summaries: Iterable[SegmentSummary]) -> None:
        """Note every topic name the segments record before folding them in: a segment whose
        TOPIC records are damaged takes its topics' names from another one."""
        for summary in summaries:
            for tid, ts in summary.topics.items():
                if ts.name is not None:
                    self.names.setdefault(tid, ts.name)

    def apply(self, seg: Segment, summary: SegmentSummary) -> None:
        """Fold one segment's summary into the topics (segments arrive in log order)."""
        seg.end = summary.end
        seg.sealed = summary.sealed
        if not self.segments or self.segments[-1] is not seg:
            self.segments.append(seg)
        meta = self.meta.setdefault(seg.number, {})
        for tid, ts in summary.topics.items():
            t = self.topics.get(tid)
            self.max_tid = max(self.max_tid, tid)  # an id is never reused for another name
            if t is None:
                name = ts.name if ts.name is not None else self.names.get(tid)
                if name is None:
                    if len(ts.lsns):
                        self.unnamed.setdefault(tid, []).append(
                            (seg.path, ts.first_seq, ts.first_seq + len(ts.lsns) - 1))
                    continue
                t = self._new_topic(tid, name)
            if ts.name is not None:
                m = meta.setdefault(tid, _codec.TopicSummary())
                m.name, m.next_seq = ts.name, max(m.next_seq, ts.next_seq)
            t.next_seq = max(t.next_seq, ts.next_seq)
            if ts.cursor >= 0:
                t.persisted = ts.cursor
                meta.setdefault(tid, _codec.TopicSummary()).cursor = ts.cursor
            if ts.mark != NO_MARK:
                t.mark = ts.mark
                meta.setdefault(tid, _codec.TopicSummary()).mark = ts.mark
            if ts.first_seq >= 0 and len(ts.lsns):
                if tid in self.unanchored:  # its entries before these were reclaimed
                    self.unanchored.discard(tid)
                    if not t.lsns:
                        t.first_seq = max(t.first_seq, ts.first_seq)
                self._add_entries(t, ts)

    def _new_topic(self, tid: int, name: str) -> Topic:
        """A topic found on disk, none of whose entries has been folded in yet."""
        t = self.topics[tid] = Topic(tid, name, 0)
        t.first_seq = NO_ENTRY
        return t

    @staticmethod
    def _add_entries(t: Topic, ts: _codec.TopicSummary) -> None:
        if t.first_seq < 0:
            t.first_seq = ts.first_seq
        expected = t.first_seq + len(t.lsns)
        first, lsns = ts.first_seq, ts.lsns
        if first < expected:  # already known (an observer rescanning): keep the first copy
            lsns = lsns[expected - first:]
            first = expected
            if not lsns:
                return
        if first > expected:  # entries whose records were lost to damage
            t.lose_until(first, t.lsns[-1] if t.lsns else lsns[0] - _codec.ALIGN)
        t.lsns.extend(lsns)
        t.nbytes += ts.nbytes
        t.next_seq = max(t.next_seq, first + len(lsns))

    def account_deleted(self, newest: int) -> None:
        """Index files of segments after the newest one: the segment file was deleted (the
        log only ever deletes a prefix of itself, and an index before its segment). What the
        index says the segment held is lost: reported at its offsets, never handed out again.
        """
        files, _ = list_directory(self.directory)
        for name in sorted(files):
            number = parse_index_name(name)
            if number is None or number <= newest:
                continue
            self.max_number = max(self.max_number, number)
            if os.path.exists(os.path.join(self.directory, segment_name(number))):
                continue  # a live writer made it after the segments were listed (observers)
            summary = self.usable_index(number)
            if summary is None:
                continue
            self.found(None, None, None, os.path.join(self.directory, segment_name(number)),
                       "segment file missing (its index is left): the entries it held are lost")
            at = number << SEG_SHIFT | SEGMENT_HEADER_SIZE
            for tid, ts in summary.topics.items():
                self.max_tid = max(self.max_tid, tid)
                name_ = ts.name if ts.name is not None else self.names.get(tid)
                t = self.topics.get(tid)
                if t is None and name_ is not None:
                    t = self._new_topic(tid, name_)
                if t is None:
                    continue
                reach = max(ts.next_seq, ts.first_seq + len(ts.lsns) if ts.lsns else 0)
                if not t.lsns:
                    t.first_seq = min(t.next_seq, ts.first_seq) if ts.lsns else t.next_seq
                t.lose_until(reach, at)
                t.next_seq = max(t.next_seq, reach)

    def judge_end(self, seg: Segment, end: int, torn: bool) -> None:
        """Is where the newest segment's log ends what a crash leaves (``torn``: with an
        unfinished write after it)?

        A crash leaves unfinished records inside the file, aligned, each within the room the
        file was allocated with. Two things no crash does: end the file inside a record (the
        file was cut short), and leave valid records where no writer puts them (bytes were
        cut out of the file or put into it, moving the records after them). Both are damage,
        said loudly; the entries that the records found there were framed to hold (an
        unfinished batch's records say how many follow) are reported lost at their offsets.
        """
        if not torn:  # the usual end: the mark of a durable point, a SEAL, or zeros
            head, base = seg.region(end, min(seg.size, end + _END_WINDOW))
            status, record = _codec.check(head, end, seg.size, seg.salt, seg.lsn_base, base)
            after = head[end - base:end - base + _codec.HEADER_SIZE]  # type: ignore[index]
            if ((status == _codec.OK and record is not None
                 and record.kind in (_codec.SEAL, _codec.MARK))
                    or (len(after) == _codec.HEADER_SIZE and _codec.only_zeros(after))):
                return  # the loop below would read the rest of the file to say the same
        buf, base = seg.region(end, seg.size)
        stop, framed = end, []
        while True:  # the records of a batch the end of the file broke off, if any
            status, record = _codec.check(buf, stop, seg.size, seg.salt, seg.lsn_base, base)
            if status != _codec.OK or record is None or record.kind in (_codec.SEAL,
                                                                         _codec.MARK):
                break
            framed.append(record)
            stop = record.end
        header = _codec.header_as_written(buf, stop, base)
        if status != _codec.OK and (header is None or (
                header.kind in _codec.KIND_NAMES
                and stop + _codec.HEADER_SIZE + header.length > seg.size)):
            self.found(None, None, None, seg.path, f"file cut short at byte {seg.size}: what "
                       "it held after that is lost, and which entries is known only as far "
                       "as the records before the cut say")
            self._account_lost(seg, end, buf, base, framed + ([header] if header else []))
            return
        if not torn:
            return
        moved = _codec.misplaced_records(buf, end, seg.size, seg.salt, seg.lsn_base, base)
        if moved:
            self.found(None, None, None, seg.path, f"bytes cut out of the file or put into "
                       f"it after byte {end}: the records after that are out of place")
            self.damaged_at.setdefault(seg.number, []).append((end, None))  # the one cut
            self._account_lost(seg, end, buf, base, moved)

    def _account_lost(self, seg: Segment, end: int, buf: object, base: int,
                      records: list[_codec.Record]) -> None:
        """Entries that ``records`` (read past the end of the log, from ``buf``, which holds
        the file from ``base`` on) hold or were framed to hold are lost at ``end``: their
        offsets are damaged, never handed out again."""
        reach: dict[int, int] = {}
        for record in records:
            tid = record.topic_id
            if record.kind not in (_codec.ENTRY, _codec.TOPIC) or not tid:
                continue
            self.max_tid = max(self.max_tid, tid)
            if record.kind == _codec.TOPIC and tid not in self.topics:  # created in there
                at = record.payload_pos
                raw = bytes(buf[at - base:at - base + record.length])  # type: ignore[index]
                if len(raw) == record.length or tid in self.names:  # else cut off too
                    name = raw.decode("utf-8", "surrogatepass")
                    t = self._new_topic(tid, self.names.setdefault(tid, name))
            if tid in self.topics:
                last = record.seq + record.batch_left - (record.kind == _codec.TOPIC)
                reach[tid] = max(reach.get(tid, 0), last + 1)
        for tid, past in reach.items():
            t = self.topics[tid]
            if not t.lsns:
                t.first_seq = t.next_seq
            if t.lose_until(past, seg.lsn_base | end):
                t.next_seq = max(t.next_seq, past)

    def claim_tail_damage(self, seg: Segment) -> None:
        """Give damaged entries at the end of their topics in the newest segment their offsets.

        Elsewhere a lost entry shows as a gap: before a later entry of its topic, or before
        the next offset a later segment's TOPIC record states. After a topic's last entry in
        the newest segment nothing shows it, and its offset would be handed out again. A
        damaged header still says whose it is, unless the damage hit that field too: by its
        topic id, or else by its offset when exactly one such topic expects that one next
        (fields read as written, even from a header that failed its checks: these two are
        only believed when they name such a topic).
        The entry is then lost at that offset (reported by :meth:`report_damage`); a header
        that names no topic either way is reported as a damaged record.
        """
        damaged = self.damaged_at.get(seg.number)
        if not damaged:  # the usual case: no pass over every topic's entries
            return
        accounted = {lsn & ~DAMAGED for t in self.topics.values() for lsn in t.lsns
                     if lsn & DAMAGED}
        for pos, record in damaged:
            lsn = seg.lsn_base | pos
            if lsn in accounted:
                continue
            if record is None:  # a header that failed its checks: its fields as written
                try:
                    buf, base = seg.region(pos, pos + _codec.HEADER_SIZE)
                except OSError:
                    continue
                record = _codec.header_as_written(buf, pos, base)
            if record is None or not _codec.may_be_entry(record):
                continue
            ended = [t for t in self.topics.values()
                     if not t.lsns or t.lsns[-1] & ~DAMAGED < lsn]
            owner = next((t for t in ended if t.tid == record.topic_id), None)
            if owner is None:
                expecting = [t for t in ended if _next_offset(t) == record.seq]
                owner = expecting[0] if len(expecting) == 1 else None
            if owner is None:
                continue
            if not owner.lsns:
                owner.first_seq = owner.next_seq
            else:
                owner.lose_until(owner.next_seq, owner.lsns[-1])
            owner.lose_until(owner.first_seq + len(owner.lsns) + 1, lsn)  # this one
            owner.next_seq = owner.first_seq + len(owner.lsns)
            accounted.add(lsn)

    def finish(self) -> None:
        """Settle cursors and counts once every segment is folded in."""
        for t in self.topics.values():
            if t.first_seq < 0:
                t.first_seq = t.next_seq
            if t.lsns:
                # A TOPIC record may promise entries that no record holds: they were damaged.
                t.lose_until(t.next_seq, t.lsns[-1])
            else:
                t.first_seq = t.next_seq
            if t.first_seq > t.persisted and (t.lsns or self.segments):
                # Only consumed entries are ever reclaimed: unconsumed ones before the first
                # entry found (or before the next offset, when none is found) were lost to
                # damage (a creating batch, its segment's head, or a whole segment).
                first = ((t.lsns[0] & ~DAMAGED) - _codec.ALIGN if t.lsns
                         else self.segments[0].lsn_base | SEGMENT_HEADER_SIZE)
                t.lose_from(t.persisted, first)
            if t.persisted > t.next_seq:
                # Consumed entries were lost with a power cut; never hand their offsets out
                # again (a new entry there would count as consumed).
                t.next_seq = t.persisted
                if not t.lsns:
                    t.first_seq = t.next_seq
            t.place_cursor(t.persisted)
            t.visible = t.next_seq

    def report_damage(self) -> None:
        """List (``damage``) and log what the folded topics show lost or unreadable: runs of
        damaged entries, entries of topics whose name is lost, and damaged records that are
        no entry (state records, or headers too damaged to say whose they were)."""
        files = {seg.number: seg.path for seg in self.segments}
        accounted: set[int] = set()
        for t in sorted(self.topics.values(), key=lambda t: t.tid):
            for number, first, last in _damaged_runs(t):
                self.found(t.name, first, last, files.get(number, segment_name(number)),
                           "unreadable: reads raise CorruptionError")
            accounted.update(lsn & ~DAMAGED for lsn in t.lsns if lsn & DAMAGED)
        for tid, places in sorted(self.unnamed.items()):
            for path, first, last in places:
                self.found(None, first, last, path,
                           f"entries of topic id {tid}, whose name was lost with its damaged "
                           "TOPIC records")
        for number, damaged in sorted(self.damaged_at.items()):
            for pos, _ in damaged:
                if (number << SEG_SHIFT | pos) not in accounted and number in files:
                    self.found(None, None, None, files[number], f"damaged record at byte {pos}")

    # --- following a live writer (read-only observers) -----------------------------------------

    def refresh(self) -> bool:
        """Pick up what a live writer added since the last look, and let go of what it
        deleted (reclaimed segments: their entries were consumed). Returns whether anything
        changed.

        Each segment the writer added is found through the ``prev_end`` links of the newest
        one (see ``_follow``), so none is missed however the writer's work interleaves with
        the look; the newest is read only as far as it is written.
        """
        on_disk = self.listing.get(self.segment_numbers)
        newest = self.segments[-1] if self.segments else None
        known = max(newest.number if newest else 0, self.dropped)
        chain = follow(self.directory, self.backend, known, on_disk)
        fresh = chain.segments
        changed = bool(fresh)
        for seg in fresh:
            self.max_number = max(self.max_number, seg.number)
        if chain.reclaimed and self.segments:
            self._release(list(self.segments), fresh[0].number)
            newest = None
        if newest is not None and not newest.sealed:
            start = SegmentSummary(newest.number, newest.salt, newest.end, False)
            changed |= self._follow_segment(newest, fresh[0] if fresh else None, start)
        for i, seg in enumerate(fresh):
            self._follow_segment(seg, fresh[i + 1] if i + 1 < len(fresh) else None, None)
        gone = self._deleted(on_disk)
        if gone:  # every segment was scanned to its end above: letting go loses nothing
            self._release(gone, self.segments[len(gone)].number)
            changed = True
        if changed:
            for t in self.topics.values():
                if t.first_seq < 0 or not t.lsns:
                    t.first_seq = max(t.first_seq, t.next_seq)
                t.visible = t.next_seq = max(t.next_seq, t.first_seq + len(t.lsns))
                t.place_cursor(t.cursor)
        return changed

    def _deleted(self, on_disk: list[int]) -> list[Segment]:
        """The known segments the writer has deleted: the oldest ones, up to the first still
        there (only a prefix is ever deleted; the newest known one is let go of once a
        successor is known). Each is looked for by name, not compared with the oldest number
        listed: a spare the writer made for a roll that did not wait for it is deleted again
        later, and until then it is listed with a number below the oldest segment's."""
        segments, gone = self.segments, []
        for i in range(len(segments) - 1):  # the common case: the oldest is listed, one step
            seg = segments[i]
            at = bisect_left(on_disk, seg.number)  # the listing is sorted
            if (at < len(on_disk) and on_disk[at] == seg.number) or os.path.exists(seg.path):
                break
            gone.append(seg)
        return gone

    def _follow_segment(self, seg: Segment, nxt: Segment | None,
                        start: SegmentSummary | None) -> bool:
        """Fold in what ``seg`` holds past ``start``: up to where its successor ``nxt`` says
        it ends, or, for the newest segment, as far as the writer has written it. Returns
        whether there was anything."""
        if nxt is not None:
            limit = seg.size - _codec.HEADER_SIZE
            if nxt.prev_end >> SEG_SHIFT == seg.number:
                limit = nxt.prev_end & _codec.OFFSET_MASK
        else:
            if start is None:
                start = self._load_index(seg)
            limit = self._written(seg, start)
        known = bool(self.segments) and self.segments[-1] is seg
        if known and start is not None and limit <= start.end:
            return False
        summary, _, _ = self.summarize(seg, limit, start)
        self.apply(seg, summary)
        return True

    def _written(self, seg: Segment, start: SegmentSummary | None) -> int:
        """How far to scan the newest segment: to where its records stop while the rest is
        unwritten. Past anything else (damage, or a record still arriving) the whole segment
        is scanned as recovery would, but only once for the same stop and the same file
        state: a later look goes further when the writer touched the file (or once a newer
        segment says where this one ends)."""
        limit = seg.size - _codec.HEADER_SIZE
        if start is not None and start.sealed:
            return limit
        begin = start.end if start is not None else SEGMENT_HEADER_SIZE
        end, unwritten = written_end(seg, begin, limit)
        stamp = _stamp(seg.path)  # after the walk: a write seen by neither shows next time
        if self.looked is None:
            self.looked = (seg.number, begin, stamp)  # what load() has just scanned
        look = (seg.number, end, stamp)
        if end < limit and look != self.looked and not (unwritten and end > begin):
            end = limit
        self.looked = look
        return end

    def _release(self, gone: list[Segment], before: int) -> None:
        """Close segments the writer deleted and forget their entries (older than segment
        ``before``): they were consumed. A topic left with no entry starts again at the
        first one a later segment holds (those between were reclaimed unseen)."""
        buffers = [(s.number, s.whole()) for s in gone]
        for t in list(self.topics.values()):
            with t.read_lock:
                t.expire_before(*t.stored_from(before, buffers))  # nothing appends here
                t.ahead = []
                if not t.lsns:
                    self.unanchored.add(t.tid)
        del buffers
        for seg in gone:
            self.segments.remove(seg)
            self.meta.pop(seg.number, None)
            seg.close()


def _merge(into: SegmentSummary, more: SegmentSummary) -> None:
    """Append a scan of a segment's tail to the summary of its head (from its index)."""
    for tid, ts in more.topics.items():
        base = into.topics.get(tid)
        if base is None:
            into.topics[tid] = ts
            continue
        if ts.name is not None:
            base.name = ts.name
        base.next_seq = max(base.next_seq, ts.next_seq)
        if ts.cursor >= 0:
            base.cursor = ts.cursor
        if ts.mark != NO_MARK:
            base.mark = ts.mark
        if ts.first_seq >= 0:
            if base.first_seq < 0:
                base.first_seq = ts.first_seq
            gap = ts.first_seq - (base.first_seq + len(base.lsns))
            if gap > 0:
                base.lose_until(ts.first_seq,
                                base.lsns[-1] if base.lsns else ts.lsns[0] - _codec.ALIGN)
            base.lsns.extend(ts.lsns[max(0, -gap):])
            base.nbytes += ts.nbytes


def open_log(directory: str, backend: Backend, *, segment_size: int, sync_each: bool,
             read_only: bool) -> tuple[Log, Rebuilder]:
    """Recover a directory and return a log ready for appends (or for observing)."""
    rebuilder = Rebuilder(directory, backend, read_only)
    rebuilder.load()
    segments = rebuilder.segments
    found = Recovered(tuple(segments), rebuilder.topics, rebuilder.max_tid, rebuilder.meta)
    if read_only:
        pass
    elif not segments:
        number = rebuilder.max_number + 1
        first = Segment.create(backend, directory, number, size_for(segment_size), 0)
        sync_directory(directory)
        found = attrs.evolve(found, segments=(first,), next_number=number + 1)
    else:
        # Everything recovered is made durable before anything new is written after it.
        last = segments[-1]
        backend.sync_files([last.file])
        for seg in segments[:-1]:
            seg.sealed = True
        # Synced and indexed in full by the background worker: a segment with no index, or
        # only a checkpoint's (the rest may never have been synced). One indexed whole was
        # durable before its index was written; nothing to give back either (its pages were
        # not read, and a mapped file takes its sync descriptor only at its first sync).
        to_index = [s for s in segments[:-1] if s.number not in rebuilder.indexed_whole]
        found = attrs.evolve(
            found, next_number=rebuilder.max_number + 1, durable=last.lsn_base | last.end,
            to_index=tuple(to_index),
            # Never write over bytes a crash left behind: continue in a fresh segment whose
            # header says where this one's log ends.
            abandon_at=(last.lsn_base | last.end
                        if rebuilder.last_torn or rebuilder.last_sealed else None))
    log = Log(directory, backend, found, segment_size=segment_size, sync_each=sync_each,
               read_only=read_only)
    if rebuilder.last_unopened and not read_only:
        log.roll_now()  # before the worker starts: it may delete the older segments
    return log, rebuilder


def _stamp(path: str) -> int:
    """The file's modification time: it changes when the writer writes (0: deleted)."""
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return 0


def _first_entry_at_or_past(summary: SegmentSummary, successor: SegmentSummary) -> int | None:
    """Position in ``summary``'s segment of its first entry whose offset the successor's
    TOPIC records say was still to come when the log moved on (None if there is none)."""
    cut = None
    for tid, ts in summary.topics.items():
        later = successor.topics.get(tid)
        if later is None or later.name is None or ts.first_seq < 0:
            continue
        i = max(0, later.next_seq - ts.first_seq)
        if i < len(ts.lsns) and not ts.lsns[i] & DAMAGED:
            pos = ts.lsns[i] & _codec.OFFSET_MASK
            cut = pos if cut is None else min(cut, pos)
    return cut


def went_on_past(before: Iterable[SegmentSummary], successor: SegmentSummary) -> bool:
    """Do the successor's TOPIC records state a next offset for some topic past every entry
    (and every next offset) the segments ``before`` it hold: entries are missing between?

    What tells, for a successor whose header (and ``prev_end`` with it) is unreadable,
    that the log went on from a point its predecessor does not reach.
    """
    held: dict[int, int] = {}
    for summary in before:
        for tid, ts in summary.topics.items():
            reach = ts.next_seq
            if ts.first_seq >= 0:
                reach = max(reach, ts.first_seq + len(ts.lsns))
            held[tid] = max(held.get(tid, 0), reach)
    return any(later.name is not None and later.next_seq > held.get(tid, 0)
               for tid, later in successor.topics.items())


def _damaged_runs(t: Topic) -> list[tuple[int, int, int]]:
    """(segment number, first, last offset) of each run of damaged entries of ``t``."""
    runs: list[tuple[int, int, int]] = []
    for i, lsn in enumerate(t.lsns):
        if not lsn & DAMAGED:
            continue
        number, offset = lsn >> SEG_SHIFT, t.first_seq + i
        if runs and runs[-1][0] == number and runs[-1][2] == offset - 1:
            runs[-1] = (number, runs[-1][1], offset)
        else:
            runs.append((number, offset, offset))
    return runs


def _next_offset(t: Topic) -> int:
    """The offset a topic's next entry gets, as far as the segments folded in so far say."""
    return max(t.next_seq, t.first_seq + len(t.lsns)) if t.lsns else t.next_seq
