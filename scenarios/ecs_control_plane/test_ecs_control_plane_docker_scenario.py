"""ecs_control_plane on the docker backend: the same user path (aws CLI / boto3 against the control
plane), the agents as real containers on 2 instance networks, apps reaching their own instance's
agent through the published host port."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from lab.agent_probe import waiting_for
from lab.world import wait_until

ROOT = Path(__file__).resolve().parents[2]
AGENT_TASKDEFS = ROOT / "lab" / "ecs" / "taskdefs"
APP_TASKDEFS = ROOT / "lab" / "apps" / "taskdefs"

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def docker_ecs(tmp_path_factory, exclusive_docker_engine):
    # Its own DockerBackend (2 instances, no stack tasks): the session's docker lab pauses meanwhile.
    try:
        from lab.backends import images

        images.docker_client().ping()
    except Exception as exc:  # noqa: BLE001
        # Docker scenarios fail, never skip, without an engine: CI installs one (.ci/docker-engine.sh).
        pytest.fail(f"no docker engine: {exc}; start one with `bash .ci/docker-engine.sh`")
    from lab.assembly import EcsLab
    from lab.stack import Ports, Stack

    stack = Stack(instances=2, apps=(), cluster=f"dk-{uuid.uuid4().hex[:6]}", ports=Ports.ephemeral(),
                  run_dir=tmp_path_factory.mktemp("ecs-docker"), deploy=False)
    with EcsLab(stack, backend="docker") as lab:
        yield lab.backend, lab.cluster


def _running(ecs, cluster, **kwargs):
    arns = ecs.list_tasks(cluster=cluster, **kwargs)["taskArns"]
    tasks = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"] if arns else []
    return [t for t in tasks if t["lastStatus"] == "RUNNING"]


@pytest.mark.agent_offers("traces_v05")  # the app's ddtrace sends /v0.5/traces
def test_daemon_agents_as_containers_and_apps_report_through_their_own_instance(docker_ecs, task_agent_probe):
    from lab.fakes.intake.client import IntakeClient

    backend, cluster = docker_ecs
    world, ecs, name = backend.world, cluster.control_plane.clients.ecs, backend.world.cluster.name
    ecs.register_task_definition(**json.loads((AGENT_TASKDEFS / "datadog-agent-ecs-full.json").read_text()))
    ecs.create_service(cluster=name, serviceName="datadog-agent", taskDefinition="datadog-agent-task",
                       schedulingStrategy="DAEMON")
    agents = wait_until(lambda: len(_running(ecs, name, serviceName="datadog-agent")) == 2
                        and _running(ecs, name, serviceName="datadog-agent"), 120, interval=0.5,
                        what="2 RUNNING agent containers")
    # The world records the real docker ids of the control plane's tasks.
    for t in agents:
        _, task = world.find_task(t["taskArn"])
        assert backend.client.api.inspect_container(task.containers[0].docker_id)["State"]["Running"]

    app_td = ecs.register_task_definition(**json.loads((APP_TASKDEFS / "imdsv1.json").read_text()))
    app_arns = {}
    for inst in world.instances:
        out = ecs.start_task(cluster=name, taskDefinition=app_td["taskDefinition"]["taskDefinitionArn"],
                             containerInstances=[inst.arn])
        app_arns[inst.index] = out["tasks"][0]["taskArn"]
    wait_until(lambda: len(_running(ecs, name, family="ecs-lab-web-imdsv1")) == 2, 120, interval=0.5,
               what="2 RUNNING app containers")
    intake = IntakeClient(backend.topo.host_intake_url)
    intervals = task_agent_probe(backend, agents[0]["taskArn"]).intervals()
    for inst in world.instances:
        _, task = world.find_task(app_arns[inst.index])
        c = task.containers[0]
        # Instance networks are not routed to the docker host: call the app from inside instance N.
        url = f"http://{c.ipv4_addresses[0]}:8080/work?ms=1&depth=1"
        code, out = backend.run_in_instance(inst.index, ["curl", "-sf", "--retry", "30", "--retry-delay", "1",
                                                         "--retry-connrefused", url], timeout=90)
        assert code == 0, f"the app on instance {inst.index} did not answer {url}: {out}"
        with waiting_for(intervals.traces()) as timeout:
            spans = intake.wait_for_spans(service="ecs-lab-web", timeout=timeout,
                                          predicate=lambda s, d=c.docker_id: s.get("container_id") == d)
        assert {s["hostname"] for s in spans} == {inst.instance_id}


SERIES = "/api/v2/series"


def _roll(ecs, name, service, td_arn, timeout=120):
    services = ecs.describe_services(cluster=name, services=[service])["services"]
    if services and services[0]["status"] == "ACTIVE":
        ecs.update_service(cluster=name, service=service, taskDefinition=td_arn)
    else:
        ecs.create_service(cluster=name, serviceName=service, taskDefinition=td_arn,
                           schedulingStrategy="DAEMON")

    def settled():
        arns = ecs.list_tasks(cluster=name, serviceName=service)["taskArns"]
        tasks = ecs.describe_tasks(cluster=name, tasks=arns)["tasks"] if arns else []
        return len(tasks) == 2 and all(t["taskDefinitionArn"] == td_arn and t["lastStatus"] == "RUNNING"
                                       for t in tasks)

    def seen() -> str:
        arns = ecs.list_tasks(cluster=name, serviceName=service)["taskArns"]
        arns += ecs.list_tasks(cluster=name, serviceName=service, desiredStatus="STOPPED")["taskArns"]
        tasks = ecs.describe_tasks(cluster=name, tasks=arns[-6:])["tasks"] if arns else []
        svc = ecs.describe_services(cluster=name, services=[service])["services"][0]
        return "; ".join([f"{t['taskDefinitionArn'].rsplit('/', 1)[-1]} {t['lastStatus']} "
                          f"{t.get('stoppedReason', '')}" for t in tasks]
                         + [e["message"] for e in svc.get("events", [])[:2]])

    try:
        wait_until(settled, timeout, interval=0.5, what=f"2 RUNNING tasks of {td_arn}")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; tasks: {seen()}") from None


@pytest.mark.agent_offers("fips_proxy")
def test_fips_sidecar_sends_nothing_in_bridge_mode_and_works_in_host_mode(docker_ecs, task_agent_probe):
    from lab.ecs.diagnose import agent_findings
    from lab.fakes.intake.client import IntakeClient

    backend, cluster = docker_ecs
    ecs, name = cluster.control_plane.clients.ecs, backend.world.cluster.name
    # One agent per instance: the first scenario's DAEMON service goes away first.
    _remove_service(ecs, name, "datadog-agent")
    intake = IntakeClient(backend.topo.host_intake_url)
    td = json.loads((AGENT_TASKDEFS / "datadog-agent-ecs-fips.json").read_text())
    td["family"] = "datadog-agent-fips"
    bridge = {k: v for k, v in td.items() if k != "networkMode"}  # the docs' fragment in a bridge task
    (finding,) = agent_findings(bridge)
    assert finding.code == "fips_bridge", str(finding)
    bridge_arn = ecs.register_task_definition(**bridge)["taskDefinition"]["taskDefinitionArn"]
    _roll(ecs, name, "datadog-agent-fips", bridge_arn)
    (agent_arn,) = {t["taskArn"] for t in _running(ecs, name, serviceName="datadog-agent-fips")
                    if t["containerInstanceArn"] == backend.world.instance(1).arn}
    wait = task_agent_probe(backend, agent_arn).intervals().metrics()
    cursor = intake.payloads_page(SERIES)["next_since"]
    with pytest.raises(TimeoutError):  # one bucket + one flush + margin: series would have come by then
        wait_until(lambda: intake.payloads(SERIES, since=cursor), wait.seconds,
                   what=f"series in bridge mode ({finding})")

    host_arn = ecs.register_task_definition(**td)["taskDefinition"]["taskDefinitionArn"]
    cursor = intake.payloads_page(SERIES)["next_since"]
    _roll(ecs, name, "datadog-agent-fips", host_arn)
    with waiting_for(wait) as timeout:
        wait_until(lambda: intake.payloads(SERIES, since=cursor), timeout,
                   what="series from the agents through their FIPS proxy sidecar (host mode)")


def _remove_service(ecs, name, service):
    """Delete the service and wait until its tasks have stopped, not only been told to: list-tasks
    drops a task once its desired status is STOPPED, and a stopping agent still sends its last flush."""
    ecs.update_service(cluster=name, service=service, desiredCount=0)
    ecs.delete_service(cluster=name, service=service, force=True)

    def stopped() -> bool:
        if ecs.list_tasks(cluster=name, serviceName=service)["taskArns"]:
            return False
        arns = ecs.list_tasks(cluster=name, serviceName=service, desiredStatus="STOPPED")["taskArns"]
        return not arns or all(t["lastStatus"] == "STOPPED"
                               for t in ecs.describe_tasks(cluster=name, tasks=arns)["tasks"])

    wait_until(stopped, 60, interval=0.5, what=f"the tasks of {service} to stop")
