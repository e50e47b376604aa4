"""What a run costs the machine: CPU time, peak RSS, bytes sent to disk, dirty page cache."""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import attrs


def _proc_fields(path: str, wanted: tuple[str, ...]) -> dict[str, int]:
    """``name: value`` lines of a /proc file; zeros where the file or a field is missing."""
    found = dict.fromkeys(wanted, 0)
    try:
        text = Path(path).read_text()
    except OSError:
        return found
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name in found and rest.split():
            found[name] = int(rest.split()[0])
    return found


def dirty_pages() -> tuple[int, float]:
    """``(Dirty: in KiB, Dirty as a percentage of MemTotal)`` from /proc/meminfo."""
    info = _proc_fields("/proc/meminfo", ("Dirty", "MemTotal"))
    total = info["MemTotal"]
    return info["Dirty"], (100.0 * info["Dirty"] / total if total else 0.0)


@attrs.frozen
class Usage:
    """A snapshot of the process's counters; subtract two to get a run's share."""

    cpu_user_s: float
    cpu_system_s: float
    peak_rss_bytes: int
    disk_write_bytes: int
    write_call_bytes: int

    @classmethod
    def now(cls) -> Usage:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        io = _proc_fields("/proc/self/io", ("write_bytes", "wchar"))
        rss_unit = 1 if sys.platform == "darwin" else 1024  # Linux reports KiB
        return cls(ru.ru_utime, ru.ru_stime, ru.ru_maxrss * rss_unit,
                   io["write_bytes"], io["wchar"])

    def since(self, start: Usage) -> Usage:
        """This run's CPU time and bytes; the peak RSS stays the process's peak so far."""
        return Usage(self.cpu_user_s - start.cpu_user_s,
                     self.cpu_system_s - start.cpu_system_s,
                     self.peak_rss_bytes,
                     self.disk_write_bytes - start.disk_write_bytes,
                     self.write_call_bytes - start.write_call_bytes)
