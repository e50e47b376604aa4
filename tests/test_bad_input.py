"""Bad input at every public entry point: the documented error, and the log unchanged.

A table of (call, expected error). Each call runs on an open log holding a known state; it
must raise exactly the documented class (caller mistakes derive from ValueError, system
failures from OSError, all from WalrusError), leave everything a reader can observe as it
was, and leave nothing behind that a reopen would find.
"""

from __future__ import annotations

import errno
import mmap
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import walrus
from walrus import (
    MAX_BATCH_ENTRIES,
    MAX_ENTRY_BYTES,
    BackendUnavailableError,
    BatchTooLargeError,
    EntryTooLargeError,
    FsyncSchedule,
    InvalidArgumentError,
    InvalidTopicError,
    OffsetOutOfRangeError,
    ReadConsistency,
    ReadOnlyError,
    StorageError,
    Walrus,
    WalrusClosedError,
    WalrusError,
    WalrusLockedError,
)

from ._workload import FIGURES, dump, payload
from .conftest import ROOT

SEGMENT = 8192
CALLER = (InvalidArgumentError, InvalidTopicError, EntryTooLargeError, BatchTooLargeError,
          OffsetOutOfRangeError)
"""Errors caused by the caller: ValueError subclasses."""


def _gib() -> memoryview:
    """A 1 GiB payload that costs no memory until touched (calloc'd pages)."""
    return memoryview(bytearray(MAX_ENTRY_BYTES))


BAD_TOPICS: list[tuple[str, object]] = [
    ("none", None), ("int", 7), ("bytes", b"a"), ("empty", ""), ("nul", "a\0b"),
    ("too-long", "x" * 256), ("too-long-utf8", "é" * 128), ("surrogate", "\ud800"),
    ("list", ["a"]),
]
def _unreadable_buffers() -> list[tuple[str, object]]:
    """Objects that offer a buffer which cannot be read (memoryview() raises ValueError), or
    whose bytes are not data."""
    released = memoryview(b"gone")
    released.release()
    closed = mmap.mmap(-1, 16)
    closed.close()
    found: list[tuple[str, object]] = [("released-memoryview", released), ("closed-mmap", closed)]
    try:
        import numpy
    except ImportError:
        return found
    return [*found, ("numpy-datetime64", numpy.array(["2020-01-01"], dtype="M8[D]")),
            # a buffer of object references: its bytes are addresses, meaningless once read
            ("numpy-objects", numpy.array([1, "a"], dtype=object))]


BAD_PAYLOADS: list[tuple[str, object]] = [
    ("str", "text"), ("int", 5), ("none", None), ("float", 1.5), ("list", [b"a"]),
    ("object", object()), ("dict", {}), *_unreadable_buffers(),
]
BAD_COUNTS: list[tuple[str, object]] = [
    ("negative", -1), ("str", "10"), ("float", 1.5), ("none", None), ("bool", True),
]

Call = Callable[[Walrus], object]
CASES: list[tuple[str, Call, type[BaseException]]] = []
for _name, _topic in BAD_TOPICS:
    CASES += [
        (f"append-topic-{_name}", lambda w, t=_topic: w.append_for_topic(t, b"x"),
         InvalidTopicError),
        (f"batch-topic-{_name}", lambda w, t=_topic: w.batch_append_for_topic(t, [b"x"]),
         InvalidTopicError),
        (f"empty-batch-topic-{_name}", lambda w, t=_topic: w.batch_append_for_topic(t, []),
         InvalidTopicError),
        (f"read_next-topic-{_name}", lambda w, t=_topic: w.read_next(t), InvalidTopicError),
        (f"peek-topic-{_name}", lambda w, t=_topic: w.read_next(t, checkpoint=False),
         InvalidTopicError),
        (f"batch-read-topic-{_name}", lambda w, t=_topic: w.batch_read_for_topic(t, 10),
         InvalidTopicError),
        (f"count-topic-{_name}", lambda w, t=_topic: w.get_topic_entry_count(t),
         InvalidTopicError),
        (f"size-topic-{_name}", lambda w, t=_topic: w.get_topic_size(t), InvalidTopicError),
        (f"clean-topic-{_name}", lambda w, t=_topic: w.mark_topic_clean(t), InvalidTopicError),
        (f"dirty-topic-{_name}", lambda w, t=_topic: w.mark_topic_dirty(t), InvalidTopicError),
        (f"is-clean-topic-{_name}", lambda w, t=_topic: w.topic_is_clean(t),
         InvalidTopicError),
    ]
