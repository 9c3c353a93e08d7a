"""The emulated agent against a site that does not know its API key: Datadog's 403, the agent's own
log line and `agent status -j` forwarder stats, and nothing stored; with a key the site knows, data
flows and is stored for that site."""

from __future__ import annotations

import logging

import pytest
from datadog.dogstatsd import DogStatsd

from lab.agent.config import AgentConfig
from lab.agent.main import Agent
from lab.agent.status import status_document
from lab.world import wait_until

from .conftest import agent_env

RIGHT, WRONG = "a" * 27 + "right", "b" * 27 + "wrong"


@pytest.fixture
def eu_intake():
    from lab.fakes.intake.client import IntakeClient
    from lab.fakes.intake.server import IntakeServer

    with IntakeServer() as server:
        server.listen("127.0.0.1", 0)
        eu = server.listen("127.0.0.1", 0, site="datadoghq.eu").url
        server.set_valid_keys("datadoghq.eu", [RIGHT])
        client = IntakeClient(server.url, timeout=10)
        yield eu, client
        client.close()


def _send(agent: Agent) -> None:
    statsd = DogStatsd(host="127.0.0.1", port=agent.ports.dogstatsd, disable_telemetry=True)
    statsd.gauge("site.check", 1, tags=["key:test"])
    statsd.flush()


def test_a_key_the_site_does_not_know_is_refused_and_the_agent_says_so(eu_intake, caplog):
    eu, client = eu_intake
    env = agent_env(eu, DD_API_KEY=WRONG, DD_SITE="datadoghq.eu")
    with caplog.at_level(logging.ERROR, logger="lab.agent"), Agent(AgentConfig.from_env(env), env) as agent:
        _send(agent)
        wait_until(lambda: client.routestats().get("/api/v2/series", {}).get("forbidden", 0) >= 1, 15,
                   what="a series POST refused 403")
        fwd = wait_until(lambda: (lambda f: f if f["Transactions"]["HTTPErrorsByCode"].get("403") else None)(
            status_document(agent)["forwarderStats"]), 10, what="the 403 in agent status -j")
    assert fwd["Transactions"]["Dropped"] >= 1, "a 403 is dropped, never retried"
    assert fwd["APIKeyStatus"] == {"API key ending with wrong": "API Key invalid"}
    assert any(r.getMessage().startswith(f"API Key invalid, dropping transaction for {eu}/api/")
               for r in caplog.records), [r.getMessage() for r in caplog.records]
    assert not client.payloads("/api/v2/series"), "nothing refused is stored"


def test_with_the_site_s_key_data_flows_and_is_stored_for_that_site(eu_intake):
    eu, client = eu_intake
    env = agent_env(eu, DD_API_KEY=RIGHT, DD_SITE="datadoghq.eu")
    with Agent(AgentConfig.from_env(env), env) as agent:
        _send(agent)
        series = client.wait_for_metric("site.check", timeout=15)
        assert status_document(agent)["forwarderStats"]["APIKeyStatus"] == {
            "API key ending with right": "API Key valid"}
    assert series
    rows = client.payloads("/api/v2/series")
    assert rows and all(r["site"] == "datadoghq.eu" and r["api_key"] == RIGHT for r in rows)
    assert {r["intended_host"] for r in rows} == {"7-60-0-app.agent.datadoghq.eu"}
