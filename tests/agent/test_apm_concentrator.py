"""APM stats the agent computes itself (the trace-agent's concentrator), from hand-built spans, real
ddtrace, and requests decoded in worker processes."""

from __future__ import annotations

import msgpack
from ddsketch.pb.ddsketch_pb2 import DDSketch
from ddsketch.pb.proto import DDSketchProto

from lab.agent.apm import TraceBuffer, TracerInfo, decode_v04
from lab.fakes.intake.decode import apm_stats
from lab.world import wait_until

from .conftest import run_traced_app
from .test_apm import _trace
from .test_apm_decoders import DECODER_ENV, big_request, decoders_of, post

S = 1_000_000_000
BUCKET = 2 * S
T0 = 1_700_000_000 * S  # a multiple of BUCKET


def span(span_id, parent_id=0, service="web", name="http.request", resource="GET /", start=T0,
         duration=S // 10, error=0, meta=None, metrics=None):
    return {"service": service, "name": name, "resource": resource, "trace_id": 1, "span_id": span_id,
            "parent_id": parent_id, "start": start, "duration": duration, "error": error, "type": "web",
            "meta": meta or {}, "metrics": {"_sampling_priority_v1": 1.0, **(metrics or {})}}


def grouped(payload: dict) -> dict[tuple[str, str, str], dict]:
    return {(g["Service"], g["Name"], g["Resource"]): g for _, _, g in apm_stats.iter_grouped(payload)}


def sketch_count(raw: bytes) -> float:
    pb = DDSketch()
    pb.ParseFromString(raw)
    return DDSketchProto.from_proto(pb).count


def test_spans_that_count_are_grouped_into_hits_errors_top_level_and_sketches():
    buf = TraceBuffer("agent-host", default_env="agent-env", stats_bucket=2, now_ns=T0)
    trace = [
        span(1, meta={"http.status_code": "200", "env": "prod"}),
        span(2, 1, duration=3 * S // 10, error=1, meta={"http.status_code": "200"}),  # same key, an error
        span(3, 1, name="internal.step"),  # same service, not measured: no stats
        span(4, 1, name="cache.get", metrics={"_dd.measured": 1}),  # measured
        span(5, 1, service="db", name="pg.query"),  # parent of another service: top level
        span(6, 1, name="kafka.produce", meta={"span.kind": "producer"}),  # span kind
    ]
    trace[1]["span_id"], trace[1]["parent_id"] = 7, 0  # a second root in the chunk, same key as 1
    buf.add(decode_v04(msgpack.packb([trace])), TracerInfo(lang="python"))
    assert buf.take_stats_payloads(now_ns=T0 + BUCKET) == []  # the bucket is still open
    (payload,) = buf.take_stats_payloads(now_ns=T0 + 2 * BUCKET)
    assert payload["ClientComputed"] is False and payload["AgentHostname"] == "agent-host"
    (client,) = payload["Stats"]
    assert (client["Env"], client["Hostname"]) == ("prod", "agent-host")
    (bucket,) = client["Stats"]
    assert bucket["Start"] == T0 and bucket["Duration"] == BUCKET
    groups = grouped(payload)
    assert set(groups) == {("web", "http.request", "GET /"), ("web", "cache.get", "GET /"),
                           ("db", "pg.query", "GET /"), ("web", "kafka.produce", "GET /")}
    web = groups[("web", "http.request", "GET /")]
    assert (web["Hits"], web["Errors"], web["TopLevelHits"], web["Duration"]) == (2, 1, 2, 4 * S // 10)
    assert web["HTTPStatusCode"] == 200 and web["IsTraceRoot"] == 1
    assert sketch_count(web["OkSummary"]) == 1 and sketch_count(web["ErrorSummary"]) == 1
    assert groups[("web", "cache.get", "GET /")]["TopLevelHits"] == 0
    assert groups[("db", "pg.query", "GET /")]["TopLevelHits"] == 1
    assert groups[("web", "kafka.produce", "GET /")]["SpanKind"] == "producer"
    assert buf.take_stats_payloads(now_ns=T0 + 10 * BUCKET, force=True) == []  # taken once


def test_a_request_whose_tracer_computed_its_stats_adds_nothing():
    buf = TraceBuffer("h", stats_bucket=2, now_ns=T0)
    info = TracerInfo.from_headers({"Datadog-Client-Computed-Stats": "yes", "Datadog-Meta-Lang": "go"})
    assert info.client_computed_stats
    buf.add(decode_v04(msgpack.packb([[span(1)]])), info)
    assert buf.take_stats_payloads(force=True) == []
    assert not TracerInfo.from_headers({"Datadog-Client-Computed-Stats": "false"}).client_computed_stats


def test_tracer_top_level_marks_replace_the_agents_when_the_header_says_so():
    buf = TraceBuffer("h", stats_bucket=2, now_ns=T0)
    trace = [span(1, metrics={"_dd.top_level": 1}), span(2, 1, service="db")]  # db: no mark
    info = TracerInfo.from_headers({"Datadog-Client-Computed-Top-Level": "1"})
    buf.add(decode_v04(msgpack.packb([trace])), info)
    (payload,) = buf.take_stats_payloads(force=True)
    assert set(grouped(payload)) == {("web", "http.request", "GET /")}


def test_buckets_align_on_span_end_and_are_sent_two_widths_after_they_open():
    buf = TraceBuffer("h", stats_bucket=2, now_ns=T0)
    early = span(1, start=T0 + S // 2, duration=S // 10)  # ends in [T0, T0+2s)
    late = span(2, start=T0 + S, duration=3 * S // 2, resource="GET /late")  # ends in [T0+2s, T0+4s)
    buf.add(decode_v04(msgpack.packb([[early], [late]])), TracerInfo())
    assert buf.take_stats_payloads(now_ns=T0 + 2 * BUCKET - 1) == []
    (first,) = buf.take_stats_payloads(now_ns=T0 + 2 * BUCKET)
    assert [b["Start"] for c in first["Stats"] for b in c["Stats"]] == [T0]
    assert set(grouped(first)) == {("web", "http.request", "GET /")}
    (last,) = buf.take_stats_payloads(now_ns=T0 + 2 * BUCKET, force=True)  # on stop: what is open
    assert [b["Start"] for c in last["Stats"] for b in c["Stats"]] == [T0 + BUCKET]
    # A span ending in a bucket already sent counts in the oldest open one.
    buf.add(decode_v04(msgpack.packb([[span(3, start=T0)]])), TracerInfo())
    (again,) = buf.take_stats_payloads(now_ns=T0 + 3 * BUCKET)
    assert [b["Start"] for c in again["Stats"] for b in c["Stats"]] == [T0 + BUCKET]


def test_a_sampled_out_trace_still_counts_with_its_sample_rate_weight():
    buf = TraceBuffer("h", stats_bucket=2, now_ns=T0)
    dropped = span(1, metrics={"_sampling_priority_v1": 0.0, "_sample_rate": 0.25})
    buf.add(decode_v04(msgpack.packb([[dropped]])), TracerInfo())
    assert buf.take_agent_payload() is None
    (payload,) = buf.take_stats_payloads(force=True)
    assert grouped(payload)[("web", "http.request", "GET /")]["Hits"] == 4


def test_real_ddtrace_gets_agent_computed_stats_at_the_intake(start_agent, intake):
    agent = start_agent(LAB_AGENT_STATS_BUCKET_INTERVAL="1")
    run_traced_app(agent.ports.apm, "v0.5")

    def computed():
        for cap in intake.payloads("/api/v0.2/stats"):
            data = apm_stats.decode(cap.raw, cap.headers).data
            if data.get("ClientComputed") is False:
                return data
        return None

    data = wait_until(computed, 15, what="agent-computed stats at /api/v0.2/stats")
    assert data["AgentHostname"] == "i-0labtest"
    groups = grouped(data)
    root = groups[("lab-web", "web.request", "GET /hello")]
    assert root["Hits"] == 1 and root["TopLevelHits"] == 1 and root["HTTPStatusCode"] == 200
    assert groups[("lab-db", "db.query", "SELECT 1")]["TopLevelHits"] == 1  # another service
    assert {c["Env"] for c in data["Stats"]} == {"lab-test"}


def test_requests_decoded_in_worker_processes_still_give_stats(start_agent, intake):
    agent = start_agent(**DECODER_ENV, LAB_AGENT_STATS_BUCKET_INTERVAL="1")
    assert post(agent.ports.apm, big_request(1000))[0] == 200  # decoded here; starts the workers
    wait_until(lambda: decoders_of(agent)["ready"], 30, what="2 decoder processes")
    in_worker = [_trace(2000 + k, 5) for k in range(20)]
    for trace in in_worker:
        for s in trace:
            s["service"] = "worker-built"
    body = msgpack.packb(in_worker)
    assert len(body) >= int(DECODER_ENV["LAB_AGENT_APM_DECODER_MIN_BYTES"])
    assert post(agent.ports.apm, body)[0] == 200
    assert decoders_of(agent)["requests_handed_off"] == 1

    def hits() -> dict:
        out: dict = {}
        for cap in intake.payloads("/api/v0.2/stats"):
            for key, g in grouped(apm_stats.decode(cap.raw, cap.headers).data).items():
                out[key] = out.get(key, 0) + g["Hits"]
        return out

    # test_apm._trace: a root (top level) and 4 children of its own service (no stats) per trace.
    wait_until(lambda: hits().get(("worker-built", "root", "r")) == 20, 15,
               what="stats of the request built in a worker")
    assert hits() == {("s", "root", "r"): 20, ("worker-built", "root", "r"): 20}
