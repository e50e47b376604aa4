"""The first example of the getting-started guide: append an entry, then read it back."""

import tempfile

from walrus import Walrus

with tempfile.TemporaryDirectory() as data_dir, Walrus(data_dir=data_dir) as wal:
    offset = wal.append_for_topic("events", b"hello walrus")  # append a payload
    print("appended at offset", offset)
    entry = wal.read_next("events", checkpoint=True)
    if entry is not None:
        print("read", repr(entry.data.decode()))
