"""DogStatsD grammar and aggregation math, without sockets."""

from __future__ import annotations

import math

import pytest

from lab.agent.dogstatsd import (
    TYPE_COUNT,
    TYPE_GAUGE,
    TYPE_RATE,
    Event,
    MetricAggregator,
    MetricSample,
    ParseStats,
    ServiceCheck,
    Sketch,
    parse_line,
    parse_local_data,
    parse_packet,
)


def test_full_metric_line():
    m = parse_line("page.views:3|c|@0.5|#env:prod,team:web|c:abc123|T1700000000")
    assert isinstance(m, MetricSample)
    assert (m.name, m.values, m.mtype, m.sample_rate) == ("page.views", [3.0], "c", 0.5)
    assert m.tags == ["env:prod", "team:web"]
    assert m.container_id == "abc123" and m.timestamp == 1700000000


@pytest.mark.parametrize(("field", "container_id", "inode"), [
    ("ci-0123abcd", "0123abcd", 0),  # current clients (datadogpy >= 0.50, the Go/Java clients)
    ("ci-0123abcd,in-4026532", "0123abcd", 4026532),
    ("in-4026532", "", 4026532),  # cgroup v2 with a private cgroup namespace: only the inode is known
    ("cid-0123abcd", "0123abcd", 0),  # the old APM form
    ("0123abcd", "0123abcd", 0),  # the old DogStatsD form: a bare id
    ("in-notanumber", "", 0),  # kept as far as it parses, like the agent
])
def test_container_field_is_origin_local_data(field, container_id, inode):
    assert parse_local_data(field) == (container_id, inode)
    for line in (f"x:1|c|c:{field}", f"_e{{1,1}}:t|x|c:{field}", f"_sc|ok|0|c:{field}"):
        msg = parse_line(line)
        assert (msg.container_id, msg.cgroup_inode) == (container_id, inode), line


def test_the_datadog_client_s_container_field_yields_the_bare_container_id():
    import socket

    from datadog.dogstatsd.base import DogStatsd

    cid = "f" * 64
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(5)
        client = DogStatsd(host="127.0.0.1", port=rx.getsockname()[1], origin_detection_enabled=True,
                           container_id=cid, disable_buffering=True, disable_telemetry=True)
        client.increment("ecs_lab.hits", tags=["a:b"])
        packet = rx.recv(65535).decode()
        client.close_socket()
    # A given id goes out bare; one the client reads from its cgroup goes out as `ci-<id>` (above).
    assert f"|c:{cid}" in packet or f"|c:ci-{cid}" in packet, packet
    assert parse_line(packet.strip()).container_id == cid


@pytest.mark.parametrize("mtype", ["c", "g", "ms", "h", "s", "d"])
def test_every_metric_type(mtype):
    assert parse_line(f"x:1|{mtype}").mtype == mtype


def test_multiple_values_and_set_strings():
    assert parse_line("lat:1:2:3.5|d").values == [1.0, 2.0, 3.5]
    assert parse_line("users:alice|s").values == ["alice"]


def test_host_tag_becomes_hostname():
    m = parse_line("x:1|g|#host:other,a:b")
    assert m.host == "other" and m.tags == ["a:b"]


def test_event_with_every_field():
    e = parse_line("_e{5,10}:Title|line\\nnext|d:1700000000|h:web-1|p:low|t:error|k:agg|s:src|#a:b,c|c:cid")
    assert isinstance(e, Event)
    assert (e.title, e.text) == ("Title", "line\nnext")
    assert (e.timestamp, e.host, e.priority, e.alert_type) == (1700000000, "web-1", "low", "error")
    assert (e.aggregation_key, e.source_type_name, e.tags, e.container_id) == (
        "agg",
        "src",
        ["a:b", "c"],
        "cid",
    )


def test_event_lengths_count_utf8_bytes():
    # "é" is 2 bytes and "tëxt" 5: the header counts bytes, not characters.
    e = parse_line("_e{2,5}:é|tëxt")
    assert (e.title, e.text) == ("é", "tëxt")


def test_service_check_with_every_field():
    sc = parse_line("_sc|app.ok|1|d:1700000000|h:web-1|#a:b|c:cid|m:degraded | still up")
    assert isinstance(sc, ServiceCheck)
    assert (sc.name, sc.status, sc.timestamp, sc.host, sc.tags) == ("app.ok", 1, 1700000000, "web-1", ["a:b"])
    assert sc.message == "degraded | still up" and sc.container_id == "cid"


def test_multi_line_packet_with_malformed_lines_counted_per_reason():
    stats = ParseStats()
    packet = (
        b"good:1|c\n"
        b"novalue|c\n"
        b"bad:abc|g\n"
        b"weird:1|zz\n"
        b"rate:1|c|@7\n"
        b"_e{10,1}:short|x\n"
        b"_sc|chk|9\n"
        b":1|c\n"
        b"also.good:2|g\n\n"
    )
    msgs = parse_packet(packet, stats)
    assert [m.name for m in msgs] == ["good", "also.good"]
    assert stats.errors == {
        "no_value": 1,
        "invalid_value": 1,
        "unknown_type": 1,
        "invalid_sample_rate": 1,
        "invalid_event_lengths": 1,
        "invalid_service_check_status": 1,
        "empty_name": 1,
    }
    assert stats.packets == 1 and stats.metric_samples == 2


def test_invalid_utf8_is_counted_not_fatal():
    stats = ParseStats()
    assert len(parse_packet(b"\xff\xfe:1|c\nok:1|c", stats)) == 2
    assert stats.errors["invalid_utf8"] == 1


def flush(agg, *lines, now=100.0):
    for line in lines:
        agg.add(parse_line(line), now=now)
    return agg.flush(now=now + 1000)


