"""The per-run summary: one row per operation, resource use, written as JSON and a table."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Iterable
from pathlib import Path

import attrs

from walrus import __version__

from ._resources import Usage
from ._runner import PhaseResult
from ._sampling import Latency

MIB = float(1 << 20)


@attrs.frozen
class OpRow:
    """One operation's figures: calls, entries, bytes, rates and sampled latency."""

    label: str
    calls: int
    entries: int
    bytes: int
    seconds: float
    latency: Latency | None

    @classmethod
    def of(cls, label: str, phase: PhaseResult) -> OpRow:
        t = phase.totals
        return cls(label, t.ops, t.entries, t.bytes, phase.seconds, Latency.of(phase.tallies))

    def per_second(self, value: int) -> float:
        return value / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "operation": self.label, "calls": self.calls, "entries": self.entries,
            "bytes": self.bytes, "seconds": round(self.seconds, 3),
            "calls_per_second": round(self.per_second(self.calls), 1),
            "entries_per_second": round(self.per_second(self.entries), 1),
            "mib_per_second": round(self.per_second(self.bytes) / MIB, 3),
            "latency_us": self.latency.as_dict() if self.latency else None,
        }


@attrs.define
class Summary:
    """Everything ``summary.json`` holds for one benchmark run."""

    benchmark: str
    config: dict[str, object]
    rows: list[OpRow] = attrs.Factory(list)
    usage: Usage | None = None
    files: list[str] = attrs.Factory(list)
    errors: list[str] = attrs.Factory(list)
    notes: list[str] = attrs.Factory(list)
    extra: dict[str, object] = attrs.Factory(dict)
    started: str = attrs.Factory(lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))

    def add(self, label: str, phase: PhaseResult) -> OpRow:
        row = OpRow.of(label, phase)
        self.rows.append(row)
        self.errors.extend(phase.errors)
        if phase.stopped_by not in ("duration", "done"):
            self.notes.append(f"{label}: stopped by {phase.stopped_by}")
        return row

    def as_dict(self) -> dict[str, object]:
        usage = self.usage
        return {
            "benchmark": self.benchmark, "started": self.started,
            "walrus_version": __version__, "python": platform.python_version(),
            "machine": platform.machine(), "config": dict(self.config),
            "operations": [row.as_dict() for row in self.rows],
            "resources": None if usage is None else {
                "cpu_user_seconds": round(usage.cpu_user_s, 3),
                "cpu_system_seconds": round(usage.cpu_system_s, 3),
                "peak_rss_bytes": usage.peak_rss_bytes,
                "disk_write_bytes": usage.disk_write_bytes,
                "write_call_bytes": usage.write_call_bytes,
            },
            "files": self.files, "errors": self.errors, "notes": self.notes,
            **self.extra,
        }

    def write(self, out: Path) -> Path:
        path = out / "summary.json"
        path.write_text(json.dumps(self.as_dict(), indent=2) + "\n")
        return path

    def table(self) -> str:
        return "\n".join(_lines(self))


_HEAD = ("operation", "calls", "entries/s", "MiB/s", "p50 us", "p90 us", "p99 us",
         "p99.9 us", "max us")


def _lines(summary: Summary) -> Iterable[str]:
    config = ", ".join(f"{k}={v}" for k, v in summary.config.items())
    yield f"walrus bench {summary.benchmark}: {config}"
    cells = [_HEAD] + [_cells(row) for row in summary.rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(_HEAD))]
    for c in cells if summary.rows else []:
        yield "  ".join(v.ljust(w) if i == 0 else v.rjust(w)
                        for i, (v, w) in enumerate(zip(c, widths, strict=True)))
    if summary.usage is not None:
        u = summary.usage
        yield (f"CPU user {u.cpu_user_s:.2f} s, system {u.cpu_system_s:.2f} s; "
               f"peak RSS {u.peak_rss_bytes / MIB:,.1f} MiB; "
               f"written to disk {u.disk_write_bytes / MIB:,.1f} MiB "
               f"(write calls {u.write_call_bytes / MIB:,.1f} MiB)")
    yield from (f"note: {n}" for n in summary.notes)
    yield from (f"error: {e}" for e in summary.errors)


def _cells(row: OpRow) -> tuple[str, ...]:
    lat = row.latency
    times = (("-",) * 5 if lat is None else
             tuple(f"{v:,.1f}" for v in (lat.p50, lat.p90, lat.p99, lat.p99_9, lat.max)))
    return (row.label, f"{row.calls:,}", f"{row.per_second(row.entries):,.0f}",
            f"{row.per_second(row.bytes) / MIB:,.1f}", *times)
