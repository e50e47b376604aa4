"""The benchmark tools behind ``walrus bench``: the Rust original's suite (``writes``, ``reads``,
``scaling``, ``batch``, ``batch-scaling``), ``compare``, ``targets``, ``scale``, ``backends``,
``durable-append`` and ``plot``.

A package of its own beside ``walrus``: the library never imports it (the command line does, for
``walrus bench`` only), and it uses walrus's public names, except where a benchmark reads an
internal on purpose (each such import says why).

The workloads, CSV files and columns are the Rust original's, so results compare directly; each
run also writes ``summary.json`` (rates, sampled latency percentiles, CPU, peak RSS, bytes
written). ``compare`` runs the same single-thread workloads on walrus, sqlite3, the
installed peers and a plain-Python file baseline, and reports ratios measured in one run.
"""

from __future__ import annotations

import argparse


def register(bench: argparse.ArgumentParser) -> None:
    """Fill in the ``walrus bench`` parser: its description and one subcommand per benchmark."""
    from ._commands import register as register_bench

    register_bench(bench)
