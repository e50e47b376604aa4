"""End-to-end tests of the ``walrus`` command line: the real command, in real processes."""

from __future__ import annotations

import errno
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from walrus import Walrus

from .cli_support import (
    child_env,
    data_dir,
    quiet_isolated_env,
    run_python,
    start_python,
    start_walrus,
    tree_state,
    walrus_cmd,
)

__all__ = ["data_dir", "quiet_isolated_env"]  # fixtures

SUBCOMMANDS = ["append", "read", "tail", "topics", "verify", "backends", "bench"]


def ok(*args: str | Path, stdin: bytes | None = None) -> bytes:
    """Run a command that must succeed; return its standard output."""
    result = walrus_cmd(*args, stdin=stdin)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def fails(*args: str | Path, stdin: bytes | None = None) -> str:
    """Run a command that must fail with one line on stderr and exit status 2; return the line."""
    result = walrus_cmd(*args, stdin=stdin)
    err = result.stderr.decode()
    assert result.returncode == 2, (result.returncode, err)
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err
    return err


def topics_json(data_dir: Path) -> dict[str, dict[str, object]]:
    lines = ok("topics", data_dir, "--format", "json").decode().splitlines()
    return {row["topic"]: row for row in map(json.loads, lines)}


# --- help and version -----------------------------------------------------------------------


def test_version() -> None:
    from walrus import __version__

    assert ok("--version").decode().strip() == f"walrus-wal {__version__}"


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_lists_every_subcommand(flag: str) -> None:
    out = ok(flag).decode()
    for name in SUBCOMMANDS:
        assert name in out


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_subcommand_has_help(name: str) -> None:
    assert ok(name, "-h").decode().startswith(f"usage: walrus {name}")


BENCHMARKS = ["writes", "reads", "scaling", "batch", "batch-scaling", "compare", "plot",
              "targets", "scale", "backends", "durable-append", "wakeup"]
INTERNAL_WORDS = re.compile(r"\bissue\b|\bseed\b|\brepro\b|reference/|measurements\.md|"
                            r"\.\./shared|:func:|``|this machine", re.IGNORECASE)


