"""resilience / ECS agent introspection and task metadata down: tagging degrades, then recovers.

With the instance's ECS agent introspection (51678) and the task metadata endpoint refusing
connections, an agent that starts cannot map the app's container to its task: the app's traces
still arrive (nothing is lost) but without their ECS tags (`task_family`, `ecs_cluster_name`...).
When the endpoints are back, the agent's next metadata refresh tags the app's traces again.

The agent is observed only through the intake and `agent health` / `agent status -j` by exec.
Local backend only: the fake endpoints run in this process, so the scenario can close their ports.
"""

from __future__ import annotations

import os
import signal
import uuid

import pytest

from lab.pytest_plugin import intake_client
from lab.serving import listen_again, stop_listening
from lab.world import wait_until

from .traffic import TRACE_FLUSH, own_token_env, wait_healthy

LAB_WITH = {"apps": ("imdsv1",), "agent_env": own_token_env("ecs-metadata")}
RESTART = 60.0
# Upper bound for the agent to see the endpoints again: its ECS metadata refresh (the emulated
# agent: 2 s; the real workloadmeta ECS collector pulls every few seconds) plus a trace flush.
RETAG = 30.0 + 2 * TRACE_FLUSH


def _ecs_endpoints(lab, up: bool) -> None:
    threads = lab.backend.ecs_metadata._server

    async def toggle() -> None:
        for listener in threads.listeners:
            if up:
                await listen_again(listener)
            else:
                stop_listening(listener)

    threads.call(toggle)


def _restart_agent(lab) -> None:
    old = lab.refresh().instance(1)["agent"]
    os.kill(old["pid"], signal.SIGKILL)
    wait_until(lambda: lab.refresh().instance(1)["agent"].get("task_arn") not in (None, old["task_arn"])
               and lab.instance(1)["agent"]["status"] == "RUNNING", RESTART, interval=0.5,
               what="the agent's DAEMON task replaced")
    wait_healthy(lab)


def _family_tags(span: dict) -> set[str]:
    return {t for t in span.get("tags", []) if t.startswith("task_family:")}


def test_tagging_degrades_and_recovers_when_ecs_metadata_is_down(lab_with, record_property):
    lab = lab_with(**LAB_WITH)
    if lab.backend is None or getattr(lab.backend, "name", "") != "local":
        pytest.skip("the ECS metadata fakes run in this process only on the local backend")
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

    _ecs_endpoints(lab, up=False)
    try:
        _restart_agent(lab)
        cursor = intake.payloads_page("/api/v0.2/traces")["next_since"]
        degraded = wait_until(lambda: spans_since(cursor), 2 * TRACE_FLUSH + 20, interval=1.0,
                              what="the app's spans while ECS metadata is down")
        assert not any(_family_tags(s) for s in degraded), (
            "spans tagged with a task family although the agent could not read ECS metadata")
    finally:
        _ecs_endpoints(lab, up=True)
    cursor = intake.payloads_page("/api/v0.2/traces")["next_since"]
    retagged = wait_until(lambda: [s for s in spans_since(cursor) if family in _family_tags(s)], RETAG,
                          interval=1.0, what=f"app spans tagged {family} again after the endpoints came back")
    counts = {"spans_tagged_before": len(tagged), "spans_untagged_while_down": len(degraded),
              "spans_tagged_after": len(retagged)}
    record_property("counts", counts)
    print(f"\nECS metadata down: {counts}")
