"""The trace receiver's tracer-facing routes (docs/tracer_surface.md) against the lab's fake intake:
each route answers with the method tracers use and lands at the intake route the agent forwards to."""

from __future__ import annotations

import gzip
import json
import time
import urllib.error
import urllib.request

import msgpack
import pytest

from lab.agent.config import AgentConfig
from lab.agent.main import Agent

from .conftest import agent_env


@pytest.fixture
def fake_intake():
    from lab.fakes.intake.client import IntakeClient
    from lab.fakes.intake.server import IntakeServer

    with IntakeServer() as server:
        server.listen("127.0.0.1", 0)
        client = IntakeClient(server.url, timeout=10)
        yield server, client
        client.close()


@pytest.fixture
def agent_with(fake_intake):
    server, _ = fake_intake
    agents: list[Agent] = []

    def _start(**extra: str) -> Agent:
        env = agent_env(server.url, **extra)
        agent = Agent(AgentConfig.from_env(env), env, ecs_refresh_interval=0.5).start()
        agents.append(agent)
        return agent

    yield _start
    for agent in agents:
        agent.stop()


def call(agent: Agent, method: str, path: str, body: bytes = b"", headers: dict | None = None):
    req = urllib.request.Request(f"http://127.0.0.1:{agent.ports.apm}{path}", data=body, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_payloads(client, route: str, fmt: str = "json", timeout: float = 15.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = client.payloads(route, fmt=fmt)
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"nothing on {route} within {timeout}s; routes: {sorted(client.routestats())}")


def test_client_stats_put_as_dd_trace_js_does_arrive_decoded(agent_with, fake_intake):
    _, client = fake_intake
    agent = agent_with()
    stats = {"Hostname": "", "Env": "lab", "Version": "1", "Lang": "nodejs", "TracerVersion": "5",
             "Stats": [{"Start": 1, "Duration": 10_000_000_000, "Stats": [
                 {"Service": "node-web", "Name": "web.request", "Resource": "GET /", "Hits": 4,
                  "Errors": 1, "Duration": 9, "TopLevelHits": 4}]}]}
    status, _ = call(agent, "PUT", "/v0.6/stats", msgpack.packb(stats),
                     {"Content-Type": "application/msgpack"})
    assert status == 200
    (payload, *_) = wait_payloads(client, "/api/v0.2/stats")
    assert payload["data"]["ClientComputed"] is True
    group = payload["data"]["Stats"][0]["Stats"][0]["Stats"][0]
    assert (group["Service"], group["Hits"], group["Errors"]) == ("node-web", 4, 1)


def test_dogstatsd_proxy_feeds_the_pipeline(agent_with, fake_intake):
    _, client = fake_intake
    agent = agent_with()
    body = b"relay.hits:3|c|#via:http\nrelay.temp:21.5|g|#via:http"
    status, _ = call(agent, "POST", "/dogstatsd/v2/proxy", body)
    assert status == 200
    hits = client.wait_for_metric("relay.hits", tags="via:http", timeout=20)
    assert sum(p["value"] for s in hits for p in s["points"]) == 3
    assert client.wait_for_metric("relay.temp", timeout=20)


def test_dogstatsd_proxy_without_dogstatsd_is_405(agent_with):
    agent = agent_with(DD_USE_DOGSTATSD="false")
    status, _ = call(agent, "POST", "/dogstatsd/v2/proxy", b"x:1|c")
    assert status == 405


def test_telemetry_is_answered_at_once_and_forwarded(agent_with, fake_intake):
    _, client = fake_intake
    agent = agent_with(DD_ENV="lab-env")
    event = {"api_version": "v2", "request_type": "app-started", "tracer_time": 1, "runtime_id": "r",
             "seq_id": 1, "application": {"service_name": "node-web", "language_name": "nodejs"},
             "host": {"hostname": "h"}, "payload": {}}
    status, reply = call(agent, "POST", "/telemetry/proxy/api/v2/apmtelemetry", json.dumps(event).encode(),
                         {"Content-Type": "application/json", "DD-Telemetry-Request-Type": "app-started"})
    assert (status, json.loads(reply)) == (200, {})
    (payload, *_) = wait_payloads(client, "/api/v2/apmtelemetry")
    data = payload["data"]
    assert data["request_type"] == "app-started" and data["application"]["service_name"] == "node-web"
    assert (data["agent_hostname"], data["agent_env"]) == ("i-0labtest", "lab-env")


def test_evp_proxy_forwards_with_the_subdomain(agent_with, fake_intake):
    _, client = fake_intake
    agent = agent_with()
    for version in (2, 4):
        status, _ = call(agent, "POST", f"/evp_proxy/v{version}/api/v2/citestcycle", b'{"events":[]}',
                         {"X-Datadog-EVP-Subdomain": "citestcycle-intake", "Content-Type": "application/json",
                          "X-Not-Allowed": "dropped"})
        assert status in (200, 202)
    rows = wait_payloads(client, "/api/v2/citestcycle", fmt="")
    assert len(rows) == 2 and all(r["evp_subdomain"] == "citestcycle-intake" for r in rows)
    assert all(r["via"].startswith("trace-agent ") for r in rows)


def test_evp_proxy_refuses_a_request_without_subdomain(agent_with):
    agent = agent_with()
    status, _ = call(agent, "POST", "/evp_proxy/v2/api/v2/citestcycle", b"{}")
    assert status == 502
    assert agent.proxies.counts.refused == {"evp": 1}


def test_profiles_are_forwarded_to_the_profiling_intake(agent_with, fake_intake):
    _, client = fake_intake
    agent = agent_with(DD_ENV="lab-env")
    boundary = "labboundary"
    event = json.dumps({"attachments": ["wall.pprof"], "family": "node", "version": "4"}).encode()
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"event\"; filename=\"event.json\"\r\n"
        "Content-Type: application/json\r\n\r\n"
    ).encode() + event + (
        f"\r\n--{boundary}\r\n"
        "Content-Disposition: form-data; name=\"wall.pprof\"; filename=\"wall.pprof\"\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + gzip.compress(b"pprof") + f"\r\n--{boundary}--\r\n".encode()
    status, _ = call(agent, "POST", "/profiling/v1/input", body,
                     {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status in (200, 202)
    (payload, *_) = wait_payloads(client, "/api/v2/profile")
    data = payload["data"]
    assert data["event"]["family"] == "node"
    assert [p["name"] for p in data["parts"]] == ["event", "wall.pprof"]
    assert "host:i-0labtest" in data["additional_tags"].split(",")


def test_remote_config_route_exists_only_when_remote_config_is_on(agent_with):
    on = agent_with()
    assert call(on, "POST", "/v0.7/config", b'{"client": {}}') == (200, b"{}")
    off = agent_with(DD_REMOTE_CONFIGURATION_ENABLED="false")
    assert call(off, "POST", "/v0.7/config", b"{}")[0] == 404
    status, info = call(off, "GET", "/info")
    assert "/v0.7/config" not in json.loads(info)["endpoints"]


def test_telemetry_relay_off_is_not_served_nor_listed(agent_with):
    agent = agent_with(DD_APM_TELEMETRY_ENABLED="false")
    assert call(agent, "POST", "/telemetry/proxy/api/v2/apmtelemetry", b"{}")[0] == 404
    assert "/telemetry/proxy/" not in json.loads(call(agent, "GET", "/info")[1])["endpoints"]
