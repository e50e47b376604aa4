"""Builds walrus's optional C extensions (cffi modules, and one plain CPython extension);
every other setting is in pyproject.toml.

cffi has no pyproject-only way to declare ``cffi_modules``, hence this file. Each extension is
one row of ``NATIVE`` and is switched by its own environment variable:

* ``auto`` (default): build it when its header is found; otherwise, or if compiling fails,
  warn and skip it, so ``pip install`` still works (the feature then reports "not built");
* ``1``: it must build; anything missing or failing is an error (CI sets this);
* ``0``: skip it.
"""

from __future__ import annotations

import os
import runpy
import sys
import sysconfig
import textwrap
from typing import Any, NamedTuple

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HINTS = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                    "walrus", "_native", "hints.py"))
"""``walrus/_native/hints.py``: what to install, worded as the run-time messages word it."""


class Native(NamedTuple):
    module: str
    builder: str
    """``path/to/build_script.py:ffibuilder`` (cffi's ``cffi_modules`` syntax)."""
    switch: str
    """The environment variable with auto, 0 or 1."""
    header: str
    linux_only: bool
    feature: str
    packages: str
    """The system packages with ``header`` (and the library), for the message."""
    without: str
    """What happens at run time when it is not built."""


NATIVE = [
    Native("walrus._native._uring", "walrus/_native/uring_build.py:ffibuilder", "WALRUS_URING",
           "liburing.h", True, "the io_uring backend", HINTS["URING_PACKAGES"],
           "only the io_uring backend (which walrus never picks by default) will be "
           "unavailable, reporting 'not built'"),
    Native("walrus._native._speedups", "walrus/_native/speedups_build.py:ffibuilder",
           "WALRUS_SPEEDUPS", "zlib.h", False, "the record codec's C accelerators",
           HINTS["SPEEDUPS_PACKAGES"], "the record codec will run in pure Python, which is slower"),
    Native("walrus._native._hot", "", "WALRUS_SPEEDUPS", "zlib.h", False,
           "the C hot paths of append, read_next and batch reads", HINTS["SPEEDUPS_PACKAGES"],
           "those calls will run in Python, which is slower"),
    Native("walrus._native._prefault", "", "WALRUS_SPEEDUPS", "sys/mman.h", True,
           "the prefaulter thread that runs without the GIL", HINTS["SPEEDUPS_PACKAGES"],
           "the prefaulter will run as a Python thread"),
]
"""A row without a ``builder`` is a plain CPython extension: ``EXTENSIONS`` has its sources."""

EXTENSIONS = {
    "walrus._native._hot": Extension(
        "walrus._native._hot", ["walrus/_native/hot.c"], libraries=["z"],
        include_dirs=["walrus/_native"], extra_compile_args=["-O3", "-std=c99"],
        depends=["walrus/_native/record.h", "walrus/_native/crc_tables.h"]),
    "walrus._native._prefault": Extension(
        "walrus._native._prefault", ["walrus/_native/prefault.c"],
        extra_compile_args=["-O2", "-std=gnu99", "-Wall"], extra_link_args=["-pthread"]),
}

BUILD_COMMANDS = {"bdist_wheel", "editable_wheel", "build", "build_ext", "install", "develop"}
"""Commands that build the extensions: only these tell the user about a skipped one (pip also
runs this file to read the metadata, and once is enough)."""


def mode(native: Native) -> str:
    value = os.environ.get(native.switch, "").strip().lower() or "auto"
    if value not in ("auto", "0", "1"):
        raise SystemExit(f"{native.switch}={value!r}: expected auto, 0 or 1")
    return value


def include_dirs() -> list[str]:
    dirs = [d for var in ("CPATH", "C_INCLUDE_PATH") for d in os.environ.get(var, "").split(":")]
    multiarch = sysconfig.get_config_var("MULTIARCH")
    if multiarch:
        dirs.append(f"/usr/include/{multiarch}")
    return [d for d in (*dirs, "/usr/local/include", "/usr/include") if d]


def missing(native: Native) -> str | None:
    """Why ``native`` cannot be built here, or None if it can be tried."""
    if native.linux_only and not sys.platform.startswith("linux"):
        return f"{native.module} is Linux-only"
    if not native.builder and sysconfig.get_config_var("Py_GIL_DISABLED"):
        return f"{native.module} needs the GIL"
    try:
        if native.builder:  # a cffi module
            import cffi  # noqa: F401
    except ImportError:
        return "cffi is not installed"
    if not any(os.path.isfile(os.path.join(d, native.header)) for d in include_dirs()):
        return f"{native.header} not found"
    return None


def skip(native: Native, why: str) -> None:
    """Warn that ``native`` is not built, what that means and what to install."""
    lines = [f"WARNING: not building {native.module} ({native.feature}): {why.rstrip('.')}.",
             f"walrus-wal works without it; {native.without}.",
             f"To build it: {HINTS['what_to_install'](native.packages)}:"]
    text = "\n".join(textwrap.fill(line, 92, subsequent_indent="  ", break_long_words=False,
                                   initial_indent="" if i == 0 else "  ")
                     for i, line in enumerate(lines))
    text += (f"\n      {HINTS['REINSTALL']}\n"
             f"  (set {native.switch}=1 to make this an error, {native.switch}=0 to skip it "
             f"quietly)\n")
    sys.stderr.write(text)
    if any(arg in BUILD_COMMANDS for arg in sys.argv[1:]):
        tell_terminal(text)


def tell_terminal(text: str) -> None:
    """Also write ``text`` to the controlling terminal when standard error is not one.

    pip captures a build's output and shows it only if the build fails (or with -v), so a
    warning on standard error alone never reaches the person who ran ``pip install``. Without
    a terminal (CI, a Dockerfile) there is no one to tell there: the build log has it.
    """
    try:
        if os.isatty(sys.stderr.fileno()):
            return
    except (AttributeError, OSError, ValueError):
        pass
    try:
        with open("/dev/tty", "w") as tty:
            tty.write("\n" + text)
    except OSError:
        pass


def chosen() -> list[Native]:
    """The extensions to build; raises SystemExit for one that is required but cannot be."""
    selected = []
    for native in NATIVE:
        wanted = mode(native)
        if wanted == "0":
            continue
        why = missing(native)
        if why is None:
            selected.append(native)
        elif wanted == "1":
            raise SystemExit(f"{native.switch}=1 but {native.module} cannot be built: {why}")
        else:
            skip(native, why)
    return selected


class OptionalBuildExt(build_ext):
    """Turns a failed build of an ``auto`` extension into a warning."""

    def build_extension(self, ext: Any) -> None:
        native = next((n for n in NATIVE if n.module == ext.name), None)
        try:
            super().build_extension(ext)
        except Exception as exc:
            if native is None or mode(native) == "1":
                raise
            skip(native, f"the build failed: {type(exc).__name__}: {exc}")


BUILD = chosen()
setup(
    cffi_modules=[native.builder for native in BUILD if native.builder],
    ext_modules=[EXTENSIONS[native.module] for native in BUILD if not native.builder],
    cmdclass={"build_ext": OptionalBuildExt},
)
