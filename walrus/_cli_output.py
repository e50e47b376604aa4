"""How the command line prints entries and tables."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import BinaryIO

from ._entry import Entry

FORMATS = ("raw", "hex", "json")
FORMAT_HELP = ("raw: each payload as is, then a newline; hex: each payload in hex, one a line; "
               "json: one JSON object a line with topic, offset, encoding (utf-8 or base64) and "
               "data")


def format_entry(entry: Entry, fmt: str) -> bytes:
    """One entry as a line of output (newline included)."""
    if fmt == "raw":
        return entry.data + b"\n"
    if fmt == "hex":
        return entry.data.hex().encode("ascii") + b"\n"
    try:
        text, encoding = entry.data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(entry.data).decode("ascii"), "base64"
    record = {"topic": entry.topic, "offset": entry.offset, "encoding": encoding, "data": text}
    return json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n"


def write_entries(out: BinaryIO, entries: Sequence[Entry], fmt: str) -> None:
    out.write(b"".join(format_entry(entry, fmt) for entry in entries))
    out.flush()


def render_table(header: Sequence[str], rows: Sequence[Sequence[object]],
                 right: Sequence[bool] | None = None) -> str:
    """A plain-text table with aligned columns (numbers right-aligned where ``right`` says)."""
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    align = right or [False] * len(header)
    lines = []
    for row in cells:
        parts = [c.rjust(w) if r else c.ljust(w)
                 for c, w, r in zip(row, widths, align, strict=True)]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines) + "\n"
