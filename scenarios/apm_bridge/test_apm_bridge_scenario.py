"""apm_bridge: traces from every DD_AGENT_HOST variant reach the intake through the instance's agent.

An app container in bridge mode finds the agent at the EC2 host's private IP
(docs/agent_contract.md#the-agent-task-on-ecs), learned by one of the docs' variants (IMDSv1/IMDSv2 curl
line, container metadata file, in code). Each test checks both hops: agent -> intake (an AgentPayload
with hostname = the IMDS instance-id, service/env/version and the ECS tags) proves tracer -> agent too;
when it does not arrive, the failure says whether the agent's receiver counted the app's traces
(`agent status --json`, `apmStats.receiver`, which the trace-agent publishes once a minute: too slow to
wait on, right for a diagnosis).

The traffic is sent once for the whole run (`send_phase`); each test waits for its data until the
deadline the agent's own intervals give (the tracer's flush + one trace writer flush + margin).
"""

from __future__ import annotations

import pytest

from lab.agent_probe import AgentProbeError, AgentStatus

VARIANTS = ("imdsv1", "imdsv2", "metadata_file", "in_code")
# The sample apps' tracer (ddtrace 4.x) sends /v0.5/traces and does not fall back to v0.4 on a 404:
# an agent that does not list /v0.5/traces in /info never gets their traces.
NEEDS_APP_TRACES = pytest.mark.agent_offers("traces_v05")


def _tags(span: dict) -> set[str]:
    return set(span.get("container_tags") or [])


def _hop1(agent, service: str) -> str:
    """What the agent's receiver reports for `service`: where a missing trace was lost."""
    try:
        status = AgentStatus(agent.probe.status())
    except AgentProbeError as exc:
        return f"tracer -> agent hop unknown: {exc}"
    counted = status.traces_received(service)
    if counted is None:
        return "tracer -> agent hop unknown: `agent status --json` reports no apmStats.receiver"
    where = "the agent -> intake hop lost them" if counted else "tracer -> agent hop, or not published yet"
    return (f"the agent's receiver counted {counted} trace(s) from {service} in its last published minute "
            f"({where})")


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variant_finds_the_agent_at_the_instance_private_ip(send_phase, agent, variant):
    seen = send_phase.agent_hosts[variant]
    assert seen["agent_host"] == agent.private_ip, (
        f"{send_phase.lab.apps[variant].service} resolved DD_AGENT_HOST={seen['agent_host']!r} via "
        f"{seen['agent_host_from']}, expected the instance's private IP {agent.private_ip} (IMDS local-ipv4)")


@NEEDS_APP_TRACES
@pytest.mark.parametrize("variant", VARIANTS)
def test_traces_reach_the_intake_with_instance_hostname_and_ecs_tags(apps, agent, send_phase, variant):
    app = apps[variant]
    work = send_phase.work[variant]
    try:
        with send_phase.wait("traces") as timeout:
            spans = send_phase.intake.wait_for_spans(
                service=app.service, timeout=timeout,
                predicate=lambda s: str(s.get("trace_id")) == work["trace_id"]
                or s.get("name") == "work.request")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; {_hop1(agent, app.service)}") from None
    span = next((s for s in spans if s.get("name") == "work.request"), spans[0])
    assert span["hostname"] == agent.instance_id, (
        f"payload hostname {span['hostname']!r}: the agent on ECS EC2 reports the IMDS instance-id "
        f"{agent.instance_id!r}")
    assert span["env"] == "lab"
    assert span["meta"].get("version") == "1.0.0"
    family = f"{app.service}-task"
    expected = {f"task_family:{family}", f"task_version:{app.task_version}", "ecs_cluster_name:ecs-lab",
                "ecs_container_name:app", f"ecs_service:{app.service}", "region:us-east-1",
                "image_name:ecs-agent-lab/lab"}
    missing = expected - _tags(span)
    assert not missing, f"ECS container tags missing on {app.service}'s traces: {sorted(missing)}; " \
                        f"got {sorted(_tags(span))}"
    assert any(t.startswith("container_name:ecs-") for t in _tags(span))
    assert span["container_id"] == app.docker_id, "traces must be attributed to the app's container id"


@NEEDS_APP_TRACES
def test_error_spans_keep_their_error_flag(apps, send_phase):
    app = apps["imdsv1"]
    assert send_phase.errors.get("imdsv1") == 500, f"GET /error answered {send_phase.errors.get('imdsv1')}"
    with send_phase.wait("traces") as timeout:
        spans = send_phase.intake.wait_for_spans(service=app.service, timeout=timeout,
                                                 predicate=lambda s: s.get("error") == 1)
    assert spans[0]["error"] == 1
