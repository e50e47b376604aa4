"""The web process: appends one entry per order to the topic "orders" and keeps running.

Run: python web.py DATA_DIR N   (appends N orders, one every 10 ms, then closes)
"""

import json
import sys
import time

from walrus import Walrus

data_dir, count = sys.argv[1], int(sys.argv[2])
with Walrus(data_dir=data_dir) as wal:  # the one writer of DATA_DIR
    for number in range(count):
        order = {"order": number, "amount": 10 + number}
        wal.append_for_topic("orders", json.dumps(order).encode())
        time.sleep(0.01)
