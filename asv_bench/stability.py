"""How stable the asv figures are: the suite run twice on one commit, the two compared.

``python asv_bench/stability.py run`` (``make asv-stability``) runs ``asv run --python=same``
twice on the working tree, each time into a results folder of its own
(``asv_bench/.asv/stability/run-1`` and ``run-2``, so the dashboard's results are left alone),
then prints the table. ``python asv_bench/stability.py compare A B`` prints it for two results
files (or folders holding one each) of asv's format.

The table counts, per series and overall, the figures whose two values differ by less than
10 % (the larger over the smaller under 1.1), the largest such ratio, and those over 1.5x;
then it names each figure outside 10 %. The series are those ``docs/benchmarks.md`` lists: a
figure's series follows from its benchmark's name and parameters (:func:`series_of`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
WITHIN, OVER = 1.1, 1.5
"""Two values agree when the larger is under WITHIN times the smaller; OVER is the most any
figure may move."""
SHARE = 0.95
"""The share of all figures that must agree."""

SERIES: dict[str, str] = {
    "counted": "cost.*: instructions and system calls per entry (CPU- and I/O-bound paths)",
    "I/O ratio": "durable.Overhead.*: walrus time / device time per durable write",
    "wall clock": "wal.* track figures whose rounds do not wait for an fsync",
    "device-bound": "raw fsync latency: durable.SyncEach.*, wal.* whose every round waits for "
                    "an fsync",
    "memory": "wal.*.peakmem_*, memory.*",
}
"""The series, in the table's order, and what each holds."""

DEVICE_BOUND: dict[str, tuple[str, ...]] = {
    "wal.Append.track_append": ("'sync-each'",),
    "wal.BatchAppend.track_batch_append": ("'sync-each'",),
    "wal.ThreadedAppend.track_threaded_append": ("'sync-each'",),
    "wal.ReadNext.track_read_next": ("'sync-each'", "'strictly-at-once'"),
}
"""wal.* figures whose every timed round waits for an fsync: with all of these parameters."""

NOT_RESULTS = ("machine.json", "benchmarks.json")
"""The other files asv keeps in a results folder."""

Figure = tuple[str, tuple[str, ...]]
"""A benchmark's name and one combination of its parameters (asv's reprs)."""


def series_of(name: str, params: Sequence[str]) -> str:
    """The series a figure belongs to (a key of SERIES)."""
    if name.startswith("cost."):
        return "counted"
    if name.startswith("durable.Overhead."):
        return "I/O ratio"
    if name.startswith("durable."):
        return "device-bound"
    if ".peakmem_" in name or name.startswith("memory."):
        return "memory"
    needs = DEVICE_BOUND.get(name)
    if needs is not None and all(p in params for p in needs):
        return "device-bound"
    return "wall clock"


def load(path: Path) -> dict[Figure, float | None]:
    """Every figure of one asv results file (or of the one in a folder): None where the
    benchmark failed or was skipped."""
    from asv.results import Results  # type: ignore[import-untyped]

    if path.is_dir():
        found = [p for p in path.rglob("*.json") if p.name not in NOT_RESULTS]
        if len(found) != 1:
            raise SystemExit(f"{path}: expected one asv results file, found {len(found)}")
        path = found[0]
    results = Results.load(str(path))
    figures: dict[Figure, float | None] = {}
    for name in results.get_all_result_keys():
        params = results.get_result_params(name)
        values = results.get_result_value(name, params)
        combos = list(itertools.product(*params))
        if not isinstance(values, list):  # a benchmark without parameters
            values = [values]
        for combo, value in zip(combos, values, strict=True):
            ok = isinstance(value, int | float) and not math.isnan(value)
            figures[(name, tuple(combo))] = float(value) if ok else None
    return figures


def ratio(a: float, b: float) -> float:
    """The larger over the smaller (1.0 for two zeros, infinite for one)."""
    low, high = sorted((abs(a), abs(b)))
    if high == 0:
        return 1.0
    return math.inf if low == 0 else high / low


Row = tuple[str, int, int, float, int]
"""A table row: series, figures, within 10 %, largest ratio, over 1.5x."""


def _row(label: str, ratios: Sequence[float]) -> Row:
    return (label, len(ratios), sum(r < WITHIN for r in ratios), max(ratios, default=1.0),
            sum(r > OVER for r in ratios))


