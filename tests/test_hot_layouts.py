"""The C hot paths' direct reads (``walrus/_native/hot.c``): the fields of ``Log`` and
``Cursor`` at their slots, the append lock's ``locked`` flag and a topic's LSN array read and
written where CPython lays them out, checked at import; the same records, LSNs and cursors as
the Python path, and the call taken wherever the direct write must not run."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from array import array
from pathlib import Path
from typing import Any

import pytest

from walrus import Entry, FsyncSchedule, ReadConsistency, Walrus, _codec, _speedups
from walrus._cursors import Cursor
from walrus._log import Log
from walrus._native import hot

from .test_hot import held

needs_hot = pytest.mark.skipif(_speedups.hot_append is None, reason=_speedups.HOT_REASON)

ROOT = Path(__file__).resolve().parent.parent
PAYLOADS = [bytes([i % 251]) * (i % 300) for i in range(1500)]
"""Enough appends for the LSN array to grow several times (in place, then through append)."""


def _open(path: Path) -> Walrus:
    return Walrus(data_dir=str(path), backend="mmap", fsync_schedule=FsyncSchedule.NoFsync,
                  consistency=ReadConsistency.AtLeastOnce(persist_every=10_000))


def _state(w: Walrus) -> tuple[object, ...]:
    log = w._log
    t = log.by_name["t"]
    seg = log.active
    assert seg is not None
    records = [_codec.decode_entry(log.segments[lsn >> _codec.SEG_SHIFT].view,
                                   lsn & _codec.OFFSET_MASK,
                                   log.segments[lsn >> _codec.SEG_SHIFT].salt)
               for lsn in t.lsns]
    return (list(t.lsns), t.nbytes, t.next_seq, t.visible, seg.end, records)


@needs_hot
def test_the_layouts_hold_on_this_interpreter() -> None:
    """CPython 3.11 and 3.12 lay the lock and the array out as hot.c says."""
    module, _reason = hot()
    assert module is not None
    expected = sys.implementation.name == "cpython" and sys.version_info[:2] in ((3, 11),
                                                                                  (3, 12))
    assert module.direct()[:2] == (expected, expected)


@needs_hot
def test_the_c_appends_leave_what_the_python_appends_leave(tmp_path: Path) -> None:
    """LSNs, sizes, offsets, write position and the records themselves, over enough appends
    for the LSN array to grow through array.append between the direct writes."""
    with _open(tmp_path / "c") as c, _open(tmp_path / "py") as py:
        c.append_for_topic("t", b"first")
        py.append_for_topic("t", b"first")
        slow_calls: list[object] = []

        def slow(*args: object) -> object:
            slow_calls.append(args)
            return Log.append(*args)  # type: ignore[arg-type]

        offsets = [_speedups.hot_append(c._log, slow, "t", p) for p in PAYLOADS]
        assert offsets == [Log.append(py._log, "t", p) for p in PAYLOADS]
        assert slow_calls == []  # every one went through C
        assert _state(c) == _state(py)
        assert [e.data for e in c.batch_read_for_topic("t", 1 << 30, checkpoint=False)] == [
            b"first", *PAYLOADS]


@needs_hot
def test_an_lsn_array_that_lends_its_buffer_is_not_written_in_place(wal_dir: Path) -> None:
    """While a memoryview of the LSN array is alive the array may not change size: the C
    append calls array.append, which refuses (as Log.append's would), instead of writing the
    LSN into the array's room behind the view's back."""
    with _open(wal_dir) as w:
        w.append_for_topic("t", b"first")
        t = w._log.by_name["t"]
        before = len(t.lsns)
        with memoryview(t.lsns) as view:
            with pytest.raises(BufferError):
                _speedups.hot_append(w._log, Log.append, "t", b"x")
            assert len(view) == before
        assert len(t.lsns) == before


@pytest.fixture
def wal_dir(tmp_path: Path) -> Path:
    return tmp_path / "d"


class OtherLock:
    """A lock that is not a threading.Lock (as an instrumented one in a test would be)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.asked = 0

    def locked(self) -> bool:
        self.asked += 1
        return self._lock.locked()

    def __enter__(self) -> bool:
        return self._lock.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._lock.__exit__(*exc)


@needs_hot
def test_a_lock_of_another_type_is_asked_whether_it_is_held(wal_dir: Path) -> None:
    """Only a threading.Lock's flag is read directly; any other lock answers locked()."""
    with _open(wal_dir) as w:
        w.append_for_topic("t", b"first")
        log = w._log
        lock = OtherLock()
        log._mutex = lock  # type: ignore[assignment]
        release = held(lock)
        calls: list[object] = []

        def slow(*args: object) -> str:
            calls.append(args)
            return "slow"

        try:
            assert _speedups.hot_append(log, slow, "t", b"x") == "slow"
        finally:
            release()
        assert len(calls) == 1 and log.by_name["t"].next_seq == 1 and lock.asked == 1
        assert _speedups.hot_append(log, Log.append, "t", b"y") == 1  # free: the C path
        assert lock.asked == 2


@needs_hot
def test_the_hot_fields_are_slots() -> None:
    """What the C paths read at fixed offsets (see hot.c) is a slot of Log and Cursor."""
    for cls, names in ((Log, ("_by_name", "_mutex", "closed", "_sync_each", "_on_visible",
                              "_active", "_durable")),
                       (Cursor, ("_topics", "named", "closed", "_lazy_every"))):
        for name in names:
            assert type(cls.__dict__[name]).__name__ == "member_descriptor", (cls, name)


CHILD = """
import sys
from pathlib import Path
from walrus import Entry, FsyncSchedule, ReadConsistency, Walrus
from walrus._native import hot
module, _ = hot()
assert module.direct()[:2] == (False, False), module.direct()
with Walrus(data_dir=sys.argv[1], backend="mmap", fsync_schedule=FsyncSchedule.NoFsync,
            consistency=ReadConsistency.AtLeastOnce(persist_every=10_000)) as w:
    assert [w.append_for_topic("t", bytes([i % 251]) * (i % 300)) for i in range(1500)] == list(
        range(1500))
    got = [w.read_next("t") for _ in range(1500)]
    assert got == [Entry(bytes([i % 251]) * (i % 300), i, "t") for i in range(1500)], got[:3]
    assert w.read_next("t") is None
print("ok")
"""


@needs_hot
def test_without_the_direct_reads_the_calls_give_the_same_results(tmp_path: Path) -> None:
    """WALRUS_HOT_LAYOUTS=0 (or a layout that does not hold): locked() and array.append
    are called, with the same offsets, records and reads."""
    env = {**os.environ, "WALRUS_HOT_LAYOUTS": "0", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "d")], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_reads_after_c_appends_are_the_entries(wal_dir: Path) -> None:
    """Shared and named cursors read back every entry appended (C or Python, per build)."""
    with _open(wal_dir) as w:
        for p in PAYLOADS:
            w.append_for_topic("t", p)
        assert [w.read_next("t") for _ in PAYLOADS] == [
            Entry(p, i, "t") for i, p in enumerate(PAYLOADS)]
        assert [w.read_next("t", consumer="n") for _ in PAYLOADS] == [
            Entry(p, i, "t") for i, p in enumerate(PAYLOADS)]
        assert w.read_next("t") is None and w.read_next("t", consumer="n") is None
        assert w._topics["t"].cursor == len(PAYLOADS)
        assert isinstance(w._topics["t"].lsns, array)


