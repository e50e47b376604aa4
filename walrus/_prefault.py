"""Write-faulting the active segment just ahead of the writer, in a thread of its own.

The first store to each page of a fresh segment costs a write fault; on ext4 it also
converts the page's preallocated (unwritten) extent: 1.3-3 us a page, a seventh of an
append from Python. Faulting a whole segment in writable beforehand would take that off the
append path, but a page faulted in writable is dirty: the next sync (or the kernel's own
writeback) would write the rest of the segment as zeros, and later again with the data.

So the writer tells this thread each time it passes another ``step`` bytes (and at each
roll), and the thread faults the next pages in (madvise ``MADV_POPULATE_WRITE``, without the
GIL), only as many as keep the zeros a sync may write under ``ZEROS`` of the bytes the writer
produces between two syncs (see :class:`SyncCadence`). A fast writer (the one that would
feel the faults) gets a lead; a slow one gets none and keeps its faults, which cost it
little at its pace. Not used under SyncEach, where every append's sync would write the lead.

The thread is a native one (:class:`NativePrefaulter`) that never takes the GIL, where the C
extension is built: a writer appending through the C hot path holds the GIL for tens of
milliseconds at a time, and a Python thread woken meanwhile starts too late to keep ahead of
it. ``WALRUS_NATIVE_PREFAULT=0`` (or ``WALRUS_PURE_PYTHON``, or no extension) makes it a
Python thread; :func:`thread_kind` says which, and why.
"""

from __future__ import annotations

import logging
import mmap
import threading
import time

import attrs

from ._config import env
from ._log import Log
from ._native import prefault as native_prefault
from ._segment import Segment

logger = logging.getLogger("walrus")

PAGE = mmap.PAGESIZE
"""Leads and steps are whole pages: a fault-in never stops part-way through one."""

FAST = 200 << 20
"""Bytes per second: about the fastest a single writer appends from Python on this kind of
machine, the pace the largest lead is sized for."""
ZEROS = 0.1
"""The most of the bytes written back by one sync that may be zeros faulted in ahead."""
MIN_LEAD, MAX_LEAD = 1 << 20, 32 << 20
"""Below MIN_LEAD a lead is not worth a thread; MAX_LEAD caps it under rare syncs."""
STEPS = 2
"""Wake-ups per lead: the thread keeps ahead even when it waits a while for the GIL. Few
wake-ups matter too: each takes the GIL twice, and four appending threads feel it."""


@attrs.frozen
class SyncCadence:
    """When the active segment's dirty pages get written back, whatever the schedule."""

    interval: float
    """Seconds between two flusher passes (under NoFsync: the kernel's writeback age)."""
    checkpoint_bytes: int
    """The background worker also syncs (to checkpoint) once the segment grew this much..."""
    tick: float
    """... looking about this often."""

    def bytes_between(self, pace: float) -> float:
        """Bytes a writer going at ``pace`` bytes per second produces between two syncs."""
        return min(pace * self.interval, max(self.checkpoint_bytes, pace * self.tick))

    def lead(self, pace: float) -> int:
        """How far ahead of such a writer pages may be faulted in (page multiple)."""
        lead = min(MAX_LEAD, int(ZEROS * self.bytes_between(pace)))
        return lead - lead % (STEPS * PAGE)  # so that a step is whole pages too


def writeback_age() -> float:
    """Seconds after which the kernel writes a dirty page back by itself (Linux's
    ``dirty_expire_centisecs``; 30 s when it cannot be read): how often the pages of a log
    that nothing syncs get written, in effect."""
    try:
        with open("/proc/sys/vm/dirty_expire_centisecs") as f:
            return max(1, int(f.read())) / 100
    except (OSError, ValueError):
        return 30.0


def thread_kind() -> tuple[bool, str]:
    """Whether a log opened now gets the native prefaulter thread, and why (read at each
    opening: ``WALRUS_NATIVE_PREFAULT=0`` asks for the Python thread)."""
    module, why = native_prefault()
    if module is None:
        return False, why
    if env("WALRUS_NATIVE_PREFAULT") == "0":
        return False, "a Python thread (WALRUS_NATIVE_PREFAULT=0)"
    return True, why


