"""The simulated machine: what reached the disk, which faults are armed, and the power switch.

One process-wide :data:`MACHINE` is shared by every fault backend, because walrus builds its
backend through a factory without arguments. Every I/O the engine does through a fault
backend, and every change to a watched directory (seen through an audit hook, because walrus
creates index files, renames and fsyncs directories with plain ``os`` calls), takes one tick
of a global clock. Tests arm faults, cut the power at a chosen tick (or now), and then ask for
the image a disk may hold after the cut (:meth:`Machine.image`).

The directory model follows an ordered-metadata file system (ext4, xfs): operations since
the last directory fsync persist as a prefix, in the order they were made. Index files are
taken as durable once renamed (walrus fsyncs them before the rename; the hook cannot see
``os.fsync``).
"""

from __future__ import annotations

import errno
import os
import random
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

from ._image import Write, crash_image


class PowerOff(OSError):
    """Raised by every disk operation after the power was cut."""

    def __init__(self) -> None:
        super().__init__(errno.EIO, "simulated power loss: the disk is gone")


class Fault(NamedTuple):
    """An armed fault: the next matching operations fail with ``errno``."""

    op: str
    """"write", "sync" or "create" (through the backend), or "index" (creating an index
    file, which walrus does with plain ``os`` calls: seen by the audit hook)."""
    errno: int
    times: int | None = None
    """How many operations fail (None: until disarmed)."""
    skip: int = 0
    """Matching operations let through before the first failure."""
    short: bool = False
    """A failing write first writes part of its bytes (a short write)."""


class Sync(NamedTuple):
    """A completed ``sync_files`` call: writes issued before ``start`` became durable."""

    start: int
    end: int
    began: float
    """``time.monotonic()`` when it started."""
    ended: float


