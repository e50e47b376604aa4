"""Builds walrus's optional C extensions with cffi; every other setting is in pyproject.toml.

cffi has no pyproject-only way to declare ``cffi_modules``, hence this file. Each extension is
one row of ``NATIVE`` and is switched by its own environment variable:

* ``auto`` (default): build it when its header is found; otherwise, or if compiling fails,
  warn and skip it, so ``pip install`` still works (the feature then reports "not built");
* ``1``: it must build; anything missing or failing is an error (CI sets this);
* ``0``: skip it.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from typing import Any, NamedTuple

from setuptools import setup
from setuptools.command.build_ext import build_ext


class Native(NamedTuple):
    module: str
    builder: str
    """``path/to/build_script.py:ffibuilder`` (cffi's ``cffi_modules`` syntax)."""
    switch: str
    """The environment variable with auto, 0 or 1."""
    header: str
    linux_only: bool
    hint: str
    without: str
    """What happens at run time when it is not built."""


NATIVE = [
    Native("walrus._native._uring", "walrus/_native/uring_build.py:ffibuilder", "WALRUS_URING",
           "liburing.h", True, "install liburing-dev (Debian, Ubuntu) or liburing-devel",
           "the io_uring backend will report 'not built'"),
    Native("walrus._native._speedups", "walrus/_native/speedups_build.py:ffibuilder",
           "WALRUS_SPEEDUPS", "zlib.h", False, "install zlib1g-dev (Debian, Ubuntu) or "
           "zlib-devel", "the record codec will run in pure Python"),
]


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
    try:
        import cffi  # noqa: F401
    except ImportError:
        return "cffi is not installed"
    if not any(os.path.isfile(os.path.join(d, native.header)) for d in include_dirs()):
        return f"{native.header} not found ({native.hint})"
    return None


def skip(native: Native, why: str) -> None:
    sys.stderr.write(f"WARNING: not building {native.module}: {why}; {native.without} "
                     f"(set {native.switch}=1 to make this an error)\n")


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
    cffi_modules=[native.builder for native in BUILD],
    cmdclass={"build_ext": OptionalBuildExt},
)