for _name, _data in BAD_PAYLOADS:
    CASES += [
        (f"append-data-{_name}", lambda w, d=_data: w.append_for_topic("a", d),
         InvalidArgumentError),
        (f"append-new-topic-data-{_name}", lambda w, d=_data: w.append_for_topic("new", d),
         InvalidArgumentError),
        (f"batch-element-{_name}", lambda w, d=_data: w.batch_append_for_topic(
            "a", [b"fine", d, b"fine"]), InvalidArgumentError),
    ]
for _name, _entries in [("bytes", b"abc"), ("str", "abc"), ("int", 3), ("none", None),
                        ("generator", (b"x" for _ in range(2))), ("set", {b"x"}),
                        ("bytearray", bytearray(b"ab")), ("memoryview", memoryview(b"ab"))]:
    CASES.append((f"batch-entries-{_name}",
                  lambda w, e=_entries: w.batch_append_for_topic("a", e),  # type: ignore[arg-type]
                  InvalidArgumentError))
for _name, _value in BAD_COUNTS:
    CASES += [
        (f"max_bytes-{_name}", lambda w, v=_value: w.batch_read_for_topic("a", v),
         InvalidArgumentError),
    ]
    if _value is not None:  # start_offset=None is the stateful read
        CASES.append((f"start_offset-{_name}",
                      lambda w, v=_value: w.batch_read_for_topic("a", 10, start_offset=v),
                      InvalidArgumentError))
CASES += [
    ("entry-over-max", lambda w: w.append_for_topic("a", memoryview(bytearray(
        MAX_ENTRY_BYTES + 1))), EntryTooLargeError),
    ("new-topic-entry-over-max", lambda w: w.append_for_topic("new", memoryview(bytearray(
        MAX_ENTRY_BYTES + 1))), EntryTooLargeError),
    ("batch-entry-over-max", lambda w: w.batch_append_for_topic(
        "a", [b"ok", memoryview(bytearray(MAX_ENTRY_BYTES + 1))]), EntryTooLargeError),
    ("batch-too-many", lambda w: w.batch_append_for_topic(
        "a", [b"x"] * (MAX_BATCH_ENTRIES + 1)), BatchTooLargeError),
    ("new-topic-batch-too-many", lambda w: w.batch_append_for_topic(
        "new", [b"x"] * (MAX_BATCH_ENTRIES + 1)), BatchTooLargeError),
    ("batch-too-many-bytes", lambda w: w.batch_append_for_topic("a", [_gib()] * 11),
     BatchTooLargeError),
    ("start_offset-reclaimed", lambda w: w.batch_read_for_topic("old", 10, start_offset=0),
     OffsetOutOfRangeError),
]


def _state(path: Path, backend: str) -> None:
    """A log with some history: consumed and unconsumed entries, a clean topic, a topic
    whose first entries were reclaimed."""
    with Walrus(data_dir=path, backend=backend, segment_size=SEGMENT) as wal:
        for i in range(60):
            wal.append_for_topic("old", payload("old", i))
        for _ in range(50):
            wal.read_next("old")
        wal.batch_append_for_topic("a", [payload("a", i) for i in range(5)])
        wal.append_for_topic("b", payload("b", 0))
        wal.read_next("a")
        wal.mark_topic_clean("b")
        wal.flush()
        wal._background.run_once()  # type: ignore[union-attr]


@pytest.fixture
def prepared(tmp_path: Path, backend: str) -> Iterator[tuple[Path, dict[str, Any]]]:
    path = tmp_path / "w"
    _state(path, backend)
    with Walrus(data_dir=path, backend=backend, segment_size=SEGMENT) as wal:
        before = dump(wal)
    first_old = before["old"][0]
    assert isinstance(first_old, int) and first_old > 0  # "old" has reclaimed entries
    yield path, before


