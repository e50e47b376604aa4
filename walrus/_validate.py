"""Argument checks shared by the facade, the log and the configuration values.

Low in the package on purpose (it imports only the limits, the errors and the codec), so
that whoever receives a caller's value checks it without asking a higher layer.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from itertools import islice
from typing import Any

from ._codec import HEADER_SIZE
from ._errors import (
    BatchTooLargeError,
    EntryTooLargeError,
    InvalidArgumentError,
    InvalidTopicError,
    ReadOnlyError,
    WalrusClosedError,
    WalrusForkedError,
)
from ._limits import MAX_BATCH_BYTES, MAX_BATCH_ENTRIES, MAX_ENTRY_BYTES, MAX_TOPIC_BYTES

_BYTES = {bytes}


def check_topic(topic: object) -> str:
    """Raise InvalidTopicError unless ``topic`` is a str of 1..255 UTF-8 bytes without NUL."""
    return _check_name("topic", topic, InvalidTopicError)


def check_consumer(name: object) -> str:
    """Raise InvalidArgumentError unless ``name`` is a consumer name: a str of 1..255 UTF-8
    bytes without NUL (the rule topics follow)."""
    return _check_name("consumer name", name, InvalidArgumentError)


def _check_name(what: str, name: object, error: type[InvalidArgumentError]) -> str:
    if type(name) is not str:
        raise error(f"{what} must be a str, not {type(name).__name__}")
    if not name:
        raise error(f"{what} must not be empty")
    if "\0" in name:
        raise error(f"{what} {name!r} contains a NUL character")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise error(f"{what} {name!r} is not valid UTF-8 (lone surrogate)") from None
    if size > MAX_TOPIC_BYTES:
        raise error(f"{what} is {size} UTF-8 bytes long; at most {MAX_TOPIC_BYTES}")
    return name


def check_open(closed: bool, owner: int) -> None:
    """Refuse a call on a closed instance, or on one a fork inherited from process ``owner``."""
    if closed:
        if owner != os.getpid():
            raise WalrusForkedError(owner)
        raise WalrusClosedError()


def check_writable(closed: bool, owner: int, read_only: bool) -> None:
    """Refuse a write on a closed or inherited instance, or on a read-only observer."""
    check_open(closed, owner)
    if read_only:
        raise ReadOnlyError("this Walrus instance is a read-only observer")


def nonnegative_int(what: str, value: object) -> int:
    """``value`` if it is an int >= 0 (a bool is not one), else InvalidArgumentError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(f"{what} must be an int, not {type(value).__name__}")
    if value < 0:
        raise InvalidArgumentError(f"{what} must be >= 0, got {value}")
    return value


def not_a_bool(name: str, value: object) -> InvalidArgumentError:
    """The error for a flag that is not True or False: a truthy string like ``"no"`` must
    never be taken for True (it would consume the entry)."""
    return InvalidArgumentError(f"{name} must be True or False, not {value!r}")


def as_payload(data: object) -> bytes:
    """One payload as an immutable snapshot: bytes as they are, any other bytes-like object
    copied once (after its size is checked), everything else refused by name.

    The copy is what makes the record whole: another thread may change a bytearray (or the
    buffer behind a memoryview) while the record is checksummed and written, and a record
    whose bytes differ from its checksum would be an acknowledged entry that never reads
    back.
    """
    if type(data) is bytes:
        return data
    view = _flat_view(data)
    check_size(len(view))
    return view.tobytes()


def snapshot_batch(payloads: Iterable[object]) -> tuple[list[bytes], int]:
    """A batch as one immutable snapshot, checked against every limit before anything is
    copied; returns the payloads and the room their records take.

    Entries are counted as they are iterated, never from ``len()``: a sequence whose
    ``len()`` understates it, or a list another thread grows meanwhile, must not get more
    than ``MAX_BATCH_ENTRIES`` records written (recovery would take them for damage). This
    is the one place that limit is checked.
    """
    raw = list(islice(payloads, MAX_BATCH_ENTRIES + 1))
    if len(raw) > MAX_BATCH_ENTRIES:
        raise BatchTooLargeError(f"batch of at least {len(raw)} entries is over "
                                 f"MAX_BATCH_ENTRIES ({MAX_BATCH_ENTRIES})")
    all_bytes = set(map(type, raw)) == _BYTES  # C-level loops: the common case costs little
    views: list[Any] = raw if all_bytes else [
        d if type(d) is bytes else _flat_view(d) for d in raw]
    total = need = 0
    for data in views:  # one pass: the limits, and the room the records take
        n = len(data)
        if n > MAX_ENTRY_BYTES:
            check_size(n)
        total += n
        need += (HEADER_SIZE + n + 7) & ~7  # record_size(n), inlined
    if total > MAX_BATCH_BYTES:
        raise BatchTooLargeError(
            f"batch of {total} bytes is over MAX_BATCH_BYTES ({MAX_BATCH_BYTES})")
    if all_bytes:
        return raw, need  # type: ignore[return-value]
    return [d.tobytes() if isinstance(d, memoryview) else d for d in views], need


def _flat_view(data: object) -> memoryview:
    """A bytes-like object as a flat view of its bytes (not copied unless non-contiguous)."""
    if isinstance(data, (str, int, float)) or data is None:
        raise InvalidArgumentError(
            f"entry data must be bytes-like, not {type(data).__name__}"
            + (" (encode the str first)" if isinstance(data, str) else ""))
    try:
        view = memoryview(data)  # type: ignore[arg-type]
        if "O" not in view.format:
            if not view.c_contiguous:
                view = memoryview(view.tobytes())
            return view.cast("B") if view.format != "B" or view.ndim != 1 else view
    except TypeError:
        raise InvalidArgumentError(
            f"entry data must be bytes-like, not {type(data).__name__}") from None
    except ValueError as exc:  # a released view, a closed mmap, a dtype with no buffer form
        raise InvalidArgumentError(
            f"entry data of type {type(data).__name__} cannot be read as bytes: {exc}") from None
    # an array of Python objects: its bytes are the objects' addresses in this process
    raise InvalidArgumentError(
        f"entry data of type {type(data).__name__} holds references to Python objects, not "
        f"bytes (buffer format {view.format!r}); serialize the objects first")


def check_size(n: int) -> None:
    """Refuse a payload of ``n`` bytes over ``MAX_ENTRY_BYTES``."""
    if n > MAX_ENTRY_BYTES:
        raise EntryTooLargeError(f"entry of {n} bytes is over MAX_ENTRY_BYTES ({MAX_ENTRY_BYTES})")
