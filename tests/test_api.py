"""Pins the public surface: names, signatures, error hierarchy, constants."""

from __future__ import annotations

import inspect

import pytest

import walrus

PUBLIC = {
    "MAX_BATCH_BYTES", "MAX_BATCH_ENTRIES", "MAX_ENTRY_BYTES", "Availability", "BackendInfo",
    "BackendSpec", "BackendUnavailableError", "BatchTooLargeError", "CorruptionError", "Damage",
    "Consistency", "Entry",
    "EntryTooLargeError", "FsyncSchedule", "InvalidArgumentError", "InvalidTopicError",
    "OffsetOutOfRangeError", "ReadConsistency", "ReadOnlyError", "Schedule", "StorageError",
    "Walrus",
    "WalrusClosedError", "WalrusError", "WalrusForkedError", "WalrusLockedError", "__version__",
    "available_backends", "backend_spec", "hookimpl", "TopicInfo",
    "forward", "ForwardError", "SinkSpec", "Retention",
}

SIGNATURES = {
    "append_for_topic": "(self, topic: 'str', data: 'Payload') -> 'int'",
    "batch_append_for_topic": "(self, topic: 'str', entries: 'Sequence[Payload]') -> 'int'",
    "flush": "(self) -> 'None'",
    "read_next": "(self, topic: 'str', checkpoint: 'bool' = True, *, "
                 "consumer: 'str | None' = None, timeout: 'float | None' = 0) -> 'Entry | None'",
    "batch_read_for_topic": "(self, topic: 'str', max_bytes: 'int', checkpoint: 'bool' = True, "
                            "start_offset: 'int | None' = None, *, "
                            "consumer: 'str | None' = None, "
                            "timeout: 'float | None' = 0) -> 'list[Entry]'",
    "follow": "(self, topic: 'str', *, consumer: 'str | None' = None, "
              "checkpoint: 'bool' = True) -> 'Iterator[Entry]'",
    "topics": "(self) -> 'list[str]'",
    "get_topic_entry_count": "(self, topic: 'str', *, consumer: 'str | None' = None) -> 'int'",
    "consumers": "(self, topic: 'str') -> 'dict[str, int]'",
    "seek": "(self, topic: 'str', offset: 'int', *, consumer: 'str | None' = None) -> 'None'",
    "delete_consumer": "(self, topic: 'str', consumer: 'str') -> 'None'",
    "get_topic_entry_counts": "(self) -> 'dict[str, int]'",
    "get_topic_size": "(self, topic: 'str') -> 'int'",
    "mark_topic_clean": "(self, topic: 'str') -> 'None'",
    "mark_topic_dirty": "(self, topic: 'str') -> 'None'",
    "topic_is_clean": "(self, topic: 'str') -> 'bool'",
    "topic_info": "(self, topic: 'str') -> 'TopicInfo'",
    "close": "(self) -> 'None'",
    "damage": "(self) -> 'list[Damage]'",
}


def test_all_is_exactly_the_public_surface() -> None:
    assert set(walrus.__all__) == PUBLIC
    for name in PUBLIC:
        assert hasattr(walrus, name), name


def test_plugins_export_what_plugin_authors_call() -> None:
    """Not the machinery (the hook specification, loading, selection): that is private."""
    import walrus.plugins

    public = {"Availability", "BackendInfo", "BackendSpec", "available_backends",
              "backend_spec", "format_backend_table", "hookimpl", "plugin_manager", "SinkSpec"}
    assert set(walrus.plugins.__all__) == public
    # (pytest adds names that are no identifiers, such as '@py_builtins', to the modules whose
    # asserts it rewrites: every module of a distribution with a pytest plugin, as walrus is)
    assert {name for name in vars(walrus.plugins)
            if name.isidentifier() and not name.startswith("_")} == public


@pytest.mark.parametrize("method", sorted(SIGNATURES))
def test_method_signatures(method: str) -> None:
    assert str(inspect.signature(getattr(walrus.Walrus, method))) == SIGNATURES[method]