@pytest.mark.parametrize("benchmark", ["", *BENCHMARKS])
def test_bench_help_speaks_to_users(benchmark: str, capsys: pytest.CaptureFixture[str]) -> None:
    """No project-internal words, markup or unsourced "this machine" figures in the help."""
    from walrus._cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["bench", *([benchmark] if benchmark else []), "--help"])
    help_text = capsys.readouterr().out
    assert exit_.value.code == 0 and help_text.startswith("usage: walrus bench")
    assert INTERNAL_WORDS.search(help_text) is None, help_text


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("walrus")
    if not script.exists():
        pytest.skip("the package is not installed in this interpreter's environment")
    result = subprocess.run([str(script), "--version"], capture_output=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith(b"walrus-wal ")


def test_the_library_and_its_commands_never_load_the_benchmarks(data_dir: Path) -> None:
    """The benchmark tools are imported by ``walrus bench`` alone, never by walrus itself."""
    loaded = run_python("""
        import sys
        import walrus
        from walrus._cli import main
        assert main(["append", sys.argv[1], "t", "x", "-q"]) == 0
        assert main(["read", sys.argv[1], "t"]) == 0
        assert main(["topics", sys.argv[1]]) == 0
        assert main(["backends"]) == 0
        print(sorted(m for m in sys.modules if m.startswith(("walrus.bench", "walrus_bench"))))
    """, str(data_dir)).stdout.decode().splitlines()[-1]
    assert loaded == "[]"


@pytest.mark.parametrize("args", [["bench"], ["bench", "--help"], ["bench", "writes"]])
def test_bench_without_the_benchmark_tools_says_so(args: list[str], monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from walrus._cli import main

    monkeypatch.setitem(sys.modules, "walrus_bench", None)  # as if it were not installed
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("walrus bench: error: the benchmark tools (the walrus_bench package) "
                          "are not installed")
    assert main(["backends"]) == 0  # every other command works without them


# --- append and read --------------------------------------------------------------------------


def test_append_then_read_consumes_in_order(data_dir: Path) -> None:
    assert ok("append", data_dir, "events", "hello walrus") == (
        b"appended 1 entry to 'events' (offset 0)\n")
    ok("append", data_dir, "events", "second", "-q")
    assert topics_json(data_dir)["events"]["unconsumed"] == 2
    assert ok("read", data_dir, "events") == b"hello walrus\n"
    assert ok("read", data_dir, "events") == b"second\n"
    assert ok("read", data_dir, "events") == b""
    with Walrus(data_dir=data_dir) as wal:  # the library agrees
        assert wal.get_topic_entry_count("events") == 0


def test_append_lines_one_entry_per_line_in_batches(data_dir: Path) -> None:
    lines = [f"line {i}".encode() for i in range(4500)]
    lines[7] = b""  # an empty line is a zero-length entry
    out = ok("append", data_dir, "t", "--lines", stdin=b"\n".join(lines) + b"\n")
    assert out == b"appended 4500 entries to 't' (offsets 0-4499)\n"
    with Walrus(data_dir=data_dir, read_only=True) as wal:
        got = []
        while batch := wal.batch_read_for_topic("t", 1 << 20, checkpoint=False,
                                                 start_offset=len(got)):
            got.extend(e.data for e in batch)
    assert got == lines


def _append_in_process(data_dir: Path, lines: list[bytes], monkeypatch: pytest.MonkeyPatch,
                       capsys: pytest.CaptureFixture[str],
                       fail: Callable[[int], None]) -> tuple[int, str, list[int]]:
    """``walrus append DIR t --lines`` in this process, ``fail(n)`` called before the library
    writes its n-th batch; returns the exit status, stderr and the batches' sizes written."""
    from walrus._cli import main
    from walrus._walrus import Walrus as Library

    written: list[int] = []
    real = Library.batch_append_for_topic

    def batch_append(self: Library, topic: str, entries: Sequence[bytes]) -> int:
        fail(len(written))
        start = real(self, topic, entries)
        written.append(len(entries))
        return start

    monkeypatch.setattr(Library, "batch_append_for_topic", batch_append)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\n".join(lines) + b"\n")))
    status = main(["append", str(data_dir), "t", "--lines"])
    return status, capsys.readouterr().err, written


def test_append_lines_within_the_batch_limits_is_one_atomic_batch(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """An input the library can append atomically is one batch, however many bytes it has:
    a failure writes all of it or none."""
    lines = [bytes([65 + i]) * (6 << 20) for i in range(3)]  # 18 MiB in 3 lines
    status, err, written = _append_in_process(data_dir, lines, monkeypatch, capsys,
                                              lambda n: None)
    assert (status, err, written) == (0, "", [3])


def test_append_lines_failing_between_batches_says_what_was_written(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """An input over one atomic batch that fails part way (a full disk) exits 3 and names the
    entries written, so that a retry can leave them out."""
    def disk_full(n: int) -> None:
        if n == 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    lines = [f"line {i}".encode() for i in range(4500)]
    status, err, written = _append_in_process(data_dir, lines, monkeypatch, capsys, disk_full)
    assert status == 3 and written == [2000]
    assert err == ("walrus append: error: No space left on device; the first 2000 of the 4500 "
                   "lines were appended to 't' (offsets 0-1999); the other 2500 were not\n")
    with Walrus(data_dir=data_dir, read_only=True) as wal:
        assert wal.get_topic_entry_count("t") == 2000


def test_append_lines_interrupted_finishes_the_batch_and_says_what_was_written(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Ctrl-C while a batch is written lets that batch end (its outcome is then known), then
    stops and names what was written."""
    def interrupt(n: int) -> None:
        if n == 0:
            os.kill(os.getpid(), signal.SIGINT)

    lines = [f"line {i}".encode() for i in range(4500)]
    handler = signal.getsignal(signal.SIGINT)
    status, err, written = _append_in_process(data_dir, lines, monkeypatch, capsys, interrupt)
    assert status == 3 and written == [2000]
    assert err == ("walrus append: error: interrupted; the first 2000 of the 4500 lines were "
                   "appended to 't' (offsets 0-1999); the other 2500 were not\n")
    assert signal.getsignal(signal.SIGINT) is handler  # put back


def test_append_where_sigint_is_ignored_leaves_it_ignored(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A program started with SIGINT ignored (a background job) keeps ignoring it: a Ctrl-C
    meant for the shell stops no append half way (before, the append took it and stopped
    after its first batch)."""
    def interrupt(n: int) -> None:
        if n == 0:
            os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        lines = [f"line {i}".encode() for i in range(4500)]
        status, err, written = _append_in_process(data_dir, lines, monkeypatch, capsys,
                                                  interrupt)
        assert (status, err, written) == (0, "", [2000, 2000, 500])
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_append_whose_last_sync_fails_says_the_entries_may_not_be_durable(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Closing the log syncs it; when that fails, the entries were written (they took their
    offsets) but a power loss could take them back: exit 3 says so, not "appended"."""
    from walrus import StorageError
    from walrus._walrus import Walrus as Library

    real_close = Library.close

    def close_fails(self: Library) -> None:
        real_close(self)
        raise StorageError(errno.EIO, "fsync failed: Input/output error")

    monkeypatch.setattr(Library, "close", close_fails)
    status, err, written = _append_in_process(data_dir, [b"one"], monkeypatch, capsys,
                                              lambda n: None)
    assert (status, written) == (3, [1])
    assert err == ("walrus append: error: fsync failed: Input/output error; the entry was "
                   "written to 't' (offset 0), but may not be durable: a power loss could take "
                   "it back\n")


def test_append_file_is_one_entry_and_lines_of_a_file(data_dir: Path, tmp_path: Path) -> None:
    blob = bytes(range(256)) * 3  # newlines and non-UTF-8 bytes included
    (tmp_path / "blob").write_bytes(blob)
    (tmp_path / "lines").write_bytes(b"x\ny")
    ok("append", data_dir, "bin", "--file", tmp_path / "blob")
    ok("append", data_dir, "txt", "--file", tmp_path / "lines", "--lines")
    assert ok("read", data_dir, "bin", "--peek", "--format", "hex") == blob.hex().encode() + b"\n"
    assert ok("read", data_dir, "txt", "-n", "5") == b"x\ny\n"


def test_read_formats(data_dir: Path) -> None:
    ok("append", data_dir, "t", "héllo")
    ok("append", data_dir, "t", "--file", "-", stdin=b"\xff\x00")
    rows = [json.loads(line) for line in ok("read", data_dir, "t", "--peek", "-n", "2",
                                            "--format", "json").splitlines()]
    assert rows == [
        {"topic": "t", "offset": 0, "encoding": "utf-8", "data": "héllo"},
        {"topic": "t", "offset": 1, "encoding": "base64", "data": "/wA="},
    ]
    assert ok("read", data_dir, "t", "--peek", "-n", "2", "--format", "hex") == (
        "héllo".encode().hex().encode() + b"\nff00\n")


def test_peek_and_from_offset_leave_the_cursor(data_dir: Path) -> None:
    ok("append", data_dir, "t", "--lines", stdin=b"0\n1\n2\n3\n")
    assert ok("read", data_dir, "t") == b"0\n"
    assert ok("read", data_dir, "t", "--peek", "-n", "2") == b"1\n2\n"
    assert ok("read", data_dir, "t", "--from-offset", "0", "-n", "10") == b"0\n1\n2\n3\n"
    assert ok("read", data_dir, "t", "--from-offset", "9") == b""
    assert topics_json(data_dir)["t"]["unconsumed"] == 3
    assert ok("read", data_dir, "t", "-n", "3") == b"1\n2\n3\n"


def test_options_mirror_the_library(data_dir: Path) -> None:
    ok("append", data_dir, "t", "x", "--key", "prod/payments::v1", "--backend", "pwrite",
       "--fsync", "sync-each", "--consistency", "at-least-once:5")
    assert (data_dir / "prod_payments__v1").is_dir()
    with Walrus(data_dir=data_dir, key="prod/payments::v1", read_only=True) as wal:
        assert wal.topics() == ["t"]
    for fsync in ("no-fsync", "none", "async", "250ms", "250"):
        ok("append", data_dir, "t", "y", "--key", "other", "--fsync", fsync, "-q")
    assert topics_json(data_dir / "other")["t"]["entries"] == 5


def test_topics_table(data_dir: Path) -> None:
    ok("append", data_dir, "alpha", "--lines", stdin=b"a\nb\nc\n")
    ok("append", data_dir, "beta", "x")
    ok("read", data_dir, "alpha")
    with Walrus(data_dir=data_dir) as wal:
        wal.mark_topic_clean("beta")
        size = wal.get_topic_size("alpha")
    lines = ok("topics", data_dir).decode().splitlines()
    assert lines[0].split() == ["TOPIC", "ENTRIES", "FIRST", "OFFSET", "UNCONSUMED", "BYTES",
                                "CLEAN", "RETENTION"]
    assert lines[1].split() == ["alpha", "3", "0", "2", str(size), "no", "none"]
    assert lines[2].split()[0::5] == ["beta", "yes"]


def test_backends_lists_every_registered_backend() -> None:
    # what the library registers in a process like the command's (this one may hold test
    # plugins registered by hand)
    names = json.loads(run_python("""
        import json, walrus
        print(json.dumps([r.name for r in walrus.available_backends()]))
    """).stdout)
    assert "mmap" in names and "pwrite" in names
    out = ok("backends").decode()
    for name in names:
        assert name in out
    rows = [json.loads(line) for line in ok("backends", "--format", "json").splitlines()]
    assert [r["name"] for r in rows] == names


# --- errors: one line, exit 2, nothing written ------------------------------------------------

HOLDER = """
import sys
from walrus import Walrus
from tests._quiesce import quiesced
wal = Walrus(data_dir=sys.argv[1])
wal.append_for_topic("t", b"held")
wal.flush()
with quiesced(wal):  # its own background work done: what changes now is the others' doing
    print("ready", flush=True)
    sys.stdin.read()  # hold the directory until the test closes our stdin
wal.close()
"""


def test_locked_directory(data_dir: Path) -> None:
    holder = start_python(HOLDER, str(data_dir))
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"ready\n"
        before = tree_state(data_dir)
        line = fails("append", data_dir, "t", "x")
        assert f"locked by process {holder.pid}" in line
        assert "locked" in fails("read", data_dir, "t")
        assert tree_state(data_dir) == before
        # observers work beside the holder
        assert ok("read", data_dir, "t", "--peek") == b"held\n"
        assert topics_json(data_dir)["t"]["unconsumed"] == 1
        assert walrus_cmd("verify", data_dir).returncode == 0
        assert tree_state(data_dir) == before
    finally:
        holder.communicate(b"", timeout=30)
    assert holder.returncode == 0


@pytest.mark.parametrize("args, message", [
    (["x", "--fsync", "often"], "invalid fsync schedule 'often'"),
    (["x", "--consistency", "sometimes"], "invalid consistency 'sometimes'"),
    (["x", "--backend", "nosuch"], "no backend named 'nosuch'"),
    (["x", "--lines"], "not both"),
    ([], "nothing to append"),
    (["--file", "/nonexistent/file"], "cannot read /nonexistent/file"),
])
def test_bad_append_arguments_write_nothing(data_dir: Path, args: list[str],
                                            message: str) -> None:
    ok("append", data_dir, "t", "first")
    before = tree_state(data_dir)
    assert message in fails("append", data_dir, "t", *args)
    assert tree_state(data_dir) == before


def test_bad_topic_creates_nothing(data_dir: Path) -> None:
    assert "at most 255" in fails("append", data_dir, "x" * 256, "data")
    assert "must not be empty" in fails("append", data_dir, "", "data")
    assert not data_dir.exists()


def test_append_of_an_empty_input_creates_nothing(data_dir: Path) -> None:
    """No entry to append makes no log (a new one takes a preallocated segment), and leaves
    an existing one as it is."""
    assert ok("append", data_dir, "t", "--lines", stdin=b"") == b"appended 0 entries to 't'\n"
    assert not data_dir.exists()
    ok("append", data_dir, "t", "x")
    before = tree_state(data_dir)
    assert ok("append", data_dir, "t", "--lines", "-q", stdin=b"") == b""
    assert tree_state(data_dir) == before


@pytest.mark.parametrize("args", [["-n", "0"], ["-n", "many"], ["--from-offset", "-1"],
                                  ["--format", "xml"]])
def test_bad_read_arguments(data_dir: Path, args: list[str]) -> None:
    ok("append", data_dir, "t", "x")
    before = tree_state(data_dir)
    assert "(see 'walrus read --help')" in fails("read", data_dir, "t", *args)
    assert tree_state(data_dir) == before


def test_missing_topic_and_directory(data_dir: Path, tmp_path: Path) -> None:
    ok("append", data_dir, "t", "x")
    before = tree_state(data_dir)
    for command in (["read"], ["read", "--peek"], ["tail"]):
        assert "topic 'nope' does not exist" in fails(*command, data_dir, "nope")
    assert tree_state(data_dir) == before
    missing = tmp_path / "missing"
    for command in (["read", missing, "t"], ["topics", missing], ["verify", missing],
                    ["tail", missing, "t"]):
        assert "does not exist" in fails(*command)
    assert not missing.exists()
    (tmp_path / "file").write_text("not a log")
    assert "data directory " in fails("verify", tmp_path / "file")
    assert "is not a directory" in fails("verify", tmp_path / "file")


def test_options_are_not_abbreviated(tmp_path: Path) -> None:
    """``--conf`` is not taken for ``--config`` (nor any option for another)."""
    (tmp_path / "svc.toml").write_text('[walrus]\ndata_dir = "wal"\n')
    assert "unrecognized arguments: --conf" in fails("topics", "--conf", tmp_path / "svc.toml")
    assert not (tmp_path / "wal").exists()


def test_no_subcommand_is_a_usage_error() -> None:
    assert "required" in fails()


# --- tail ---------------------------------------------------------------------------------------


class _Lines:
    """Collects a process's output lines on a thread, so the test can wait for them."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.lines: list[bytes] = []
        self._proc = proc
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self.lines.append(line.rstrip(b"\n"))

    def wait_for(self, count: int, timeout: float = 120) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while len(self.lines) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.lines)

    def join(self) -> None:
        self._thread.join(timeout=10)


APPENDER = """
import sys, time
from walrus import Walrus
with Walrus(data_dir=sys.argv[1], segment_size=64 << 10) as wal:
    for i in range(int(sys.argv[2])):
        if i % 10 == 0:
            wal.batch_append_for_topic("t", [f"e{k}".encode() for k in range(i, i + 10)])
            time.sleep(0.01)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_tail_follows_another_process_and_stops_cleanly(data_dir: Path, sig: int) -> None:
    ok("append", data_dir, "t", "--lines", stdin=b"old0\nold1\n")
    tail = start_walrus("tail", data_dir, "t", "--from-offset", "1", "--interval", "0.02")
    lines = _Lines(tail)
    try:
        assert lines.wait_for(1) == [b"old1"]
        writer = start_python(APPENDER, str(data_dir), "2000")  # another process, a writer
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err.decode()
        got = lines.wait_for(2001)
        assert got == [b"old1", *(f"e{i}".encode() for i in range(2000))]
        tail.send_signal(sig)
        _, err = tail.communicate(timeout=30)
    finally:
        if tail.poll() is None:
            tail.kill()
    lines.join()
    assert tail.returncode == 0
    assert err == b""


def test_tail_starts_at_the_end_by_default(data_dir: Path) -> None:
    ok("append", data_dir, "t", "--lines", stdin=b"old0\nold1\n")
    tail = start_walrus("tail", data_dir, "t", "--format", "json", "--interval", "0.02")
    lines = _Lines(tail)
    try:
        sent = 0
        while not lines.lines and sent < 200:  # until the tail is surely following
            ok("append", data_dir, "t", f"new{sent}", "-q")
            sent += 1
        got = [json.loads(line) for line in lines.wait_for(1)]
        assert got and got[0]["offset"] >= 2 and got[0]["data"].startswith("new")
        first = got[0]["offset"]
        lines.wait_for(sent + 2 - first)  # the tail catches up with the last append
        tail.send_signal(signal.SIGINT)
        tail.communicate(timeout=30)
    finally:
        if tail.poll() is None:
            tail.kill()
    lines.join()
    assert tail.returncode == 0
    offsets = [json.loads(line)["offset"] for line in lines.lines]
    assert offsets == list(range(first, sent + 2))  # every new entry, in order, once


# --- consuming reads: an entry is consumed only once it is written ---------------------------


def test_a_damaged_entry_is_reported_and_consumed(data_dir: Path) -> None:
    from .test_recovery import flip
    from .test_verify import locate

    ok("append", data_dir, "t", "--lines", stdin=b"e0\ne1\ne2\n")
    segment, pos = locate(data_dir, "t", 1)
    flip(segment, pos + 32)  # the first payload byte of entry 1
    result = walrus_cmd("read", data_dir, "t", "-n", "3")
    assert result.returncode == 2
    assert result.stdout == b"e0\n"
    assert result.stderr.decode().startswith("walrus read: error: topic 't' entry 1 is damaged")
    assert ok("read", data_dir, "t") == b"e2\n"  # the cursor moved past the damaged entry


def test_an_entry_that_cannot_be_written_stays_unconsumed(data_dir: Path) -> None:
    ok("append", data_dir, "t", "--lines", stdin=b"e0\ne1\n")
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will ever read: the first write fails with EPIPE
    try:
        proc = subprocess.run([sys.executable, "-m", "walrus", "read", str(data_dir), "t",
                               "-n", "2"], stdout=write_end, stderr=subprocess.PIPE,
                              env=child_env(), timeout=60)
    finally:
        os.close(write_end)
    assert proc.returncode == 1 and proc.stderr == b""
    assert topics_json(data_dir)["t"]["unconsumed"] == 2


def test_reading_reclaimed_offsets_is_an_error(data_dir: Path) -> None:
    with Walrus(data_dir=data_dir, segment_size=8 << 10) as wal:
        for i in range(100):
            wal.append_for_topic("t", b"%03d" % i * 40)
        for _ in range(90):
            wal.read_next("t")
        first_segment = min(data_dir.glob("*.wal"))
        wal._background.run_once()  # type: ignore[union-attr]  # deletes the consumed segments
        assert not first_segment.exists()
    first = topics_json(data_dir)["t"]["first_offset"]
    assert isinstance(first, int) and 0 < first <= 90
    for command in ("read", "tail"):
        line = fails(command, data_dir, "t", "--from-offset", "0")
        assert f"entries before offset {first} were reclaimed" in line
    assert ok("read", data_dir, "t", "--from-offset", str(first)) == b"%03d" % first * 40 + b"\n"


def test_the_exit_status_table_names_every_status() -> None:
    """docs/cli.md's table lists each status the command line returns, with what it means."""
    from walrus import _cli

    page = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text()
    rows = dict(re.findall(r"^\| (\d+) \| (.+) \|$", page.split("## Errors and exit status")[1],
                           re.MULTILINE))
    assert sorted(map(int, rows)) == sorted({0, 1, _cli.ERROR_EXIT, _cli.PARTLY_WRITTEN_EXIT,
                                             _cli.INTERRUPTED_EXIT})
    assert "went away" in rows["1"]  # a broken pipe: _cli._broken_pipe
    assert "damaged entry" in rows[str(_cli.ERROR_EXIT)]
