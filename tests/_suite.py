"""``make test``: both test passes and the static checks at once, every result reported.

Run one after the other, the steps leave the machine idle where they could overlap: the first
pass ends with its workers waiting for its last long tests, and the pure-Python pass, ruff and
mypy (which need nothing from it) waited for that. Here they all start together; the first
pass's progress is shown as it runs, each other step's output once it is its turn (a step
still running is followed live), and a summary names every step that failed. Every step
always runs to its end: one failing never stops another.

Run as ``python -m tests._suite [options] [-- PYTEST_ARGS...]`` from the repository root (the
Makefile's ``test`` target passes its variables). No pytest here: this is a process launcher.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

NO_TESTS = 5
"""pytest's exit status when a selection matched no test (no failure under ``PYTEST_ARGS``)."""


@dataclass
class Step:
    """One command of the run; its output goes to a file until it is shown."""

    title: str
    argv: list[str]
    env: dict[str, str] | None = None
    ok_codes: tuple[int, ...] = (0,)
    log: IO[bytes] | None = None
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    seconds: float = 0.0
    returncode: int | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def start(self, folder: Path, out: IO[bytes] | None) -> None:
        """Start the command; ``out`` None means its output goes to a file of ``folder``."""
        if out is None:
            self.log = open(folder / f"{len(os.listdir(folder))}.log", "w+b")  # noqa: SIM115
        self.started = time.monotonic()
        self.process = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE if out is not None else self.log,
                                        stderr=subprocess.STDOUT)
        threading.Thread(target=self._wait, args=(out,), daemon=True).start()

    def _wait(self, out: IO[bytes] | None) -> None:
        assert self.process is not None
        if out is not None:
            assert self.process.stdout is not None
            while chunk := os.read(self.process.stdout.fileno(), 65536):
                out.write(chunk)
                out.flush()
        self.returncode = self.process.wait()
        self.seconds = time.monotonic() - self.started
        self.done.set()

    @property
    def failed(self) -> bool:
        return self.returncode not in self.ok_codes

    def show(self, out: IO[bytes]) -> None:
        """Copy the step's output to ``out`` from its start, following it until it ends."""
        assert self.log is not None
        with open(self.log.name, "rb") as log:
            while True:
                ended = self.done.is_set()
                while chunk := log.read(65536):
                    out.write(chunk)
                    out.flush()
                if ended:
                    return
                self.done.wait(0.5)

    def verdict(self) -> str:
        state = "FAILED" if self.failed else "passed"
        return f"{self.title}: {state} (exit status {self.returncode}, {self.seconds:.0f} s)"


def banner(out: IO[bytes], text: str) -> None:
    out.write(f"\n== {text}\n".encode())
    out.flush()


def steps_from(args: argparse.Namespace) -> list[Step]:
    """Pass 1 first (shown live), then the others in the order their output is shown."""
    def pytest(workers: int) -> list[str]:
        return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", str(workers),
                "--dist", "loadgroup", "--durations=10", *args.pytest_args]

    ok = (0, NO_TESTS) if args.pytest_args else (0,)
    pure = dict(os.environ, WALRUS_PURE_PYTHON="1")
    steps = [
        Step(f"pass 1 of 2: the whole suite ({args.workers} workers)", pytest(args.workers),
             ok_codes=ok),
        Step(f"pass 2 of 2: the engine tests without the C accelerators "
             f"({args.pure_python_workers} workers)",
             [*pytest(args.pure_python_workers), "--only-backends", "mmap,pwrite",
              *args.pure_python_tests], env=pure, ok_codes=ok),
    ]
    for name in args.check:
        steps.append(Step(f"make {name}", [*shlex.split(args.make), "--no-print-directory", name]))
    return steps


def run(args: argparse.Namespace) -> int:
    out = sys.stdout.buffer
    steps = steps_from(args)
    with tempfile.TemporaryDirectory(prefix="walrus-make-test-") as folder:
        banner(out, f"{steps[0].title}; meanwhile: "
               + ", ".join(step.title for step in steps[1:]))
        for step in reversed(steps):  # the followers first, so the live pass never waits
            step.start(Path(folder), out if step is steps[0] else None)
        steps[0].done.wait()
        banner(out, steps[0].verdict())
        for step in steps[1:]:
            if not step.done.is_set() or step.failed or step is steps[1]:
                banner(out, f"{step.title}" + ("" if step.done.is_set() else " (running)"))
                step.show(out)
            banner(out, step.verdict())
        for step in steps:
            if step.log is not None:
                step.log.close()
    failed = [step.title for step in steps if step.failed]
    banner(out, "make test: FAILED in " + "; ".join(failed) if failed
           else "make test: every step passed")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests._suite", description=__doc__)
    parser.add_argument("--workers", type=int, default=4 * (os.cpu_count() or 1))
    parser.add_argument("--pure-python-workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--pure-python-tests", default="",
                        type=lambda text: text.split(), help="the pure-Python pass's test files")
    parser.add_argument("--check", default="", type=lambda text: text.split(),
                        help="make targets run beside the tests (e.g. 'lint typecheck')")
    parser.add_argument("--make", default="make", help="the make command for --check")
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER,
                        help="after --: more options for both passes")
    args = parser.parse_args(argv)
    if args.pytest_args[:1] == ["--"]:
        args.pytest_args = args.pytest_args[1:]
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
