"""Read a forwarded walrus topic on another machine, processing each entry once.

Usage: python nats_consumer.py nats://HOST:4222 STREAM TOPIC [DONE_FILE]

A durable pull consumer reads the topic's subject; the Walrus-Offset header says which entry
each message is, so the last offset processed (kept in DONE_FILE, next to the results in a
real service) makes redelivered messages harmless: anything at or below it is skipped.
"""

import asyncio
import sys
from pathlib import Path

import nats
from nats.js.api import ConsumerConfig

from walrus.sinks import encode_topic


async def main(url: str, stream: str, topic: str, done_file: Path) -> None:
    done = int(done_file.read_text()) if done_file.exists() else -1
    nc = await nats.connect(url)
    js = nc.jetstream()
    info = await js.stream_info(stream)
    prefix = info.config.subjects[0].removesuffix(".>")
    subject = f"{prefix}.{encode_topic(topic)}"
    name = f"reader-{encode_topic(topic).replace('~', '_')}"
    sub = await js.pull_subscribe(subject, durable=name, stream=stream,
                                  config=ConsumerConfig(ack_wait=30))
    try:
        while True:
            try:
                messages = await sub.fetch(500, timeout=2)
            except TimeoutError:  # nats-py raises its own or asyncio's (both are this)
                break  # caught up; a service would keep fetching
            for msg in messages:
                offset = int(msg.headers["Walrus-Offset"])
                if offset > done:  # a redelivery of a processed entry is skipped
                    print(f"{topic}@{offset}: {msg.data!r}")
                    done = offset
                    done_file.write_text(str(done))
                await msg.ack()
    finally:
        await nc.close()


if __name__ == "__main__":
    url, stream, topic = sys.argv[1:4]
    done_file = Path(sys.argv[4] if len(sys.argv) > 4 else f"{stream}.done")
    asyncio.run(main(url, stream, topic, done_file))
