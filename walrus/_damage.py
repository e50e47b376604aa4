"""What recovery found damaged on disk: the public record a program can check."""

from __future__ import annotations

import attrs


@attrs.frozen
class Damage:
    """Damage found when a data directory was opened, and what it cost.

    ``topic`` and the offsets say which entries were lost or cannot be read (reads of them
    raise ``CorruptionError``; their offsets are never handed out again). ``topic`` is None
    when the damage cannot be tied to a named topic (its name was lost too, or the damage hit
    a file or a record that is not an entry); the offsets are None when it cost no entry that
    can be named.
    """

    topic: str | None
    first_offset: int | None
    last_offset: int | None
    path: str
    """The file the damage is in."""
    reason: str

    def describe(self) -> str:
        """One line for logs and ``walrus verify``."""
        what = "" if self.topic is None else f"topic {self.topic!r} "
        if self.first_offset is not None:
            what += (f"entry {self.first_offset}" if self.first_offset == self.last_offset
                     else f"entries {self.first_offset}..{self.last_offset}")
        return f"{what + ': ' if what else ''}{self.reason} ({self.path})"
