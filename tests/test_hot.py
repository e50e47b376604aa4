"""The C hot paths (``walrus/_native/hot.c``): the common case of an append and of a read_next
done in C, everything else handed to the Python method unchanged, and the same results."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
import threading
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from walrus import Entry, FsyncSchedule, ReadConsistency, Walrus, _codec, _speedups
from walrus._cursors import Cursor
from walrus._log import Log

needs_hot = pytest.mark.skipif(_speedups.hot_append is None, reason=_speedups.HOT_REASON)

PAYLOAD = b"p" * 100


class Slow:
    """A stand-in for the Python method: records each call and returns ``answer``."""

    def __init__(self, answer: object = "slow") -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.kwargs: list[dict[str, Any]] = []
        self.answer = answer

    def __call__(self, *args: Any, **kwargs: Any) -> object:
        self.calls.append(args)
        self.kwargs.append(kwargs)
        return self.answer


@pytest.fixture
def wal(tmp_path: Path) -> Walrus:
    w = Walrus(data_dir=str(tmp_path / "d"), backend="mmap",
               fsync_schedule=FsyncSchedule.NoFsync,
               consistency=ReadConsistency.AtLeastOnce(persist_every=100))
    w.append_for_topic("t", b"first")
    yield w  # type: ignore[misc]
    w.close()


def record_at(log: Log, t_name: str, seq: int) -> tuple[int, int, bytes | None] | None:
    t = log.by_name[t_name]
    lsn = t.lsns[seq - t.first_seq]
    seg = log.segments[lsn >> _codec.SEG_SHIFT]
    return _codec.decode_entry(seg.view, lsn & _codec.OFFSET_MASK, seg.salt)


@needs_hot
def test_the_facade_is_bound_to_the_c_paths(wal: Walrus) -> None:
    assert wal.append_for_topic.func is _speedups.hot_append  # type: ignore[attr-defined]
    assert wal.read_next.func is _speedups.hot_read_next  # type: ignore[attr-defined]


@needs_hot
def test_a_c_append_writes_the_record_and_the_bookkeeping_the_python_one_does(
        wal: Walrus) -> None:
    log = wal._log
    t = log.by_name["t"]
    seg = log.active
    assert seg is not None
    before_end, before_bytes = seg.end, t.nbytes
    slow = Slow()
    assert _speedups.hot_append(log, slow, "t", PAYLOAD) == 1
    assert slow.calls == []
    size = _codec.record_size(len(PAYLOAD))
    assert (seg.end, t.nbytes, t.next_seq, t.visible) == (before_end + size,
                                                          before_bytes + size, 2, 2)
    assert t.lsns[-1] == seg.lsn_base | before_end
    assert record_at(log, "t", 1) == (t.tid, 1, PAYLOAD)
    Log.append(log, "t", b"python")  # the Python path goes on from there
    assert record_at(log, "t", 2) == (t.tid, 2, b"python")
    assert [e.data for e in wal.batch_read_for_topic("t", 1 << 20, checkpoint=False)] == [
        b"first", PAYLOAD, b"python"]


def held(lock: Any) -> Callable[[], None]:
    """Hold ``lock`` in another thread until the returned function is called."""
    taken, done = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            taken.set()
            done.wait()

    thread = threading.Thread(target=hold)
    thread.start()
    taken.wait()

    def release() -> None:
        done.set()
        thread.join()

    return release


CASES: dict[str, Callable[[Walrus], tuple[Any, Any]]] = {
    "a new topic": lambda w: ("new", PAYLOAD),
    "a topic that is a str subclass": lambda w: (type("S", (str,), {})("t"), PAYLOAD),
    "a bytearray": lambda w: ("t", bytearray(PAYLOAD)),
    "a payload over 4 KiB": lambda w: ("t", b"x" * 4097),
}


@needs_hot
@pytest.mark.parametrize("case", list(CASES))
def test_an_append_the_c_path_does_not_take_goes_to_python_untouched(
        wal: Walrus, case: str) -> None:
    log = wal._log
    t = log.by_name["t"]
    topic, data = CASES[case](wal)
    state = (log.active.end, t.next_seq, t.nbytes, len(t.lsns))  # type: ignore[union-attr]
    slow = Slow()
    assert _speedups.hot_append(log, slow, topic, data) == "slow"
    assert slow.calls == [(log, topic, data)]
    assert (log.active.end, t.next_seq, t.nbytes, len(t.lsns)) == state  # type: ignore[union-attr]


@needs_hot
@pytest.mark.parametrize("why", ["the append lock is held", "closed", "somebody waits",
                                 "the segment is full"])
def test_an_append_in_a_state_the_c_path_leaves_to_python(wal: Walrus, why: str) -> None:
    log = wal._log
    t = log.by_name["t"]
    seg = log.active
    assert seg is not None
    state = (seg.end, t.next_seq, t.nbytes, len(t.lsns))
    release = {"the append lock is held": lambda: held(log.mutex),
               "closed": lambda: setattr(log, "closed", True),
               "somebody waits": lambda: log.watch_visible(lambda _t: None),
               "the segment is full": lambda: setattr(seg, "check_at", seg.end + 8)}[why]()
    slow = Slow()
    try:
        assert _speedups.hot_append(log, slow, "t", PAYLOAD) == "slow"
    finally:
        if release is not None:
            release()
        log.closed = False
        log.watch_visible(None)
    assert slow.calls == [(log, "t", PAYLOAD)]
    assert (seg.end, t.next_seq, t.nbytes, len(t.lsns)) == state


@needs_hot
def test_an_observer_or_a_pwrite_log_appends_through_python(tmp_path: Path) -> None:
    with Walrus(data_dir=str(tmp_path), backend="pwrite",
                fsync_schedule=FsyncSchedule.NoFsync) as w:
        w.append_for_topic("t", b"a")
        slow = Slow()
        assert _speedups.hot_append(w._log, slow, "t", b"b") == "slow"  # no mapping
        assert len(slow.calls) == 1


def filled(wal: Walrus, count: int) -> None:
    wal.batch_append_for_topic("t", [b"%d" % i for i in range(1, count)])


@needs_hot
def test_read_next_in_c_serves_the_read_ahead_and_moves_the_cursor(wal: Walrus) -> None:
    filled(wal, 10)
    cursor = wal._cursor
    first = Cursor.read_next(cursor, "t")  # fills the read-ahead
    assert first == Entry(b"first", 0, "t")
    slow = Slow()
    got = [_speedups.hot_read_next(cursor, slow, "t") for _ in range(9)]
    assert slow.calls == []
    assert [(e.data, e.offset, e.topic) for e in got] == [(b"%d" % i, i, "t")
                                                          for i in range(1, 10)]
    assert type(got[0]) is Entry
    assert wal._topics["t"].cursor == 10
    assert _speedups.hot_read_next(cursor, slow, "t") is None  # nothing left
    assert slow.calls == []


@needs_hot
def test_peeking_and_keywords_are_served_in_c(wal: Walrus) -> None:
    filled(wal, 3)
    cursor = wal._cursor
    Cursor.read_next(cursor, "t")
    slow = Slow()
    assert _speedups.hot_read_next(cursor, slow, "t", checkpoint=False).offset == 1
    assert _speedups.hot_read_next(cursor, slow, "t", False, None, 0).offset == 1
    assert _speedups.hot_read_next(cursor, slow, "t", checkpoint=False, timeout=0).offset == 1
    assert slow.calls == []
    assert wal._topics["t"].cursor == 1


READS: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
    "a timeout": (("t",), {"timeout": 0.5}),
    "a checkpoint that is not a bool": (("t", 1), {}),
    "an unknown keyword": (("t",), {"bogus": 1}),
    "a keyword given twice": (("t", True), {"checkpoint": True}),
    "a topic that is a str subclass": ((type("S", (str,), {})("t"),), {}),
    "an unknown topic": (("other",), {}),
    "an unknown consumer": (("t",), {"consumer": "nobody"}),
}


@needs_hot
@pytest.mark.parametrize("case", list(READS))
def test_a_read_the_c_path_does_not_take_goes_to_python_untouched(wal: Walrus,
                                                                   case: str) -> None:
    filled(wal, 3)
    cursor = wal._cursor
    Cursor.read_next(cursor, "t")
    args, kwargs = READS[case]
    slow = Slow()
    assert _speedups.hot_read_next(cursor, slow, *args, **kwargs) == "slow"
    assert slow.calls == [(cursor, *args)] and slow.kwargs == [kwargs]
    assert wal._topics["t"].cursor == 1


@needs_hot
@pytest.mark.parametrize("why", ["the read lock is held", "closed", "a cursor record is due",
                                 "the read-ahead is used up"])
def test_a_read_in_a_state_the_c_path_leaves_to_python(wal: Walrus, why: str) -> None:
    filled(wal, 3)
    cursor = wal._cursor
    t = wal._topics["t"]
    Cursor.read_next(cursor, "t")
    release = {"the read lock is held": lambda: held(t.read_lock),
               "closed": lambda: setattr(cursor, "closed", True),
               "a cursor record is due": lambda: setattr(t, "persisted", t.cursor - 100),
               "the read-ahead is used up": lambda: setattr(t, "ahead", [])}[why]()
    slow = Slow()
    try:
        assert _speedups.hot_read_next(cursor, slow, "t") == "slow"
    finally:
        if release is not None:
            release()
        cursor.closed = False
    assert slow.calls == [(cursor, "t")]
    assert t.cursor == 1


@needs_hot
def test_a_named_consumer_reads_in_c_from_its_own_position(wal: Walrus) -> None:
    filled(wal, 5)
    cursor = wal._cursor
    assert wal.read_next("t", consumer="c") == Entry(b"first", 0, "t")
    slow = Slow()
    got = [_speedups.hot_read_next(cursor, slow, "t", consumer="c").offset for _ in range(4)]
    assert got == [1, 2, 3, 4] and slow.calls == []
    assert cursor.named["c"]["t"].cursor == 5
    assert wal._topics["t"].cursor == 0  # the shared cursor did not move


@needs_hot
def test_entries_and_slices_are_what_the_python_loops_build() -> None:
    payloads = [b"a", b"", b"ccc"]
    assert _speedups.hot_entries(payloads, 7, "t", Entry) == [
        Entry(b"a", 7, "t"), Entry(b"", 8, "t"), Entry(b"ccc", 9, "t")]
    buf = b"0123456789"
    assert _speedups.hot_slices(buf, array("Q", [0, 3, 9]), array("Q", [2, 3, 10])) == [
        b"01", b"", b"9"]
    with pytest.raises(ValueError):
        _speedups.hot_slices(buf, array("Q", [5]), array("Q", [11]))
    with pytest.raises(TypeError):
        _speedups.hot_slices(buf, array("I", [0]), array("I", [1]))


def test_the_committed_crc_tables_are_what_the_build_script_generates() -> None:
    native = Path(_speedups.__file__).parent / "_native"
    script = runpy.run_path(str(native / "speedups_build.py"), run_name="walrus_tables")
    assert (native / "crc_tables.h").read_text() == script["TABLES_HEAD"] + script["crc_tables"]()


def test_without_a_compiler_the_install_goes_on_and_says_so(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    if not (root / "setup.py").is_file():
        pytest.skip("no setup.py: not running from a source tree")
    result = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--build-lib", str(tmp_path / "lib"),
         "--build-temp", str(tmp_path / "tmp")],
        cwd=root, env=dict(os.environ, WALRUS_URING="0", WALRUS_SPEEDUPS="auto", CC="false"),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNING: not building walrus._native._hot" in output
    assert "those calls will run in Python" in " ".join(output.split())
    assert not list((tmp_path / "lib").rglob("_hot*.so"))
