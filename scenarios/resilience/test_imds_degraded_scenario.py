"""resilience / IMDS slow or off: what the agent and the apps do.

- The agent reads IMDS once, at start, for its hostname (`instance-id`, 300 ms timeout, token then
  tokenless; docs/agent_contract.md). With IMDS answering after 500 ms, or turned off (403 on every
  path, `HttpEndpoint=disabled`), an agent that starts then cannot get the instance-id and reports
  the OS hostname instead: in Datadog the instance shows up as another host. Once IMDS is back, the
  next agent start reports the instance-id again.
- The running apps are not affected: they resolved DD_AGENT_HOST from IMDS when they started, so
  their traces keep reaching the agent while IMDS is slow or off.

Observed as the real agent offers: `agent status -j` (`hostinfo.hostname`, `hostnameStats.provider`)
and `agent health` by exec, and the intake's spans.
"""

from __future__ import annotations

import os
import signal
import uuid

import pytest
import requests

from lab.pytest_plugin import intake_client
from lab.world import wait_until

from .traffic import TRACE_FLUSH, agent_status, own_token_env, wait_healthy

LAB_WITH = {"apps": ("imdsv1",), "agent_env": own_token_env("imds")}
RESTART = 60.0


def _restart_agent(lab) -> None:
    """SIGKILL the agent; the control plane's DAEMON service starts a new one on the instance."""
    old = lab.refresh().instance(1)["agent"]
    os.kill(old["pid"], signal.SIGKILL)

    def replaced() -> bool:
        agent = lab.refresh().instance(1)["agent"]
        return agent.get("task_arn") not in (None, old["task_arn"]) and agent["status"] == "RUNNING"

    wait_until(replaced, RESTART, interval=0.5, what="the agent's DAEMON task replaced")
    wait_healthy(lab)


def _hostname(lab) -> tuple[str, str]:
    status = agent_status(lab)
    return status["hostinfo"]["hostname"], status["hostnameStats"]["provider"]


@pytest.mark.parametrize("degradation", ["slow", "off"])
def test_imds_slow_or_off(lab_with, degradation, record_property):
    lab = lab_with(**LAB_WITH)
    wait_healthy(lab)
    imds = lab.imds_url(1)
    instance_id = lab.instance(1)["instance_id"]
    app = lab.refresh().apps["imdsv1"]
    intake = intake_client(lab.intake_url, f"imds-{degradation}-{uuid.uuid4().hex[:8]}")
    assert _hostname(lab) == (instance_id, "aws"), "before: the agent's hostname is the instance-id"

    http = requests.Session()
    http.trust_env = False
    if degradation == "slow":
        resp = http.post(f"{imds}/ecs-lab/faults", json={"path": "*", "delay_ms": 500}, timeout=5)
        assert resp.status_code == 201, resp.text
    else:
        resp = http.post(f"{imds}/ecs-lab/policy", json={"enabled": False}, timeout=5)
        assert resp.status_code == 200, resp.text
        assert http.get(f"{imds}/latest/meta-data/instance-id", timeout=5).status_code == 403
    try:
        _restart_agent(lab)
        degraded = _hostname(lab)
        assert degraded[0] != instance_id and degraded[1] == "os", (
            f"with IMDS {degradation}, a starting agent cannot read the instance-id within 300 ms; "
            f"it reported {degraded}")
        # The running app keeps its DD_AGENT_HOST (resolved at its start): its traces still arrive.
        cursor = intake.payloads_page("/api/v0.2/traces")["next_since"]

        def app_traces() -> bool:
            app.get("/work?ms=1&depth=1")
            return bool(intake.spans(service=app.service, since=cursor))

        wait_until(app_traces, 2 * TRACE_FLUSH + 20, interval=1.0, what="the app's spans with IMDS degraded")
        spans = intake.spans(service=app.service, since=cursor)
        assert {s["hostname"] for s in spans} <= {degraded[0], ""}, "spans carry the agent's new hostname"
    finally:
        if degradation == "slow":
            http.delete(f"{imds}/ecs-lab/faults", timeout=5)
        else:
            http.post(f"{imds}/ecs-lab/policy", json={"enabled": True}, timeout=5)
    _restart_agent(lab)
    recovered = _hostname(lab)
    assert recovered == (instance_id, "aws"), f"after IMDS recovered the agent reported {recovered}"
    record_property("hostnames", {"before": instance_id, "degraded": degraded[0], "after": recovered[0]})
    print(f"\nIMDS {degradation}: hostname {instance_id} -> {degraded[0]} ({degraded[1]}) -> {recovered[0]}")
