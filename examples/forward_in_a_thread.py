"""A service that appends to walrus and forwards the log to NATS JetStream beside its work.

Usage: python forward_in_a_thread.py DATA_DIR nats://HOST:4222[,nats://...]
"""

import sys
import threading

import walrus

data_dir, urls = sys.argv[1], sys.argv[2]
stop = threading.Event()
forwarder = threading.Thread(
    target=walrus.forward, args=(data_dir, urls),
    kwargs={"stop": stop, "subject_prefix": "shop"})

with walrus.Walrus(data_dir) as wal:
    forwarder.start()  # forwards every topic, including ones created later
    for i in range(1000):
        wal.append_for_topic("orders", f"order {i}".encode())
    wal.flush()
    stop.set()  # forward() returns once the batch in flight is acknowledged or given up;
    forwarder.join()  # what it did not send yet goes on the next start, from the stream's end
    # In an asyncio service: await asyncio.to_thread(walrus.forward, data_dir, urls, stop=stop)
