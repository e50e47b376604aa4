"""The test side of ``tests/_zygote.py``: child processes that skip Python's start-up.

``Zygote.start(module, *args)`` behaves like ``subprocess.Popen([python, "-m", module, *args])``
for what the kill tests use of it (``pid``, ``poll``, ``wait``, ``send_signal``, ``kill``,
``returncode``); stdout and stderr go to files. One zygote per test process (the ``zygote``
fixture of tests/conftest.py), started on first use.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

PRELOAD = ("walrus", "walrus._cli", "walrus.testing._faults", "tests._workload",
           "tests._crash_child", "tests._consumer_child", "tests._retention_child",
           *(("walrus._forward", "walrus.sinks._nats", "nats", "nats.js")
             if importlib.util.find_spec("nats") is not None else ()))
"""What the children import: done once, in the zygote (nats-py's client too, where it is
installed, for the forwarders of the NATS tests)."""


def _comparable(env: dict[str, str]) -> dict[str, str]:
    """``env`` without what pytest changes for each test (``PYTEST_CURRENT_TEST``)."""
    return {name: value for name, value in env.items() if name != "PYTEST_CURRENT_TEST"}


class Forked:
    """A child of the zygote; Popen's interface, as far as the tests need it."""

    def __init__(self, zygote: Zygote, pid: int, out: Path, err: Path) -> None:
        self.zygote, self.pid, self.out, self.err = zygote, pid, out, err
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.zygote.ask({"poll": self.pid})["returncode"]
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if timeout is not None:
            deadline = time.monotonic() + timeout
            while self.poll() is None:
                if time.monotonic() > deadline:
                    raise subprocess.TimeoutExpired(f"zygote child {self.pid}", timeout)
                time.sleep(0.005)
        if self.returncode is None:
            self.returncode = self.zygote.ask({"wait": self.pid})["returncode"]
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        """As Popen's: nothing once the child was reaped (its pid may be another's then)."""
        if self.returncode is None:
            os.kill(self.pid, sig)  # not reaped yet: the pid is still this child's

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def stderr_text(self) -> str:
        return self.err.read_text(errors="replace") if self.err.exists() else ""


class Zygote:
    """One ``python -m tests._zygote`` process, asked over pipes (one caller at a time)."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.cwd, self.env = cwd, env
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests._zygote", *PRELOAD], env=env, cwd=cwd,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.lock = threading.Lock()
        self.children: list[Forked] = []
        self.logs = tempfile.TemporaryDirectory(prefix="zygote-")

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            assert self.process.stdin is not None and self.process.stdout is not None
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the zygote ended ({self.process.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def start(self, module: str, *args: str, out: Path | None = None,
              err: Path | None = None, faulthandler: bool = False) -> Forked:
        """``python -m module args...`` with stdout appended to ``out``, stderr to ``err``
        (default: ``out`` too; without either, a file of the zygote's own); ``faulthandler``
        as ``python -X faulthandler``."""
        if out is None:
            out = Path(self.logs.name) / f"child-{len(self.children)}.log"
        err = out if err is None else err
        answer = self.ask({"run": module, "argv": list(args), "cwd": str(self.cwd),
                           "out": str(out), "err": str(err), "faulthandler": faulthandler})
        child = Forked(self, answer["pid"], out, err)
        self.children.append(child)
        return child

    def serves(self, env: dict[str, str]) -> bool:
        """Whether a child given ``env`` would see what the zygote's children see (else the
        caller starts a fresh interpreter: walrus reads some variables at import)."""
        return _comparable(env) == _comparable(self.env)

    def run(self, how: dict[str, str], args: tuple[str, ...], cwd: str, timeout: float,
            stdin: bytes | None = None,
            faulthandler: bool = False) -> subprocess.CompletedProcess[bytes]:
        """``subprocess.run`` of ``python -c CODE`` (``how``: ``{"code": CODE}``) or ``python
        -m MODULE`` (``{"run": MODULE}``) with ``args``, ``cwd``, ``input=stdin``,
        ``capture_output=True`` and ``timeout``, forked. With ``faulthandler`` (as ``python -X
        faulthandler``), a child past ``timeout`` is sent SIGABRT first, so that its threads'
        stacks are in the ``TimeoutExpired``'s ``stderr``."""
        logs = Path(self.logs.name)
        out, err, given = (logs / f"child-{len(self.children)}.{name}"
                           for name in ("out", "err", "in"))
        given.write_bytes(stdin or b"")
        answer = self.ask({**how, "argv": list(args), "cwd": cwd, "out": str(out),
                           "err": str(err), "in": str(given), "faulthandler": faulthandler})
        child = Forked(self, answer["pid"], out, err)
        self.children.append(child)
        command = [*how.values(), *args]
        try:
            try:
                child.wait(timeout)
            except subprocess.TimeoutExpired:
                if faulthandler:  # its threads' stacks, before the SIGKILL below
                    child.send_signal(signal.SIGABRT)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        child.wait(10)
                raise subprocess.TimeoutExpired(command, timeout, out.read_bytes(),
                                                err.read_bytes()) from None
            finally:
                child.kill()
                child.wait()
            return subprocess.CompletedProcess(command, child.wait(), out.read_bytes(),
                                               err.read_bytes())
        finally:
            for path in (out, err, given):
                path.unlink()

    def close(self) -> None:
        """Kill what still runs, then end the zygote."""
        for child in self.children:
            if child.returncode is None:
                child.kill()
                child.wait()
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=60)
        self.logs.cleanup()


ZYGOTES: list[Zygote] = []
"""This process's zygotes, one per environment children are given (a few at most)."""


def zygote_for(env: dict[str, str], cwd: Path, limit: int = 4) -> Zygote | None:
    """The zygote whose children get ``env``, started on first use; None once ``limit``
    others run (the caller then starts a fresh interpreter)."""
    for zygote in ZYGOTES:
        if zygote.serves(env):
            return zygote
    if len(ZYGOTES) >= limit:
        return None
    ZYGOTES.append(Zygote(env, cwd))
    return ZYGOTES[-1]


def close_all() -> None:
    while ZYGOTES:
        ZYGOTES.pop().close()


def run_interpreter(command: list[str], env: dict[str, str], timeout: float, root: Path,
                    stdin: bytes | None = None,
                    faulthandler: bool = False) -> subprocess.CompletedProcess[bytes]:
    """``subprocess.run([python, *command], env=env, input=stdin, capture_output=True,
    timeout=timeout)`` in this directory, where ``command`` is ``["-c", CODE, *args]`` or
    ``["-m", MODULE, *args]``: forked from the zygote that serves ``env`` (started with the
    source tree ``root`` as its directory), else a fresh interpreter; ``faulthandler`` as
    ``python -X faulthandler`` (see ``Zygote.run``)."""
    forks = zygote_for(env, root)
    if forks is None:
        options = ["-X", "faulthandler"] if faulthandler else []
        return subprocess.run([sys.executable, *options, *command], env=env, input=stdin,
                              capture_output=True, timeout=timeout)
    how = {"code": command[1]} if command[0] == "-c" else {"run": command[1]}
    return forks.run(how, tuple(command[2:]), os.getcwd(), timeout, stdin, faulthandler)