def test_bad_calls_raise_their_error_and_change_nothing(
        prepared: tuple[Path, dict[str, Any]], backend: str) -> None:
    """Every case of ``CASES`` on one open instance: each raises exactly its error and the
    dump is unchanged after each; a reopen at the end finds nothing left behind by any."""
    path, before = prepared
    with Walrus(data_dir=path, backend=backend, segment_size=SEGMENT) as wal:
        for name, call, error in CASES:
            with pytest.raises(error) as info:
                call(wal)
            assert type(info.value) is error, f"{name}: {type(info.value).__name__}: {info.value}"
            _check_family(info.value)
            assert dump(wal) == before, f"{name} changed the log"
            FIGURES["bad inputs tried"] += 1
    with Walrus(data_dir=path, backend=backend, segment_size=SEGMENT) as wal:
        assert dump(wal) == before


def test_an_offset_past_what_64_bits_hold_reads_nothing(tmp_path: Path) -> None:
    """Like any offset past the end (with or without the C extension), not an OverflowError."""
    with Walrus(data_dir=tmp_path / "w") as wal:
        wal.append_for_topic("a", b"x")
        for offset in (2**63, 2**100):
            assert wal.batch_read_for_topic("a", 10, checkpoint=False, start_offset=offset) == []


def _check_family(exc: BaseException) -> None:
    """Caller errors are ValueErrors, system errors OSErrors, and all are WalrusErrors."""
    assert isinstance(exc, WalrusError)
    if isinstance(exc, CALLER):
        assert isinstance(exc, ValueError) and not isinstance(exc, OSError)
    else:
        assert isinstance(exc, OSError)
    assert str(exc), "an error says what went wrong"


CLOSED_CALLS: list[tuple[str, Call]] = [
    ("append", lambda w: w.append_for_topic("a", b"x")),
    ("append-new", lambda w: w.append_for_topic("new", b"x")),
    ("batch", lambda w: w.batch_append_for_topic("a", [b"x"])),
    ("batch-new", lambda w: w.batch_append_for_topic("new", [b"x"])),
    ("empty-batch", lambda w: w.batch_append_for_topic("a", [])),
    ("read_next", lambda w: w.read_next("a")),
    ("peek", lambda w: w.read_next("a", checkpoint=False)),
    ("read-unknown", lambda w: w.read_next("unknown")),
    ("batch-read", lambda w: w.batch_read_for_topic("a", 100)),
    ("stateless-read", lambda w: w.batch_read_for_topic("a", 100, start_offset=1)),
    ("flush", lambda w: w.flush()),
    ("topics", lambda w: w.topics()),
    ("count", lambda w: w.get_topic_entry_count("a")),
    ("counts", lambda w: w.get_topic_entry_counts()),
    ("size", lambda w: w.get_topic_size("a")),
    ("clean", lambda w: w.mark_topic_clean("a")),
    ("dirty", lambda w: w.mark_topic_dirty("a")),
    ("is-clean", lambda w: w.topic_is_clean("a")),
]


def test_every_call_on_a_closed_instance_raises(prepared: tuple[Path, dict[str, Any]],
                                                backend: str) -> None:
    path, before = prepared
    wal = Walrus(data_dir=path, backend=backend, segment_size=SEGMENT)
    wal.close()
    for name, call in CLOSED_CALLS:
        with pytest.raises(WalrusClosedError):
            call(wal)
        FIGURES["bad inputs tried"] += bool(name)
    wal.close()  # idempotent
    with Walrus(data_dir=path, backend=backend, segment_size=SEGMENT) as again:
        assert dump(again) == before


def test_read_only_observers_refuse_writes(prepared: tuple[Path, dict[str, Any]],
                                           backend: str) -> None:
    path, before = prepared
    with Walrus(data_dir=path, backend=backend, read_only=True) as wal:
        for call in (lambda: wal.append_for_topic("a", b"x"),
                     lambda: wal.batch_append_for_topic("a", [b"x"]),
                     lambda: wal.read_next("a"),
                     lambda: wal.batch_read_for_topic("a", 10),
                     lambda: wal.mark_topic_clean("a"),
                     lambda: wal.mark_topic_dirty("b")):
            with pytest.raises(ReadOnlyError):
                call()
            FIGURES["bad inputs tried"] += 1
        assert dump(wal) == before
    with Walrus(data_dir=path, backend=backend, segment_size=SEGMENT) as wal:
        assert dump(wal) == before


