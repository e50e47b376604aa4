"""Review of the C hot paths (``walrus/_native/hot.c``): what they must keep of the Python
methods they stand in for, beyond ``tests/test_hot.py``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from walrus import Entry, FsyncSchedule, ReadConsistency, Walrus, _codec, _speedups
from walrus._log import Log

needs_hot = pytest.mark.skipif(_speedups.hot_append is None, reason=_speedups.HOT_REASON)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["c", "python"])
def wal(request: pytest.FixtureRequest, tmp_path: Path) -> Walrus:
    w = Walrus(data_dir=str(tmp_path / "d"), backend="mmap",
               fsync_schedule=FsyncSchedule.NoFsync,
               consistency=ReadConsistency.AtLeastOnce(persist_every=100))
    if request.param == "python":  # the specification: the Python methods themselves
        w.append_for_topic = w._log.append = Log.append.__get__(w._log)  # type: ignore
    w.append_for_topic("t", b"first")
    yield w  # type: ignore[misc]
    w.close()


def test_append_for_topic_takes_its_arguments_by_keyword(wal: Walrus) -> None:
    """``append_for_topic(topic: str, data: bytes-like)`` (SPEC.md): the names are part of
    the signature, as under SyncEach, on an observer and without the extension."""
    assert wal.append_for_topic(topic="t", data=b"a") == 1
    assert wal.append_for_topic("t", data=b"b") == 2
    assert wal.append_for_topic(data=b"c", topic="u") == 0  # a new topic by keyword too
    assert [e.data for e in wal.batch_read_for_topic("t", 1 << 20, checkpoint=False)] == [
        b"first", b"a", b"b"]
    assert wal.read_next("u") == Entry(b"c", 0, "u")


def test_wrong_keywords_fail_as_the_python_method_does(wal: Walrus) -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'payload'"):
        wal.append_for_topic("t", payload=b"x")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="multiple values for argument 'topic'"):
        wal.append_for_topic("t", b"x", topic="t")  # type: ignore[misc]
    assert wal._log.by_name["t"].next_seq == 1


@needs_hot
def test_the_c_path_writes_the_bytes_the_codec_defines_at_every_small_size(
        tmp_path: Path) -> None:
    """Every payload size the C path takes (0 to 4096 bytes): header, payload, crc (both
    crc loops: slice-by-8 below 512 bytes, zlib above) and zero padding, as _codec encodes."""
    with Walrus(data_dir=str(tmp_path / "d"), backend="mmap", segment_size=4 << 20,
                fsync_schedule=FsyncSchedule.Milliseconds(1)) as w:
        log = w._log
        w.append_for_topic("t", b"x")
        t = log.by_name["t"]
        for n in range(4097):
            data = os.urandom(n)
            seq = w.append_for_topic("t", data)
            lsn = t.lsns[-1]
            seg = log.segments[lsn >> _codec.SEG_SHIFT]
            p = lsn & _codec.OFFSET_MASK
            size = _codec.record_size(n)
            got = bytes(seg.view[p:p + size])
            durable = int.from_bytes(got[24:32], "little")
            assert durable <= log.durable
            header = _codec.encode_header(_codec.ENTRY, t.tid, 0, seq, durable, data, seg.salt)
            assert got == bytes(header) + data + bytes(size - 32 - n), n
            assert seg.end == p + size and t.next_seq == t.visible == seq + 1


@needs_hot
@pytest.mark.parametrize("call", ["append()", "append(1)", "read_next()", "read_next(1)"])
def test_too_few_arguments_raise_instead_of_reading_past_them(call: str) -> None:
    """The functions take (owner, slow, ...): with fewer, the fallback read args[0] and
    args[1] past the end of the argument vector (undefined behaviour). In a child process:
    before the fix this could crash."""
    code = (f"from walrus._native import _hot\ntry:\n    _hot.{call}\n"
            "except TypeError as exc:\n    print(exc)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
    assert result.returncode == 0, result.stderr
    assert "(owner, slow, ...): too few arguments" in result.stdout, result.stdout


@needs_hot
def test_a_mapping_that_is_not_an_mmap_is_written_by_the_python_path(tmp_path: Path) -> None:
    """The C append writes through ``seg.view``'s buffer, read after its lock check: a view
    of any other type than mmap may run Python code to export it (``__buffer__``, Python
    3.12+), in which another thread may append, so that the C path writes over that append
    at the write position it read before. Only an mmap is written in C; anything else goes
    to the Python method (which writes through ``address``)."""
    with Walrus(data_dir=str(tmp_path / "d"), backend="mmap",
                fsync_schedule=FsyncSchedule.NoFsync) as w:
        w.append_for_topic("t", b"first")
        log = w._log
        seg = log.active
        assert seg is not None
        t = log.by_name["t"]
        state = (seg.end, t.next_seq, t.nbytes, len(t.lsns))
        calls: list[tuple[object, ...]] = []
        mapping = seg.view
        seg.view = memoryview(bytearray(len(mapping)))  # writable, not an mmap
        try:
            assert _speedups.hot_append(log, lambda *a: calls.append(a) or "slow", "t",
                                        b"x") == "slow"
        finally:
            seg.view = mapping
        assert calls == [(log, "t", b"x")]
        assert (seg.end, t.next_seq, t.nbytes, len(t.lsns)) == state


CONSISTENCIES = {"AtLeastOnce(1)": ReadConsistency.AtLeastOnce(persist_every=1),
                 "AtLeastOnce(3)": ReadConsistency.AtLeastOnce(persist_every=3),
                 "StrictlyAtOnce": ReadConsistency.StrictlyAtOnce}


def trace(directory: Path, consistency: object, python: bool) -> list[object]:
    """A workload's every observable step: the shared cursor (and its CURSOR records), a
    named consumer's position (and its file), the write position, after a reopen too."""
    from walrus._cursors import Cursor

    out: list[object] = []
    for reopen in (False, True):
        w = Walrus(data_dir=str(directory), backend="mmap", consistency=consistency,
                   fsync_schedule=FsyncSchedule.NoFsync)
        try:
            if python:
                w.append_for_topic = w._log.append = Log.append.__get__(w._log)  # type: ignore
                w.read_next = w._cursor.read_next = Cursor.read_next.__get__(  # type: ignore
                    w._cursor)
            log = w._log
            if reopen:
                out.append((w.read_next("t"), w.read_next("u", consumer="c")))
                continue
            for i in range(20):
                w.append_for_topic("t", b"e%d" % i)
                w.append_for_topic("u", b"f%d" % i * 50)
            t = log.by_name["t"]
            for i in range(12):
                e = w.read_next("t", checkpoint=i % 4 != 3)
                e2 = w.read_next("u", consumer="c")
                pos = w._cursor.named["c"]["u"]
                out.append((i, e, t.cursor, t.persisted, log.cursor_writes,
                            log.active.end, e2, pos.cursor, pos.persisted))  # type: ignore
                if i == 6:
                    w.append_for_topic("t", b"late")
        finally:
            w.close()
    return out


@needs_hot
@pytest.mark.parametrize("consistency", list(CONSISTENCIES))
def test_the_c_paths_leave_every_cursor_and_record_as_the_python_methods_do(
        tmp_path: Path, consistency: str) -> None:
    mode = CONSISTENCIES[consistency]
    assert trace(tmp_path / "c", mode, False) == trace(tmp_path / "py", mode, True)
