"""resilience / the agent restarts: killed, or started while IMDS or the ECS metadata endpoints are
degraded. One stack for the module (no other lab stops while it runs: see docs/resilience.md).

- Killed: SIGKILL the agent of instance 1; the control plane sees its DAEMON task stop and starts a
  new one on the same instance, which passes `agent health`, and the app's tracer, still pointed at
  the instance's address, has its traces reach the intake again.
- IMDS slow or off: the agent reads IMDS once, at start, for its hostname (`instance-id`, 300 ms
  timeout, token then tokenless; docs/agent_contract.md). With IMDS answering after 500 ms, or
  turned off (403 on every path, `HttpEndpoint=disabled`), an agent that starts then reports the OS
  hostname instead: in Datadog the instance shows up as another host. Running apps are not
  affected (they resolved DD_AGENT_HOST when they started). Once IMDS is back, the next agent start
  reports the instance-id again.
- ECS agent introspection and task metadata down: an agent that starts cannot map the app's
  container to its task; the app's traces still arrive but without their ECS tags (`task_family`...).
  When the endpoints are back, the agent's next metadata refresh tags them again (the backend's
  `ecs_endpoints(up=)` closes and reopens their ports: in this process on local, in the lab's
  services container on docker).

Observed as the real agent offers: `agent status -j` (pid, agent_start_nano, hostinfo,
hostnameStats) and `agent health` by exec, the intake's spans, and the task's state as the ECS API
reports it (the lab's status).
"""

from __future__ import annotations

import os
import signal
import time
import uuid

import pytest
import requests

from lab.pytest_plugin import intake_client
from lab.world import wait_until

from .traffic import HEALTH_PING, HEALTH_START_PERIOD, TRACE_FLUSH, agent_status, own_token_env, wait_healthy

LAB_WITH = {"apps": ("imdsv1",), "agent_env": own_token_env("restarts")}
# Read through the agent's CLI (health after a restart, hostname and tags from its status) and its
# app's traces (ddtrace: /v0.5/traces).
pytestmark = pytest.mark.agent_offers("agent_health", "agent_status", "traces_v05")
# The ECS agent sees the container exit at once; the service scheduler replaces a DAEMON task on
# its next pass (seconds), then the new agent needs its start period and first health ping.
RESTART = 60.0
# Upper bound for the agent to see the ECS endpoints again: its ECS metadata refresh (the emulated
# agent: 2 s; the real workloadmeta ECS collector pulls every few seconds) plus a trace flush.
RETAG = 30.0 + 2 * TRACE_FLUSH


def _restart_agent(lab) -> float:
    """SIGKILL the agent; the control plane's DAEMON service starts a new one on the instance.
    Returns the seconds until the new task ran."""
    old = lab.refresh().instance(1)["agent"]
    assert old.get("pid"), f"the agent's pid must be known to kill it: {old}"
    killed_at = time.monotonic()
    os.kill(old["pid"], signal.SIGKILL)

    def replaced() -> bool:
        agent = lab.refresh().instance(1)["agent"]
        return agent.get("task_arn") not in (None, old["task_arn"]) and agent["status"] == "RUNNING"

    wait_until(replaced, RESTART, interval=0.5, what="a new agent task on instance 1 after SIGKILL")
    took = time.monotonic() - killed_at
    wait_healthy(lab, timeout=HEALTH_START_PERIOD + 2 * HEALTH_PING)
    return took


def _hostname(lab) -> tuple[str, str]:
    status = agent_status(lab)
    return status["hostinfo"]["hostname"], status["hostnameStats"]["provider"]


def test_a_killed_agent_is_replaced_and_the_apps_traces_resume(lab_with, record_property):
    lab = lab_with(**LAB_WITH)
    wait_healthy(lab)
    app = lab.refresh().apps["imdsv1"]
    intake = intake_client(lab.intake_url, f"agent-killed-{uuid.uuid4().hex[:8]}")
    app.get("/work?ms=1&depth=1")
    intake.wait_for_spans(service=app.service, timeout=2 * TRACE_FLUSH + 10)
    before = agent_status(lab)

    killed_at = time.monotonic()
    replaced_after = _restart_agent(lab)
    healthy_after = time.monotonic() - killed_at
    after = agent_status(lab)
    # Not the pid: in a container the agent is pid 1 every time.
    assert after["agent_start_nano"] > before["agent_start_nano"], (
        "agent status -j still describes the killed agent")

    # The app did not restart: its tracer keeps sending to the instance's address.
    assert lab.refresh().apps["imdsv1"].pid == app.pid, "the app was restarted; only the agent should be"
    cursor = intake.payloads_page("/api/v0.2/traces")["next_since"]

    def resumed() -> bool:
        app.get("/work?ms=1&depth=1")  # traffic keeps coming, as from users
        return bool(intake.spans(service=app.service, since=cursor))

    wait_until(resumed, 2 * TRACE_FLUSH + 30, interval=1.0, what="the app's spans through the new agent")
    resumed_after = time.monotonic() - killed_at
    timings = {"replaced_s": round(replaced_after, 1), "healthy_s": round(healthy_after, 1),
               "traces_resumed_s": round(resumed_after, 1)}
    record_property("timings", timings)
    print(f"\nagent killed -> {timings}")


