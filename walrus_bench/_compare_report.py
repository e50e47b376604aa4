"""The comparison as a table of rates and ratios, a CSV file and summary.json's results."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ._compare import UNSUPPORTED, Cell, Workload
from ._series import Series

CSV = "compare_results.csv"
COLUMNS = ("system", "kind", "workload", "entries_per_second", "ratio_to_baseline",
           "baseline", "runs", "entry_bytes", "seconds_per_run", "error")


def rate_text(rate: float | None, missing: str = "error", per: str = "/s") -> str:
    """A rate for a table: ``1.23 M/s``, ``781.1 k/s``, ``67 /s`` (``missing`` for None)."""
    if rate is None:
        return missing
    if rate >= 1e6:
        text = f"{rate / 1e6:.2f} M"
    elif rate >= 1e3:
        text = f"{rate / 1e3:.1f} k"
    else:
        text = f"{rate:.0f} "
    return (text + per).rstrip()


def baseline_rates(cells: Sequence[Cell], baseline: str) -> dict[str, float | None]:
    return {c.workload.name: c.median for c in cells if c.system.name == baseline}


def ratio(cell: Cell, base: dict[str, float | None]) -> float | None:
    reference = base.get(cell.workload.name)
    median = cell.median
    return None if median is None or not reference else median / reference


def table(cells: Sequence[Cell], workloads: Sequence[Workload], baseline: str) -> str:
    """Rates per system and workload, then each as a ratio to the baseline system."""
    base = baseline_rates(cells, baseline)
    systems = list(dict.fromkeys(c.system.name for c in cells))
    by_key = {(c.system.name, c.workload.name): c for c in cells}
    head = ("system", *(w.title for w in workloads))
    rates = [head] + [(s, *(_cell_text(by_key[s, w.name]) for w in workloads))
                      for s in systems]
    ratios = [head] + [(s, *(_ratio_text(ratio(by_key[s, w.name], base)) for w in workloads))
                       for s in systems]
    return "\n".join([*_grid(rates), "", f"ratio to {baseline} (same run):", *_grid(ratios)])


def _cell_text(cell: Cell) -> str:
    """Its rate; ``-`` where the system has no operation for the workload."""
    return "-" if cell.error == UNSUPPORTED else rate_text(cell.median)


def _ratio_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _grid(rows: Sequence[Sequence[str]]) -> Iterable[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        yield "  ".join(v.ljust(w) if i == 0 else v.rjust(w)
                        for i, (v, w) in enumerate(zip(r, widths, strict=True)))


def write_csv(series: Series, cells: Sequence[Cell], baseline: str, entry_size: int,
              seconds: float) -> None:
    base = baseline_rates(cells, baseline)
    for c in cells:
        r = ratio(c, base)
        series.write((c.system.name, c.system.kind, c.workload.name,
                      None if c.median is None else round(c.median, 1),
                      None if r is None else round(r, 4), baseline,
                      ";".join(f"{x:.1f}" for x in c.rates), entry_size, seconds,
                      c.error or ""))


def results(cells: Sequence[Cell], baseline: str) -> list[dict[str, object]]:
    base = baseline_rates(cells, baseline)
    return [{"system": c.system.name, "kind": c.system.kind, "workload": c.workload.name,
             "entries_per_second": c.median, "ratio_to_baseline": ratio(c, base),
             "runs": c.rates, "error": c.error} for c in cells]
