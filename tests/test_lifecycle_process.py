"""Processes, locks and input: what a process's life does around the log must not break it.

A forked child cannot use the instances it inherited (and the parent never notices), the
directory lock holds whatever happens to ``LOCK``, appends take one snapshot of their input,
the preamble of many topics is amortised, keys never take the base's own file names, and
every error is a ``WalrusError``.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import walrus
from walrus import (
    BatchTooLargeError,
    FsyncSchedule,
    InvalidArgumentError,
    StorageError,
    Walrus,
    WalrusLockedError,
)
from walrus._config import fnv1a64, sanitize_key
from walrus.backends import Backend, File
from walrus.plugins import plugin_manager

from .conftest import PLUGINS, ROOT, WalFactory, peek_all, run_child, segment_files

# --- a backend that lets a test act at the moment a write or a read reaches it -------------


class _Hooks:
    """What the wrapping backend does; a test sets these and the fixture resets them."""

    inner = "pwrite"
    on_write: Callable[[], None] | None = None
    read_errno: int | None = None


class _HookedFile(File):
    def __init__(self, inner: File) -> None:
        self.inner, self.path, self.size = inner, inner.path, inner.size
        self.view = None  # every write and read goes through the calls below

    def write(self, pos: int, data: Any) -> None:
        if _Hooks.on_write is not None:
            _Hooks.on_write()
        self.inner.write(pos, data)

    def writev(self, pos: int, buffers: Sequence[Any]) -> None:
        if _Hooks.on_write is not None:
            _Hooks.on_write()
        self.inner.writev(pos, buffers)

    def read(self, pos: int, size: int) -> bytes:
        if _Hooks.read_errno is not None:
            raise OSError(_Hooks.read_errno, os.strerror(_Hooks.read_errno))
        return self.inner.read(pos, size)

    def sync(self) -> None:
        self.inner.sync()

    def close(self) -> None:
        self.inner.close()


class _HookedBackend(Backend):
    name = "lifecycle-hooks"

    def __init__(self) -> None:
        self.inner = walrus.backend_spec(_Hooks.inner).factory()

    def open(self, path: str, *, size: int = 0, create: bool = False,
             writable: bool = True) -> File:
        return _HookedFile(self.inner.open(path, size=size, create=create, writable=writable))

    def sync_files(self, files: Sequence[File]) -> None:
        self.inner.sync_files([f.inner for f in files if isinstance(f, _HookedFile)])

    def close(self) -> None:
        self.inner.close()


class _HookPlugin:
    @walrus.hookimpl
    def walrus_register_backends(self) -> list[walrus.BackendSpec]:
        return [walrus.BackendSpec(_HookedBackend.name, _HookedBackend, priority=-1000,
                                   probe=lambda: walrus.Availability(True, "test double"))]


@pytest.fixture
def hooked(backend: str) -> Iterator[str]:
    """The name of a backend that wraps ``backend`` with :class:`_Hooks`."""
    plugin = _HookPlugin()
    plugin_manager().register(plugin)
    _Hooks.inner = backend
    try:
        yield _HookedBackend.name
    finally:
        _Hooks.on_write = None
        _Hooks.read_errno = None
        plugin_manager().unregister(plugin)


# --- fork -------------------------------------------------------------------------------------

FORK_SCENARIO = r"""
import json, os, sys
from walrus import FsyncSchedule, Walrus, WalrusError
backend, d = sys.argv[1], sys.argv[2]
w = Walrus(data_dir=d, backend=backend, fsync_schedule=FsyncSchedule.SyncEach)
w.append_for_topic("t", b"parent-0")
observer = Walrus(data_dir=d, backend=backend, read_only=True)


def nulls():
    found = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            found += os.readlink(f"/proc/self/fd/{fd}") == os.devnull
        except OSError:
            pass
    return found


