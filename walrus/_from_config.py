"""``Walrus.from_config``: the constructor's arguments from a ``[walrus]`` table.

The table comes from a mapping or a TOML file, and its strings are read by the same parsers
as the command line's options and the ``WALRUS_*`` variables (``_settings_parse``), so a value
is spelled the same everywhere. Everything is checked before anything is opened: a bad table
raises ``InvalidArgumentError`` naming the key and the accepted forms, and creates nothing.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ._errors import InvalidArgumentError
from ._settings_parse import parse_backend, parse_consistency, parse_fsync

TABLE = "walrus"
"""The table of a configuration file that walrus reads; the file's other tables are the
application's."""

Source = Mapping[str, Any] | str | os.PathLike[str]


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__} {value!r}")
    return value


def _backend(value: object) -> str:
    if isinstance(value, list):
        names = [_text(name) for name in value]
        if not names:
            raise ValueError("an empty fallback list")
        value = ",".join(names)
    return parse_backend(_text(value))


def _directory(value: object) -> str:
    text = _text(value)
    if not text:  # in a file it would name the file's own folder: a slip, not a choice
        raise ValueError("an empty path names no directory")
    return text


def _segment_size(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a whole number of bytes, got {value!r}")
    return value


def _read_only(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


_KEYS: dict[str, tuple[str, Callable[[Any], object], str]] = {
    "data_dir": ("data_dir", _directory, "a directory path (relative to the file's folder)"),
    "key": ("key", _text, "an instance key (a string)"),
    "backend": ("backend", _backend,
                "a backend name, a fallback list (\"io_uring,pwrite\" or [\"io_uring\", "
                "\"pwrite\"]) or \"auto\""),
    "fsync": ("fsync_schedule", lambda v: parse_fsync(_text(v)),
              "\"sync-each\", \"no-fsync\" or \"<n>ms\""),
    "consistency": ("consistency", lambda v: parse_consistency(_text(v)),
                    "\"strictly-at-once\" or \"at-least-once:<N>\""),
    "segment_size": ("segment_size", _segment_size, "a size in bytes (4096 or more)"),
    "read_only": ("read_only", _read_only, "true or false"),
}
"""Key of the table -> (the constructor's keyword, its parser, the accepted forms)."""


def walrus_arguments(source: Source) -> dict[str, Any]:
    """The keyword arguments of ``Walrus(...)`` that ``source`` describes."""
    if isinstance(source, Mapping):
        table, where, base = _table_of(source, None), "", None
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        table, where, base = _table_of(_load(path), path), f" in {path}", path.parent
    else:
        raise InvalidArgumentError(f"from_config takes a mapping or the path of a TOML file, "
                                   f"not {type(source).__name__}")
    arguments: dict[str, Any] = {}
    for key, value in table.items():
        if key not in _KEYS:
            raise InvalidArgumentError(
                f"unknown key {key!r} in [{TABLE}]{where}; known: {', '.join(sorted(_KEYS))}")
        keyword, parse, forms = _KEYS[key]
        try:
            arguments[keyword] = parse(value)
        except ValueError as exc:  # InvalidArgumentError is one too
            raise InvalidArgumentError(
                f"{TABLE}.{key}{where}: {exc}; accepted: {forms}") from None
    if "data_dir" in arguments:  # a setting's ~ is the home folder, from a file or a mapping
        directory = os.path.expanduser(arguments["data_dir"])
        arguments["data_dir"] = directory if base is None else base / directory
    return arguments


def _load(path: Path) -> dict[str, Any]:
    if "\0" in str(path):  # open() would raise a bare ValueError
        raise InvalidArgumentError(
            f"cannot read the configuration file {str(path)!r}: its name has a NUL character")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise InvalidArgumentError(
            f"cannot read the configuration file {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgumentError(f"{path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:  # TOML is UTF-8
        raise InvalidArgumentError(f"{path} is not valid TOML: byte {exc.start} is not "
                                   "UTF-8") from None


def _table_of(document: Mapping[str, Any], file: Path | None) -> Mapping[str, Any]:
    """The ``[walrus]`` table of a whole document (a file's must have one), or a mapping that
    is the table itself."""
    nested = document.get(TABLE)
    if isinstance(nested, Mapping):
        return nested
    if file is not None:
        raise InvalidArgumentError(f"{file} has no [{TABLE}] table")
    for key in document:
        if not isinstance(key, str):
            raise InvalidArgumentError(f"a configuration key must be a string, got {key!r}")
    return document
