"""apm_bridge: traces from every DD_AGENT_HOST variant reach the intake through the instance's agent.

An app container in bridge mode finds the agent at the EC2 host's private IP
(docs/agent_contract.md#the-agent-task-on-ecs), learned by one of the docs' variants (IMDSv1/IMDSv2 curl line,
container metadata file, in code). Each test checks both hops: tracer -> agent (the agent's receiver counts
grow) and agent -> intake (an AgentPayload with hostname = the IMDS instance-id, service/env/version and the
ECS tags).
"""

from __future__ import annotations

import pytest

from lab.world import wait_until

VARIANTS = ("imdsv1", "imdsv2", "metadata_file", "in_code")


def _tags(span: dict) -> set[str]:
    return set(span.get("container_tags") or [])


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variant_finds_the_agent_at_the_instance_private_ip(apps, agent, variant):
    app = apps[variant]
    seen = app.get("/")
    assert seen["agent_host"] == agent.private_ip, (
        f"{app.service} resolved DD_AGENT_HOST={seen['agent_host']!r} via {seen['agent_host_from']}, "
        f"expected the instance's private IP {agent.private_ip} (IMDS local-ipv4)")


@pytest.mark.parametrize("variant", VARIANTS)
def test_traces_reach_the_intake_with_instance_hostname_and_ecs_tags(apps, agent, intake, variant):
    app = apps[variant]
    before = agent.status()["apm"]["traces_received"]
    work = app.get("/work?ms=2&depth=2")

    # Hop 1: tracer -> agent. The agent's receiver counted the trace.
    wait_until(lambda: agent.status()["apm"]["traces_received"] > before, timeout=15,
               what=f"the agent's APM receiver to count a trace from {app.service} (tracer -> agent hop)")

    # Hop 2: agent -> intake.
    spans = intake.wait_for_spans(service=app.service, timeout=20,
                                  predicate=lambda s: str(s.get("trace_id")) == work["trace_id"]
                                  or s.get("name") == "work.request")
    span = next((s for s in spans if s.get("name") == "work.request"), spans[0])
    assert span["hostname"] == agent.instance_id, (
        f"payload hostname {span['hostname']!r}: the agent on ECS EC2 reports the IMDS instance-id "
        f"{agent.instance_id!r}")
    assert span["env"] == "lab"
    assert span["meta"].get("version") == "1.0.0"
    family = f"{app.service}-task"
    expected = {f"task_family:{family}", "task_version:1", "ecs_cluster_name:ecs-lab",
                "ecs_container_name:app", f"ecs_service:{app.service}", "region:us-east-1",
                "image_name:ecs-agent-lab/lab"}
    missing = expected - _tags(span)
    assert not missing, f"ECS container tags missing on {app.service}'s traces: {sorted(missing)}; " \
                        f"got {sorted(_tags(span))}"
    assert any(t.startswith("container_name:ecs-") for t in _tags(span))
    assert span["container_id"] == app.docker_id, "traces must be attributed to the app's container id"


def test_error_spans_keep_their_error_flag(apps, intake):
    app = apps["imdsv1"]
    import urllib.error

    with pytest.raises(urllib.error.HTTPError):
        app.get("/error")
    spans = intake.wait_for_spans(service=app.service, timeout=20, predicate=lambda s: s.get("error") == 1)
    assert spans[0]["error"] == 1