held_back = nulls()  # the writer's descriptors held back for its background work among them
r, wr = os.pipe()
pid = os.fork()
if pid == 0:
    held_back -= nulls()  # given back by the fork hook
    calls = {
        "append": lambda: w.append_for_topic("t", b"child!!!"),
        "append to a new topic": lambda: w.append_for_topic("new", b"child"),
        "batch": lambda: w.batch_append_for_topic("t", [b"c1", b"c2"]),
        "read_next": lambda: w.read_next("t"),
        "peek": lambda: w.read_next("t", checkpoint=False),
        "batch read": lambda: w.batch_read_for_topic("t", 1 << 20),
        "flush": w.flush,
        "topics": w.topics,
        "count": lambda: w.get_topic_entry_count("t"),
        "counts": w.get_topic_entry_counts,
        "size": lambda: w.get_topic_size("t"),
        "is clean": lambda: w.topic_is_clean("t"),
        "mark clean": lambda: w.mark_topic_clean("t"),
        "mark dirty": lambda: w.mark_topic_dirty("t"),
        "observer peek": lambda: observer.read_next("t", checkpoint=False),
        "observer topics": observer.topics,
    }
    seen = {}
    for name, call in calls.items():
        try:
            call()
            seen[name] = "returned"
        except WalrusError as exc:
            named = str(os.getppid()) in str(exc) and getattr(exc, "pid", None) == os.getppid()
            seen[name] = type(exc).__name__ + (" naming the parent" if named else "")
        except BaseException as exc:
            seen[name] = "not a WalrusError: " + type(exc).__name__
    try:
        w.close()
        observer.close()
        seen["close"] = "returned"
    except BaseException as exc:
        seen["close"] = type(exc).__name__
    seen["descriptors held back, given back"] = held_back
    os.write(wr, json.dumps(seen).encode())
    os._exit(0)
os.waitpid(pid, 0)
child = json.loads(os.read(r, 1 << 16))
for i in range(1, 21):  # the parent goes on: appends (io_uring: through its own rings)
    w.append_for_topic("t", b"parent-%d" % i)
parent = [e.data.decode() for e in w.batch_read_for_topic("t", 1 << 20, checkpoint=False,
                                                          start_offset=0)]
count = w.get_topic_entry_count("t")
peeked = observer.read_next("t", checkpoint=False)
observer.close()
w.close()
with Walrus(data_dir=d, backend=backend) as again:
    reopened = [e.data.decode() for e in again.batch_read_for_topic(
        "t", 1 << 20, checkpoint=False, start_offset=0)]
    topics = again.topics()
print(json.dumps({"child": child, "parent": parent, "count": count, "reopened": reopened,
                  "topics": topics, "observer": peeked.data.decode()}))
"""


def test_a_forked_child_cannot_use_the_parents_instance(tmp_path: Path, backend: str) -> None:
    """Every call in the child raises WalrusForkedError naming the parent; the parent's log,
    cursor and (on io_uring) rings are as if the child had never run."""
    out = run_child(FORK_SCENARIO, backend, str(tmp_path / "wal"), timeout=60)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    refused = "WalrusForkedError naming the parent"
    assert result["child"].pop("descriptors held back, given back") == 8
    assert {name: seen for name, seen in result["child"].items() if name != "close"} == {
        name: refused for name in result["child"] if name != "close"}
    assert result["child"]["close"] == "returned"  # closing in the child is a no-op
    expected = [f"parent-{i}" for i in range(21)]
    assert result["parent"] == expected and result["reopened"] == expected
    assert result["count"] == 21 and result["topics"] == ["t"]
    assert result["observer"] == "parent-0"


OUTLIVE_SCENARIO = r"""
import os, sys
from walrus import Walrus
w = Walrus(data_dir=sys.argv[1])
w.append_for_topic("t", b"x")
r, wr = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(wr, b"x")  # the fork hooks have run in this child
    os.read(0, 1)  # lives on until the test closes our stdin
    os._exit(0)