def by_name(series):
    return {s.name: s for s in series}


def test_counts_are_rates_over_the_interval_with_sample_rate_applied():
    series, *_ = flush(MetricAggregator("h", 10), "hits:1|c", "hits:2|c", "hits:1|c|@0.5")
    s = by_name(series)["hits"]
    assert s.mtype == TYPE_RATE and s.interval == 10
    assert s.points[0][1] == pytest.approx((1 + 2 + 2) / 10)


def test_gauges_keep_the_last_value():
    series, *_ = flush(MetricAggregator("h", 10), "temp:1|g", "temp:5|g", "temp:3|g")
    s = by_name(series)["temp"]
    assert (s.mtype, s.points[0][1]) == (TYPE_GAUGE, 3.0)


def test_sets_count_unique_values():
    series, *_ = flush(MetricAggregator("h", 10), "u:a|s", "u:b|s", "u:a|s")
    assert by_name(series)["u"].points[0][1] == 2.0


def test_histogram_aggregates_and_percentile():
    agg = MetricAggregator("h", 10)
    series, *_ = flush(agg, *[f"lat:{v}|h" for v in range(1, 101)])
    s = by_name(series)
    assert s["lat.max"].points[0][1] == 100
    assert s["lat.median"].points[0][1] == 50
    assert s["lat.avg"].points[0][1] == pytest.approx(50.5)
    assert s["lat.95percentile"].points[0][1] == 95
    assert s["lat.count"].mtype == TYPE_RATE and s["lat.count"].points[0][1] == pytest.approx(10.0)
    assert "lat" not in s


def test_timers_aggregate_like_histograms():
    series, *_ = flush(MetricAggregator("h", 10), "t:10|ms", "t:20|ms")
    assert by_name(series)["t.avg"].points[0][1] == 15


def test_distributions_become_sketches():
    series, sketches, *_ = flush(MetricAggregator("h", 10), "d:1:2:3|d", "d:4|d|@0.5")
    assert not [s for s in series if s.name.startswith("d")]
    (sk,) = sketches
    assert sk.sketch.count == 5 and sk.sketch.min == 1 and sk.sketch.max == 4
    assert sk.sketch.sum == pytest.approx(1 + 2 + 3 + 8)
    assert sum(sk.sketch.bins.values()) == 5


def test_sketch_relative_error_within_one_percent():
    sk = Sketch()
    for v in range(1, 1001):
        sk.insert(float(v))
    for q in (0.5, 0.9, 0.99):
        exact = 1 + q * 999
        assert math.isclose(sk.quantile(q), exact, rel_tol=0.01)
    assert Sketch.key(0) == 0 and Sketch.key(-5) == -Sketch.key(5)


def test_contexts_split_by_tags_and_host():
    series, *_ = flush(MetricAggregator("h", 10), "g:1|g|#a:1", "g:2|g|#a:2", "g:3|g|#host:other")
    got = {(tuple(s.tags), s.host): s.points[0][1] for s in series}
    assert got == {(("a:1",), "h"): 1.0, (("a:2",), "h"): 2.0, ((), "other"): 3.0}


def test_origin_and_extra_tags_are_added():
    agg = MetricAggregator("h", 10, extra_tags=("dd:x",))
    agg.add(parse_line("g:1|g|#a:b"), ["task_family:web"], now=100)
    (s,) = agg.flush(now=2000)[0]
    assert s.tags == ["a:b", "dd:x", "task_family:web"]


def test_timestamped_metrics_skip_aggregation():
    series, *_ = flush(MetricAggregator("h", 10), "c:2|c|T1600000000", "g:5|g|T1600000001")
    s = by_name(series)
    assert (s["c"].mtype, s["c"].points) == (TYPE_COUNT, [(1600000000, 2.0)])
    assert (s["g"].mtype, s["g"].points) == (TYPE_GAUGE, [(1600000001, 5.0)])


def test_open_bucket_is_not_flushed_until_it_closes():
    agg = MetricAggregator("h", 10)
    agg.add(parse_line("c:1|c"), now=105)
    assert agg.flush(now=108)[0] == []
    assert len(agg.flush(now=111)[0]) == 1


def test_events_and_service_checks_pass_through_with_tags():
    agg = MetricAggregator("h", 10)
    _s, _k, events, checks = flush(agg, "_e{1,1}:a|b|#x", "_sc|c|0|#y")
    assert events[0].tags == ["x"] and checks[0].tags == ["y"]


def test_histogram_sample_rate_weights_use_the_agents_integer_ranks():
    # Ten values at @0.5 weigh 2 each: count 20 (a rate of 2/s over 10 s), median rank (20-1)//2 = 9
    # is passed at the 5th value, the 95th rank (95*20-1)//100 = 18 at the 10th.
    series, *_ = flush(MetricAggregator("h", 10), *[f"lat:{v}|h|@0.5" for v in range(1, 11)])
    s = by_name(series)
    assert s["lat.count"].points[0][1] == pytest.approx(2.0)
    assert s["lat.median"].points[0][1] == 5
    assert s["lat.95percentile"].points[0][1] == 10
    assert s["lat.avg"].points[0][1] == pytest.approx(5.5)


def test_sketch_keys_match_the_agents_mapping_and_bin_limit():
    # pkg/quantile: gamma 1+1/64, bias 1338, round to nearest; known keys of the agent's sketches.
    assert [Sketch.key(v) for v in (11.9, 47.3, 890, 1150)] == [1498, 1587, 1776, 1793]
    sk = Sketch()
    sk.insert(5.0, 70000)
    keys, counts = sk.keys_counts()
    assert keys == [Sketch.key(5.0)] * 2 and counts == [65535, 70000 - 65535]
