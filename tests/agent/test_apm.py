"""The APM receiver against the real ddtrace (v0.4 and v0.5) and the AgentPayload it forwards."""

from __future__ import annotations

import json
import urllib.request

import msgpack
import pytest

from lab.agent.apm import TraceBuffer, TracerInfo, decode_v04, decode_v05

from .conftest import run_traced_app


def decode_agent_payload(body: bytes):
    from lab.proto import agent_payload_pb2

    p = agent_payload_pb2.AgentPayload()
    p.ParseFromString(body)
    return p


@pytest.mark.parametrize("api_version, path", [("v0.4", "/v0.4/traces"), ("v0.5", "/v0.5/traces")])
def test_real_ddtrace_traces_are_forwarded_as_agent_payload(start_agent, intake, api_version, path):
    agent = start_agent(DD_ENV="lab-agent-env")
    run_traced_app(agent.ports.apm, api_version)
    cap = intake.wait_for("/api/v0.2/traces", timeout=15)
    assert cap.headers["Content-Type"] == "application/x-protobuf"
    assert cap.headers["Content-Encoding"] == "gzip"
    assert cap.headers["DD-Api-Key"] == "lab-api-key"
    assert cap.headers["X-Datadog-Reported-Languages"] == "python"
    assert cap.headers["User-Agent"].startswith("Datadog Trace Agent/")
    payload = decode_agent_payload(cap.body)
    assert payload.hostName == "i-0labtest" and payload.env == "lab-agent-env"
    (tp,) = payload.tracerPayloads
    assert (
        tp.languageName == "python" and tp.tracerVersion and tp.env == "lab-test" and tp.appVersion == "1.2.3"
    )
    spans = {s.name: s for c in tp.chunks for s in c.spans}
    assert set(spans) == {"web.request", "db.query"}
    assert spans["db.query"].parentID == spans["web.request"].spanID
    assert spans["web.request"].resource == "GET /hello" and spans["db.query"].service == "lab-db"
    assert all(c.priority > 0 for c in tp.chunks)
    assert agent.traces.stats.traces_received >= 1


def test_info_is_truthful(start_agent):
    agent = start_agent()
    with urllib.request.urlopen(f"http://127.0.0.1:{agent.ports.apm}/info", timeout=5) as r:
        info = json.loads(r.read())
    # Remote configuration is on by default: its route is served and listed like the agent's.
    assert set(info["endpoints"]) == {
        "/v0.4/traces", "/v0.5/traces", "/v0.6/stats", "/profiling/v1/input", "/telemetry/proxy/",
        "/evp_proxy/v1/", "/evp_proxy/v2/", "/evp_proxy/v3/", "/evp_proxy/v4/",
        "/dogstatsd/v1/proxy", "/dogstatsd/v2/proxy", "/v0.7/config",
    }
    assert info["config"]["receiver_port"] == agent.ports.apm
    assert info["config"]["statsd_port"] == agent.ports.dogstatsd
    for served in info["endpoints"]:
        req = urllib.request.Request(
            f"http://127.0.0.1:{agent.ports.apm}{served}",
            method="POST",
            data=b"{}" if served == "/v0.7/config" else msgpack.packb([]),
        )
        try:
            urllib.request.urlopen(req, timeout=5).close()
        except urllib.error.HTTPError as exc:
            assert exc.code != 404, served


def test_client_stats_are_forwarded_with_capitalised_keys(start_agent, intake):
    import gzip

    agent = start_agent()
    stats = {
        "Hostname": "",
        "Env": "lab",
        "Version": "1",
        "Lang": "python",
        "TracerVersion": "4",
        "Stats": [
            {
                "Start": 1,
                "Duration": 10,
                "Stats": [
                    {"Service": "s", "Name": "n", "Resource": "r", "Hits": 3, "Errors": 0, "Duration": 9}
                ],
            }
        ],
    }
    req = urllib.request.Request(
        f"http://127.0.0.1:{agent.ports.apm}/v0.6/stats",
        data=msgpack.packb(stats),
        headers={"Content-Type": "application/msgpack"},
        method="POST",
    )
    urllib.request.urlopen(req, timeout=5).close()
    cap = intake.wait_for("/api/v0.2/stats", timeout=10)
    body = msgpack.unpackb(gzip.decompress(cap.raw) if cap.raw[:2] == b"\x1f\x8b" else cap.body)
    assert body["AgentHostname"] == "i-0labtest" and body["ClientComputed"] is True
    assert body["Stats"][0]["Stats"][0]["Stats"][0]["Hits"] == 3


def test_garbage_is_rejected_with_a_reason_and_counted(start_agent):
    agent = start_agent()
    req = urllib.request.Request(
        f"http://127.0.0.1:{agent.ports.apm}/v0.4/traces",
        data=b"\xc1\xc1garbage",
        method="PUT",
        headers={"Content-Type": "application/msgpack"},
    )
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=5)
    assert exc.value.code == 400 and b"cannot decode" in exc.value.read()
    assert agent.traces.stats.decode_errors == 1


def test_v05_string_table_decoding():
    strings = ["svc", "op", "res", "env", "prod", "", "web"]
    span = [0, 1, 2, 7, 8, 0, 100, 5, 0, {3: 4}, {"_sampling_priority_v1": 2}, 6]
    # metrics keys are string-table indices too
    span[10] = {7: 2.0}
    strings.append("_sampling_priority_v1")
    (trace,) = decode_v05(msgpack.packb([strings, [[span]]]))
    (s,) = trace
    assert (s["service"], s["name"], s["resource"], s["type"]) == ("svc", "op", "res", "web")
    assert s["meta"] == {"env": "prod"} and s["metrics"] == {"_sampling_priority_v1": 2.0}