OPEN_CASES: list[tuple[str, dict[str, Any], type[BaseException]]] = [
    ("consistency-str", {"consistency": "strict"}, InvalidArgumentError),
    ("consistency-class", {"consistency": ReadConsistency}, InvalidArgumentError),
    ("schedule-int", {"fsync_schedule": 1000}, InvalidArgumentError),
    ("schedule-class", {"fsync_schedule": FsyncSchedule}, InvalidArgumentError),
    ("backend-int", {"backend": 5}, InvalidArgumentError),
    ("backend-unknown", {"backend": "no-such-backend"}, BackendUnavailableError),
    ("backend-empty-list", {"backend": "pwrite,,mmap"}, InvalidArgumentError),
    ("backend-reserved", {"backend": ""}, InvalidArgumentError),
    ("read_only-str", {"read_only": "yes"}, InvalidArgumentError),
    ("segment-small", {"segment_size": 100}, InvalidArgumentError),
    ("segment-negative", {"segment_size": -1}, InvalidArgumentError),
    ("segment-str", {"segment_size": "big"}, InvalidArgumentError),
    ("segment-float", {"segment_size": 8192.0}, InvalidArgumentError),
    ("data_dir-int", {"data_dir": 123}, InvalidArgumentError),
    ("key-int", {"key": 5}, InvalidArgumentError),
]
BAD_MODES: list[tuple[str, Callable[[], object]]] = [
    ("persist_every-negative", lambda: ReadConsistency.AtLeastOnce(persist_every=-1)),
    ("persist_every-str", lambda: ReadConsistency.AtLeastOnce(persist_every="3")),
    ("persist_every-float", lambda: ReadConsistency.AtLeastOnce(persist_every=2.5)),
    ("persist_every-none", lambda: ReadConsistency.AtLeastOnce(persist_every=None)),
    ("milliseconds-negative", lambda: FsyncSchedule.Milliseconds(-5)),
    ("milliseconds-str", lambda: FsyncSchedule.Milliseconds("10")),
    ("milliseconds-bool", lambda: FsyncSchedule.Milliseconds(True)),
]


@pytest.mark.parametrize("case", OPEN_CASES, ids=[c[0] for c in OPEN_CASES])
def test_bad_constructor_arguments(prepared: tuple[Path, dict[str, Any]], backend: str,
                                   case: tuple[str, dict[str, Any], type[BaseException]]) -> None:
    path, before = prepared
    _, kwargs, error = case
    kwargs = {"data_dir": path, "backend": backend, **kwargs}
    with pytest.raises(error) as info:
        Walrus(**kwargs)
    assert type(info.value) is error, f"{type(info.value).__name__}: {info.value}"
    _check_family(info.value)
    FIGURES["bad inputs tried"] += 1
    with Walrus(data_dir=path, backend=backend, segment_size=SEGMENT) as wal:  # not locked
        assert dump(wal) == before


@pytest.mark.parametrize("case", BAD_MODES, ids=[c[0] for c in BAD_MODES])
def test_bad_modes_and_schedules(case: tuple[str, Callable[[], object]]) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        case[1]()
    _check_family(info.value)
    FIGURES["bad inputs tried"] += 1


def test_opening_a_directory_twice_is_refused(prepared: tuple[Path, dict[str, Any]],
                                              backend: str) -> None:
    path, before = prepared
    with Walrus(data_dir=path, backend=backend, segment_size=SEGMENT) as wal:
        with pytest.raises(WalrusLockedError) as info:
            Walrus(data_dir=path, backend=backend)
        assert info.value.pid == os.getpid() and str(os.getpid()) in str(info.value)
        _check_family(info.value)
        assert dump(wal) == before


@pytest.mark.parametrize("name, value, error", [
    ("WALRUS_BACKEND", "no-such-backend", BackendUnavailableError),
    ("WALRUS_BACKEND", "pwrite,,", InvalidArgumentError),
    ("WALRUS_BACKEND", "auto,no-such-backend,", InvalidArgumentError),
], ids=["backend-unknown", "backend-empty-item", "backend-trailing-comma"])
def test_invalid_environment_values_are_named(prepared: tuple[Path, dict[str, Any]],
                                              monkeypatch: pytest.MonkeyPatch, name: str,
                                              value: str, error: type[BaseException]) -> None:
    path, before = prepared
    monkeypatch.setenv(name, value)
    with pytest.raises(error) as info:
        Walrus(data_dir=path)
    assert name in str(info.value), str(info.value)
    _check_family(info.value)
    FIGURES["bad inputs tried"] += 1
    monkeypatch.delenv(name)
    with Walrus(data_dir=path, segment_size=SEGMENT) as wal:
        assert dump(wal) == before


