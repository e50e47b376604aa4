"""The backend table that ``walrus backends`` prints: what is registered, and what can run."""

from __future__ import annotations

from collections.abc import Sequence

from ._manager import available_backends
from ._spec import BackendInfo

COLUMNS = ("backend", "priority", "available", "plugin", "reason")


def format_backend_table(rows: Sequence[BackendInfo] | None = None) -> str:
    """One line per backend (name, priority, availability, plugin, reason), highest priority
    first, then the backend ``auto`` would pick."""
    if rows is None:
        rows = available_backends()
    cells = [COLUMNS] + [(r.name, str(r.priority), "yes" if r.available else "no", r.plugin,
                          r.reason) for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS) - 1)]
    lines = ["  ".join([*(c.ljust(w) for c, w in zip(line[:-1], widths, strict=True)), line[-1]])
             .rstrip() for line in cells]
    usable = [r.name for r in rows if r.available]
    lines.append(f"auto picks: {usable[0]}" if usable else "auto picks: nothing (no backend "
                                                           "can run here)")
    return "\n".join(lines)