os.read(r, 1)
print(pid, flush=True)
os._exit(0)  # the parent dies without closing
"""


def test_a_child_that_outlives_its_parent_does_not_hold_the_directory(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(PLUGINS)]))
    proc = subprocess.Popen([sys.executable, "-c", OUTLIVE_SCENARIO, str(tmp_path)], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdin is not None
    child = int(proc.stdout.readline())
    try:
        assert proc.wait(timeout=30) == 0
        with Walrus(data_dir=tmp_path) as wal:  # the parent is gone; its child still runs
            assert wal.get_topic_entry_count("t") == 1
        os.kill(child, 0)  # the child was alive all along
    finally:
        proc.stdin.close()
        try:
            os.kill(child, 9)
        except ProcessLookupError:
            pass


# --- the directory lock -----------------------------------------------------------------------

SECOND_WRITER = r"""
import sys
from walrus import Walrus, WalrusLockedError
try:
    w = Walrus(data_dir=sys.argv[1])
    w.append_for_topic("t", b"second")
    w.close()
    print("opened")
except WalrusLockedError as exc:
    print("refused", exc.pid)
"""


def test_deleting_lock_does_not_let_a_second_writer_in(tmp_path: Path) -> None:
    with Walrus(data_dir=tmp_path) as wal:
        wal.append_for_topic("t", b"first-0")
        os.unlink(tmp_path / "LOCK")
        assert run_child(SECOND_WRITER, str(tmp_path)).stdout.split() == [
            "refused", str(os.getpid())]
        with pytest.raises(WalrusLockedError) as info:  # in this process too
            Walrus(data_dir=tmp_path)
        assert info.value.pid == os.getpid()
        wal.append_for_topic("t", b"first-1")
    with Walrus(data_dir=tmp_path) as wal:
        assert [e.data for e in peek_all(wal, "t")] == [b"first-0", b"first-1"]


def test_a_writer_that_locks_only_the_lock_file_still_excludes_us(tmp_path: Path) -> None:
    """Compatibility: versions that lock only ``LOCK`` and this one refuse each other."""
    fd = os.open(tmp_path / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, f"{os.getpid()}\n".encode())
        with pytest.raises(WalrusLockedError) as info:
            Walrus(data_dir=tmp_path)
        assert info.value.pid == os.getpid()
    finally:
        os.close(fd)
    Walrus(data_dir=tmp_path).close()  # and the refused open left nothing held


# --- one snapshot of the input ------------------------------------------------------------------


class _Understated(Sequence[bytes]):
    """A sequence whose ``len()`` says 1 while it holds 2500 entries."""

    def __len__(self) -> int:
        return 1

    def __getitem__(self, i: int) -> bytes:  # type: ignore[override]
        if i >= 2500:
            raise IndexError(i)
        return b"e%d" % i


def test_a_batch_is_counted_as_iterated_not_by_len(open_wal: WalFactory) -> None:
    wal = open_wal(fsync_schedule=FsyncSchedule.SyncEach)
    wal.append_for_topic("old", b"keep")
    for topic in ("old", "new"):
        with pytest.raises(BatchTooLargeError, match="MAX_BATCH_ENTRIES"):
            wal.batch_append_for_topic(topic, _Understated())
    assert wal.topics() == ["old"] and wal.get_topic_entry_count("old") == 1
    assert [e.data for e in peek_all(wal, "old")] == [b"keep"]


def test_a_buffer_changed_while_it_is_written_reads_back(tmp_path: Path, hooked: str) -> None:
    """The caller's bytearray changes after the append took it and before the bytes reach
    the file: the entry reads back whole, as it was when the call was made."""
    buf = bytearray(b"a" * 5000)

    def change() -> None:
        buf[:] = b"b" * len(buf)

    with Walrus(data_dir=tmp_path, backend=hooked, fsync_schedule=FsyncSchedule.NoFsync) as wal:
        wal.append_for_topic("t", b"first")  # the topic exists: the one-entry hot path
        _Hooks.on_write = change
        wal.append_for_topic("t", buf)
        _Hooks.on_write = None
        assert [e.data for e in peek_all(wal, "t")] == [b"first", b"a" * 5000]
    with Walrus(data_dir=tmp_path, backend=hooked) as wal:
        assert [e.data for e in peek_all(wal, "t")] == [b"first", b"a" * 5000]


# --- the preamble of many topics ----------------------------------------------------------------


def test_many_long_topic_names_do_not_make_every_append_roll(tmp_path: Path,
                                                           open_wal: WalFactory) -> None:
    wal = open_wal(segment_size=16 << 10, fsync_schedule=FsyncSchedule.NoFsync)
    for i in range(300):  # a preamble of about 86 KB, five times the segment size
        wal.append_for_topic(f"{i:06d}".ljust(255, "n"), b"x")
    before = set(segment_files(tmp_path / "wal"))
    for _ in range(50):
        wal.append_for_topic("hot", b"y" * 10)
    wal.close()  # which deletes a segment prepared ahead of need and not used
    added = set(segment_files(tmp_path / "wal")) - before
    assert len(added) <= 1, f"50 small appends made {len(added)} segments"
    for path in added:  # the preamble (one TOPIC record per topic) is at most half of it
        assert path.stat().st_size >= 2 * 301 * (32 + 256)
    with open_wal() as again:
        assert again.get_topic_entry_count("hot") == 50 and len(again.topics()) == 301


# --- keys and the base's own files ---------------------------------------------------------------

RESERVED_KEYS = ["LOCK", "lock", "0000000000000009.wal", "0000000000000003.wal",
                 "0000000000000001.idx", "0000000000000001.idx.tmp", "x.TMP", "events.wal"]


def test_keys_never_take_the_names_of_the_bases_files(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for key in RESERVED_KEYS:
        assert sanitize_key(key) == "ns_" + format(fnv1a64(key.encode()), "x"), key
    assert sanitize_key("events.walx") == "events.walx"
    monkeypatch.setenv("WALRUS_DATA_DIR", str(tmp_path))
    with Walrus(segment_size=4096, fsync_schedule=FsyncSchedule.NoFsync) as base:
        base.append_for_topic("t", b"base")
        for key in RESERVED_KEYS:
            with Walrus.new_for_key(key) as keyed:
                keyed.append_for_topic("k", key.encode())
        for _ in range(100):  # rolls through segment numbers a key folder could have taken
            base.append_for_topic("t", b"x" * 200)
    with Walrus() as base:
        assert base.get_topic_entry_count("t") == 101
    for key in RESERVED_KEYS:
        with Walrus.new_for_key(key) as keyed:
            assert [e.data for e in peek_all(keyed, "k")] == [key.encode()]


def test_folders_named_like_the_bases_files_are_ignored(tmp_path: Path,
                                                        open_wal: WalFactory) -> None:
    """Folders left by an older version's keyed instances: LOCK, segments, indexes."""
    root = tmp_path / "wal"
    for name in ("LOCK", "0000000000000002.wal", "0000000000000001.idx",
                 "0000000000000004.idx.tmp"):
        (root / name).mkdir(parents=True)
        (root / name / "keep").write_bytes(b"a key folder's own file")
    wal = open_wal(segment_size=4096, fsync_schedule=FsyncSchedule.NoFsync)
    for i in range(100):
        wal.append_for_topic("t", b"%03d" % i * 70)
    with pytest.raises(WalrusLockedError) as info:  # the lock holds, LOCK being no file
        Walrus(data_dir=root)
    assert info.value.pid == os.getpid()
    assert len(wal.batch_read_for_topic("t", 1 << 20)) == 100  # consumed: segments reclaimed
    wal.append_for_topic("t", b"last")
    wal.close()
    with open_wal() as again:
        assert [e.data for e in again.batch_read_for_topic("t", 1 << 20)] == [b"last"]
    for name in ("LOCK", "0000000000000002.wal", "0000000000000001.idx",
                 "0000000000000004.idx.tmp"):
        assert (root / name / "keep").read_bytes() == b"a key folder's own file"


