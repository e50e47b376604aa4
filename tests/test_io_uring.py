"""The io_uring backend: its probe, its optional build, its I/O, and its on-disk compatibility.

Tests that need a working ring skip where io_uring cannot run, except under
``WALRUS_REQUIRE_URING=1`` (CI), where they fail instead. Probe failures are produced for
real in child processes: a seccomp filter that refuses ``io_uring_setup``, a package copy
without the extension, an interpreter where cffi cannot load.
"""

from __future__ import annotations

import array
import errno
import fcntl
import json
import os
import shutil
import site
import subprocess
import sys
import tempfile
import termios
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import walrus
from walrus import FsyncSchedule, ReadConsistency, Walrus
from walrus.backends import Buffer, File
from walrus.backends._io_uring import IoUringBackend, IoUringFile
from walrus.backends._uring_ring import DIRECT_MAX, MAX_RINGS, MODULE, SCRATCH, probe

from .conftest import BACKENDS, ROOT

pytestmark = pytest.mark.xdist_group("source-tree")
"""The build tests run setup.py in the source tree, which writes the generated C files there:
one pytest-xdist worker runs them, one at a time."""


def _require(available: bool, reason: str) -> None:
    """Skip, or fail under WALRUS_REQUIRE_URING (CI must never lose the backend silently)."""
    if available:
        return
    if os.environ.get("WALRUS_REQUIRE_URING"):
        pytest.fail(f"WALRUS_REQUIRE_URING is set but io_uring is unavailable: {reason}")
    pytest.skip(f"io_uring unavailable: {reason}")


@pytest.fixture
def uring() -> Iterator[IoUringBackend]:
    """A working io_uring backend."""
    availability = probe()
    _require(availability.ok, availability.reason)
    backend = IoUringBackend()
    yield backend
    backend.close()


@pytest.fixture
def extension_built() -> None:
    """The extension is importable (probes that fail later than the import need it)."""
    reason = probe().reason
    _require(not reason.startswith(("not built", "not usable", "not loadable")), reason)


def child(code: str, *, package: Path = ROOT, preamble: str = "") -> dict[str, object]:
    """Run ``preamble`` then ``code`` in a fresh interpreter; it prints one JSON object.

    ``walrus`` is imported from ``package``. The interpreter runs without ``site`` (so that no
    editable-install hook can bring the installed copy back), with the dependencies' paths.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("WALRUS_")}
    env["PYTHONPATH"] = os.pathsep.join([str(package), *site.getsitepackages()])
    script = textwrap.dedent(preamble) + textwrap.dedent(code)
    with tempfile.TemporaryDirectory() as scratch:  # the child's temporary logs go with it
        env["TMPDIR"] = scratch
        result = subprocess.run([sys.executable, "-S", "-c", script], env=env, cwd=package,
                                capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# --- the probe -----------------------------------------------------------------------------------

def test_probe_is_cached_and_is_what_available_backends_shows() -> None:
    first = probe()
    assert probe() is first
    assert first.reason, "a probe always gives a reason"
    row = next(r for r in walrus.available_backends() if r.name == "io_uring")
    assert (row.available, row.reason) == (first.ok, first.reason)
    assert row.plugin == next(r.plugin for r in walrus.available_backends() if r.name == "mmap")


SELECTION_REPORT = """
import io, json, logging, tempfile
import walrus
from walrus import Walrus
log = io.StringIO()
handler = logging.StreamHandler(log)
logging.getLogger("walrus").addHandler(handler)
logging.getLogger("walrus").setLevel(logging.INFO)
row = next(r for r in walrus.available_backends() if r.name == "io_uring")
with Walrus(data_dir=tempfile.mkdtemp(), backend="io_uring,pwrite") as wal:
    wal.append_for_topic("t", b"still works")
    fallback = wal.backend
try:
    Walrus(data_dir=tempfile.mkdtemp(), backend="io_uring")
    error = None
except walrus.BackendUnavailableError as exc:
    error = str(exc)
print(json.dumps({"available": row.available, "reason": row.reason, "fallback": fallback,
                  "error": error, "log": log.getvalue()}))