def test_a_data_dir_that_is_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   backend: str) -> None:
    file = tmp_path / "file"
    file.write_bytes(b"precious")
    for opener in (lambda: Walrus(data_dir=file, backend=backend),
                   lambda: Walrus(data_dir=file / "below", backend=backend),
                   lambda: Walrus(data_dir=file, backend=backend, read_only=True)):
        with pytest.raises(StorageError) as info:
            opener()
        assert info.value.errno in (errno.ENOTDIR, errno.EEXIST), info.value
        _check_family(info.value)
        FIGURES["bad inputs tried"] += 1
    monkeypatch.setenv("WALRUS_DATA_DIR", str(file))
    with pytest.raises(StorageError):
        Walrus.new()
    FIGURES["bad inputs tried"] += 1
    assert file.read_bytes() == b"precious"


def test_a_missing_directory_for_an_observer(tmp_path: Path, backend: str) -> None:
    with pytest.raises(StorageError) as info:
        Walrus(data_dir=tmp_path / "missing", backend=backend, read_only=True)
    assert info.value.errno == errno.ENOENT
    assert not (tmp_path / "missing").exists()  # an observer creates nothing


UNWRITABLE = """
import os, sys
import walrus
from walrus import Walrus, StorageError
walrus.available_backends()  # load everything first: nobody cannot read root's files
if os.getuid() == 0:  # root ignores permissions: become nobody
    os.setgid(65534)
    os.setuid(65534)
for path in sys.argv[1:]:
    try:
        Walrus(data_dir=path)
    except StorageError as exc:
        print("StorageError", exc.errno, str(exc).replace("\\n", " "))
    else:
        print("opened")
"""


def test_an_unwritable_data_dir(backend: str) -> None:
    """As an unprivileged user: a read-only existing log, and a base it cannot create in."""
    top = Path(tempfile.mkdtemp(prefix="walrus-unwritable-"))
    try:
        os.chmod(top, 0o755)
        path = top / "w"
        _state(path, backend)
        with Walrus(data_dir=path, backend=backend, segment_size=SEGMENT) as wal:
            before = dump(wal)
        os.chmod(path, 0o555)
        locked_base = top / "base"
        locked_base.mkdir(mode=0o555)
        env = dict(os.environ, PYTHONPATH=str(ROOT), WALRUS_BACKEND=backend)
        out = subprocess.run([sys.executable, "-c", UNWRITABLE, str(path),
                              str(locked_base / "new")], env=env, capture_output=True,
                             text=True, timeout=60, cwd="/")
        os.chmod(path, 0o755)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert len(lines) == 2 and all(line.startswith("StorageError 13 ") for line in lines), \
            out.stdout
        assert "not writable" in lines[0] and "cannot create" in lines[1], lines
        FIGURES["bad inputs tried"] += 2
        assert not (locked_base / "new").exists()
        with Walrus(data_dir=path, backend=backend, segment_size=SEGMENT) as wal:
            assert dump(wal) == before
    finally:
        shutil.rmtree(top)


def test_keys_never_escape_the_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = tmp_path / "base"
    monkeypatch.setenv("WALRUS_DATA_DIR", str(base))
    for key in ("..", ".", "../../etc", "/abs/path", "a/../../b", "\0", "ü", "___"):
        if "\0" not in key:  # an environment variable cannot hold NUL
            monkeypatch.setenv("WALRUS_INSTANCE_KEY", key)
            with Walrus.new() as wal:
                assert wal.data_dir.parent == base and wal.data_dir.name not in ("", ".", "..")
        with Walrus.new_for_key(key) as wal:
            assert wal.data_dir.parent == base and wal.data_dir.name not in ("", ".", "..")
        FIGURES["bad inputs tried"] += 1
    assert {p.parent for p in base.rglob("*.wal")} <= set(base.iterdir())


def test_the_error_hierarchy_is_as_documented() -> None:
    for cls in CALLER:
        assert issubclass(cls, (walrus.WalrusError, ValueError))
    for cls in (WalrusLockedError, WalrusClosedError, StorageError, BackendUnavailableError,
                walrus.CorruptionError, ReadOnlyError):
        assert issubclass(cls, walrus.WalrusError) and issubclass(cls, OSError)
