"""The ``walrus bench`` command line: one subcommand per benchmark, plus compare and plot."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ._context import Run, add_common, start_run
from ._settings import DEFAULTS, resolve_settings

Benchmark = Callable[[Run, Any], None]

_HELP = {
    "writes": "threads appending 500-1024-byte entries in bursts (benchmark_throughput.csv)",
    "reads": "a write phase of 2000 x 100 KiB batches, then a read phase "
             "(read_benchmark_throughput.csv)",
    "scaling": "append throughput against thread count (scaling_results.csv)",
    "batch": "threads appending batches back to back (batch_benchmark_throughput.csv)",
    "batch-scaling": "batch throughput against thread count (batch_scaling_results.csv)",
}


def _benchmarks() -> dict[str, Benchmark]:
    from . import _batch, _reads, _scaling, _writes

    return {"writes": _writes.run, "reads": _reads.run, "scaling": _scaling.run_scaling,
            "batch": _batch.run, "batch-scaling": _scaling.run_batch_scaling}


def register(bench: argparse.ArgumentParser) -> None:
    """Describe the ``walrus bench`` parser and add one subcommand per benchmark."""
    bench.description = (
        "Benchmarks: the suite of walrus-rust 0.2, the Rust crate walrus rewrites (same "
        "workloads, CSV files and columns), a comparison with other stores, the performance "
        "targets, scale and backend measurements, and plots. Flags win over the WALRUS_* "
        "variables.")
    sub = bench.add_subparsers(dest="bench_command", metavar="BENCHMARK", required=True)
    for name, help_text in _HELP.items():
        _add_benchmark(sub, name, help_text)
    from ._backends import add_backends
    from ._compare_cli import add_compare
    from ._consumers import add_consumers
    from ._durable_append import add_durable_append
    from ._forward import add_forward
    from ._plot_cli import add_plot
    from ._retention import add_retention
    from ._scale import add_scale
    from ._targets import add_targets
    from ._wakeup import add_wakeup

    add_compare(sub)
    add_plot(sub)
    add_targets(sub)
    add_scale(sub)
    add_backends(sub)
    add_durable_append(sub)
    add_forward(sub)
    add_consumers(sub)
    add_wakeup(sub)
    add_retention(sub)


def _add_benchmark(sub: Any, name: str, help_text: str) -> None:
    d = DEFAULTS[name]
    p = sub.add_parser(name, help=help_text, description=help_text)
    add_common(p)
    threads = (f"thread counts to sweep, <n> (1..n) or <a>-<b> (default {d.threads[0]}-"
               f"{d.threads[1]}; $WALRUS_THREADS)" if d.ranged else
               f"writer threads (default {d.threads[1]}; $WALRUS_THREADS)")
    p.add_argument("--threads", metavar="N" if not d.ranged else "RANGE", help=threads)
    per = " per thread count" if d.ranged else ""
    p.add_argument("--duration", metavar="TIME",
                   help=f"<n>s, <n>m, <n>h or seconds{per} (default {d.duration:g} s; "
                        "$WALRUS_DURATION)")
    if name == "reads":
        p.add_argument("--write-duration", metavar="TIME",
                       help="write phase ($WALRUS_WRITE_DURATION)")
        p.add_argument("--read-duration", metavar="TIME",
                       help="read phase, default the write phase's ($WALRUS_READ_DURATION)")
    if d.batch_size:
        p.add_argument("--batch-size", metavar="N",
                       help=f"entries per batch, 1..2000 (default {d.batch_size}; "
                            "$WALRUS_BATCH_SIZE)")
    p.add_argument("--fsync", metavar="SCHEDULE",
                   help="sync-each, no-fsync/none, async (1000 ms), <n>ms or <n> "
                        "(default 1000ms; $WALRUS_FSYNC)")
    p.add_argument("--backend", help="backend name, fallback list or auto ($WALRUS_BACKEND)")
    p.add_argument("--disk-budget", metavar="SIZE",
                   help="stop writing early after this many bytes, e.g. 2GiB "
                        "(default: 16 GiB or half the free space, whichever is less)")
    p.set_defaults(func=_run_benchmark, bench_name=name)


def _run_benchmark(args: argparse.Namespace) -> int:
    name: str = args.bench_name
    settings = resolve_settings(name, args)
    with start_run(name, args.out, args.data_dir, args.keep_data, settings.byte_budget,
                   settings.describe(name)) as run:
        _benchmarks()[name](run, settings)
        return run.finish()