# --- errors stay in the hierarchy -------------------------------------------------------------


@pytest.mark.parametrize("flag", ["no", "", 0, 1, None, [], 1.0])
def test_checkpoint_must_be_a_bool(open_wal: WalFactory, flag: object) -> None:
    wal = open_wal()
    wal.batch_append_for_topic("t", [b"1", b"2"])
    with pytest.raises(InvalidArgumentError, match="checkpoint"):
        wal.read_next("t", checkpoint=flag)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="checkpoint"):
        wal.batch_read_for_topic("t", 1 << 20, checkpoint=flag)  # type: ignore[arg-type]
    assert wal.get_topic_entry_count("t") == 2
    entry = wal.read_next("t")
    assert entry is not None and entry.data == b"1"


class _BytesPath(os.PathLike[bytes]):
    def __fspath__(self) -> bytes:
        return b"somewhere"


@pytest.mark.parametrize("call", [
    lambda d: Walrus(data_dir=d / "a", segment_size=2 ** 64),
    lambda d: Walrus(data_dir=d / "a", segment_size=(1 << 40) + 1),
    lambda d: Walrus(data_dir=str(d / "c\0d")),
    lambda d: Walrus(data_dir=_BytesPath()),  # type: ignore[arg-type]
    lambda d: Walrus(data_dir=d / "a", fsync_schedule=FsyncSchedule.Milliseconds(10 ** 400)),
], ids=["segment_size-2**64", "segment_size-over-1TiB", "data_dir-NUL", "data_dir-bytes",
        "Milliseconds-10**400"])
