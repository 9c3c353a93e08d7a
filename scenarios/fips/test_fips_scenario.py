"""fips: with the docs' FIPS settings (DD_FIPS_ENABLED=true, DD_FIPS_PORT_RANGE_START=9803,
DD_FIPS_LOCAL_ADDRESS=<the agent's loopback>, DD_FIPS_HTTPS=false) every data type leaves the agent
on its own proxy port (9804 metrics, 9805 traces, 9807 processes), nothing goes to the intake
directly, and a non-loopback DD_FIPS_LOCAL_ADDRESS is refused at config load
(docs/agent_contract.md#fips-mode).
"""

from __future__ import annotations

import contextlib
from datetime import datetime

import pytest

from lab.agent_probe import waiting_for
from lab.pytest_plugin import intake_client, skip_unless_offered
from lab.stack import DEFAULT_FEATURES
from lab.world import wait_until

ROUTES = {"metrics": (9804, "/api/v2/series"), "traces": (9805, "/api/v0.2/traces"),
          "processes": (9807, "/api/v1/collector")}
# The FIPS stack (started ahead: scenarios/conftest.py).
LAB_WITH = {"features": set(DEFAULT_FEATURES) | {"fips"}, "apps": ("imdsv1",)}
pytestmark = pytest.mark.agent_offers("fips_proxy")


@pytest.fixture(scope="module")
def fips_lab(lab, lab_with):
    skip_unless_offered(lab, "fips_proxy")  # before the redeploy an agent without FIPS support cannot pass
    lab = lab_with(**LAB_WITH)
    if lab.backend is None or not getattr(lab.backend, "fips_proxies", None):
        pytest.skip("the FIPS proxy records are read from the lab running in this process")
    return lab


def test_each_data_type_goes_out_on_its_own_proxy_port(fips_lab):
    proxy = fips_lab.backend.fips_proxies[1]
    app = fips_lab.apps["imdsv1"]
    intake = intake_client(fips_lab.intake_url, "fips")
    intervals = fips_lab.agents[0].probe.intervals()
    app.get("/work?ms=1&depth=1")
    with waiting_for(intervals.traces()) as timeout:
        intake.wait_for_spans(service=app.service, timeout=timeout)
    with waiting_for(intervals.metrics()) as timeout:
        intake.wait_for_metric("ecs_lab.app.work.done", timeout=timeout)
    with waiting_for(intervals.processes()) as timeout:
        intake.wait_for_payloads("/api/v1/collector", timeout=timeout)
    # The proxy writes its record once the intake's answer is relayed back: moments after the
    # intake shows the payload.
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: all(any(r.path == path for r in proxy.records_for(route))
                               for route, (_, path) in ROUTES.items()),
                   15, interval=0.5, what="the proxy's record of each route")
    for route, (port, path) in ROUTES.items():
        records = [r for r in proxy.records_for(route) if r.path == path]
        assert records, f"no {path} request on the FIPS proxy's {route} port {port}; " \
                        f"proxy saw {[(r.port, r.path) for r in proxy.records][:20]}"
        assert {r.port for r in records} == {port}
        refused = [r for r in records if not 200 <= r.status < 300]
        # A 4xx the intake gave is a body it refused: its reason is kept on the intake's side.
        assert not refused, (refused[:3], [(x["reason"], x["headers"]) for x in intake.rejected(path)][-3:])
    assert proxy.misrouted() == [], f"requests on the wrong FIPS port: {proxy.misrouted()[:5]}"


def _docker_started_at(fips_lab) -> float:
    """When every instance's FIPS agent task was all up (docker backend): the last of their
    containers to start. An instance's agent starts after its proxy and once the agent it replaced
    let go of the instance's 8126/8125, and the instances are replaced one after another: until the
    last one is, another instance's old agent (and the apps it serves) still sends directly."""
    from lab.backends.docker import _parse_started_at

    api = fips_lab.backend.client.api
    return max(_parse_started_at(api.inspect_container(c.docker_id))
               for task in fips_lab.backend.agent_tasks.values() for c in task.containers)