def test_rejected_priority_dropped_unless_error():
    buf = TraceBuffer("h")
    keep = [{"service": "s", "name": "n", "resource": "r", "trace_id": 1, "span_id": 1, "parent_id": 0}]
    base = decode_v04(
        msgpack.packb(
            [
                [{**keep[0], "metrics": {"_sampling_priority_v1": 0}}],
                [{**keep[0], "trace_id": 2, "error": 1, "metrics": {"_sampling_priority_v1": 0}}],
                [{**keep[0], "trace_id": 3, "metrics": {"_sampling_priority_v1": 1}}],
            ]
        )
    )
    buf.add(base, TracerInfo(lang="python"), ["task_family:web"])
    payload = buf.take_agent_payload()
    (tp,) = payload.tracerPayloads
    assert sorted(c.spans[0].traceID for c in tp.chunks) == [2, 3]
    assert tp.tags["_dd.tags.container"] == "task_family:web"
    assert buf.stats.traces_dropped_sampling == 1


def test_odd_tag_values_are_stringified_not_lost():
    buf = TraceBuffer("h")
    span = {
        "service": "s",
        "name": "n",
        "trace_id": 9,
        "span_id": 1,
        "parent_id": 0,
        "meta": {"env": "prod", "count": 3},
        "metrics": {"m": 1, "bad": "x"},
    }
    buf.add(decode_v04(msgpack.packb([[span]])), TracerInfo())
    (chunk,) = buf.take_agent_payload().tracerPayloads[0].chunks
    assert dict(chunk.spans[0].meta) == {"env": "prod", "count": "3"}
    assert dict(chunk.spans[0].metrics) == {"m": 1.0}


def _trace(trace_id: int, n: int = 2, **meta) -> list[dict]:
    root = {"service": "s", "name": "root", "resource": "r", "trace_id": trace_id, "span_id": trace_id * 10,
            "parent_id": 0, "start": 1, "duration": 2, "error": 0, "type": "web", "meta": dict(meta),
            "metrics": {"_sampling_priority_v1": 1.0}}
    kids = [{**root, "name": "child", "span_id": trace_id * 10 + k, "parent_id": trace_id * 10, "meta": {},
             "metrics": {}} for k in range(1, n)]
    return [root, *kids]


def test_each_request_is_one_tracer_payload_named_by_its_first_chunk_root():
    # pkg/trace/agent: hostname, env and app version come from the first chunk root having them.
    buf = TraceBuffer("h", default_env="agent-env")
    named = {"env": "prod", "version": "2.0", "_dd.hostname": "tracer-host"}
    first = [_trace(1, version="1.0"), _trace(2, **named)]
    buf.add(decode_v04(msgpack.packb(first)), TracerInfo(lang="python", container_id="c1"))
    buf.add(decode_v04(msgpack.packb([_trace(3)])), TracerInfo(lang="go"))
    payload = buf.take_agent_payload()
    one, two = payload.tracerPayloads
    assert (one.containerID, one.languageName, one.env, one.appVersion, one.hostname) == (
        "c1", "python", "prod", "1.0", "tracer-host")
    assert [c.spans[0].traceID for c in one.chunks] == [1, 2]
    assert (two.languageName, two.env, [c.spans[0].traceID for c in two.chunks]) == ("go", "agent-env", [3])
    assert payload.hostName == "h" and buf.stats.spans_received == 6 and buf.take_agent_payload() is None


def test_a_flush_sends_payloads_of_at_most_3_2_mb_and_says_when_one_is_full():
    from lab.agent.apm import PAYLOAD_FLUSH_THRESHOLD

    buf = TraceBuffer("h")
    full = []
    buf.on_full = lambda: full.append(buf.pending_bytes)
    body = msgpack.packb([_trace(t, 10, blob="x" * 20_000) for t in range(1, 101)])  # ~2 MB per request
    for _ in range(4):
        buf.add(decode_v04(body), TracerInfo(lang="python"))
    assert full and full[0] >= PAYLOAD_FLUSH_THRESHOLD
    bodies = buf.take_payload_bodies()
    assert len(bodies) == 4 and all(len(b) <= PAYLOAD_FLUSH_THRESHOLD for b in bodies)
    payloads = [decode_agent_payload(b) for b in bodies]
    assert all(p.hostName == "h" for p in payloads)
    assert sum(len(c.spans) for p in payloads for tp in p.tracerPayloads for c in tp.chunks) == 4000
    assert buf.stats.payloads_built == 4


def test_a_span_that_does_not_build_is_normalized_and_a_broken_request_keeps_nothing():
    buf = TraceBuffer("h")
    odd = _trace(5)
    odd[1] = {k: v for k, v in odd[1].items() if k not in ("type", "metrics")}  # fields left out
    odd[1]["span_id"] = -1  # a signed id
    odd[1]["meta"] = {"retries": 3}  # a number as a tag value
    from lab.agent.apm import decode_v04_raw

    buf.add(decode_v04_raw(msgpack.packb([_trace(4), odd])), TracerInfo())
    (tp,) = buf.take_agent_payload().tracerPayloads
    spans = [s for c in tp.chunks for s in c.spans]
    assert len(spans) == 4 and [len(c.spans) for c in tp.chunks] == [2, 2]
    bad = next(s for s in spans if s.name == "child" and s.traceID == 5)
    assert bad.spanID == (1 << 64) - 1 and dict(bad.meta) == {"retries": "3"} and bad.type == ""

    from lab.agent.apm import DecodeError

    with pytest.raises(DecodeError, match="not a map"):
        buf.add(decode_v04_raw(msgpack.packb([_trace(6), [1, 2]])), TracerInfo())
    assert buf.take_agent_payload() is None and buf.stats.requests == 1
