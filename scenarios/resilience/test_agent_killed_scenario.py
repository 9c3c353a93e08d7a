"""resilience / agent killed: SIGKILL the agent of instance 1; the control plane sees its DAEMON task
stop and starts a new one on the same instance, which passes `agent health`, and the app's tracer,
still pointed at the instance's address, has its traces reach the intake again.

Observed as the real agent offers: `agent status -j` (pid, agent_start_nano) and `agent health` by
exec, the intake's spans, and the task's state as the ECS API reports it (the lab's status).
"""

from __future__ import annotations

import os
import signal
import time
import uuid

from lab.pytest_plugin import intake_client
from lab.world import wait_until

from .traffic import HEALTH_PING, HEALTH_START_PERIOD, TRACE_FLUSH, agent_status, own_token_env, wait_healthy

LAB_WITH = {"apps": ("imdsv1",), "agent_env": own_token_env("killed")}
# The ECS agent sees the container exit at once; the service scheduler replaces a DAEMON task on
# its next pass (seconds), then the new agent needs its start period and first health ping.
RESTART = 60.0


def test_a_killed_agent_is_replaced_and_the_apps_traces_resume(lab_with, record_property):
    lab = lab_with(**LAB_WITH)
    wait_healthy(lab)
    app = lab.refresh().apps["imdsv1"]
    intake = intake_client(lab.intake_url, f"agent-killed-{uuid.uuid4().hex[:8]}")
    app.get("/work?ms=1&depth=1")
    intake.wait_for_spans(service=app.service, timeout=2 * TRACE_FLUSH + 10)
    before = agent_status(lab)
    old_task = lab.instance(1)["agent"]["task_arn"]
    old_pid = lab.instance(1)["agent"]["pid"]
    assert old_pid and before["pid"], "the agent's pid must be known to kill it"

    killed_at = time.monotonic()
    os.kill(old_pid, signal.SIGKILL)

    def replaced() -> bool:
        agent = lab.refresh().instance(1)["agent"]
        return bool(agent.get("task_arn")) and agent["task_arn"] != old_task and agent["status"] == "RUNNING"

    wait_until(replaced, RESTART, interval=0.5, what="a new agent task on instance 1 after SIGKILL")
    replaced_after = time.monotonic() - killed_at
    wait_healthy(lab, timeout=HEALTH_START_PERIOD + 2 * HEALTH_PING)
    healthy_after = time.monotonic() - killed_at
    after = agent_status(lab)
    assert after["pid"] != before["pid"] and after["agent_start_nano"] > before["agent_start_nano"], (
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
