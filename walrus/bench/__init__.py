"""Benchmark tooling: ``walrus bench writes|reads|scaling|batch|batch-scaling|compare|plot``.

The workloads, CSV files and columns are the Rust original's, so results compare directly;
each run also writes ``summary.json`` (rates, sampled latency percentiles, CPU, peak RSS,
bytes written). ``compare`` runs the same single-thread workloads on walrus, sqlite3, the
installed peers and a plain-Python file baseline, and reports ratios measured in one run.
"""

from __future__ import annotations

import argparse


def register(bench: argparse.ArgumentParser) -> None:
    """Fill in the ``walrus bench`` parser: its description and one subcommand per benchmark."""
    from ._commands import register as register_bench

    register_bench(bench)