def compare(first: Mapping[Figure, float | None], second: Mapping[Figure, float | None]
            ) -> tuple[list[Row], list[tuple[str, Figure, float, float, float]], list[Figure]]:
    """The table's rows (each series, then overall), the figures outside 10 % (series,
    figure, both values, ratio; largest first), and the figures only one run has a value for
    (in the overall count as outside 10 %, never as agreeing)."""
    by_series: dict[str, list[float]] = {s: [] for s in SERIES}
    outside: list[tuple[str, Figure, float, float, float]] = []
    missing: list[Figure] = []
    for figure in sorted(set(first) | set(second)):
        a, b = first.get(figure), second.get(figure)
        if a is None and b is None:
            continue  # skipped in both runs (a tool not installed): not a figure here
        label = series_of(*figure)
        if a is None or b is None:
            missing.append(figure)
            by_series[label].append(math.inf)
            continue
        r = ratio(a, b)
        by_series[label].append(r)
        if r >= WITHIN:
            outside.append((label, figure, a, b, r))
    rows = [_row(label, ratios) for label, ratios in by_series.items() if ratios]
    rows.append(_row("overall", list(itertools.chain.from_iterable(by_series.values()))))
    outside.sort(key=lambda o: -o[4])
    return rows, outside, missing


def met(overall: Row) -> bool:
    """The criterion: at least SHARE of the figures within 10 %, none over 1.5x."""
    _, figures, within, _, over = overall
    return figures > 0 and within >= SHARE * figures and over == 0


def _name(figure: Figure) -> str:
    name, params = figure
    return f"{name}({', '.join(params)})" if params else name


def render(rows: Sequence[Row], outside: Iterable[tuple[str, Figure, float, float, float]],
           missing: Iterable[Figure]) -> str:
    """The table as text, then the figures outside 10 % and those missing from one run."""
    lines = [f"{'series':<14}{'figures':>8}{'within 10 %':>17}{'largest':>10}{'over 1.5x':>11}"]
    for label, figures, within, largest, over in rows:
        share = f"{within} ({100 * within / figures:.0f} %)" if figures else "0"
        lines.append(f"{label:<14}{figures:>8}{share:>17}{largest:>9.2f}x{over:>11}")
    verdict = "met" if met(rows[-1]) else "NOT met"
    lines.append(f"criterion (at least {SHARE:.0%} within 10 %, none over {OVER}x): {verdict}")
    lines += ["", "series:", *(f"  {label}: {what}" for label, what in SERIES.items())]
    far = [f"  {r:6.2f}x  {label:<13} {_name(f)}: {a:.6g} / {b:.6g}"
           for label, f, a, b, r in outside]
    if far:
        lines += ["", "outside 10 % (ratio, series, figure: first run / second run):", *far]
    gone = [f"  {_name(f)}" for f in missing]
    if gone:
        lines += ["", "a value in one run only (failed or skipped in the other):", *gone]
    return "\n".join(lines)


def _config(run: Path) -> Path:
    """asv.conf.json with its results in ``run`` (absolute paths, as asv resolves them)."""
    from asv import util  # type: ignore[import-untyped]

    conf = util.load_json(str(HERE / "asv.conf.json"), js_comments=True)
    for key in ("repo", "benchmark_dir", "env_dir", "html_dir"):
        conf[key] = str((HERE / conf[key]).resolve())
    conf["results_dir"] = str(run / "results")
    run.mkdir(parents=True, exist_ok=True)
    path = run / "asv.conf.json"
    path.write_text(json.dumps(conf, indent=2))
    return path


def run_twice(asv: str, benches: Sequence[str], folder: Path) -> tuple[Path, Path]:
    """Run the suite (or the ``benches`` regexes) twice on HEAD's tree into ``folder``."""
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=HERE, check=True,
                            capture_output=True, text=True).stdout.strip()
    done = []
    for n in (1, 2):
        run = folder / f"run-{n}"
        shutil.rmtree(run / "results", ignore_errors=True)
        command = [asv, "run", "--config", str(_config(run)), "--python=same", "--show-stderr",
                   "--set-commit-hash", commit]
        for bench in benches:
            command += ["--bench", bench]
        print(f"run {n} of 2: {' '.join(command)}", flush=True)
        subprocess.run(command, cwd=HERE, check=True)
        done.append(run / "results")
    return done[0], done[1]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the suite twice on HEAD, then compare")
    run.add_argument("--bench", action="append", default=[],
                     help="only the benchmarks matching this regex (asv's --bench; repeatable)")
    run.add_argument("--asv", default=str(Path(sys.executable).parent / "asv"),
                     help="the asv command (default: the one beside this Python)")
    run.add_argument("--out", type=Path, default=HERE / ".asv" / "stability",
                     help="where both runs' results go")
    cmp = sub.add_parser("compare", help="compare two results files (or folders)")
    cmp.add_argument("first", type=Path)
    cmp.add_argument("second", type=Path)
    args = parser.parse_args(argv)
    if args.command == "run":
        first, second = run_twice(args.asv, args.bench, args.out.resolve())
    else:
        first, second = args.first, args.second
    rows, outside, missing = compare(load(first), load(second))
    print(render(rows, outside, missing))
    return 0 if met(rows[-1]) else 1


if __name__ == "__main__":
    sys.exit(main())
