"""Topic names as subject tokens: one to one and reversible.

A NATS subject is dot-separated tokens of printable ASCII without spaces or the wildcards
``*`` and ``>``, while a walrus topic is any UTF-8 string. Letters, digits, ``_`` and ``-`` stay
as they are; every other byte of the topic's UTF-8 form becomes ``~`` and two upper-case hex
digits (so ``~`` itself is ``~7E``, a dot ``~2E``). Nothing else produces a ``~``, so the
mapping is one to one, and :func:`decode_topic` undoes it.
"""

from __future__ import annotations

import re
import string

_KEPT = frozenset((string.ascii_letters + string.digits + "_-").encode())
_ESCAPE = re.compile(r"~([0-9A-F]{2})")


def encode_topic(topic: str) -> str:
    """The subject token that carries ``topic`` (``"orders.eu"`` becomes ``"orders~2Eeu"``)."""
    return "".join(chr(b) if b in _KEPT else f"~{b:02X}" for b in topic.encode("utf-8"))


def decode_topic(token: str) -> str:
    """The topic that :func:`encode_topic` turned into ``token``."""
    raw = bytearray()
    pos = 0
    for match in _ESCAPE.finditer(token):
        raw += token[pos:match.start()].encode("ascii")
        raw.append(int(match.group(1), 16))
        pos = match.end()
    raw += token[pos:].encode("ascii")
    return raw.decode("utf-8")


def check_prefix(prefix: str) -> str:
    """``prefix`` if it is a valid literal subject (tokens without wildcards or spaces)."""
    tokens = prefix.split(".") if isinstance(prefix, str) else [""]
    if not all(tokens) or any(set(t) & set("*> \t\r\n") or not t.isascii() for t in tokens):
        raise ValueError(f"a subject prefix must be dot-separated ASCII tokens without spaces "
                         f"or wildcards, got {prefix!r}")
    return prefix


def covers(pattern: str, subject: str) -> bool:
    """Does the subject filter ``pattern`` (with ``*`` and ``>``) match ``subject``?"""
    want = pattern.split(".")
    have = subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)
