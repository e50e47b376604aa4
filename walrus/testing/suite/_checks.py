"""What the conformance tests share: the payloads they write and how a failure is worded.

A failure names what the backend broke, in words, so that an author reads the cause before
the traceback (``pytest.fail`` with the message alone).
"""

from __future__ import annotations

import hashlib
from typing import NoReturn

import pytest

from walrus import CorruptionError, Walrus

SEGMENT = 8192
"""Small segments: the engine rolls to a new file every few entries."""


def broke(message: str) -> NoReturn:
    """Fail the test with ``message`` (what the backend broke) and no traceback."""
    pytest.fail(message, pytrace=False)


def payload(topic: str, seq: int) -> bytes:
    """Entry ``seq`` of ``topic``: self-describing, 0 to ~700 bytes, every 11th empty."""
    if seq % 11 == 5:
        return b""
    head = f"{topic}|{seq}|".encode()
    size = (seq * 37 + len(topic) * 101) % 700
    body = hashlib.blake2b(head, digest_size=32).digest()
    return head + (body * (size // 32 + 1))[:size]


def first_difference(got: bytes, want: bytes) -> int:
    """The index of the first byte where ``got`` and ``want`` differ (or the shorter length)."""
    for i, (a, b) in enumerate(zip(got, want, strict=False)):
        if a != b:
            return i
    return min(len(got), len(want))


def first_difference_index(got: list[bytes], want: list[bytes]) -> int:
    """The index of the first entry where two lists differ (or the shorter length)."""
    return next((i for i, (g, w) in enumerate(zip(got, want, strict=False)) if g != w),
                min(len(got), len(want)))


def entries(wal: Walrus, topic: str) -> list[bytes]:
    """Every retained entry of ``topic`` from offset 0, without moving its cursor.

    A damaged entry fails the test: none of the kit's workloads may leave one.
    """
    out: list[bytes] = []
    while True:
        try:
            batch = wal.batch_read_for_topic(topic, 1 << 30, checkpoint=False,
                                             start_offset=len(out))
        except CorruptionError as exc:
            broke(f"entry {exc.offset} of topic {topic!r} reads back as damaged ({exc}): the "
                  f"bytes the engine wrote through the backend did not come back intact")
        if not batch:
            return out
        out.extend(entry.data for entry in batch)


def expect_entries(wal: Walrus, topic: str, count: int, when: str) -> None:
    """``topic`` holds exactly its first ``count`` payloads."""
    got = entries(wal, topic)
    if len(got) != count:
        broke(f"topic {topic!r} holds {len(got)} entries {when}; {count} were appended")
    for seq in range(count):
        if got[seq] != payload(topic, seq):
            broke(f"entry {seq} of topic {topic!r} differs from what was appended {when} "
                  f"(first difference at byte {first_difference(got[seq], payload(topic, seq))}"
                  f" of {len(payload(topic, seq))})")
