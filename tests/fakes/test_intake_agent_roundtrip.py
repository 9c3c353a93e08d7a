"""The whole hop: real clients -> the lab's emulated agent -> this intake -> IntakeClient waits.

Real encoders on the agent side (its forwarder: zstd protobuf series, gzip AgentPayload, v3
process messages, zstd JSON check runs), real clients in front (the `datadog` DogStatsD client,
ddtrace in a subprocess).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from datadog.dogstatsd import DogStatsd

from lab.agent.config import AgentConfig
from lab.agent.main import Agent
from lab.fakes.intake.client import IntakeClient
from lab.fakes.intake.server import IntakeServer


@pytest.fixture
def stack():
    with IntakeServer() as intake:
        url = intake.listen("127.0.0.1", 0).url
        env = {
            "DD_API_KEY": "lab-api-key", "DD_SITE": "lab.invalid", "DD_HOSTNAME": "i-0roundtrip",
            "DD_DD_URL": url, "DD_APM_DD_URL": url, "DD_PROCESS_CONFIG_PROCESS_DD_URL": url,
            "DD_PROCESS_AGENT_ENABLED": "true",
            "DD_APM_RECEIVER_PORT": "0", "DD_DOGSTATSD_PORT": "0", "DD_CMD_PORT": "0", "DD_EXPVAR_PORT": "0",
            "DD_ECS_AGENT_URL": "http://127.0.0.1:9",
            "LAB_AGENT_LOCALHOST": "127.0.0.1", "LAB_AGENT_HOST_ADDRESSES": "127.0.0.1",
            "LAB_AGENT_FLUSH_INTERVAL": "1", "LAB_AGENT_TRACE_FLUSH_INTERVAL": "0.5",
            "LAB_AGENT_PROCESS_INTERVAL": "1",
        }
        agent = Agent(AgentConfig.from_env(env), env, ecs_refresh_interval=0.5).start()
        client = IntakeClient(url, poll_interval=0.1).start_session()
        try:
            yield agent, client, intake
        finally:
            client.close()
            agent.stop()


def test_dogstatsd_metrics_and_check_runs_reach_the_intake_through_the_agent(stack):
    agent, client, intake = stack
    statsd = DogStatsd(host="127.0.0.1", port=agent.ports.dogstatsd, disable_telemetry=True)
    statsd.gauge("lab.roundtrip.queue", 12, tags=["team:web"])
    statsd.service_check("lab.roundtrip.check", DogStatsd.WARNING, message="slow")
    statsd.flush()
    (series,) = client.wait_for_metric("lab.roundtrip.queue", tags=["team:web"], timeout=15)
    assert series["points"][0]["value"] == 12 and series["resources"][0]["name"] == "i-0roundtrip"
    assert client.wait_for_check_run("lab.roundtrip.check", status=1, timeout=15)
    assert intake.store.route_stats()["/api/v2/series"]["rejected"] == 0


def test_traces_from_ddtrace_reach_the_intake_through_the_agent(stack):
    agent, client, _ = stack
    script = textwrap.dedent("""
        from ddtrace.trace import tracer
        with tracer.trace("web.request", service="lab-roundtrip", resource="GET /hello"):
            pass
        tracer.shutdown()
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD_")}
    env.update({"DD_TRACE_AGENT_URL": f"http://127.0.0.1:{agent.ports.apm}", "DD_ENV": "lab-test",
                "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false", "DD_REMOTE_CONFIGURATION_ENABLED": "false"})
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)
    (span,) = client.wait_for_spans(service="lab-roundtrip", timeout=20)
    assert span["resource"] == "GET /hello" and span["env"] == "lab-test"


def test_process_payloads_reach_the_intake_and_get_a_res_collector(stack):
    _, client, intake = stack
    procs = client.wait_for_processes(lambda p: p["pid"] == os.getpid(), timeout=20)
    assert procs[0]["hostName"] == "i-0roundtrip"
    assert intake.store.route_stats()["/api/v1/collector"]["rejected"] == 0