def test_constructors() -> None:
    for name in ("new", "with_consistency", "with_consistency_and_schedule", "new_for_key",
                 "with_consistency_for_key", "with_consistency_and_schedule_for_key"):
        assert isinstance(inspect.getattr_static(walrus.Walrus, name), classmethod), name
    params = inspect.signature(walrus.Walrus).parameters
    assert list(params) == ["data_dir", "key", "consistency", "fsync_schedule", "backend",
                            "read_only", "segment_size"]
    assert all(p.kind is p.KEYWORD_ONLY for name, p in params.items() if name != "data_dir")


def test_constants() -> None:
    assert walrus.MAX_ENTRY_BYTES == 1 << 30
    assert walrus.MAX_BATCH_ENTRIES == 2000
    assert walrus.MAX_BATCH_BYTES == 10 << 30


@pytest.mark.parametrize("error, bases", [
    (walrus.InvalidTopicError, (ValueError,)),
    (walrus.EntryTooLargeError, (ValueError,)),
    (walrus.BatchTooLargeError, (ValueError,)),
    (walrus.InvalidArgumentError, (ValueError, TypeError)),
    (walrus.OffsetOutOfRangeError, (ValueError,)),
    (walrus.WalrusLockedError, (OSError,)),
    (walrus.WalrusClosedError, (OSError,)),
    (walrus.WalrusForkedError, (walrus.WalrusClosedError, OSError)),
    (walrus.CorruptionError, (OSError,)),
    (walrus.BackendUnavailableError, (OSError,)),
    (walrus.StorageError, (OSError,)),
    (walrus.ReadOnlyError, (OSError,)),
    (walrus.ForwardError, ()),
])
def test_error_hierarchy(error: type[Exception], bases: tuple[type[Exception], ...]) -> None:
    assert issubclass(error, walrus.WalrusError)
    for base in bases:
        assert issubclass(error, base)


def test_modes_spell_like_the_original() -> None:
    from walrus import FsyncSchedule, ReadConsistency

    assert ReadConsistency.StrictlyAtOnce == ReadConsistency.StrictlyAtOnce
    assert ReadConsistency.AtLeastOnce(persist_every=5).persist_every == 5
    assert ReadConsistency.AtLeastOnce(persist_every=0).persist_every == 1
    assert ReadConsistency.AtLeastOnce(5) == ReadConsistency.AtLeastOnce(persist_every=5)
    assert FsyncSchedule.Milliseconds(200).interval_ms == 200
    assert FsyncSchedule.SyncEach != FsyncSchedule.NoFsync
    assert repr(FsyncSchedule.Milliseconds(5)) == "FsyncSchedule.Milliseconds(5)"
    with pytest.raises(walrus.InvalidArgumentError):
        ReadConsistency.AtLeastOnce(persist_every=-1)
    with pytest.raises(walrus.InvalidArgumentError):
        FsyncSchedule.Milliseconds("10")  # type: ignore[arg-type]


def test_mode_types_cover_every_mode() -> None:
    """``Consistency`` and ``Schedule`` are the types of the values, for annotations."""
    from walrus import Consistency, FsyncSchedule, ReadConsistency, Schedule

    for mode in (ReadConsistency.StrictlyAtOnce, ReadConsistency.AtLeastOnce(3)):
        assert isinstance(mode, Consistency) and not isinstance(mode, Schedule)
    for schedule in (FsyncSchedule.SyncEach, FsyncSchedule.NoFsync,
                     FsyncSchedule.Milliseconds(5)):
        assert isinstance(schedule, Schedule) and not isinstance(schedule, Consistency)


def test_entry_is_an_immutable_value() -> None:
    entry = walrus.Entry(b"x", 3, "t")
    assert (entry.data, entry.offset, entry.topic) == (b"x", 3, "t")
    with pytest.raises(AttributeError):
        entry.data = b"y"  # type: ignore[misc]
    assert entry == walrus.Entry(b"x", 3, "t") and hash(entry) == hash(walrus.Entry(b"x", 3, "t"))
