"""Backend and sink plugins: what plugin authors and users call.

Third-party packages register backends (and sinks, ``walrus_register_sinks``) through the
``walrus`` entry-point group::

    [project.entry-points.walrus]
    mybackend = "my_package.walrus_plugin"

where the module implements ``walrus_register_backends`` with ``@walrus.hookimpl``
(``plugin_manager().register(...)`` registers one by hand, as a test does). The machinery
behind it (the hook specification, loading, backend selection) is the engine's, in this
package's private modules.
"""

from ..backends._base import Availability
from ._hookspecs import hookimpl
from ._manager import available_backends, backend_spec, plugin_manager
from ._report import format_backend_table
from ._spec import BackendInfo, BackendSpec, SinkSpec

__all__ = [
    "Availability",
    "BackendInfo",
    "BackendSpec",
    "available_backends",
    "backend_spec",
    "format_backend_table",
    "hookimpl",
    "plugin_manager",
    "SinkSpec",
]
