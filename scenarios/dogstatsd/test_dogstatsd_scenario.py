"""dogstatsd: custom metrics sent over 8125/udp to the instance's private IP arrive with ECS tags;
with DD_DOGSTATSD_NON_LOCAL_TRAFFIC off they do not, because the agent then listens only on its own
localhost, which an app container in bridge mode cannot reach (docs/agent_contract.md#the-agent-task-on-ecs).

Waits: one metric bucket + one aggregator flush + margin, from the send phase (session lab) or from
the send (the non-local-off stack), as the agent under test reports its intervals.
"""

from __future__ import annotations

import socket

import pytest
from datadog.dogstatsd import DogStatsd

from lab.stack import DEFAULT_FEATURES
from lab.world import wait_until

METRIC = "ecs_lab.app.work.done"
CONTROL = "ecs_lab.scenario.dogstatsd.control"
# The stack of the DD_DOGSTATSD_NON_LOCAL_TRAFFIC=false test (started ahead: scenarios/conftest.py).
LAB_WITH = {"features": set(DEFAULT_FEATURES) - {"dogstatsd_non_local"}, "apps": ("imdsv1",)}
# Every test reads the app's metrics at the intake: the agent's DogStatsD -> aggregator -> forwarder.
pytestmark = pytest.mark.agent_offers("dogstatsd_metrics")


def test_custom_metrics_arrive_with_service_and_ecs_tags(apps, agent, send_phase):
    app = apps["imdsv1"]
    with send_phase.wait("metrics") as timeout:
        series = send_phase.intake.wait_for_metric(METRIC, tags=["depth:1", f"service:{app.service}"],
                                                   timeout=timeout)
    tags = set(series[0]["tags"])
    assert {"env:lab", "version:1.0.0", "app:ecs-lab-web"} <= tags, sorted(tags)
    expected_ecs = {f"task_family:{app.service}-task", f"task_version:{app.task_version}",
                    "ecs_cluster_name:ecs-lab", "ecs_container_name:app"}
    assert expected_ecs <= tags, (f"ECS tags missing from {METRIC}: {sorted(expected_ecs - tags)}; "
                                  f"got {sorted(tags)}")
    resources = {(r["type"], r["name"]) for r in series[0].get("resources", [])}
    assert ("host", agent.instance_id) in resources or series[0].get("host") == agent.instance_id, series[0]


def test_every_metric_kind_of_the_app_is_aggregated(apps, send_phase):
    app, intake = apps["imdsv1"], send_phase.intake
    sent = send_phase.requests["imdsv1"]
    tags = ["route:/work", f"service:{app.service}"]

    def counted() -> float:
        # A DogStatsD counter leaves the agent as a RATE: value per second over the flush interval.
        series = intake.metrics("ecs_lab.app.requests", tags=tags)
        return sum(p["value"] * (s.get("interval") or 1) for s in series for p in s["points"])

    with send_phase.wait("metrics") as timeout:
        wait_until(lambda: counted() >= sent, timeout=timeout,
                   what=f"{sent} requests counted by ecs_lab.app.requests (a rate * its interval)")
        intake.wait_for_metric("ecs_lab.app.request.latency_ms.max", tags=[f"service:{app.service}"],
                               timeout=timeout)
    series = intake.metrics("ecs_lab.app.requests", tags=tags)
    assert {s.get("type") for s in series} == {2}, "a DogStatsD counter is flushed as type RATE (2)"


def test_without_non_local_traffic_the_agent_receives_nothing_from_apps(lab_with):
    lab = lab_with(**LAB_WITH)
    app, agent = lab.apps["imdsv1"], lab.agents[0]
    from lab.agent_probe import waiting_for
    from lab.pytest_plugin import intake_client

    intake = intake_client(lab.intake_url, "non-local-off")
    intervals = agent.probe.intervals()
    # The agent's own localhost (its netns' loopback; on the local backend an address of its own)
    # and the DogStatsD port the task definition gave it.
    local_host, port = lab.instance(1)["agent_localhost"], agent.dogstatsd[1]
    for _ in range(5):
        app.get("/work?ms=1&depth=1")
    # Positive control, sent after the app's metrics: the same DogStatsD receiver -> aggregator ->
    # forwarder -> intake path works for a sender on the agent's own localhost, where it listens.
    _send_control_from_agent_localhost(lab, agent, local_host, port)
    # Traces still arrive (APM non-local traffic is on): the app did run and send.
    with waiting_for(intervals.traces()) as timeout:
        intake.wait_for_spans(service=app.service, timeout=timeout)
    with waiting_for(intervals.metrics()) as timeout:
        control = intake.wait_for_metric(CONTROL, timeout=timeout)
    control_seq = max(s["seq"] for s in control)

    # One more complete flush after the one that carried the control: anything the agent received
    # from the app (sent before the control, the client's 0.3 s buffer included) is forwarded by then.
    with waiting_for(intervals.flush_after()) as timeout:
        wait_until(lambda: any(s["seq"] > control_seq for s in intake.metrics("datadog.agent.running")),
                   timeout=timeout, what="a full agent flush after the control metric's")
    got = intake.metrics(METRIC)
    assert not got, (
        f"{METRIC} reached the intake although DD_DOGSTATSD_NON_LOCAL_TRAFFIC=false: the agent should "
        f"listen only on its own localhost ({local_host}) and an app in another container sends to the "
        f"instance's private IP {agent.private_ip}:{port}")
    if lab.state.get("backend") != "docker":
        # Nothing holds the private IP's DogStatsD port: binding it succeeds (EADDRINUSE otherwise).
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.bind((agent.private_ip, port))
        finally:
            probe.close()


def _send_control_from_agent_localhost(lab, agent, host: str, port: int) -> None:
    """Send the control metric where the agent listens: its own localhost.

    On the local backend that address is reachable from here (the real `datadog` client sends it);
    on docker it exists only inside the agent container's network namespace, so the datagram is
    sent from there (`docker exec`), as a sidecar sharing the agent's netns would send it.
    """
    if lab.state.get("backend") == "docker":
        line = f"{CONTROL}:1|c|#sender:agent-localhost"
        code, output = agent.probe.run(["bash", "-c", f"printf '%s' '{line}' > /dev/udp/{host}/{port}"])
        assert code == 0, f"could not send the control datagram inside the agent container: {output!r}"
        return
    statsd = DogStatsd(host=host, port=port, disable_telemetry=True, disable_buffering=True)
    statsd.increment(CONTROL, tags=["sender:agent-localhost"])
    statsd.close_socket()
