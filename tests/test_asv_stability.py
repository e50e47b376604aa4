"""The asv suite's stability tooling: the two-run table (asv_bench/stability.py), the ratio of
a durable write to the device's (durable.Overhead) and the wall-clock figures' warm-up.

Timing is never asserted: the clocks are replaced by counters the workloads advance."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ASV_DIR = Path(__file__).resolve().parent.parent / "asv_bench"


@pytest.fixture
def asv_modules(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.syspath_prepend(str(ASV_DIR))
    yield


def _stability() -> ModuleType:
    import stability  # asv_bench/stability.py

    return stability


def _results_file(folder: Path, values: dict[str, dict[tuple[str, ...], float | None]]) -> Path:
    """An asv results file, written by asv itself, holding ``values`` (name -> params ->
    value; every name's params a full product of its parameter lists)."""
    from asv.results import Results
    from asv.runner import BenchmarkResult

    results = Results({"machine": "m", "python": "3.11"}, {}, "0123456789abcdef", 0, "3.11",
                      "existing-py", {})
    for name, by_params in values.items():
        combos = list(by_params)
        lists = [sorted({c[i] for c in combos}) for i in range(len(combos[0]))]
        ordered = [by_params[c] for c in itertools.product(*lists)]
        benchmark = {"name": name, "version": "1", "params": lists,
                     "param_names": [f"p{i}" for i in range(len(lists))]}
        n = len(ordered)
        results.add_result(benchmark, BenchmarkResult(
            result=ordered, samples=[None] * n, number=[None] * n, errcode=0, stderr="",
            profile=None))
    results.save(str(folder))
    return folder


@pytest.mark.usefixtures("asv_modules")
def test_series_of_puts_each_figure_in_its_series() -> None:
    series_of = _stability().series_of
    assert series_of("cost.Instructions.track_append", ("'mmap'",)) == "counted"
    assert series_of("cost.SyscallsBaselines.track_fdatasync_loop", ("'plain'",)) == "counted"
    assert series_of("durable.Overhead.track_append", ("'mmap'",)) == "I/O ratio"
    assert series_of("durable.SyncEach.time_append", ("'mmap'",)) == "device-bound"
    assert series_of("wal.Append.track_append", ("'mmap'", "'sync-each'")) == "device-bound"
    assert series_of("wal.Append.track_append", ("'mmap'", "'1000ms'")) == "wall clock"
    assert series_of("wal.ThreadedAppend.track_threaded_append",
                     ("'pwrite'", "'sync-each'", "4")) == "device-bound"
    assert series_of("wal.ReadNext.track_read_next",
                     ("'mmap'", "'sync-each'", "'strictly-at-once'")) == "device-bound"
    assert series_of("wal.ReadNext.track_read_next",
                     ("'mmap'", "'sync-each'", "'at-least-once-10000'")) == "wall clock"
    assert series_of("wal.BatchAppend.track_batch_append",
                     ("'mmap'", "'sync-each'")) == "device-bound"  # one sync a round
    assert series_of("wal.BatchRead.track_batch_read", ("'mmap'", "'sync-each'")) == "wall clock"
    assert series_of("wal.Append.peakmem_append", ("'mmap'", "'sync-each'")) == "memory"
    assert series_of("memory.TopicMemory.track_python_bytes_per_topic", ("'mmap'",)) == "memory"


@pytest.mark.usefixtures("asv_modules")
def test_table_counts_from_two_asv_results_files(tmp_path: Path) -> None:
    pytest.importorskip("asv")
    stability = _stability()
    counted = {(f"'b{i:02}'",): 100.0 for i in range(20)}
    first = _results_file(tmp_path / "a", {
        "cost.Instructions.track_append": counted,
        "wal.Append.track_append": {("'mmap'", "'no-fsync'"): 100.0,
                                    ("'mmap'", "'sync-each'"): 100.0,
                                    ("'pwrite'", "'no-fsync'"): 100.0,
                                    ("'pwrite'", "'sync-each'"): 100.0},
    })
    second = _results_file(tmp_path / "b", {
        "cost.Instructions.track_append": {**counted, ("'b00'",): 109.0},
        "wal.Append.track_append": {("'mmap'", "'no-fsync'"): 111.0,  # outside 10 %
                                    ("'mmap'", "'sync-each'"): 40.0,  # 2.5x
                                    ("'pwrite'", "'no-fsync'"): 100.0,
                                    ("'pwrite'", "'sync-each'"): None},  # failed
    })
    rows, outside, missing = stability.compare(stability.load(first), stability.load(second))
    table = {row[0]: row[1:] for row in rows}
    assert table["counted"] == (20, 20, pytest.approx(1.09), 0)
    assert table["wall clock"] == (2, 1, pytest.approx(1.11), 0)
    assert table["device-bound"][:2] == (2, 0) and math.isinf(table["device-bound"][2])
    assert table["device-bound"][3] == 2  # 2.5x, and the failed one
    assert table["overall"][:2] == (24, 21) and table["overall"][3] == 2
    assert [(o[1], o[4]) for o in outside] == [
        (("wal.Append.track_append", ("'mmap'", "'sync-each'")), pytest.approx(2.5)),
        (("wal.Append.track_append", ("'mmap'", "'no-fsync'")), pytest.approx(1.11))]
    assert missing == [("wal.Append.track_append", ("'pwrite'", "'sync-each'"))]
    assert not stability.met(rows[-1])
    text = stability.render(rows, outside, missing)
    assert "criterion (at least 95% within 10 %, none over 1.5x): NOT met" in text
    assert "wal.Append.track_append('mmap', 'sync-each'): 100 / 40" in text


@pytest.mark.usefixtures("asv_modules")
def test_criterion_needs_95_percent_within_and_nothing_over_1_5x() -> None:
    stability = _stability()

    def overall(ratios: list[float]) -> Any:
        first = {("cost.x", (str(i),)): 1.0 for i in range(len(ratios))}
        second = {("cost.x", (str(i),)): r for i, r in enumerate(ratios)}
        return stability.compare(first, second)[0][-1]

    assert stability.met(overall([1.0] * 19 + [1.05, 1.4]))  # 20 of 21 within: 95.2 %
    assert not stability.met(overall([1.0] * 18 + [1.05, 1.2, 1.4]))  # 19 of 21: 90.5 %
    assert not stability.met(overall([1.0] * 99 + [1.6]))  # 99 % within, one over 1.5x
    assert stability.ratio(2.0, 1.0) == stability.ratio(1.0, 2.0) == 2.0


class _Clock:
    """perf_counter_ns that only the workloads move."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch, asv_modules: None) -> _Clock:
    """The benchmarks' clock, replaced by one the test's workloads move."""
    fake = _Clock()
    monkeypatch.setattr(time, "perf_counter_ns", fake)
    return fake


def test_interleaved_ratio_is_walrus_time_over_device_time(clock: _Clock) -> None:
    from benchmarks import durable

    calls: list[str] = []

    def walrus_round() -> None:
        calls.append("w")
        clock.now += 300

    def device_round() -> None:
        calls.append("d")
        clock.now += 200 if len(calls) < 40 else 100  # the disk gets faster meanwhile

    ratio = durable.interleaved_ratio(walrus_round, device_round, pairs=30, warmup=2)
    assert calls[:4] == ["w", "d", "w", "d"]  # the untimed pairs
    assert calls[4:8] == ["w", "d", "d", "w"]  # then alternating order
    assert len(calls) == 64
    assert ratio == 1.5  # the median pair (the first 17 of 30 saw the slow disk)


@pytest.mark.usefixtures("asv_modules")
def test_overhead_figure_is_a_ratio_from_a_real_durable_log(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import durable

    monkeypatch.setattr(durable, "PAIRS", 20)
    monkeypatch.setattr(durable, "WARMUP_PAIRS", 2)
    bench = durable.Overhead()
    for name in ("track_append", "track_read_next"):
        bench.setup("pwrite")
        try:
            figure = getattr(bench, name)("pwrite")
        finally:
            bench.teardown("pwrite")
        assert isinstance(figure, float) and math.isfinite(figure) and figure > 0
    assert durable.Overhead.unit == "ratio"
    assert durable.Overhead.track_append.pretty_name == "[I/O ratio] Overhead.track_append"


def test_wall_clock_figures_time_only_the_rounds_after_the_warm_up(clock: _Clock) -> None:
    from benchmarks import wal

    seen: list[int] = []

    def body(r: int) -> None:
        seen.append(r)
        clock.now += 5_000 if len(seen) <= 8 else 3_000  # slow until the lead is earned

    assert wal.best_ns_per_entry(4, 1_000, body, warmup=8) == 3.0
    assert len(seen) == 12
    assert wal.WARMUP >= wal.ROUNDS  # the warm-up passes the prefaulter's first two steps


@pytest.mark.usefixtures("asv_modules")
def test_dashboard_names_say_each_benchmarks_series() -> None:
    from benchmarks import cost, durable, memory, wal

    assert (cost.Instructions.track_append.pretty_name  # type: ignore[attr-defined]
            == "[counted] Instructions.track_append")
    assert (durable.SyncEach.time_append.pretty_name  # type: ignore[attr-defined]
            == "[device-bound] SyncEach.time_append")
    assert (wal.Append.track_append.pretty_name  # type: ignore[attr-defined]
            == "[wall clock; device-bound: sync-each] Append.track_append")
    assert (wal.Append.peakmem_append.pretty_name  # type: ignore[attr-defined]
            == "[memory] Append.peakmem_append")
    assert (memory.TopicMemory.track_private_bytes_per_topic.pretty_name  # type: ignore[attr-defined]
            == "[memory] TopicMemory.track_private_bytes_per_topic")


@pytest.mark.usefixtures("asv_modules")
def test_the_counts_that_depend_on_timing_are_medians_of_real_operations() -> None:
    """A misspelt name would quietly count such a figure in one process again."""
    from benchmarks import _probe, cost

    counted = {operation for operation, _, _ in cost.SYSCALLS.values()}
    counted |= {name for name, row in cost.BASELINES.items() if row[0] is cost.count_syscalls}
    assert cost.SHARED_SYNCS
    for operation in cost.SHARED_SYNCS:
        assert operation in counted
        assert operation in _probe.TARGET_ROWS or operation in _probe.OPERATIONS