class FileState:
    """A file written through a fault backend: its undurable writes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.pending: list[Write] = []
        """Writes since the last successful sync."""
        self.doomed: list[Write] = []
        """Writes whose sync failed: like Linux after an fsync error, a later successful
        sync does not make them durable (their pages were marked clean, not written)."""


class _DirOp(NamedTuple):
    tick: int
    kind: str
    """"create", "rename" or "remove"."""
    name: str
    other: str = ""
    """For a rename: the new name."""
    content: bytes | None = None
    """What a removed file held, or what a rename replaced (None: nothing)."""
    state: FileState | None = None


class Machine:
    """Disk state, faults and power for every fault backend of this process."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._clear()

    def _clear(self) -> None:
        self.clock = 0
        self.cut_at: int | None = None
        self.dead = False
        self.faults: list[Fault] = []
        self.gates: dict[str, threading.Event] = {}
        """Operations that wait until a test opens the gate (a slow disk, held still)."""
        self.files: dict[str, FileState] = {}
        self.syncs: list[Sync] = []
        self.watched: dict[str, list[_DirOp]] = {}
        """Watched directory -> its operations since the last directory fsync."""
        self.counts = {"write": 0, "sync": 0, "create": 0, "dirop": 0, "dirsync": 0,
                       "fault": 0}

    # --- the clock and the power ---------------------------------------------------------------

    def tick(self) -> int:
        """Advance the clock for one disk operation; raise if the power is (now) off."""
        with self.lock:
            if self.dead:
                raise PowerOff()
            self.clock += 1
            if self.cut_at is not None and self.clock >= self.cut_at:
                self.dead = True
                raise PowerOff()
            return self.clock

    def now(self) -> int:
        """A tick for an event of the test (an acknowledgement): orders it against I/O."""
        with self.lock:
            self.clock += 1
            return self.clock

    def cut(self) -> int:
        """Cut the power now; returns the tick of the cut."""
        with self.lock:
            self.dead = True
            return self.clock

    def reset(self) -> None:
        """Power on, no faults, nothing tracked (between tests)."""
        with self.lock:
            self._clear()

    # --- faults --------------------------------------------------------------------------------

    def arm(self, op: str, err: int, times: int | None = None, skip: int = 0,
            short: bool = False) -> None:
        with self.lock:
            self.faults.append(Fault(op, err, times, skip, short))

    def hold(self, op: str) -> threading.Event:
        """Make the next ``op`` (only "sync" waits) block until the returned event is set."""
        with self.lock:
            gate = self.gates[op] = threading.Event()
            return gate

    def gate(self, op: str) -> None:
        """Called by an operation before it touches the disk: wait if held."""
        with self.lock:
            gate = self.gates.pop(op, None)
        if gate is not None and not gate.wait(30):
            raise TimeoutError(f"a held {op} was never released")

    def disarm(self) -> None:
        with self.lock:
            self.faults.clear()

    def fault(self, op: str) -> Fault | None:
        """The fault that the operation about to run must suffer, if any (consumes it)."""
        with self.lock:
            for i, f in enumerate(self.faults):
                if f.op != op:
                    continue
                if f.skip:
                    self.faults[i] = f._replace(skip=f.skip - 1)
                    return None
                if f.times is not None:
                    if f.times <= 1:
                        del self.faults[i]
                    else:
                        self.faults[i] = f._replace(times=f.times - 1)
                self.counts["fault"] += 1
                return f
            return None

    # --- tracking writes -----------------------------------------------------------------------

    def created(self, path: str) -> FileState:
        """A file was created through a fault backend: track it afresh."""
        with self.lock:
            self.counts["create"] += 1
            st = self.files[path] = FileState(path)
            return st

    def state(self, path: str) -> FileState:
        with self.lock:
            st = self.files.get(path)
            if st is None:
                st = self.files[path] = FileState(path)
            return st

    def wrote(self, st: FileState, tick: int, pos: int, old: bytes, new: bytes) -> None:
        with self.lock:
            self.counts["write"] += 1
            st.pending.append(Write(tick, pos, old, new))

    def synced(self, st: FileState, start: int, ok: bool) -> None:
        """A sync of ``st`` that began at ``start`` ended; ok=False: it failed."""
        with self.lock:
            done = [w for w in st.pending if w.tick < start]
            st.pending = [w for w in st.pending if w.tick >= start]
            if ok:
                self.counts["sync"] += 1
            else:
                st.doomed.extend(done)

    def sync_done(self, start: int, began: float) -> None:
        with self.lock:
            if not self.dead:
                self.syncs.append(Sync(start, self.clock, began, time.monotonic()))

    # --- directories ---------------------------------------------------------------------------

    def watch(self, directory: str | os.PathLike[str]) -> None:
        """Track creations, renames, removals and fsyncs in ``directory`` from now on."""
        _install_hook()
        with self.lock:
            self.watched[os.path.abspath(directory)] = []

    def _audit(self, event: str, args: tuple[object, ...]) -> None:
        if not self.watched or event not in ("open", "os.rename", "os.remove"):
            return
        path = args[0]
        if not isinstance(path, (str, bytes, os.PathLike)):
            return
        path = os.path.abspath(os.fsdecode(path))
        if event == "open":
            flags = args[2]
            if not isinstance(flags, int):
                return
            if path in self.watched and flags & os.O_DIRECTORY:
                self.tick()
                with self.lock:
                    self.counts["dirsync"] += 1
                    self.watched[path] = []  # everything so far is durable now
                return
            if not flags & os.O_CREAT:
                return
        directory, name = os.path.split(path)
        ops = self.watched.get(directory)
        if ops is None:
            return
        tick = self.tick()
        if event == "open" and name.endswith(".idx.tmp"):
            fault = self.fault("index")
            if fault is not None:
                raise OSError(fault.errno, f"injected failure creating {path}")
        with self.lock:
            self.counts["dirop"] += 1
            if event == "open":
                if not os.path.exists(path):
                    ops.append(_DirOp(tick, "create", name))
            elif event == "os.rename":
                dst = os.path.abspath(os.fsdecode(args[1]))  # type: ignore[arg-type]
                old = _read(dst)
                ops.append(_DirOp(tick, "rename", name, os.path.basename(dst), old,
                                  self.files.get(dst)))
            else:
                ops.append(_DirOp(tick, "remove", name, "", _read(path), self.files.get(path)))

    # --- the image after a cut -----------------------------------------------------------------

    def image(self, directory: str | os.PathLike[str], dest: str | os.PathLike[str],
              rng: random.Random, policy: str = "random") -> dict[str, int]:
        """Write into ``dest`` what ``directory`` may hold after the cut; returns what happened.

        Call after :meth:`cut`, so nothing changes while the image is taken.
        """
        with self.lock:
            directory = os.path.abspath(directory)
            ops = list(self.watched.get(directory, []))
            files = {name: (content, self.files.get(os.path.join(directory, name)))
                     for name, content in _settled(directory).items()}
            kept = rng.randint(0, len(ops)) if policy != "keep_all" else len(ops)
            if policy == "lose_all":
                kept = 0
            for op in reversed(ops[kept:]):
                if op.kind == "create":
                    files.pop(op.name, None)
                elif op.kind == "rename":
                    moved = files.pop(op.other, None)
                    if moved is not None:
                        files[op.name] = moved
                    if op.content is not None:
                        files[op.other] = (op.content, op.state)
                else:
                    assert op.content is not None
                    files[op.name] = (op.content, op.state)
            os.makedirs(dest, exist_ok=True)
            undurable = 0
            for name, (content, st) in sorted(files.items()):
                writes = sorted([*st.pending, *st.doomed]) if st is not None else []
                undurable += len(writes)
                data = crash_image(content, writes, rng, policy)
                with open(os.path.join(dest, name), "wb") as f:
                    f.write(data)
            return {"dirops_pending": len(ops), "dirops_kept": kept, "undurable": undurable}


def _settled(directory: str) -> dict[str, bytes]:
    """The files in ``directory`` and their contents, once no change lands while they are
    read. A thread whose operation took its tick before the cut may still be making it (the
    audit hook runs before the call it reports): a file removed or renamed between the
    listing and its read would otherwise show as an empty file no operation ever made."""
    while True:
        names = sorted(os.listdir(directory))
        contents: dict[str, bytes] = {}
        for name in names:
            path = os.path.join(directory, name)
            data = _read(path) if os.path.isfile(path) else None
            if data is not None:
                contents[name] = data
            elif not os.path.lexists(path):
                break  # gone since the listing: look again
            # else a folder, a dangling link: not a file of the image
        else:
            if sorted(os.listdir(directory)) == names:
                return contents
        time.sleep(0.001)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except (FileNotFoundError, IsADirectoryError):
        return None


MACHINE = Machine()
_HOOKED = [False]
_local = threading.local()


def _install_hook() -> None:
    """Audit hooks cannot be removed: install one that forwards to the machine, once."""
    if _HOOKED[0]:
        return

    def hook(event: str, args: tuple[object, ...]) -> None:
        if getattr(_local, "busy", False):
            return
        _local.busy = True
        try:
            MACHINE._audit(event, args)
        finally:
            _local.busy = False

    sys.addaudithook(hook)
    _HOOKED[0] = True


@contextmanager
def powered() -> Iterator[Machine]:
    """A fresh machine for one test (power on, nothing armed), reset again afterwards."""
    MACHINE.reset()
    try:
        yield MACHINE
    finally:
        MACHINE.reset()
