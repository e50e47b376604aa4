"""walrus: a durable, topic-aware write-ahead log for Python services.

Layering: ``_codec`` is the on-disk format as pure functions; ``_segment``, ``_log``,
``_topics``, ``_recovery`` and ``_durability`` are the engine; ``backends/`` move bytes;
``plugins/`` find and choose backends; ``_walrus`` is the facade. This module picks the
public surface.
"""

from . import _logsetup  # noqa: F401  (configures the "walrus" logger)
from ._config import (
    MAX_BATCH_BYTES as MAX_BATCH_BYTES,
)
from ._config import (
    MAX_BATCH_ENTRIES as MAX_BATCH_ENTRIES,
)
from ._config import (
    MAX_ENTRY_BYTES as MAX_ENTRY_BYTES,
)
from ._config import (
    Consistency as Consistency,
)
from ._config import (
    FsyncSchedule as FsyncSchedule,
)
from ._config import (
    ReadConsistency as ReadConsistency,
)
from ._config import (
    Schedule as Schedule,
)
from ._damage import Damage as Damage
from ._entry import Entry as Entry
from ._errors import (
    BackendUnavailableError as BackendUnavailableError,
)
from ._errors import (
    BatchTooLargeError as BatchTooLargeError,
)
from ._errors import (
    CorruptionError as CorruptionError,
)
from ._errors import (
    EntryTooLargeError as EntryTooLargeError,
)
from ._errors import (
    InvalidArgumentError as InvalidArgumentError,
)
from ._errors import (
    InvalidTopicError as InvalidTopicError,
)
from ._errors import (
    OffsetOutOfRangeError as OffsetOutOfRangeError,
)
from ._errors import (
    ReadOnlyError as ReadOnlyError,
)
from ._errors import (
    StorageError as StorageError,
)
from ._errors import (
    WalrusClosedError as WalrusClosedError,
)
from ._errors import (
    WalrusError as WalrusError,
)
from ._errors import (
    WalrusForkedError as WalrusForkedError,
)
from ._errors import (
    WalrusLockedError as WalrusLockedError,
)
from ._topic_info import TopicInfo as TopicInfo
from ._version import __version__ as __version__
from ._walrus import Walrus as Walrus
from .plugins import (
    Availability as Availability,
)
from .plugins import (
    BackendInfo as BackendInfo,
)
from .plugins import (
    BackendSpec as BackendSpec,
)
from .plugins import (
    available_backends as available_backends,
)
from .plugins import (
    backend_spec as backend_spec,
)
from .plugins import (
    hookimpl as hookimpl,
)

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_ENTRIES",
    "MAX_ENTRY_BYTES",
    "Availability",
    "BackendInfo",
    "BackendSpec",
    "BackendUnavailableError",
    "BatchTooLargeError",
    "Consistency",
    "CorruptionError",
    "Damage",
    "Entry",
    "EntryTooLargeError",
    "FsyncSchedule",
    "InvalidArgumentError",
    "InvalidTopicError",
    "OffsetOutOfRangeError",
    "ReadConsistency",
    "ReadOnlyError",
    "Schedule",
    "StorageError",
    "TopicInfo",
    "Walrus",
    "WalrusClosedError",
    "WalrusError",
    "WalrusForkedError",
    "WalrusLockedError",
    "__version__",
    "available_backends",
    "backend_spec",
    "hookimpl",
]
