"""The intake over HTTP: the agent's routes and answers, and fakeintake's query API plus extensions."""

from __future__ import annotations

import base64
import json
import shutil
import struct
import subprocess

import pytest
import requests

from lab.fakes.intake.samples import check_runs_body, series_body, stats_body, traces_body, zstd_frames
from lab.fakes.intake.server import IntakeServer
from lab.proto import process_agent_pb2 as pa
from lab.proto import process_codec

SERIES = "/api/v2/series"
TRACES = "/api/v0.2/traces"


@pytest.fixture
def intake():
    with IntakeServer(max_payloads=1000) as server:
        server.listen("127.0.0.1", 0)
        yield server


@pytest.fixture
def http():
    with requests.Session() as s:
        s.trust_env = False
        yield s


def _payloads(http, intake, **params):
    resp = http.get(intake.url + "/fakeintake/payloads", params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_series_in_two_zstd_frames_round_trip_and_get_the_v2_answer(intake, http):
    body, headers = series_body(n_series=30, frames=2, metric="app.hits", value=7.0)
    resp = http.post(intake.url + SERIES, data=body, headers=headers)
    assert resp.status_code == 202 and resp.json() == {"errors": []}
    page = _payloads(http, intake, endpoint=SERIES, format="json")
    (item,) = page["payloads"]
    assert item["encoding"] == "zstd" and item["api_key"] == "lab" and item["timestamp"].endswith("Z")
    assert len(item["data"]) == 30 and item["data"][0]["metric"] == "app.hits"
    assert item["data"][0]["points"][0]["value"] == 7.0


def test_raw_payloads_are_the_exact_bytes_sent_in_base64(intake, http):
    body, headers = traces_body(encoding="gzip")
    assert http.post(intake.url + TRACES, data=body, headers=headers).status_code == 202
    (item,) = _payloads(http, intake, endpoint=TRACES)["payloads"]
    assert base64.b64decode(item["data"]) == body
    assert item["encoding"] == "gzip" and item["content_type"] == "application/x-protobuf"


def test_each_route_answers_like_the_real_intake(intake, http):
    body, headers = check_runs_body()
    resp = http.post(intake.url + "/api/v1/check_run", data=body, headers=headers)
    assert (resp.status_code, resp.json()) == (202, {"status": "ok"})
    body, headers = stats_body()
    assert http.post(intake.url + "/api/v0.2/stats", data=body, headers=headers).status_code == 202
    resp = http.post(intake.url + "/api/v2/logs", json=[{"message": "hi", "service": "web"}])
    assert (resp.status_code, resp.json()) == (202, {})
    assert http.get(intake.url + "/api/v1/validate").json() == {"valid": True}
    resp = http.post(intake.url + "/api/v2/orch", data=b"anything")
    assert (resp.status_code, resp.json()) == (200, {"errors": []})


def test_process_routes_answer_a_v3_res_collector(intake, http):
    body = pa.CollectorProc(hostName="i-1", processes=[pa.Process(pid=1, command=pa.Command(args=["app"]))])
    for route in ("/api/v1/collector", "/api/v1/container"):
        resp = http.post(intake.url + route, data=process_codec.encode_message(12, body))
        assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/x-protobuf"
        reply = process_codec.decode_message(resp.content)
        assert reply.header.version == 3 and reply.header.type == process_codec.TYPE_RES_COLLECTOR
        assert reply.body.status.interval == 10


def test_corrupt_body_gets_400_with_reason_and_is_counted_and_kept(intake, http):
    resp = http.post(intake.url + SERIES, data=b"\x28\xb5\x2f\xfdgarbage",
                     headers={"Content-Encoding": "zstd"})
    assert resp.status_code == 400 and "zstd" in resp.json()["errors"][0]
    stats = http.get(intake.url + "/fakeintake/routestats").json()["routes"][SERIES]
    assert stats["rejected"] == 1 and stats["count"] == 0 and stats["id"] == SERIES
    (kept,) = http.get(intake.url + "/fakeintake/rejected", params={"endpoint": SERIES}).json()["rejected"]
    assert base64.b64decode(kept["data"]) == b"\x28\xb5\x2f\xfdgarbage" and "zstd" in kept["reason"]
    assert _payloads(http, intake, endpoint=SERIES)["payloads"] == []


def test_undecodable_process_body_is_accepted_raw_with_its_header_and_flagged(intake, http):
    legacy = struct.pack("<BBBBiq", 3, 2, 39, 0, 0, 1_700_000_000_000) + b"old zstd bytes"
    resp = http.post(intake.url + "/api/v1/container", data=legacy)
    assert resp.status_code == 200
    (item,) = _payloads(http, intake, endpoint="/api/v1/container", format="json")["payloads"]
    assert item["data"]["header"]["type_name"] == "container" and item["data"]["body"] is None
    assert base64.b64decode(item["data"]["raw_body"]) == b"old zstd bytes"
    assert "pre-1.0" in item["flags"][0]
    stats = http.get(intake.url + "/fakeintake/routestats").json()["routes"]
    assert stats["/api/v1/container"]["flagged"] == 1


def test_filters_since_and_next_since(intake, http):
    for metric in ("a", "b", "a"):
        body, headers = series_body(metric=metric, tags=("env:lab",))
        http.post(intake.url + SERIES, data=body, headers=headers)
    page = _payloads(http, intake, endpoint=SERIES, format="json", metric="a", tags="env:lab")
    assert [p["data"][0]["metric"] for p in page["payloads"]] == ["a", "a"]
    assert page["next_since"] == 3
    first_seq = page["payloads"][0]["seq"]
    later = _payloads(http, intake, endpoint=SERIES, format="json", since=first_seq, name="a")
    assert [p["seq"] for p in later["payloads"]] == [3]
    raw = _payloads(http, intake, endpoint=SERIES, metric="b")
    assert len(raw["payloads"]) == 1 and "content_type" in raw["payloads"][0]
    resp = http.get(intake.url + "/fakeintake/payloads", params={"endpoint": SERIES, "service": "web"})
    assert resp.status_code == 400 and "supported" in resp.json()["errors"][0]


def test_traces_filter_by_service_and_ecs_tag(intake, http):
    for service in ("web", "worker"):
        body, headers = traces_body(service=service)
        http.post(intake.url + TRACES, data=body, headers=headers)
    page = _payloads(http, intake, endpoint=TRACES, format="json", service="worker", tags="task_family:web")
    (item,) = page["payloads"]
    assert item["data"]["tracerPayloads"][0]["chunks"][0]["spans"][0]["service"] == "worker"
    by_operation = _payloads(http, intake, endpoint=TRACES, format="json", name="requests.request")
    assert len(by_operation["payloads"]) == 2
    assert _payloads(http, intake, endpoint=TRACES, format="json", name="nope")["payloads"] == []


def test_sessions_isolate_payloads_by_time_and_by_url_prefix(intake, http):
    body, headers = series_body(metric="before")
    http.post(intake.url + SERIES, data=body, headers=headers)
    sess = http.post(intake.url + "/fakeintake/sessions", json={"label": "t"}).json()
    other = http.post(intake.url + "/fakeintake/sessions", json={}).json()
    body, headers = series_body(metric="mine")
    resp = http.post(f"{intake.url}/session/{sess['id']}{SERIES}", data=body, headers=headers)
    assert resp.status_code == 202
    body, headers = series_body(metric="theirs")
    http.post(intake.url + SERIES, data=body, headers={**headers, "X-Lab-Session": other["id"]})
    body, headers = series_body(metric="untagged")
    http.post(intake.url + SERIES, data=body, headers=headers)
    mine = _payloads(http, intake, endpoint=SERIES, format="json", session=sess["id"])
    assert [p["data"][0]["metric"] for p in mine["payloads"]] == ["mine", "untagged"]
    stats = http.get(intake.url + "/fakeintake/routestats", params={"session": sess["id"]}).json()
    assert stats["routes"][SERIES]["count"] == 2
    assert http.get(intake.url + "/fakeintake/payloads",
                    params={"endpoint": SERIES, "session": "nope"}).status_code == 404


def test_flush_payloads_empties_the_store(intake, http):
    body, headers = series_body()
    http.post(intake.url + SERIES, data=body, headers=headers)
    assert http.get(intake.url + "/fakeintake/flushPayloads").status_code == 200
    assert _payloads(http, intake, endpoint=SERIES)["payloads"] == []
    assert http.get(intake.url + "/fakeintake/routestats").json()["routes"][SERIES]["flushed"] == 1


def test_configure_override_replaces_the_answer_fakeintake_style(intake, http):
    override = {"endpoint": SERIES, "status_code": 503, "content_type": "text/plain",
                "body": base64.b64encode(b"try later").decode()}
    assert http.post(intake.url + "/fakeintake/configure/override", json=override).status_code == 200
    body, headers = series_body()
    resp = http.post(intake.url + SERIES, data=body, headers=headers)
    assert (resp.status_code, resp.text) == (503, "try later")
    # fakeintake still stores what it answered an error to.
    assert len(_payloads(http, intake, endpoint=SERIES)["payloads"]) == 1
    get_override = {"endpoint": "/api/v1/validate", "status_code": 403, "method": "GET",
                    "body": base64.b64encode(b'{"errors":["Forbidden"]}').decode()}
    http.post(intake.url + "/fakeintake/configure/override", json=get_override)
    assert http.get(intake.url + "/api/v1/validate").status_code == 403


def test_health_and_missing_endpoint(intake, http):
    assert http.get(intake.url + "/fakeintake/health").status_code == 200
    resp = http.get(intake.url + "/fakeintake/payloads")
    assert resp.status_code == 400 and "missing endpoint" in resp.text


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_posts_a_gzip_body_and_reads_it_back(intake, tmp_path):
    body, _ = traces_body(encoding="gzip")
    path = tmp_path / "traces.gz"
    path.write_bytes(body)
    out = subprocess.run(["curl", "-sS", "--noproxy", "*", "-o", "/dev/null", "-w", "%{http_code}",
                          "-H", "Content-Encoding: gzip", "-H", "Content-Type: application/x-protobuf",
                          "--data-binary", f"@{path}", intake.url + TRACES],
                         capture_output=True, text=True, timeout=10)
    assert out.stdout == "202", out.stderr
    out = subprocess.run(["curl", "-sS", "--noproxy", "*",
                          f"{intake.url}/fakeintake/payloads?endpoint={TRACES}&format=json&service=web"],
                         capture_output=True, text=True, timeout=10)
    (item,) = json.loads(out.stdout)["payloads"]
    assert item["data"]["tracerPayloads"][0]["chunks"][0]["spans"][0]["service"] == "web"


def test_a_zstd_series_posted_with_content_encoding_is_stored_compressed(intake, http):
    # aiohttp would transparently inflate request bodies; the intake must keep them as the agent sent.
    raw = b"\x0a\x00"
    body = zstd_frames(raw)
    http.post(intake.url + SERIES, data=body, headers={"Content-Encoding": "zstd"})
    (item,) = _payloads(http, intake, endpoint=SERIES)["payloads"]
    assert base64.b64decode(item["data"]) == body

