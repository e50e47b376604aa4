"""PNG plots of the CSV files, with pandas and matplotlib (``pip install 'walrus-wal[plot]'``).

Each function reads one benchmark's CSV from a results folder and writes a PNG beside it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from walrus import InvalidArgumentError

MIB = float(1 << 20)
COLORS = {"walrus": "#1f77b4", "baseline": "#7f7f7f", "peer": "#ff7f0e"}


def _libs() -> tuple[Any, Any]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise InvalidArgumentError(
            f"plots need pandas and matplotlib: pip install 'walrus-wal[plot]' ({exc})") from None
    return pd, plt


def _read(out: Path, name: str) -> Any:
    pd, _ = _libs()
    path = out / name
    if not path.is_file():
        raise InvalidArgumentError(f"{path} not found: run the benchmark first "
                                   f"(--out {out})")
    frame = pd.read_csv(path)
    if frame.empty:
        raise InvalidArgumentError(f"{path} has no rows")
    return frame


def _subtitle(out: Path) -> str:
    """The run's settings from summary.json, for the figure title."""
    try:
        summary = json.loads((out / "summary.json").read_text())
    except (OSError, ValueError):
        return ""
    config = summary.get("config", {})
    skip = {"disk_budget_bytes"}
    return ", ".join(f"{k}={v}" for k, v in config.items() if k not in skip) + \
        f"  ({summary.get('started', '')[:10]})"


def _save(fig: Any, out: Path, name: str, title: str) -> Path:
    _, plt = _libs()
    subtitle = _subtitle(out)
    fig.suptitle(f"{title}\n{subtitle}" if subtitle else title, fontsize=12)
    fig.tight_layout()
    path = out / name
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _thousands(ax: Any) -> None:
    from matplotlib.ticker import FuncFormatter

    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))


def _time_panel(ax: Any, x: Any, y: Any, label: str, color: str) -> None:
    """A rate over time, with its mean over the non-zero samples as a dashed line."""
    ax.plot(x, y, color=color, linewidth=1.5, label=label)
    busy = y[y > 0]
    if len(busy):
        ax.axhline(busy.mean(), color=color, linestyle="--", linewidth=1,
                   label=f"mean of non-zero samples: {busy.mean():,.1f}")
    ax.set_ylabel(label)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    _thousands(ax)


def _throughput(out: Path, csv_name: str, rate: str, rate_label: str, title: str) -> Path:
    """Three panels over time: the operation rate, MiB/s, and the machine's dirty pages."""
    df = _read(out, csv_name)
    _, plt = _libs()
    fig, axes = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    _time_panel(axes[0], df.elapsed_seconds, df[rate], rate_label, "#1f77b4")
    _time_panel(axes[1], df.elapsed_seconds, df.bytes_per_second / MIB, "MiB per second",
                "#2ca02c")
    axes[2].plot(df.elapsed_seconds, df.dirty_pages_kb / 1024, color="#d62728")
    axes[2].set_ylabel("dirty page cache (MiB)")
    axes[2].grid(True, alpha=0.3)
    axes[2].set_xlabel("elapsed (s)")
    return _save(fig, out, csv_name.replace(".csv", ".png"), title)


def plot_writes(out: Path) -> Path:
    return _throughput(out, "benchmark_throughput.csv", "writes_per_second",
                       "writes per second", "walrus bench writes: append throughput")


def plot_batch(out: Path) -> Path:
    return _throughput(out, "batch_benchmark_throughput.csv", "entries_per_second",
                       "entries per second", "walrus bench batch: batch append throughput")


