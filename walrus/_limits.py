"""The limits of what walrus accepts, in a module that imports nothing (every check and the
codec read them; ``walrus._config`` re-exports them)."""

MAX_ENTRY_BYTES = 1 << 30
"""Largest payload of one entry (1 GiB)."""
MAX_BATCH_ENTRIES = 2000
"""Most entries in one batch append, and most entries one batch read returns."""
MAX_BATCH_BYTES = 10 << 30
"""Largest total payload of one batch append (10 GiB)."""
MAX_TOPIC_BYTES = 255
"""Longest topic name, in UTF-8 bytes."""

MAX_SEGMENT_BYTES = 1 << 40
"""Largest ``segment_size``: byte offsets within a segment take 40 bits of an LSN."""
