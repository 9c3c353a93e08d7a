"""The reader's context cache (one-line metric datagrams keyed by name|type|fields, values parsed on
each hit) must aggregate exactly what parsing every datagram with `parse_packet` gives: the same
series, sketches, events, service checks and parse counts, in every order, with bad values after
good ones, and with the cache full and emptied."""

from __future__ import annotations

import dataclasses

import pytest

from lab.agent import dogstatsd, dogstatsd_server
from lab.agent.dogstatsd import MetricAggregator
from lab.agent.dogstatsd_server import DogStatsDServer

PEER_A, PEER_B = ("127.0.0.1", 40001), ("127.0.0.1", 40002)
STREAM = [
    (b"hits:1|c|#route:/a", PEER_A),
    (b"hits:1|c|#route:/a", PEER_A),
    (b"hits:2|c|#route:/a", PEER_B),  # the same context from another peer: another origin tag
    (b"hits:0.5:1.5|c|#route:/a", PEER_A),
    (b"hits:3|c|@0.3|#route:/a", PEER_A),
    (b"temp:7.5|g|#host:web-1", PEER_A),
    (b"temp:nan|g|#host:web-1", PEER_A),  # refused as parse_metric refuses it, counted
    (b"temp:inf|g|#host:web-1", PEER_A),
    (b"temp:\xd9\xa1|g|#host:web-1", PEER_A),  # not UTF-8 digits in bytes: the full parser decides
    (b"temp:|g|#host:web-1", PEER_A),
    (b"temp:9|g|#host:web-1", PEER_A),
    (b"users:alice|s", PEER_A),
    (b"users:bob:alice|s", PEER_B),
    (b"users:\xff|s", PEER_A),
    (b"lat:12|h|@0.5", PEER_A),
    (b"lat:3:9|h|@0.5", PEER_A),
    (b"lat:4|ms|c:ci-abc", PEER_A),
    (b"size:4|d|@0.25", PEER_A),
    (b"size:0.1:0.7|d|@0.25", PEER_B),
    (b"back:2|c|T1600000000", PEER_A),
    (b"back:3|c|T1600000000", PEER_A),
    (b"two:1|c\nthree:5|g", PEER_A),
    (b"two:2|c", PEER_A),
    (b"_e{2,3}:up|sys|#x:1", PEER_A),
    (b"_sc|db|1|#y:2", PEER_A),
    (b"a|b:1|c", PEER_A),
    (b"hits:1|c|#route:/a\r", PEER_A),
    (b"hits:7|c|#route:/a", PEER_A),
    (b"hits:1e3|c|#route:/a", PEER_B),
    (b"hits: 4 |c|#route:/a", PEER_B),
    (b"hits:1_0|c|#route:/a", PEER_B),
    (b"level:1|g", PEER_A),
    (b"level:2|g", PEER_A),
    (b"level:1|g", PEER_A),
]


def _origin(ip: str, port: int, container_id: str) -> list[str]:
    return [f"peer:{port}"] + ([f"container:{container_id}"] if container_id else [])


def _seen(server: DogStatsDServer) -> tuple:
    series, sketches, events, checks = server.aggregator.flush(force=True)
    return (
        sorted((s.name, tuple(s.tags), s.host, s.mtype, tuple(s.points)) for s in series),
        sorted((k.name, tuple(k.tags), k.host, k.timestamp, sorted(k.sketch.bins.items()), k.sketch.count,
                k.sketch.sum, k.sketch.min, k.sketch.max) for k in sketches),
        sorted(repr(dataclasses.asdict(e)) for e in events),
        sorted(repr(dataclasses.asdict(c)) for c in checks),
        server.stats.as_dict(),
    )


def _server(with_origin: bool = True) -> DogStatsDServer:
    return DogStatsDServer(MetricAggregator("h", 10, extra_tags=("env:lab",)), ["127.0.0.1"], 0,
                           origin=_origin if with_origin else None)


def _parsed_one_by_one(stream: list[tuple[bytes, tuple]], with_origin: bool = True) -> tuple:
    """The reference: every datagram through parse_packet, aggregated on its own."""
    server = _server(with_origin)
    for data, addr in stream:
        server.handle(data, addr)
    return _seen(server)


