"""A worker process: consumes the topic "orders" through its own named consumer.

Run: python worker.py DATA_DIR NAME N   (stops once it has handled N orders)

It opens the directory as a read-only observer, so it runs beside the web process (the
writer). Its position is its own and survives restarts: a worker started again goes on
after the last order it consumed.
"""

import json
import sys
import time

from walrus import Walrus

data_dir, name, wanted = sys.argv[1], sys.argv[2], int(sys.argv[3])
handled = 0
with Walrus(data_dir=data_dir, read_only=True) as wal:
    while handled < wanted:
        entry = wal.read_next("orders", consumer=name)  # consumes: at most once by default
        if entry is None:
            time.sleep(0.01)  # nothing new yet
            continue
        order = json.loads(entry.data)
        handled += 1
        if handled == wanted:
            print(f"{name}: handled {handled} orders, the last one #{order['order']}")
