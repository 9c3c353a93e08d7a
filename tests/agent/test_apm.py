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
    assert set(info["endpoints"]) == {"/v0.4/traces", "/v0.5/traces", "/v0.6/stats", "/info"}
    assert info["config"]["receiver_port"] == agent.ports.apm
    assert info["config"]["statsd_port"] == agent.ports.dogstatsd
    for served in info["endpoints"]:
        method = "GET" if served == "/info" else "POST"
        req = urllib.request.Request(
            f"http://127.0.0.1:{agent.ports.apm}{served}",
            method=method,
            data=None if method == "GET" else msgpack.packb([]),
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