def test_out_of_range_arguments_are_invalid_argument_errors(
        tmp_path: Path, call: Callable[[Path], Walrus]) -> None:
    with pytest.raises(InvalidArgumentError):
        call(tmp_path)
    assert not (tmp_path / "a").exists()
    Walrus(data_dir=tmp_path / "a").close()  # nothing was left locked


def test_a_budget_beyond_any_batch_means_no_limit(open_wal: WalFactory) -> None:
    wal = open_wal()
    wal.batch_append_for_topic("t", [b"1", b"2"])
    for budget in (2 ** 63, 2 ** 64, 10 ** 30):
        assert [e.data for e in wal.batch_read_for_topic("t", budget, checkpoint=False)] == [
            b"1", b"2"]


def test_read_failures_raise_storage_error(tmp_path: Path, hooked: str) -> None:
    """A disk that fails reads: every read raises StorageError (an OSError with the errno)
    and consumes nothing, for the writer and for an observer alike."""
    with Walrus(data_dir=tmp_path, backend=hooked) as wal:
        wal.batch_append_for_topic("t", [b"x" * 100, b"y" * 100])
        wal.flush()
        observer = Walrus(data_dir=tmp_path, backend=hooked, read_only=True)
        wal.append_for_topic("t", b"z")
        wal.flush()
        _Hooks.read_errno = errno.EIO
        calls: list[Callable[[], object]] = [
            lambda: wal.read_next("t"),
            lambda: wal.read_next("t", checkpoint=False),
            lambda: wal.batch_read_for_topic("t", 1 << 20),
            lambda: wal.batch_read_for_topic("t", 1 << 20, checkpoint=False, start_offset=1),
            observer.topics,
            lambda: observer.read_next("t", checkpoint=False),
        ]
        for call in calls:
            with pytest.raises(StorageError) as info:
                call()
            assert info.value.errno == errno.EIO
        _Hooks.read_errno = None
        assert wal.get_topic_entry_count("t") == 3
        assert [e.data for e in wal.batch_read_for_topic("t", 1 << 20)] == [
            b"x" * 100, b"y" * 100, b"z"]
        observer.close()
