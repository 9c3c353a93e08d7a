"""DogStatsD datagrams, fuzzed: the parser never raises, every non-empty line is either a message or a
counted error with a reason, and a flood of distinct bad datagrams keeps memory bounded."""

from __future__ import annotations

import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st

from lab.agent.dogstatsd import Event, MetricSample, ParseStats, ServiceCheck, parse_packet

NAMES = st.text(st.characters(codec="ascii", exclude_characters="\n|:#,@"), max_size=20)
TYPES = st.sampled_from(["c", "g", "h", "d", "ms", "s", "x", "", "cc"])
VALUES = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers().map(str),
                   st.text(max_size=8))
FLOOD = 5_000  # datagrams of three bad lines each (tracemalloc makes each parse ~10x slower)
TAGS = st.lists(st.text(st.characters(codec="ascii", exclude_characters="\n|,"), max_size=12), max_size=4)


@st.composite
def near_valid_lines(draw) -> str:
    """`name:value|type|@rate|#tags|c:container`, each part sometimes missing or malformed."""
    parts = [f"{draw(NAMES)}:{':'.join(draw(st.lists(VALUES, min_size=1, max_size=3)))}", draw(TYPES)]
    if draw(st.booleans()):
        parts.append("@" + draw(st.one_of(st.floats().map(repr), st.text(max_size=4))))
    if draw(st.booleans()):
        parts.append("#" + ",".join(draw(TAGS)))
    if draw(st.booleans()):
        parts.append("c:" + draw(st.text(max_size=10)))
    line = "|".join(parts)
    return draw(st.sampled_from([line, "_e{" + line, "_sc|" + line, line.replace("|", "", 1)]))


def _lines(data: bytes) -> int:
    return sum(1 for line in data.decode(errors="replace").split("\n") if line.rstrip("\r"))


def _check(data: bytes) -> None:
    stats = ParseStats()
    messages = parse_packet(data, stats)
    assert all(isinstance(m, MetricSample | Event | ServiceCheck) for m in messages)
    errors = sum(n for reason, n in stats.errors.items() if reason != "invalid_utf8")
    assert len(messages) + errors == _lines(data), (messages, dict(stats.errors))
    assert stats.packets == 1 and stats.bytes == len(data)


@given(st.binary(max_size=512))
def test_any_bytes_parse_or_are_counted(data):
    _check(data)


@given(st.lists(near_valid_lines(), min_size=1, max_size=8))
def test_near_valid_datagrams_parse_or_are_counted(lines):
    _check("\n".join(lines).encode())


@settings(max_examples=2, deadline=None)
@given(st.integers(min_value=0, max_value=2**32))
def test_a_flood_of_distinct_bad_datagrams_keeps_memory_bounded(seed):
    stats = ParseStats()
    tracemalloc.start()
    try:
        for i in range(FLOOD):
            # Every datagram bad in its own way: a distinct type, value, rate and name.
            parse_packet(f"m{seed}.{i}:v{i}|t{i}|@r{i}\n_e{{{i},x}}:y\n_sc|{i}|z{i}".encode(), stats)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sum(stats.errors.values()) == 3 * FLOOD
    assert len(stats.errors) < 50, f"error reasons keyed by input: {len(stats.errors)} distinct"
    assert peak < 8 * 1024 * 1024, f"parsing {FLOOD} bad datagrams peaked at {peak / 1e6:.1f} MB"


@given(st.lists(st.tuples(st.lists(near_valid_lines(), min_size=1, max_size=2), st.integers(0, 2)),
                min_size=1, max_size=30))
def test_the_readers_context_cache_aggregates_as_parsing_each_datagram(datagrams):
    """What the reader aggregates through its context cache equals parse_packet on every datagram."""
    import dataclasses

    from lab.agent.dogstatsd import MetricAggregator
    from lab.agent.dogstatsd_server import DogStatsDServer

    stream = [("\n".join(lines).encode(), ("127.0.0.1", 40000 + peer)) for lines, peer in datagrams]
    stream += stream  # the second time, every cacheable context is a hit
    seen = []
    for through_cache in (False, True):
        server = DogStatsDServer(MetricAggregator("h", 10), ["127.0.0.1"], 0,
                                 origin=lambda ip, port, cid: [f"p:{port}", f"c:{cid}"])
        if through_cache:
            server.handle_batch(list(stream))
        else:
            for data, addr in stream:
                server.handle(data, addr)
        series, sketches, events, checks = server.aggregator.flush(now=0, force=True)
        seen.append((
            sorted(repr((s.name, s.tags, s.host, s.mtype, [(0, v) for _, v in s.points])) for s in series),
            sorted(repr((k.name, k.tags, k.host, sorted(k.sketch.bins.items()), k.sketch.count))
                   for k in sketches),
            sorted(repr(dataclasses.asdict(e)) for e in events + checks),
            server.stats.as_dict(),
        ))
    assert seen[0] == seen[1]
