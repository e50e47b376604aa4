"""Child processes forked from an interpreter that has already imported walrus.

The crash tests start a child, SIGKILL it at a random point, check the log and start the next:
hundreds of children a run. A fresh ``python -m ...`` pays the interpreter's start and walrus's
imports (a third of a second of CPU, more under load) before the child does anything the test
kills; what the tests look at (the log and the child's journal) happens after. A zygote is one
interpreter per test worker that imports what the children need, then forks a child per
request: each child is still a real, separate process that opens the log itself and dies by a
real SIGKILL, it only skips the imports.

Run as ``python -m tests._zygote MODULE...`` (the modules to import first). Requests come on
stdin, one JSON object a line; answers go to stdout, one a line:

``{"run": MODULE, "argv": [...], "cwd": DIR, "out": FILE, "err": FILE, "in": FILE}`` forks a
child that runs MODULE as ``python -m MODULE ARGV...`` would (stdin from "in" or empty, stdout
and stderr appended to the files; with ``"faulthandler": true`` as ``python -X faulthandler``
would), answers ``{"pid": N}``; ``{"code": CODE, ...}`` does the
same for ``python -c CODE``. ``{"poll": N}`` and ``{"wait": N}`` answer ``{"returncode":
CODE}`` (None while it runs; minus the signal's number if one ended it). The zygote reaps a
child only when asked, so a pid it gave out is never reused before the test has seen the
child's end: killing it by pid is safe.

No pytest here: this runs as a process of its own (``tests/_forks.py`` is the test side).
"""

from __future__ import annotations

import faulthandler
import importlib
import json
import os
import runpy
import signal
import sys
import threading
import traceback
import types
from typing import Any


def _child(request: dict[str, Any], channel: tuple[int, int]) -> None:
    """In the forked child: become ``python -m MODULE ARGV...`` (or ``-c CODE``); never
    returns."""
    code = 1
    try:
        for fd in channel:
            os.close(fd)
        null = os.open(request.get("in", os.devnull), os.O_RDONLY)
        os.dup2(null, 0)
        for fd, name in ((1, "out"), (2, "err")):
            target = os.open(request[name], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.dup2(target, fd)
            os.close(target)
        os.close(null)
        if request.get("faulthandler"):  # as python -X faulthandler: stacks on SIGABRT
            faulthandler.enable()
        os.chdir(request["cwd"])
        try:
            if "code" in request:  # python -c CODE ARGV...
                sys.argv = ["-c", *request["argv"]]
                sys.path[0] = ""
                main = sys.modules["__main__"] = types.ModuleType("__main__")
                exec(compile(request["code"], "<string>", "exec"), main.__dict__)
            else:  # python -m MODULE ARGV...
                sys.argv = [request["run"], *request["argv"]]
                sys.path[0] = os.getcwd()
                runpy.run_module(request["run"], run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (exc.code is not None)
            if exc.code is not None and not isinstance(exc.code, int):
                print(exc.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
        # What the interpreter does at exit: wait for threads, run atexit, flush.
        threading._shutdown()  # type: ignore[attr-defined]
        import atexit
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def serve(preload: list[str]) -> None:
    for name in preload:
        importlib.import_module(name)
    if threading.active_count() != 1:  # forking a process with threads is not safe
        raise RuntimeError(f"importing {preload} started threads: {threading.enumerate()}")
    requests, answers = os.dup(0), os.dup(1)
    reader = os.fdopen(requests, "r")
    running: set[int] = set()
    for line in reader:
        request = json.loads(line)
        if "run" in request or "code" in request:
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(request, (requests, answers))
            running.add(pid)
            answer: dict[str, Any] = {"pid": pid}
        else:
            pid = request.get("poll", request.get("wait"))
            done, status = os.waitpid(pid, os.WNOHANG if "poll" in request else 0)
            answer = {"returncode": os.waitstatus_to_exitcode(status) if done else None}
            if done:
                running.discard(pid)
        os.write(answers, (json.dumps(answer) + "\n").encode())
    for pid in running:  # the tests ended (or died) without: no child outlives them
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


if __name__ == "__main__":
    serve(sys.argv[1:])
