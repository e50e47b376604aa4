"""What to install to build each C extension, in one place for both audiences: ``setup.py``
prints it when it skips an extension, and the feature repeats it at run time when asked why it
is missing. ``setup.py`` loads this file by path (the package cannot be imported while it is
being built), so it imports nothing."""

from __future__ import annotations

REINSTALL = "pip install --force-reinstall --no-deps --no-cache-dir walrus-wal"
"""Rebuilds from source: without --no-cache-dir pip would reuse the wheel it built before,
without the extension."""

URING_PACKAGES = "liburing-dev (Debian, Ubuntu) or liburing-devel (Fedora, RHEL)"
SPEEDUPS_PACKAGES = "zlib1g-dev (Debian, Ubuntu) or zlib-devel (Fedora, RHEL)"


def what_to_install(packages: str) -> str:
    """What gives walrus-wal the extension that needs ``packages`` (then: :data:`REINSTALL`)."""
    return f"install {packages} and a C compiler (gcc or clang), then reinstall walrus-wal"


def how_to_build(packages: str) -> str:
    """The same in one line, with the command."""
    return f"{what_to_install(packages)}: {REINSTALL}"
