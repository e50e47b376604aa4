"""The C append's fallbacks to the Python method (counted by reason), and what the C hot
paths must never do on their way to one: run Python code after the lock check, keep a
reference per switch of type, or follow a pointer before the layout check proved it."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from walrus import FsyncSchedule, Walrus, _speedups

from .test_hot import held

needs_hot = pytest.mark.skipif(_speedups.hot_append is None, reason=_speedups.HOT_REASON)

ROOT = Path(__file__).resolve().parent.parent


def _open(path: Path) -> Walrus:
    return Walrus(data_dir=str(path), backend="mmap", fsync_schedule=FsyncSchedule.NoFsync)


def _grown(before: dict[str, int]) -> dict[str, int]:
    after = _speedups.hot_fallbacks()
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}


@needs_hot
def test_the_fallbacks_are_counted_by_reason(tmp_path: Path) -> None:
    calls: list[tuple[Any, ...]] = []

    def slow(*args: Any) -> str:
        calls.append(args)
        return "slow"

    with _open(tmp_path / "d") as w:
        log = w._log
        w.append_for_topic("t", b"first")
        before = _speedups.hot_fallbacks()
        assert _speedups.hot_append(log, slow, "t", b"x") == 1  # the C path
        assert _grown(before) == {}
        assert _speedups.hot_append(log, slow, "new", b"x") == "slow"
        assert _speedups.hot_append(log, slow, "t", bytearray(b"x")) == "slow"
        release = held(log.mutex)
        try:
            assert _speedups.hot_append(log, slow, "t", b"x") == "slow"
        finally:
            release()
        assert _grown(before) == {"new topic": 1, "call": 1, "lock held": 1}
        assert len(calls) == 3


@needs_hot
def test_a_field_with_index_never_runs_python_code_after_the_lock_check(
        tmp_path: Path) -> None:
    """The fast path read its int fields with PyLong_AsLongLong, which calls ``__index__``
    on anything else: Python code (here an append, as another thread could make at that
    moment) ran after the lock check, and the C path then wrote its record at the stale
    write position, over that append's. Only exact ints are read now; anything else goes to
    the Python method, under the lock."""
    with _open(tmp_path / "d") as w:
        log = w._log
        w.append_for_topic("t", b"t0")
        w.append_for_topic("u", b"u0")
        t = log.by_name["t"]
        ran: list[str] = []

        class Index:
            def __init__(self, n: int) -> None:
                self.n = n

            def __index__(self) -> int:
                ran.append("__index__")
                w.append_for_topic("u", b"u1")
                return self.n

            def __add__(self, other: int) -> int:
                return self.n + other

        t.nbytes = Index(t.nbytes)  # type: ignore[assignment]
        before = _speedups.hot_fallbacks()
        assert w.append_for_topic("t", b"t1") == 1
        assert ran == []
        assert _grown(before) == {"field": 1}
        assert isinstance(t.nbytes, int)
        assert [e.data for e in w.batch_read_for_topic("t", 1 << 20, checkpoint=False)] == [
            b"t0", b"t1"]
        assert [e.data for e in w.batch_read_for_topic("u", 1 << 20, checkpoint=False)] == [
            b"u0"]


@needs_hot
def test_switching_types_keeps_no_reference_per_switch() -> None:
    """A field name's offset cache remembers the last type it was read on; it took a new
    reference to that type at every switch and never gave one back, so a type read in turn
    with another was kept alive by thousands of references."""

    class A:
        __slots__ = ("_by_name",)
        _by_name: dict[str, object]

    class B:
        __slots__ = ("_by_name",)
        _by_name: dict[str, object]

    a, b = A(), B()
    a._by_name = b._by_name = {}  # no topic: each call ends in the slow path

    def slow(*args: Any) -> None:
        return None

    for owner in (a, b):
        _speedups.hot_append(owner, slow, "t", b"x")  # the offsets' own cache entries
    before = sys.getrefcount(A), sys.getrefcount(B)
    for _ in range(1000):
        _speedups.hot_append(a, slow, "t", b"x")
        _speedups.hot_append(b, slow, "t", b"x")
    assert (sys.getrefcount(A), sys.getrefcount(B)) == before


@needs_hot
def test_a_foreign_array_layout_is_refused_without_a_crash() -> None:
    """The start-up check of array.array's layout read the type code through ``ob_descr``
    before anything proved the field was a pointer: on an interpreter whose array object
    has the same size but other fields, the import crashed instead of falling back. In a
    child process, with such an array type (tests/_fake_array.py)."""
    result = subprocess.run([sys.executable, str(ROOT / "tests" / "_fake_array.py")],
                            capture_output=True, text=True, timeout=60,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert result.returncode == 0, (result.returncode, result.stderr)
    _lock, array_direct, _clmul = ast.literal_eval(result.stdout)
    assert array_direct is False
