"""The Rust original (the ``walrus-rust`` crate, the version pinned in ``rust_peer/Cargo.toml``)
as a peer of ``walrus bench compare``, so that every comparison with it is made in one run.

``rust_peer/`` is a small Rust program that runs one workload of the comparison on the crate
and prints one JSON line. The bench builds it with ``cargo build --release`` into a cache
folder (cargo rebuilds only what changed) when cargo is installed and the crate can be
fetched from its registry; otherwise the Rust original is left out with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import attrs

from walrus import WalrusError

SOURCE = Path(__file__).resolve().with_name("rust_peer")
BINARY = "walrus-rust-peer"
BACKENDS = {"mmap": "mmap", "fd": "fd"}
"""The original's two backends: its mmap one, and its default ``fd`` one (pread/pwrite for
single entries, io_uring for batches)."""
BUILD_SECONDS = 1800


class RustPeerUnavailable(WalrusError):
    """The Rust original cannot be built or run here; the message says why."""


class Unsupported(WalrusError):
    """A system has no operation for a workload (shown as ``-``, not as an error)."""


def crate_version() -> str:
    """The pinned version of the original (``=0.2.0`` in the manifest gives ``0.2.0``)."""
    with (SOURCE / "Cargo.toml").open("rb") as f:
        manifest = tomllib.load(f)
    return str(manifest["dependencies"]["walrus-rust"]).lstrip("=")


def cargo() -> str | None:
    """cargo on PATH, or where rustup installs it."""
    found = shutil.which("cargo")
    if found:
        return found
    home = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo")) / "bin" / "cargo"
    return str(home) if home.is_file() else None


def cache_dir() -> Path:
    """Where the program is built: ``$WALRUS_RUST_PEER_DIR``, else the user's cache."""
    chosen = os.environ.get("WALRUS_RUST_PEER_DIR")
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "walrus-bench" / "rust-peer"


def build(where: Path | None = None) -> Path:
    """Build the program (release) and return its path; RustPeerUnavailable says why not.

    The sources are copied into the cache folder first, so that cargo's lock file and
    outputs never land in the installed package."""
    exe = cargo()
    version = crate_version()
    if exe is None:
        raise RustPeerUnavailable(
            f"the Rust original (walrus-rust {version}) is left out: cargo is not installed "
            "(install Rust, e.g. from your distribution or rustup, to compare with it)")
    where = cache_dir() if where is None else where
    project = where / "src"
    shutil.copytree(SOURCE, project, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("target"))
    done = subprocess.run([exe, "build", "--release", "--quiet", "--manifest-path",
                           str(project / "Cargo.toml"), "--target-dir", str(where / "target")],
                          capture_output=True, text=True, timeout=BUILD_SECONDS)
    if done.returncode != 0:
        lines = [x.strip() for x in done.stderr.splitlines()
                 if x.strip() and not x.strip().endswith(":")]  # not cargo's "Caused by:"
        why = " / ".join(lines[-3:]) or f"exit status {done.returncode}"
        fetch = any(w in done.stderr for w in ("failed to download", "failed to get",
                                                "Could not resolve", "failed to query"))
        raise RustPeerUnavailable(
            f"the Rust original (walrus-rust {version}) is left out: "
            + (f"cargo could not fetch the crate from its registry ({why})" if fetch
               else f"cargo build failed ({why})"))
    return where / "target" / "release" / BINARY


@attrs.frozen
class RustSystem:
    """The original on one of its backends; each run is a process of its own."""

    name: str
    binary: Path
    backend: str
    kind: str = "peer"
    note: str = ""

    def run(self, workload: str, folder: Path, entry_size: int, seconds: float) -> float:
        """Entries per second of ``workload`` in a fresh data directory ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, WALRUS_DATA_DIR=str(folder), WALRUS_QUIET="1")
        done = subprocess.run([str(self.binary), self.backend, workload, str(entry_size),
                               str(seconds)], cwd=folder, env=env, capture_output=True,
                              text=True, timeout=4 * seconds + 120)
        if done.returncode != 0:
            raise RustPeerUnavailable(f"{self.name} {workload}: "
                                      f"{done.stderr.strip() or done.returncode}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        if "unsupported" in result:
            raise Unsupported(result["unsupported"])
        if not result["entries"]:
            raise RuntimeError("did no work")
        return float(result["entries"]) / float(result["seconds"])


RUST_NAMES = {f"rust-original-{name}": name for name in BACKENDS}
"""The systems the original runs as in ``walrus bench compare``, and their backends."""


def rust_systems(binary: Path) -> list[RustSystem]:
    version = crate_version()
    return [RustSystem(system, binary, BACKENDS[name],
                       note=f"walrus-rust {version}, release build, {name} backend")
            for system, name in RUST_NAMES.items()]
