"""DogStatsD in process, no sockets: CPU per datagram of the reader's batch path (`handle_batch`,
with its datagram and context caches) against parsing every datagram with `parse_packet`
(`handle`, what each datagram cost before the caches), on the bench's datagrams.

    python bench/bench_dogstatsd_parse.py [--datagrams 200000]

Cases: the bench datagram repeated (`--variants 1`), 64 distinct ones in turn (`--variants 64`),
and a gauge whose value changes every datagram (a context-cache hit, never a datagram-cache hit).
CPU is this process's time (time.process_time), which machine load inflates less than wall time.
"""

from __future__ import annotations

import argparse
import os
import time

from lab.agent.dogstatsd import MetricAggregator
from lab.agent.dogstatsd_server import READ_BATCH, DogStatsDServer

PEERS = [("127.0.0.1", 40001), ("127.0.0.1", 40002)]  # two senders, as bench_dogstatsd's default


def datagrams(case: str, n: int) -> list[tuple[bytes, tuple]]:
    base = b"bench.dsd.count:1|c|#step:3"
    if case == "variants 1":
        made = [base] * n
    elif case == "variants 64":
        made = [base + b",v:%d" % (k % 64) for k in range(n)]
    else:
        made = [b"bench.dsd.level:%d.%d|g|#step:3" % (k, k % 7) for k in range(n)]
    # Each sender's sendmmsg batch (64) arrives together: 64 from one peer, then 64 from the other.
    return [(d, PEERS[(k // 64) % 2]) for k, d in enumerate(made)]


def cpu_per_datagram(stream: list[tuple[bytes, tuple]], batched: bool) -> float:
    server = DogStatsDServer(MetricAggregator("bench-host", 10), ["127.0.0.1"], 0)
    start = time.process_time()
    if batched:
        for i in range(0, len(stream), READ_BATCH):
            server.handle_batch(stream[i : i + READ_BATCH])
    else:
        for data, addr in stream:
            server.handle(data, addr)
    spent = time.process_time() - start
    assert server.stats.packets == len(stream), server.stats.as_dict()
    return spent * 1e6 / len(stream)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datagrams", type=int, default=200_000)
    args = ap.parse_args()
    print(f"load {os.getloadavg()[0]:.1f}, {args.datagrams} datagrams per case")
    for case in ("variants 1", "variants 64", "gauge, a new value each"):
        stream = datagrams(case, args.datagrams)
        each = cpu_per_datagram(stream, batched=False)
        batch = cpu_per_datagram(stream, batched=True)
        print(f"{case:24} parse_packet each {each:5.2f} us/datagram   handle_batch {batch:5.2f} us/datagram")


if __name__ == "__main__":
    main()
