"""What the machine's scheduler, not the code, added to a measured delay."""

from __future__ import annotations

import os


def run_delay() -> float:
    """Seconds this process's threads have spent so far runnable but waiting for a CPU.

    Linux's ``/proc/self/task/*/schedstat`` (second field, ns). A delay the tests bound is what
    the code makes a thread wait; the time a busy machine keeps the threads off the CPU is
    measured with this and left out, so the bounds hold exactly on an idle machine and under
    load alike. 0.0 where the kernel does not keep the figure (the bounds then include it).
    """
    total = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 0.0
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/schedstat") as f:
                total += int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended meanwhile
    return total / 1e9