class Prefaulter:
    """The thread that keeps the pages just ahead of the writer faulted in writable."""

    def __init__(self, log: Log, cadence: SyncCadence) -> None:
        self.log = log
        self.cadence = cadence
        self.max_lead = cadence.lead(FAST)
        """The lead of a writer going at FAST."""
        self.step = self.max_lead // STEPS
        """The writer wakes the thread each time it passes this many more bytes."""
        self.seen, self.at = 0, time.monotonic()
        """Where the writer was in its segment at the last look, and when (see :meth:`pace`)."""
        self.seg: Segment | None = None
        """The segment of the last look."""
        self.stopping = False
        self.begin()
        log.watch_progress(self.step, self.wake)

    def begin(self) -> None:
        """Start the thread (before the writer's first wake-up)."""
        self.cue = threading.Lock()
        """Held while there is nothing to do; the writer releases it. Unlike ``Event.set``
        that never blocks: this thread may hold the Event's lock when the GIL preempts it,
        and the writer calls in with the append lock held."""
        self.cue.acquire()
        self.thread = threading.Thread(target=self._run, name="walrus-prefault", daemon=True)
        self.thread.start()

    @classmethod
    def start(cls, log: Log, cadence: SyncCadence) -> Prefaulter | None:
        """A prefaulter for ``log`` if its segments are mapped writable and a writer going
        at FAST would earn a lead worth a thread; else None."""
        active = log.active
        if active is None or active.address is None or cadence.lead(FAST) < MIN_LEAD:
            return None
        if cls is Prefaulter:
            native, why = thread_kind()
            logger.debug("prefaulter thread: %s", why)
            if native:
                return NativePrefaulter(log, cadence)
        return cls(log, cadence)

    def wake(self) -> None:
        try:
            self.cue.release()
        except RuntimeError:  # released already: a wake-up is pending
            pass

    def stop(self) -> None:
        self.log.watch_progress(0, None)
        self.stopping = True
        self.wake()
        self.thread.join()

    def lead(self, moved: int, seconds: float) -> int:
        """Bytes to keep faulted in ahead of a writer that moved ``moved`` bytes in
        ``seconds``: 0 when that is less than a wake-up's worth."""
        lead = min(self.max_lead, self.cadence.lead(moved / max(seconds, 1e-6)))
        return lead if lead >= self.step else 0

    def pace(self, active: Segment) -> tuple[int, int]:
        """Look at the writer, at ``end`` of ``active`` now: ``(end, lead)``. The segment of
        the last look becomes ``active``."""
        seg, now, end = self.seg, time.monotonic(), active.end
        moved = end - self.seen if active is seg \
            else end + (0 if seg is None else seg.end - self.seen)
        lead = self.lead(moved, now - self.at)
        self.seg, self.seen, self.at = active, end, now
        return end, lead

    def _run(self) -> None:
        ready = 0  # pages of self.seg below this are faulted in already
        while True:
            self.cue.acquire()
            if self.stopping:
                return
            active = self.log.active
            if active is None:
                continue
            new = active is not self.seg
            end, lead = self.pace(active)
            if new:
                ready = end
            if lead and end + lead > ready:
                try:
                    active.populate(max(ready, end), end + lead, writable=True)
                except Exception:  # never let the thread die silently
                    logger.exception("walrus prefault thread failed")
                ready = end + lead


class NativePrefaulter(Prefaulter):
    """The same lead, faulted in by a native thread that never takes the GIL.

    The writer's wake-up (under the append lock) computes the lead here, in Python, and hands
    it to the thread with one C call that neither waits nor releases the GIL. Every close of
    a mapped segment retires the mapping from the thread first (``backends/_mmap.py``), so
    it is never unmapped while the thread faults pages of it in.
    """

    def begin(self) -> None:
        module = native_prefault()[0]
        self.native = module.Prefaulter()

    def wake(self) -> None:
        active = self.log.active
        if active is None or active.view is None:
            return
        try:
            if active is not self.seg:
                self.native.map(active.view)
            end, lead = self.pace(active)
            self.native.cue(end, lead)
        except Exception:  # the writer's append goes on: only its pages are not faulted in
            logger.exception("walrus prefault wake-up failed")

    def stop(self) -> None:
        self.log.watch_progress(0, None)
        self.native.stop()
