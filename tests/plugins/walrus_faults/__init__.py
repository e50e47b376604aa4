"""walrus-faults: test-only backends that inject I/O faults and simulate power loss.

Registered through the ``walrus`` entry-point group like any third-party backend (see
``../walrus_faults-1.0.dist-info/entry_points.txt``): with ``tests/plugins`` on ``sys.path``,
``importlib.metadata`` finds the distribution and walrus loads ``walrus_faults.plugin``.
Backends are named ``faults-<inner>``: ``faults-pwrite`` wraps ``pwrite``, and so on.
"""

from ._backend import PREFIX, FaultBackend, FaultFile
from ._image import POLICIES, SECTOR, Write, crash_image
from ._machine import MACHINE, Fault, Machine, PowerOff, Sync, powered

__all__ = [
    "MACHINE",
    "POLICIES",
    "PREFIX",
    "SECTOR",
    "Fault",
    "FaultBackend",
    "FaultFile",
    "Machine",
    "PowerOff",
    "Sync",
    "Write",
    "crash_image",
    "powered",
]
