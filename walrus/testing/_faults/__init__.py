"""Fault injection and simulated power loss, for walrus's own tests and a backend author's.

A fault backend wraps a registered backend: every write and sync goes through one
process-wide :data:`MACHINE`, which can fail chosen operations (``ENOSPC``, ``EIO``, short
writes, failing ``fsync``), cut the power at a chosen disk operation, and then write the image a
disk may hold after the cut (undurable writes dropped, kept, torn or reordered per sector).
:func:`fault_backend_spec` names one ``faults-<inner>``; registering it (through a plugin, or
``walrus.plugins.plugin_manager().register`` by hand) makes ``Walrus(backend="faults-<inner>")``
run on it.
"""

from ._backend import PREFIX, FaultBackend, FaultFile, fault_backend_spec
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
    "fault_backend_spec",
    "powered",
]
