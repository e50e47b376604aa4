"""Plugin machinery: hook specifications, the plugin manager and backend selection.

Third-party packages register backends through the ``walrus`` entry-point group::

    [project.entry-points.walrus]
    mybackend = "my_package.walrus_plugin"

where the module implements ``walrus_register_backends`` with ``@walrus.hookimpl``.
"""

from ..backends._base import Availability
from ._hookspecs import hookimpl, hookspec
from ._manager import available_backends, backend_spec, plugin_manager, registered_specs
from ._report import format_backend_table
from ._selection import select_backend
from ._spec import BackendInfo, BackendSpec

__all__ = [
    "Availability",
    "BackendInfo",
    "BackendSpec",
    "available_backends",
    "backend_spec",
    "format_backend_table",
    "hookimpl",
    "hookspec",
    "plugin_manager",
    "registered_specs",
    "select_backend",
]
