"""A run of identical datagrams is parsed once and aggregated with its multiplicity: what a user
reads at the intake must be what adding every datagram one by one gives, for every metric type,
events and service checks, and malformed lines (counted once per datagram)."""

from __future__ import annotations

import dataclasses
import socket

import pytest

from lab.agent import dogstatsd
from lab.agent.dogstatsd import MetricAggregator
from lab.agent.dogstatsd_server import DogStatsDServer
from lab.world import wait_until

DATAGRAMS = [
    b"hits:1|c|#route:/a",
    b"hits:2|c|@0.3",
    b"temp:7.5|g",
    b"users:alice|s",
    b"lat:12|h|@0.3",
    b"lat:3:9|ms",
    b"size:4|d|@0.25",
    b"size:0.1:0.7|d",
    b"back:2|c|T1600000000",
    b"two:1|c\nbad-line\nthree:5|g",
    b"_e{2,3}:up|sys|#x:1",
    b"_sc|db|1|#y:2",
    b"\xff\xfe:1|c",
]


def _aggregated(monkeypatch, feed) -> tuple[dict, dict]:
    monkeypatch.setattr(dogstatsd.time, "time", lambda: 1_000.0)
    server = DogStatsDServer(MetricAggregator("h", 10), ["127.0.0.1"], 0)
    feed(server)
    series, sketches, events, checks = server.aggregator.flush(force=True)
    seen = {
        "series": sorted((s.name, tuple(s.tags), s.host, s.mtype, tuple(s.points)) for s in series),
        "sketches": sorted((k.name, tuple(k.tags), k.host, k.timestamp, sorted(k.sketch.bins.items()),
                            k.sketch.count, k.sketch.sum, k.sketch.min, k.sketch.max) for k in sketches),
        "events": sorted(repr(dataclasses.asdict(e)) for e in events),
        "checks": sorted(repr(dataclasses.asdict(c)) for c in checks),
    }
    return seen, server.stats.as_dict()


@pytest.mark.parametrize("datagram", DATAGRAMS, ids=lambda d: d[:12].decode(errors="replace"))
@pytest.mark.parametrize("times", [2, 7])
def test_a_run_of_repeats_aggregates_as_one_by_one(monkeypatch, datagram, times):
    addr = ("127.0.0.1", 40000)
    one_by_one = _aggregated(monkeypatch, lambda s: [s.handle(datagram, addr) for _ in range(times)])
    as_a_run = _aggregated(monkeypatch, lambda s: s.handle(datagram, addr, times))
    assert as_a_run == one_by_one
    assert as_a_run[1]["packets"] == times


def test_repeats_over_udp_are_all_counted_and_the_last_gauge_value_wins():
    """Over a real socket: 2,000 identical counters then a gauge that changes value; the reader
    merges runs, the aggregator must still count every datagram and keep the gauge last sent."""
    agg = MetricAggregator("h", 10)
    server = DogStatsDServer(agg, ["127.0.0.1"], 0, rcvbuf=4 * 1024 * 1024).start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for _ in range(2000):
                sock.sendto(b"reqs:1|c", ("127.0.0.1", server.port))
            for value in (1, 1, 9, 9, 1, 4):
                sock.sendto(f"level:{value}|g".encode(), ("127.0.0.1", server.port))
        wait_until(lambda: server.stats.packets == 2006 and not server.queued, 10, interval=0.05,
                   what="2006 datagrams parsed")
        series = {s.name: s for s in agg.flush(force=True)[0]}
        assert sum(v for _, v in series["reqs"].points) * 10 == 2000
        assert series["level"].points[-1][1] == 4
    finally:
        server.stop()