def _through_the_cache(stream: list[tuple[bytes, tuple]], batch: int,
                       with_origin: bool = True) -> tuple[tuple, DogStatsDServer]:
    server = _server(with_origin)
    for start in range(0, len(stream), batch):
        server.handle_batch(list(stream[start : start + batch]))
    return _seen(server), server


@pytest.fixture(autouse=True)
def _fixed_clock(monkeypatch):
    monkeypatch.setattr(dogstatsd.time, "time", lambda: 1_000.0)


@pytest.mark.parametrize("batch", [1, 3, 256])
@pytest.mark.parametrize("order", ["as sent", "reversed", "twice"])
@pytest.mark.parametrize("with_origin", [True, False], ids=["origin", "no-origin"])
def test_the_cache_aggregates_what_parsing_each_datagram_gives(batch, order, with_origin):
    stream = {"as sent": STREAM, "reversed": STREAM[::-1], "twice": STREAM + STREAM}[order]
    reference = _parsed_one_by_one(stream, with_origin)
    cached, server = _through_the_cache(stream, batch, with_origin)
    assert cached == reference
    assert reference[4]["packets"] == len(stream)
    assert reference[4]["errors_by_reason"]["invalid_value"] >= 2  # nan, inf
    assert reference[4]["errors_by_reason"]["no_value"] >= 1
    # The one-line metrics without |T were served from the cache after their first parse.
    assert server.snapshot()["context_cache"]["contexts"] >= 8
    assert server.snapshot()["context_cache"]["datagrams"] >= 8


def test_a_cache_hit_skips_the_parser(monkeypatch):
    server = _server()
    server.handle_batch([(b"hits:1|c|#route:/a", PEER_A)])
    calls = []
    real = dogstatsd_server.parse_packet
    monkeypatch.setattr(dogstatsd_server, "parse_packet", lambda *a: calls.append(a) or real(*a))
    server.handle_batch([(b"hits:%d|c|#route:/a" % v, PEER_A) for v in range(2, 50)])
    assert calls == []
    server.handle_batch([(b"hits:%d|c|#route:/a" % v, PEER_A) for v in range(2, 50)])  # same bytes
    assert calls == []
    series = {s.name: s for s in server.aggregator.flush(force=True)[0]}
    assert series["hits"].points[0][1] * 10 == sum(range(1, 50)) + sum(range(2, 50))
    assert series["hits"].tags == ["env:lab", "peer:40001", "route:/a"]


def test_the_cache_is_bounded_and_stays_exact_when_full(monkeypatch):
    monkeypatch.setattr(dogstatsd_server, "MAX_CACHED_CONTEXTS", 16)
    stream = [(b"m%d:%d|c|#k:%d" % (i % 40, i, i % 7), PEER_A) for i in range(400)]
    reference = _parsed_one_by_one(stream)
    cached, server = _through_the_cache(stream, 64)
    assert cached == reference
    snap = server.snapshot()["context_cache"]
    assert snap["contexts"] <= 16 and snap["datagrams"] <= 16 and snap["resets"] > 0


def test_long_datagrams_are_parsed_each_time_not_cached():
    """A cache of 4096 datagrams of up to 64 KiB would hold 256 MiB: long ones are not kept."""
    tags = b",".join(b"tag%d:%s" % (i, b"x" * 40) for i in range(40))
    stream = [(b"wide:%d|c|#" % v + tags, PEER_A) for v in (1, 2, 1)]
    reference = _parsed_one_by_one(stream)
    cached, server = _through_the_cache(stream, 8)
    assert cached == reference
    assert server.snapshot()["context_cache"]["contexts"] == 0
    assert server.snapshot()["context_cache"]["datagrams"] == 0


def test_a_context_whose_values_keep_changing_does_not_fill_the_datagram_cache():
    stream = [(b"level:%d|g|#q:1" % v, PEER_A) for v in range(200)] + [(b"level:5|g|#q:1", PEER_A)]
    reference = _parsed_one_by_one(stream)
    cached, server = _through_the_cache(stream, 50)
    assert cached == reference
    snap = server.snapshot()["context_cache"]
    assert snap["contexts"] == 1
    assert snap["datagrams"] == dogstatsd_server.MAX_DATAGRAMS_PER_CONTEXT