"""


def _assert_unavailable(report: dict[str, object], *fragments: str) -> None:
    reason = str(report["reason"])
    assert report["available"] is False
    for fragment in fragments:
        assert fragment in reason
    assert report["fallback"] == "pwrite"
    assert reason in str(report["log"]), "the fallback log gives the probe's reason"
    assert report["error"] is not None and reason in str(report["error"])


SECCOMP = """
import ctypes
def refuse_io_uring_setup(err):
    # BPF: if the syscall number is io_uring_setup (425 on every architecture), fail it
    # with err; allow everything else.
    class Insn(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte),
                    ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]
    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Insn))]
    insns = (Insn * 4)((0x20, 0, 0, 0), (0x15, 0, 1, 425),
                       (0x06, 0, 0, 0x00050000 | err), (0x06, 0, 0, 0x7FFF0000))
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(38, 1, 0, 0, 0) == 0, "PR_SET_NO_NEW_PRIVS"
    assert libc.prctl(22, 2, ctypes.byref(Prog(4, insns)), 0, 0) == 0, "PR_SET_SECCOMP"
"""


@pytest.mark.parametrize(("err", "fragments"), [
    (errno.EPERM, ("EPERM", "seccomp")),
    (errno.ENOSYS, ("no io_uring", "ENOSYS")),
])
def test_probe_reports_a_refused_ring(extension_built: None, err: int,
                                      fragments: tuple[str, ...]) -> None:
    report = child(f"refuse_io_uring_setup({err})\n" + SELECTION_REPORT, preamble=SECCOMP)
    _assert_unavailable(report, *fragments)


def test_probe_reports_an_extension_that_was_not_built(tmp_path: Path) -> None:
    shutil.copytree(Path(walrus.__file__).parent, tmp_path / "walrus",  # the one under test
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    # The reason says what to install and how to rebuild past pip's cached wheel.
    _assert_unavailable(child(SELECTION_REPORT, package=tmp_path), "not built", MODULE,
                        "liburing-dev", "a C compiler", "--no-cache-dir walrus-wal")


def test_probe_reports_missing_cffi(extension_built: None) -> None:
    report = child("import sys\nsys.modules['_cffi_backend'] = None\n" + SELECTION_REPORT)
    _assert_unavailable(report, "cffi is not installed")


# --- the optional build --------------------------------------------------------------------------

def _build(tmp_path: Path, switch: str, cc: str | None = None,
           terminal: int | None = None) -> tuple[int, str, list[Path]]:
    """``setup.py build_ext`` into ``tmp_path``; its output is captured, as pip captures it.

    It runs without a controlling terminal (a session of its own), unless ``terminal`` (a
    pty's follower end) is given to be that terminal.
    """
    if not (ROOT / "setup.py").is_file():
        pytest.skip("no setup.py: not running from a source tree")
    env = dict(os.environ, WALRUS_URING=switch, WALRUS_SPEEDUPS="0")
    if cc is not None:
        env["CC"] = cc

    def own_terminal() -> None:
        os.setsid()
        if terminal is not None:
            fcntl.ioctl(terminal, termios.TIOCSCTTY, 0)

    out = tmp_path / "lib"
    result = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--build-lib", str(out),
         "--build-temp", str(tmp_path / "tmp")],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=300, preexec_fn=own_terminal,
        pass_fds=() if terminal is None else (terminal,))
    return result.returncode, result.stdout + result.stderr, sorted(out.rglob("_uring*.so"))


def test_build_switched_off_builds_nothing(tmp_path: Path) -> None:
    code, output, built = _build(tmp_path, "0", cc="false")
    assert code == 0, output
    assert built == []


def test_auto_build_turns_a_failure_into_a_warning(tmp_path: Path) -> None:
    code, output, built = _build(tmp_path, "auto", cc="false")
    assert code == 0, output
    assert f"WARNING: not building {MODULE}" in output and "'not built'" in output
    assert built == []


def test_a_skipped_build_is_told_on_the_terminal(tmp_path: Path) -> None:
    """pip shows a build's captured output only when it fails: the warning must also reach
    the terminal of whoever installs, with what to install."""
    leader, follower = os.openpty()
    try:
        code, output, built = _build(tmp_path, "auto", cc="false", terminal=follower)
        os.close(follower)
        follower = -1
        seen = _drain(leader)
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    assert code == 0, output
    assert built == []
    assert f"WARNING: not building {MODULE} (the io_uring backend)" in seen, seen
    for hint in ("liburing-dev", "liburing-devel", "a C compiler",
                 "pip install --force-reinstall --no-deps --no-cache-dir walrus-wal"):
        assert hint in seen, seen
    assert seen.count("WARNING: not building") == 1, seen


def _drain(leader: int) -> str:
    """Everything written to a pty whose follower end is closed."""
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the follower end is closed and everything was read
            break
        if not chunk:
            break
        chunks.append(chunk)
    return " ".join(b"".join(chunks).decode("utf-8", "replace").split())


def test_without_a_terminal_the_warning_is_in_the_output_only(tmp_path: Path) -> None:
    code, output, _ = _build(tmp_path, "auto", cc="false")
    assert code == 0, output
    assert "liburing-dev (Debian, Ubuntu) or liburing-devel" in output


def test_required_build_fails_loudly(tmp_path: Path) -> None:
    code, output, built = _build(tmp_path, "1", cc="false")
    assert code != 0, output
    assert built == []


def test_an_invalid_switch_is_named(tmp_path: Path) -> None:
    code, output, _ = _build(tmp_path, "yes")
    assert code != 0
    assert "WALRUS_URING='yes': expected auto, 0 or 1" in output


@pytest.mark.slow
def test_required_build_links_liburing_statically(tmp_path: Path) -> None:
    readelf = shutil.which("readelf")
    if readelf is None:
        pytest.skip("readelf is not installed")
    code, output, built = _build(tmp_path, "1")
    _require(code == 0, f"WALRUS_URING=1 build failed:\n{output}")
    assert len(built) == 1
    dynamic = subprocess.run([readelf, "-d", str(built[0])], capture_output=True, text=True,
                             check=True).stdout
    assert "NEEDED" in dynamic and "liburing" not in dynamic


# --- the backend's I/O ---------------------------------------------------------------------------

def _create(backend: IoUringBackend, path: Path, size: int = 1 << 20) -> File:
    return backend.open(str(path), size=size, create=True)


def test_writes_read_back_byte_exactly(uring: IoUringBackend, tmp_path: Path) -> None:
    f = _create(uring, tmp_path / "f", 8 << 20)
    try:
        f.writev(0, [b"header", b""])  # a zero-length payload
        f.write(f.size - 8, memoryview(array.array("i", [7, 8])))  # 8 bytes, 2 items
        assert f.read(f.size - 8, 8) == array.array("i", [7, 8]).tobytes()
        parts: list[Buffer] = [bytes([i % 251]) * (i % 97) for i in range(3000)]  # 3 SQEs
        parts[7] = bytearray(b"a bytearray")
        parts[8] = memoryview(b"....a memoryview....")[4:-4]
        parts[9] = memoryview(array.array("i", [1, 2, 3]))  # 12 bytes, 3 items
        f.writev(6, parts)
        joined = b"".join(bytes(p) for p in parts)
        big = os.urandom(SCRATCH + 12345)  # larger than the per-thread read buffer
        f.write(6 + len(joined), big)
        assert f.read(0, 6) == b"header"
        assert f.read(6, len(joined)) == joined
        assert f.read(6 + len(joined), SCRATCH) == big[:SCRATCH]  # the ring's largest read
        assert f.read(6 + len(joined), len(big)) == big  # larger: one pread
        assert f.read(f.size - 12, 100) == bytes(4) + array.array("i", [7, 8]).tobytes(), \
            "short only at the end of the file"
        assert f.read(f.size, 100) == b""
    finally:
        f.close()


def test_single_small_transfers_skip_the_ring_and_batches_use_it(uring: IoUringBackend,
                                                                   tmp_path: Path) -> None:
    """An append (header + payload) or a small read is one plain system call, as in the Rust
    original: through a ring, ext4 hands each buffered write to a kernel worker."""
    from walrus._native import _uring

    assert _uring.lib.WR_DIRECT_MAX == DIRECT_MAX
    f = _create(uring, tmp_path / "f", 4 << 20)
    ring = uring._ring
    try:
        before = ring.operations
        for i in range(100):
            f.writev(i * 132, [b"h" * 32, bytes([i]) * 100])
            f.write(20_000 + i, b"x")
        f.write(0, b"")  # nothing to write is no error
        f.writev(0, [b"", b""])
        f.write(1 << 20, b"y" * DIRECT_MAX)
        assert f.read(99 * 132, 132) == b"h" * 32 + bytes([99]) * 100
        assert f.read(1 << 20, DIRECT_MAX) == b"y" * DIRECT_MAX
        assert ring.operations == before, "single small transfers went through a ring"
        f.writev(0, [b"a", b"b", b"c"])  # a batch of records
        f.write(2 << 20, b"z" * (DIRECT_MAX + 1))
        assert f.read(2 << 20, DIRECT_MAX + 1) == b"z" * (DIRECT_MAX + 1)
        assert ring.operations == before + 3
    finally:
        f.close()


def test_errors_are_oserrors_naming_the_file(uring: IoUringBackend, tmp_path: Path) -> None:
    path = tmp_path / "ro"
    _create(uring, path).close()
    f = uring.open(str(path), writable=False)
    try:
        with pytest.raises(OSError) as info:
            f.write(0, b"x")
        assert info.value.errno == errno.EBADF and info.value.filename == str(path)
    finally:
        f.close()


def test_sync_files_syncs_many_and_reports_the_file_that_failed(uring: IoUringBackend,
                                                                tmp_path: Path) -> None:
    files = [_create(uring, tmp_path / f"{i}") for i in range(300)]  # > one ring's depth
    foreign = walrus.backend_spec("pwrite").factory()
    other = foreign.open(str(tmp_path / "pwrite"), size=4096, create=True)
    try:
        for i, f in enumerate(files):
            f.write(0, b"%d" % i)
        uring.sync_files([*files, other])
        closed = files[123]
        closed.close()
        with pytest.raises(OSError) as info:
            uring.sync_files(files)
        assert info.value.errno == errno.EBADF and info.value.filename == closed.path
    finally:
        for f in [*files, other]:
            f.close()
        foreign.close()


def test_concurrent_operations_stay_correct(uring: IoUringBackend, tmp_path: Path) -> None:
    f = _create(uring, tmp_path / "shared", 16 << 20)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(200):
                data = (b"%d-%d;" % (n, i)) * 50
                pos = (n * 200 + i) * 4096
                f.write(pos, data)
                if f.read(pos, len(data)) != data:
                    raise AssertionError(f"thread {n} read back something else at {pos}")
                if i % 50 == 0:
                    uring.sync_files([f])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    f.close()
    assert errors == []
    assert 1 <= uring._ring.rings <= MAX_RINGS


def test_a_closed_backend_refuses_io(tmp_path: Path, uring: IoUringBackend) -> None:
    f = _create(uring, tmp_path / "f")
    uring.close()
    try:
        with pytest.raises(OSError) as info:
            f.write(0, b"late")
        assert info.value.errno == errno.EBADF
        assert isinstance(f, IoUringFile)
    finally:
        f.close()


def test_engine_rolls_and_syncs_many_segments(uring: IoUringBackend, tmp_path: Path) -> None:
    with Walrus(data_dir=tmp_path, backend="io_uring", segment_size=8192,
                fsync_schedule=FsyncSchedule.SyncEach) as wal:
        for i in range(200):
            wal.append_for_topic(f"t{i % 3}", b"%05d" % i * 20)
        wal.batch_append_for_topic("t0", [b"b"] * 100)
        assert wal.get_topic_entry_counts() == {"t0": 167, "t1": 67, "t2": 66}
    assert len(list(tmp_path.glob("*.wal"))) >= 3


# --- one on-disk format --------------------------------------------------------------------------

def _write_everything(wal: Walrus) -> None:
    """Every kind of record, through both write paths, across several segments."""
    for i in range(120):
        wal.append_for_topic("singles", b"s%03d" % i * (i % 7))
    wal.append_for_topic("singles", b"")
    wal.append_for_topic("singles", b"L" * 70_000)
    wal.batch_append_for_topic("batches", [b"b%04d" % i for i in range(500)])
    wal.batch_append_for_topic("batches", [b"M" * (1 << 20)] * 5)  # > 4 MiB: the writev path
    wal.mark_topic_clean("batches")
    wal.append_for_topic("dirty", b"x")


def _expect_everything(wal: Walrus, consumed: int) -> None:
    assert wal.topics() == ["singles", "batches", "dirty"]
    assert wal.get_topic_entry_count("singles") == 122 - consumed
    singles = wal.batch_read_for_topic("singles", 1 << 30, checkpoint=False)
    assert [e.offset for e in singles] == list(range(consumed, 122))
    assert singles[-1].data == b"L" * 70_000 and singles[-2].data == b""
    assert singles[0].data == b"s%03d" % consumed * (consumed % 7)
    batches = wal.batch_read_for_topic("batches", 1 << 30, checkpoint=False)
    assert [e.data for e in batches[:500]] == [b"b%04d" % i for i in range(500)]
    assert len(batches) == 505 and batches[-1].data == b"M" * (1 << 20)
    assert wal.topic_is_clean("batches") and not wal.topic_is_clean("dirty")


@pytest.mark.parametrize("reader", BACKENDS)
@pytest.mark.parametrize("writer", BACKENDS)
def test_a_cleanly_closed_directory_reads_with_any_backend(tmp_path: Path, writer: str,
                                                           reader: str) -> None:
    with Walrus(data_dir=tmp_path, backend=writer, segment_size=256 << 10) as wal:
        _write_everything(wal)
    with Walrus(data_dir=tmp_path, backend=reader, read_only=True) as observer:
        _expect_everything(observer, consumed=0)  # a read-only observer sees the same
    with Walrus(data_dir=tmp_path, backend=reader, segment_size=256 << 10) as wal:
        _expect_everything(wal, consumed=0)
        assert [e.data for e in wal.batch_read_for_topic("singles", 0)] == [b""]  # consumes 1
        wal.append_for_topic("dirty", b"appended by the reader")
    with Walrus(data_dir=tmp_path, backend=writer) as wal:
        _expect_everything(wal, consumed=1)
        assert wal.read_next("dirty", checkpoint=False).data == b"x"  # type: ignore[union-attr]
        assert wal.get_topic_entry_count("dirty") == 2


@pytest.mark.parametrize("reader", BACKENDS)
@pytest.mark.parametrize("writer", BACKENDS)
def test_a_crashed_directory_recovers_with_any_backend(tmp_path: Path, writer: str,
                                                       reader: str) -> None:
    report = child(f"""
        import json, os
        from walrus import FsyncSchedule, ReadConsistency, Walrus
        wal = Walrus(data_dir={str(tmp_path)!r}, backend={writer!r}, segment_size=64 << 10,
                     fsync_schedule=FsyncSchedule.SyncEach,
                     consistency=ReadConsistency.AtLeastOnce(persist_every=1))
        for i in range(300):
            wal.append_for_topic("t", b"%d" % i * 30)
        wal.batch_append_for_topic("t", [b"batch-%d" % i for i in range(50)])
        wal.read_next("t"); wal.read_next("t"); wal.read_next("t")
        print(json.dumps({{"acked": 350}}), flush=True)
        os._exit(0)  # no close: recovery must cut nothing acknowledged
        """)
    with Walrus(data_dir=tmp_path, backend=reader,
                consistency=ReadConsistency.AtLeastOnce(persist_every=1)) as wal:
        entries = wal.batch_read_for_topic("t", 1 << 30, checkpoint=False)
        assert entries[-1].offset == int(str(report["acked"])) - 1
        assert entries[0].offset == 2, "AtLeastOnce(1) persisted the cursor of earlier reads"
        assert [e.data for e in entries[-50:]] == [b"batch-%d" % i for i in range(50)]
        assert entries[0].data == b"2" * 30