def test_nothing_reaches_the_intake_except_through_the_proxy(fips_lab):
    """Payload by payload: each one the intake stored since this proxy started carries the proxy's
    `Via` entry naming a port that may carry its route; one sent straight to the intake has none."""
    from lab.fakes.fips_proxy.ports import via_route
    from lab.fakes.fips_proxy.proxy import routes_for_path
    from lab.fakes.intake.client import IntakeClient

    proxy = fips_lab.backend.fips_proxies[1]
    intake = IntakeClient(fips_lab.intake_url)  # no session: every payload since the lab started
    # On docker the FIPS agents replaced the session lab's (one docker lab per engine): the intake
    # also holds what the earlier agents sent, before this proxy existed; look from its start on.
    since = _docker_started_at(fips_lab) if fips_lab.state.get("backend") == "docker" else 0.0

    def stored() -> list[dict]:
        return [{**p, "endpoint": endpoint} for endpoint in intake.routestats()
                for p in intake.payloads(endpoint, fmt="raw")
                if datetime.fromisoformat(p["timestamp"].replace("Z", "+00:00")).timestamp() >= since]

    def every_route_relayed() -> list[dict] | None:
        rows = stored()
        relayed = {via_route(p.get("via")) for p in rows}
        return rows if {"metrics", "traces", "processes"} <= relayed else None

    intervals = fips_lab.agents[0].probe.intervals()
    slowest = max((intervals.metrics(), intervals.traces(), intervals.processes()), key=lambda w: w.seconds)
    with waiting_for(slowest) as timeout:
        rows = wait_until(every_route_relayed, timeout=timeout, interval=0.5,
                          what="payloads relayed by the FIPS proxy's metrics, traces and processes ports")
    direct = [(p["endpoint"], p["timestamp"], p.get("via"), p.get("intended_host"))
              for p in rows if via_route(p.get("via")) is None]
    assert not direct, f"{len(direct)} of {len(rows)} payloads reached the intake without the FIPS proxy: " \
                       f"{direct[:10]}"
    wrong = [(p["endpoint"], p["via"]) for p in rows
             if routes_for_path(p["endpoint"]) and via_route(p["via"]) not in routes_for_path(p["endpoint"])]
    assert not wrong, f"payloads relayed on a port that does not carry their route: {wrong[:10]}"
    # The proxy's own log agrees: it relayed (2xx) at least as many as the intake held when read.
    wait_until(lambda: sum(1 for r in proxy.records if 200 <= r.status < 300) >= len(rows), timeout=15,
               interval=0.5, what=f"the FIPS proxy's log to show the {len(rows)} payloads the intake stored")


def test_the_agent_logs_fips_mode(fips_lab):
    log = fips_lab.log_tail("agent-1", 400)
    start = fips_lab.instance(1)["agent_localhost"]
    assert (f"FIPS mode is enabled! All communication to DataDog will be routed to the local FIPS proxy on "
            f"'{start}' starting from port 9803") in log


def test_a_non_loopback_fips_local_address_is_refused(fips_lab):
    """The docs' FIPS agent with DD_FIPS_LOCAL_ADDRESS on a routable address, run as a task on the
    lab's cluster: the agent exits at config load, saying why, and the task stops."""
    import json

    from lab.ecs.stack_services import agent_task_definition

    lab = fips_lab.ecs_lab
    ecs = lab.control_plane.clients.ecs
    td = agent_task_definition(lab.stack)
    agent = next(c for c in td["containerDefinitions"] if c["name"] == "datadog-agent")
    agent["environment"] = [e for e in agent["environment"] if e["name"] != "DD_FIPS_LOCAL_ADDRESS"]
    agent["environment"].append({"name": "DD_FIPS_LOCAL_ADDRESS", "value": "10.0.0.5"})
    for key in ("healthCheck", "portMappings", "dependsOn"):
        agent.pop(key, None)
    td.update(family="datadog-agent-fips-misconfigured", networkMode="bridge", containerDefinitions=[agent])
    arn = ecs.register_task_definition(**td)["taskDefinition"]["taskDefinitionArn"]
    task_arn = ecs.run_task(cluster=fips_lab.cluster_name, taskDefinition=arn)["tasks"][0]["taskArn"]

    def stopped() -> dict | None:
        task = ecs.describe_tasks(cluster=fips_lab.cluster_name, tasks=[task_arn])["tasks"][0]
        return task if task["lastStatus"] == "STOPPED" else None

    task = wait_until(stopped, 30, interval=0.2, what="the misconfigured agent task to stop")
    assert "Essential container in task exited" in task.get("stoppedReason", ""), \
        json.dumps(task, default=str)[:2000]
    log = lab.backend.container_logs(task_arn, "datadog-agent", 50)
    assert "address was set to a non-loopback IP address" in log, log