@pytest.mark.parametrize("degradation", ["slow", "off"])
def test_imds_slow_or_off(lab_with, degradation, record_property):
    lab = lab_with(**LAB_WITH)
    wait_healthy(lab)
    # The IMDS control API as the host reaches it (docker: the lab network leg, never 169.254.x).
    imds = lab.instance(1).get("imds_control_url") or lab.imds_url(1)
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
        resp = http.post(f"{imds}/ecs-lab/instances/{instance_id}/policy", json={"enabled": False}, timeout=5)
        assert resp.status_code == 200, resp.text
        listed = http.get(f"{imds}/ecs-lab/instances", timeout=5).json()["instances"]
        options = {i["InstanceId"]: i for i in listed}
        assert options[instance_id]["HttpEndpoint"] == "disabled", options
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
            http.post(f"{imds}/ecs-lab/instances/{instance_id}/policy", json={"enabled": True}, timeout=5)
    _restart_agent(lab)
    recovered = _hostname(lab)
    assert recovered == (instance_id, "aws"), f"after IMDS recovered the agent reported {recovered}"
    record_property("hostnames", {"before": instance_id, "degraded": degraded[0], "after": recovered[0]})
    print(f"\nIMDS {degradation}: hostname {instance_id} -> {degraded[0]} ({degraded[1]}) -> {recovered[0]}")


def _family_tags(span: dict) -> set[str]:
    return {t for t in span.get("tags", []) if t.startswith("task_family:")}


def test_tagging_degrades_and_recovers_when_ecs_metadata_is_down(lab_with, record_property):
    lab = lab_with(**LAB_WITH)
    if lab.backend is None:
        pytest.skip("the ECS endpoints of a lab attached from another process cannot be taken down from here")
    wait_healthy(lab)
    app = lab.refresh().apps["imdsv1"]
    intake = intake_client(lab.intake_url, f"ecs-down-{uuid.uuid4().hex[:8]}")
    family = f"task_family:{app.service}-task"

    def spans_since(cursor: int) -> list[dict]:
        app.get("/work?ms=1&depth=1")
        return intake.spans(service=app.service, since=cursor)

    tagged = wait_until(lambda: [s for s in spans_since(0) if family in _family_tags(s)],
                        2 * TRACE_FLUSH + 20, interval=1.0, what=f"app spans tagged {family}")
    assert tagged

    lab.backend.ecs_endpoints(up=False)
    try:
        _restart_agent(lab)
        cursor = intake.payloads_page("/api/v0.2/traces")["next_since"]
        degraded = wait_until(lambda: spans_since(cursor), 2 * TRACE_FLUSH + 20, interval=1.0,
                              what="the app's spans while ECS metadata is down")
        assert not any(_family_tags(s) for s in degraded), (
            "spans tagged with a task family although the agent could not read ECS metadata")
    finally:
        lab.backend.ecs_endpoints(up=True)
    cursor = intake.payloads_page("/api/v0.2/traces")["next_since"]
    retagged = wait_until(lambda: [s for s in spans_since(cursor) if family in _family_tags(s)], RETAG,
                          interval=1.0, what=f"app spans tagged {family} again after the endpoints came back")
    counts = {"spans_tagged_before": len(tagged), "spans_untagged_while_down": len(degraded),
              "spans_tagged_after": len(retagged)}
    record_property("counts", counts)
    print(f"\nECS metadata down: {counts}")


def test_a_killed_agent_is_replaced_after_another_lab_stopped(lab_with):
    """Every lab of a process shares the embedded control plane: a lab stopping pauses its own
    cluster's scheduling, never the other labs' (their DAEMON agents are still replaced)."""
    from lab.pytest_plugin import start_lab, stop_lab

    lab = lab_with(**LAB_WITH)
    wait_healthy(lab)
    if lab.backend is None or not getattr(type(lab.backend), "SIDE_BY_SIDE", False):
        pytest.skip("one lab at a time on this backend: no other lab to stop")
    other = start_lab(getattr(lab.backend, "name", "local"), apps=(), agent_env=own_token_env("other"))
    stop_lab(other)
    assert _restart_agent(lab) < RESTART