@needs_hot
@pytest.mark.parametrize("change", ["the consumer goes", "its topic goes",
                                    "another consumer comes"])
def test_a_named_position_is_looked_up_again_after_a_change(wal_dir: Path,
                                                             change: str) -> None:
    """The C read remembers the last consumer's Position; any change to the cursor's
    ``named`` table, or to the consumer's own, sends it back to the look-ups."""
    with _open(wal_dir) as w:
        w.batch_append_for_topic("t", [b"a", b"b", b"c", b"d"])
        cursor = w._cursor
        assert w.read_next("t", consumer="c") == Entry(b"a", 0, "t")  # fills the read-ahead
        calls: list[object] = []

        def slow(*args: object, **kwargs: object) -> str:
            calls.append(args)
            return "slow"

        assert _speedups.hot_read_next(cursor, slow, "t", consumer="c").offset == 1
        assert calls == []
        position = cursor.named["c"]["t"]
        if change == "the consumer goes":
            mine = cursor.named.pop("c")
        elif change == "its topic goes":
            mine = {"t": cursor.named["c"].pop("t")}
        else:
            cursor.named["other"] = {}
        expected = 2 if change == "another consumer comes" else "slow"
        got = _speedups.hot_read_next(cursor, slow, "t", consumer="c")
        assert (got if got == "slow" else got.offset) == expected
        assert position.cursor == (3 if expected == 2 else 2)
        if change != "another consumer comes":
            assert len(calls) == 1
            cursor.named["c"] = mine  # as it was, for close()
