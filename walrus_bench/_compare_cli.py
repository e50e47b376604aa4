"""``walrus bench compare`` on the command line."""

from __future__ import annotations

import argparse
from typing import Any

from walrus import InvalidArgumentError

from ._compare import UNSUPPORTED, WORKLOADS, all_systems, measure
from ._compare_report import COLUMNS, CSV, results, table, write_csv
from ._context import add_common, start_run
from ._options import parse_duration, parse_size, pick
from ._rust_peer import RUST_NAMES, RustPeerUnavailable, RustSystem, build, rust_systems
from ._stores import System

DEFAULT_BASELINE = "python-file-crc32"


def add_compare(sub: Any) -> None:
    p = sub.add_parser(
        "compare", help="single-thread workloads on walrus, baselines and peers",
        description="Append (no sync), append with an fsync per 1000, consume with a "
                    "persisted cursor, batch of 1000 and fsync each, on walrus with each "
                    "available backend, plain-Python file baselines, sqlite3 (WAL) and "
                    "lmdb, plyvel, rocksdict when installed, and the Rust original (the "
                    "walrus-rust crate, built with cargo when it is installed). Rates and "
                    "ratios to a baseline measured in the same run.")
    add_common(p)
    p.add_argument("--seconds", default="1", metavar="TIME",
                   help="time per system and workload per repeat (default %(default)s)")
    p.add_argument("--repeat", type=int, default=3,
                   help="interleaved repeats; the median is kept (default %(default)s)")
    p.add_argument("--entry-size", type=int, default=100, help="payload bytes (default 100)")
    p.add_argument("--systems", help="comma-separated system names (default: all available)")
    p.add_argument("--workloads", help=f"comma-separated, from {', '.join(WORKLOADS)}")
    p.add_argument("--baseline", default=DEFAULT_BASELINE,
                   help="system the ratios divide by (default %(default)s)")
    p.add_argument("--no-rust", action="store_true",
                   help="leave out the Rust original (by default it is built with cargo, "
                        "when cargo is installed, and run as rust-original-mmap and "
                        "rust-original-fd)")
    p.set_defaults(func=_run_compare)


def _choose(text: str | None, known: list[str], what: str) -> list[str]:
    if not text:
        return known
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise InvalidArgumentError(f"--{what}={text!r}: unknown {', '.join(unknown) or '(none)'}"
                                   f"; choose from {', '.join(known)}")
    return names


def _run_compare(args: argparse.Namespace) -> int:
    seconds = pick(parse_duration, 1.0, ("--seconds", args.seconds))
    if args.repeat < 1 or args.entry_size < 1:
        raise InvalidArgumentError("--repeat and --entry-size must be at least 1")
    # Every name is checked before anything is built: cargo's attempt to fetch the crate
    # takes seconds (longer without a network), and a typo should not wait for it.
    systems_by_name: dict[str, System | RustSystem] = {s.name: s for s in all_systems()}
    chosen = _choose(args.systems, [*systems_by_name, *([] if args.no_rust else RUST_NAMES)],
                     "systems")
    workloads = [WORKLOADS[n] for n in _choose(args.workloads, list(WORKLOADS), "workloads")]
    if args.baseline not in chosen:
        raise InvalidArgumentError(f"--baseline={args.baseline!r} is not among the systems run")
    rust_note = ""
    if any(n in RUST_NAMES for n in chosen):
        try:
            systems_by_name.update((s.name, s) for s in rust_systems(build()))
        except RustPeerUnavailable as exc:
            rust_note = str(exc)
            if args.systems or args.baseline in RUST_NAMES:
                raise InvalidArgumentError(f"--systems: {rust_note}") from exc
            print(f"note: {rust_note}", flush=True)
    systems = [systems_by_name[n] for n in chosen if n in systems_by_name]
    config = {"seconds": seconds, "repeat": args.repeat, "entry_bytes": args.entry_size,
              "threads": 1, "baseline": args.baseline}
    budget = pick(parse_size, None, ("--disk-budget", None))
    with start_run("compare", args.out, args.data_dir, args.keep_data, budget, config) as run:
        cells = measure(systems, workloads, seconds, args.repeat, args.entry_size,
                        run.scratch, run.progress.show)
        run.progress.close()
        with run.series(CSV, COLUMNS) as series:
            write_csv(series, cells, args.baseline, args.entry_size, seconds)
        run.summary.extra["results"] = results(cells, args.baseline)
        run.summary.errors.extend(f"{c.system.name} {c.workload.name}: {c.error}"
                                  for c in cells if c.error and c.error != UNSUPPORTED)
        if rust_note:
            run.summary.extra["rust_original"] = rust_note
        print(table(cells, workloads, args.baseline))
        return run.finish()
