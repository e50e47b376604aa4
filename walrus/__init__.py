"""walrus: a durable, topic-aware write-ahead log for Python services.

Layering: ``_codec`` is the on-disk format as pure functions; ``_segment``, ``_log``,
``_topics``, ``_recovery`` and ``_durability`` are the engine; ``backends/`` move bytes;
``plugins/`` find and choose backends; ``_walrus`` is the facade. This module picks the
public surface: ``__all__`` is the one list of it.
"""

from . import _logsetup  # noqa: F401  (configures the "walrus" logger)
from ._config import (
    MAX_BATCH_BYTES,
    MAX_BATCH_ENTRIES,
    MAX_ENTRY_BYTES,
    Consistency,
    FsyncSchedule,
    ReadConsistency,
    Schedule,
)
from ._damage import Damage
from ._entry import Entry
from ._errors import (
    BackendUnavailableError,
    BatchTooLargeError,
    CorruptionError,
    EntryTooLargeError,
    ForwardError,
    InvalidArgumentError,
    InvalidTopicError,
    OffsetOutOfRangeError,
    ReadOnlyError,
    StorageError,
    WalrusClosedError,
    WalrusError,
    WalrusForkedError,
    WalrusLockedError,
)
from ._forward import forward
from ._retention import Retention
from ._topic_info import TopicInfo
from ._version import __version__
from ._walrus import Walrus
from .plugins import (
    Availability,
    BackendInfo,
    BackendSpec,
    SinkSpec,
    available_backends,
    backend_spec,
    hookimpl,
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
    "ForwardError",
    "FsyncSchedule",
    "InvalidArgumentError",
    "InvalidTopicError",
    "OffsetOutOfRangeError",
    "ReadConsistency",
    "ReadOnlyError",
    "Retention",
    "Schedule",
    "SinkSpec",
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
    "forward",
    "hookimpl",
]
