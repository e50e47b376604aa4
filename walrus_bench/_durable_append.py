"""``walrus bench durable-append``: would O_DIRECT make durable appends faster?

What it measures, and why so, is :data:`DESCRIPTION` (the command's help).
"""

from __future__ import annotations

import argparse
import mmap
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

SIZE = 64 << 20
BLOCK = 4096
DESCRIPTION = """\
Would O_DIRECT make durable appends faster? One 4 KiB durable append at a time, three ways:

1. os.pwrite + os.fdatasync (what the pwrite backend does per sync pass);
2. an io_uring write + an io_uring fdatasync (the io_uring backend);
3. one io_uring write to a file opened O_DIRECT | O_DSYNC (no page cache, no separate sync).

The three alternate append by append so that disk latency drifts hit them alike. A WAL's
durable appends are sequential and group-committed (queue depth 1), so that is what this
measures; docs/backends.md says what the backend concluded. Needs the io_uring backend built.
"""


def add_durable_append(sub: Any) -> None:
    p = sub.add_parser("durable-append", help="O_DIRECT or not for durable appends (io_uring)",
                       description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, default=600,
                   help="durable appends per way (default %(default)s)")
    p.add_argument("--dir", default=".", help="where to write (default: here)")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    # The io_uring backend's own ring, on purpose: this measures what that backend does per
    # durable append against O_DIRECT. Needs the io_uring extension.
    from walrus.backends._uring_ring import Ring

    ring = Ring()
    page = mmap.mmap(-1, BLOCK)  # page-aligned, as O_DIRECT requires
    page.write(b"r" * BLOCK)
    block = memoryview(page)
    paths = [os.path.join(args.dir, f".durable-append-{i}") for i in range(3)]
    flags = [0, 0, os.O_DIRECT | os.O_DSYNC]
    fds = [os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC | f, 0o644)
           for p, f in zip(paths, flags, strict=True)]
    try:
        for fd in fds:
            os.posix_fallocate(fd, 0, SIZE)
        def buffered(pos: int) -> None:
            os.pwrite(fds[0], block, pos)
            os.fdatasync(fds[0])

        def uring(pos: int) -> None:
            ring.write(fds[1], pos, block, paths[1])
            ring.sync([fds[1]], [paths[1]])

        def direct(pos: int) -> None:
            ring.write(fds[2], pos, block, paths[2])

        ways: list[tuple[str, Callable[[int], None]]] = [
            ("os.pwrite + os.fdatasync", buffered),
            ("io_uring write + fdatasync", uring),
            ("io_uring write, O_DIRECT|O_DSYNC", direct),
        ]
        spent: list[list[float]] = [[] for _ in ways]
        for i in range(args.count * len(ways)):
            k = i % len(ways)
            start = time.perf_counter()
            ways[k][1]((i // len(ways)) * BLOCK % SIZE)
            spent[k].append((time.perf_counter() - start) * 1e6)
        for (name, _), times in zip(ways, spent, strict=True):
            q = statistics.quantiles(times, n=10)
            print(f"{name:34s} p10 {q[0]:7.0f} us  p50 {statistics.median(times):7.0f} us  "
                  f"p90 {q[-1]:7.0f} us")
    finally:
        for fd, path in zip(fds, paths, strict=True):
            os.close(fd)
            os.unlink(path)
        ring.close()
        block.release()
        page.close()
    return 0