def plot_reads(out: Path) -> Path:
    df = _read(out, "read_benchmark_throughput.csv")
    _, plt = _libs()
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), sharex=True)
    panels = ((axes[0, 0], "write_mb_per_sec", "write MiB per second", "#1f77b4"),
              (axes[1, 0], "read_mb_per_sec", "read MiB per second", "#2ca02c"))
    for ax, column, label, color in panels:
        _time_panel(ax, df.elapsed_seconds, df[column], label, color)
    for ax, column, label, color in ((axes[0, 1], "total_write_mb", "written (GiB)", "#1f77b4"),
                                     (axes[1, 1], "total_read_mb", "read (GiB)", "#2ca02c")):
        ax.plot(df.elapsed_seconds, df[column] / 1024, color=color)
        ax.set_ylabel(f"cumulative {label}")
        ax.grid(True, alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("elapsed (s)")
    start = df.loc[df.phase == "read", "elapsed_seconds"]
    if len(start):
        for ax in axes.flat:
            ax.axvline(start.iloc[0], color="grey", linestyle=":", label="read phase starts")
    return _save(fig, out, "read_benchmark_throughput.png",
                 "walrus bench reads: write phase, then read phase")


def _against_threads(ax: Any, threads: Any, values: Any, label: str, color: str) -> None:
    ax.plot(threads, values, "o-", color=color, linewidth=2, markersize=7)
    for x, y in zip(threads, values, strict=True):
        ax.annotate(f"{y:,.0f}", (x, y), textcoords="offset points", xytext=(0, 7),
                    ha="center", fontsize=8)
    ax.set_ylabel(label)
    ax.set_xticks(list(threads))
    ax.set_ylim(0, max(values) * 1.2 if max(values) > 0 else 1)
    ax.grid(True, alpha=0.3)
    _thousands(ax)


def plot_scaling(out: Path) -> Path:
    df = _read(out, "scaling_results.csv")
    _, plt = _libs()
    fig, ax = plt.subplots(figsize=(9, 5.5))
    _against_threads(ax, df.threads, df.throughput, "appends per second", "#1f77b4")
    ax.set_xlabel("threads (one topic each)")
    return _save(fig, out, "scaling_results.png", "walrus bench scaling: appends vs threads")


def plot_batch_scaling(out: Path) -> Path:
    df = _read(out, "batch_scaling_results.csv")
    _, plt = _libs()
    fig, axes = plt.subplots(2, 1, figsize=(9, 8), sharex=True)
    _against_threads(axes[0], df.threads, df.entries_per_second, "entries per second",
                     "#1f77b4")
    _against_threads(axes[1], df.threads, df.mb_per_second, "MiB per second", "#2ca02c")
    axes[1].set_xlabel("threads (one topic each)")
    return _save(fig, out, "batch_scaling_results.png",
                 "walrus bench batch-scaling: batch appends vs threads")


def plot_compare(out: Path) -> Path:
    df = _read(out, "compare_results.csv")
    _, plt = _libs()
    workloads = list(dict.fromkeys(df.workload))
    cols = 3
    rows = -(-(len(workloads) + 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(16, 4.2 * rows))
    flat = list(axes.flat) if hasattr(axes, "flat") else [axes]
    baseline = df.baseline.iloc[0]
    for ax, workload in zip(flat, workloads, strict=False):
        part = df[df.workload == workload].fillna({"entries_per_second": 0})
        ax.barh(part.system, part.entries_per_second,
                color=[COLORS.get(k, "#999999") for k in part.kind])
        ax.invert_yaxis()
        top = part.entries_per_second.max() or 1
        for y, (rate, r) in enumerate(zip(part.entries_per_second, part.ratio_to_baseline,
                                          strict=True)):
            text = f"{_rate(rate)}" + ("" if r != r else f"  ({r:.2f}x)")  # r != r: NaN
            ax.text(rate + top * 0.01, y, text, va="center", fontsize=8)
        ax.set_xlim(0, top * 1.45)
        ax.set_title(_TITLES.get(workload, workload), fontsize=10)
        ax.set_xlabel("entries per second (single thread)")
        ax.grid(True, axis="x", alpha=0.3)
        from matplotlib.ticker import FuncFormatter, MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _tick(v)))
    for ax in flat[len(workloads):]:
        ax.axis("off")
    from matplotlib.patches import Patch

    flat[-1].legend(handles=[Patch(color=c, label=k) for k, c in COLORS.items()],
                    loc="center", title=f"ratios are to {baseline}, same run", fontsize=10)
    return _save(fig, out, "compare_results.png",
                 "walrus bench compare: 100-byte entries, median of interleaved runs")


_TITLES = {"append": "append, no sync", "append_sync1000": "append, fsync per 1000",
           "consume": "consume with a persisted cursor", "batch1000": "batch append of 1000",
           "sync_each": "append, fsync each"}


def _rate(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:.2f} M/s"
    if value >= 1e3:
        return f"{value / 1e3:.1f} k/s" if value < 1e4 else f"{value / 1e3:.0f} k/s"
    return f"{value:.0f} /s"


def _tick(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:g}M"
    if value >= 1e3:
        return f"{value / 1e3:g}k"
    return f"{value:g}"


PLOTS: dict[str, Callable[[Path], Path]] = {
    "writes": plot_writes, "reads": plot_reads, "scaling": plot_scaling, "batch": plot_batch,
    "batch-scaling": plot_batch_scaling, "compare": plot_compare,
}
