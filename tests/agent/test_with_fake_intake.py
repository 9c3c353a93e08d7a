"""The emulated agent against the lab's fake intake: every payload decodes with the intake's decoders."""

from __future__ import annotations

import urllib.request

import msgpack
import pytest
from datadog.dogstatsd import DogStatsd

from lab.agent.config import AgentConfig
from lab.agent.main import Agent

from .conftest import agent_env, run_traced_app


@pytest.fixture
def fake_intake():
    from lab.fakes.intake.client import IntakeClient
    from lab.fakes.intake.server import IntakeServer

    with IntakeServer() as server:
        server.listen("127.0.0.1", 0)
        client = IntakeClient(server.url, timeout=10)
        yield server, client
        client.close()


def test_traces_metrics_checks_and_processes_decode_at_the_fake_intake(fake_intake):
    server, client = fake_intake
    env = agent_env(server.url, DD_PROCESS_AGENT_ENABLED="true", DD_ENV="lab-e2e")
    with Agent(AgentConfig.from_env(env), env) as agent:
        run_traced_app(agent.ports.apm, "v0.5")
        statsd = DogStatsd(host="127.0.0.1", port=agent.ports.dogstatsd, disable_telemetry=True)
        statsd.increment("e2e.hits", 2, tags=["step:one"])
        statsd.distribution("e2e.size", 10)
        statsd.event("e2e deploy", "done", tags=["step:two"])
        statsd.flush()
        stats = {
            "Hostname": "",
            "Env": "lab-e2e",
            "Version": "1",
            "Lang": "python",
            "TracerVersion": "4",
            "Stats": [
                {
                    "Start": 1,
                    "Duration": 10_000_000_000,
                    "Stats": [
                        {
                            "Service": "lab-web",
                            "Name": "web.request",
                            "Resource": "GET /",
                            "Hits": 2,
                            "Errors": 0,
                            "Duration": 9,
                            "TopLevelHits": 2,
                        }
                    ],
                }
            ],
        }
        req = urllib.request.Request(
            f"http://127.0.0.1:{agent.ports.apm}/v0.6/stats", data=msgpack.packb(stats), method="POST"
        )
        urllib.request.urlopen(req, timeout=5).close()
        spans = client.wait_for_spans(service="lab-web", timeout=15)
        assert {s["hostname"] for s in spans} == {"i-0labtest"}
        client.wait_for_metric("e2e.hits", tags=["step:one"], timeout=15)
        client.wait_for_check_run("datadog.agent.up", timeout=15)
        client.wait_for_processes(lambda p: p.get("pid") == agent.status()["pid"], timeout=15)
        client.wait_for_payloads("/api/v0.2/stats", timeout=15)
        client.wait_for_payloads("/api/beta/sketches", timeout=15)
    routes = client.routestats()
    assert not client.rejected(), client.rejected()
    assert {
        "/api/v0.2/traces",
        "/api/v0.2/stats",
        "/api/v2/series",
        "/api/beta/sketches",
        "/api/v1/check_run",
        "/api/v1/collector",
        "/intake/",
    } <= set(routes)
