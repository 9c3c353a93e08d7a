"""anywhere: the Datadog agent on an ECS Anywhere host (launch type EXTERNAL), as the seed documents
describe it: their agent task definition with `"requiresCompatibilities": ["EXTERNAL"]`, deployed as
a DAEMON service of launch type EXTERNAL, and an app task run beside it with `run-task --launch-type
EXTERNAL`.

What a user checks, and what this proves:
- the host is a container instance registered with a managed instance id (`mi-...`), with none of
  EC2's attributes; the agent's task and the app's run there with launch type EXTERNAL;
- inside a container: task metadata v4 says EXTERNAL and has no availability zone, the container
  metadata file has no host address, there is no `AWS_EXECUTION_ENV`, and IMDS answers nothing;
- the app's spans and DogStatsD series reach the intake with the task's ECS tags (the real agent adds
  no launch-type tag: docs/ecs_anywhere.md#tags), and the agent's hostname is the host's own name, not
  an EC2 instance id: `agent status` shows the EC2 provider failed, and the lab's IMDS got no request.

Both backends host external hosts (`--backend docker`: the host's containers reach task metadata and
introspection on the shared link-local network, but the IMDS container has no route back to the host's
address block, so nothing answers them at 169.254.169.254; docs/ecs_anywhere.md#on-the-docker-backend).
On docker the module has the engine to itself (`exclusive_docker_engine`).
The agent is a black box: its container is reached with `agent ...` commands and every wait on the
intake is one of its own intervals (lab.agent_probe). What a test needs of the agent is asked of this
lab's own agent (`require_offers`), not of the session lab's: the module never starts that lab.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from lab.agent_probe import waiting_for
from lab.pytest_plugin import require_offers
from lab.world import wait_until

APP_TASKDEF = Path(__file__).with_name("app-on-external.json")
FAMILY = "ecs-lab-anywhere-web"
SERVICE = "anywhere-web"
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture(scope="module")
def anywhere_lab(request, exclusive_docker_engine):
    """A lab whose only host is an ECS Anywhere one: the stack's agent runs there as the DAEMON service
    of launch type EXTERNAL; nothing else runs until the scenario starts its app."""
    backend = request.config.getoption("--backend") or os.environ.get("LAB_BACKEND", "local")
    from lab.assembly import EcsLab
    from lab.pytest_plugin import free_subnet
    from lab.stack import Ports, Stack

    subnet = free_subnet()
    run_dir = Path(os.environ.get("LAB_HOME", ".lab")) / "pytest" / f"anywhere-{subnet.replace('.', '-')}"
    stack = Stack(instances=0, external_instances=1, apps=(), subnet=subnet, services_host=f"{subnet}.0.1",
                  ports=Ports.ephemeral(), cluster=f"anywhere-{uuid.uuid4().hex[:6]}", run_dir=run_dir)
    with EcsLab(stack, backend=backend) as lab:
        yield lab


@pytest.fixture(scope="module")
def host(anywhere_lab):
    return anywhere_lab.world.instance(1)


@pytest.fixture(scope="module")
def agent(anywhere_lab):
    (found,) = anywhere_lab.agents
    return found


@pytest.fixture(scope="module")
def app_task(anywhere_lab, host):
    """The app's definition registered and run on the external host, as a user does. On premises
    there is no IMDS to ask for the host's address: the user writes it into DD_AGENT_HOST."""
    ecs = anywhere_lab.control_plane.clients.ecs
    td = json.loads(APP_TASKDEF.read_text())
    env = td["containerDefinitions"][0]["environment"]
    next(e for e in env if e["name"] == "DD_AGENT_HOST")["value"] = host.private_ip
    registered = ecs.register_task_definition(**td)["taskDefinition"]
    assert set(registered["compatibilities"]) == {"EC2", "EXTERNAL"}
    cluster = anywhere_lab.world.cluster.name
    out = ecs.run_task(cluster=cluster, taskDefinition=FAMILY, launchType="EXTERNAL")
    assert out["failures"] == [], out["failures"]
    arn = out["tasks"][0]["taskArn"]

    def running() -> dict | None:
        task = ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]
        assert task["lastStatus"] != "STOPPED", f"the app task stopped: {task.get('stoppedReason')}"
        return task if task["lastStatus"] == "RUNNING" else None

    described = wait_until(running, anywhere_lab.stack.ready_timeout * 3, what="the app task RUNNING")
    yield {"arn": arn, "described": described}
    with contextlib.suppress(Exception):
        ecs.stop_task(cluster=cluster, task=arn, reason="scenario done")


def _in_app(anywhere_lab, app_task, script: str) -> tuple[int, str]:
    return anywhere_lab.exec_in_container(app_task["arn"], "web", ["sh", "-c", script])


def _app_url(anywhere_lab, app_task) -> str:
    # On the local backend the app is a process listening on its container's own address, on a port
    # it chose (its start line and port file say which; nothing is published on the host). On docker
    # it listens in its container, and ECS published its port (bridge mode, no hostPort: a dynamic
    # host port on the host's address), as describe-tasks' networkBindings say.
    code, out = _in_app(anywhere_lab, app_task,
                        'echo "${LAB_APP_BIND:-} $(cat "${LAB_APP_PORT_FILE:-/nonexistent}" 2>/dev/null)"')
    assert code == 0, out
    if len(out.split()) == 2:
        address, port = out.split()
        return f"http://{address}:{port}"
    ecs = anywhere_lab.control_plane.clients.ecs
    (task,) = ecs.describe_tasks(cluster=anywhere_lab.world.cluster.name, tasks=[app_task["arn"]])["tasks"]
    bindings = [b for c in task["containers"] for b in c.get("networkBindings", []) if b.get("hostPort")]
    assert bindings, f"the app's port is neither in its container's environment nor published: {task}"
    return f"http://{anywhere_lab.world.instance(1).private_ip}:{bindings[0]['hostPort']}"


def test_the_host_is_an_external_instance_running_the_agent_daemon(anywhere_lab, host, agent):
    require_offers(agent.probe, "agent_health")
    ecs = anywhere_lab.control_plane.clients.ecs
    cluster = anywhere_lab.world.cluster.name
    arns = ecs.list_container_instances(cluster=cluster)["containerInstanceArns"]
    (ci,) = ecs.describe_container_instances(cluster=cluster, containerInstances=arns)["containerInstances"]
    assert re.fullmatch(r"mi-[0-9a-f]{17}", ci["ec2InstanceId"]), ci["ec2InstanceId"]
    names = {a["name"] for a in ci["attributes"]}
    assert "ecs.capability.external" in names
    assert not names & {"ecs.ami-id", "ecs.availability-zone", "ecs.instance-type"}, names
    (task,) = ecs.describe_tasks(cluster=cluster, tasks=[agent.task_arn])["tasks"]
    assert (task["launchType"], task["containerInstanceArn"], task["lastStatus"]) == \
        ("EXTERNAL", ci["containerInstanceArn"], "RUNNING")
    assert task["group"] == "service:datadog-agent-external"
    td = ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])["taskDefinition"]
    assert td["requiresCompatibilities"] == ["EXTERNAL"]
    # ECS runs the definition's health check (`agent health`): the agent's components report healthy
    # only after their first beat, so the task is HEALTHY within its start period and one interval.
    check = next(c for c in td["containerDefinitions"] if c["name"] == agent.container)["healthCheck"]

    def healthy() -> dict | None:
        (t,) = ecs.describe_tasks(cluster=cluster, tasks=[agent.task_arn])["tasks"]
        return t if t.get("healthStatus") == "HEALTHY" else None

    wait_until(healthy, check["startPeriod"] + check["interval"] + check["timeout"] + 15,
               what="the agent's task HEALTHY by its health check")
    assert agent.probe.health(), "agent health on the external host"


def test_inside_a_container_the_ecs_agent_speaks_external_mode(anywhere_lab, app_task):
    task = app_task["described"]
    assert task["launchType"] == "EXTERNAL" and "availabilityZone" not in task
    code, out = _in_app(anywhere_lab, app_task, 'curl -sf "$ECS_CONTAINER_METADATA_URI_V4/task"')
    assert code == 0, out
    meta = json.loads(out)
    assert (meta["LaunchType"], meta["TaskARN"]) == ("EXTERNAL", app_task["arn"])
    assert "AvailabilityZone" not in meta and "VPCID" not in meta
    code, out = _in_app(anywhere_lab, app_task, 'cat "$ECS_CONTAINER_METADATA_FILE"')
    assert code == 0, out
    meta_file = json.loads(out)
    assert meta_file["ContainerInstanceARN"] == task["containerInstanceArn"]
    # The docs' metadata-file lookup of DD_AGENT_HOST finds nothing on premises.
    assert "HostPrivateIPv4Address" not in meta_file
    code, out = _in_app(anywhere_lab, app_task,
                        'echo "exec-env:${AWS_EXECUTION_ENV:-none}"; '
                        'curl -s -m 2 "${AWS_EC2_METADATA_SERVICE_ENDPOINT:-http://169.254.169.254}'
                        '/latest/meta-data/instance-id"')
    assert out.splitlines()[0] == "exec-env:none" and code != 0, (code, out)


def test_spans_and_series_carry_the_task_tags_and_the_hosts_own_name(anywhere_lab, host, agent, app_task):
    require_offers(agent.probe, "traces_v05", "dogstatsd_metrics")
    intervals = agent.probe.intervals()
    url = _app_url(anywhere_lab, app_task)
    started = time.monotonic()
    for _ in range(5):
        with _opener.open(f"{url}/work", timeout=10) as resp:
            assert resp.status == 200
    arn = app_task["arn"]
    cluster = anywhere_lab.world.cluster.name
    task_tags = {f"task_family:{FAMILY}", "task_version:1", f"ecs_cluster_name:{cluster}",
                 f"cluster_name:{cluster}", "ecs_container_name:web"}
    intake = anywhere_lab.intake
    with waiting_for(intervals.traces(), started) as timeout:
        spans = intake.wait_for_spans(SERVICE, timeout=timeout)
    tags = set(spans[0]["container_tags"])
    assert task_tags | {f"task_arn:{arn}"} <= tags, sorted(tags)
    assert not [t for t in tags if t.startswith("ecs_launch_type:")], sorted(tags)
    status = agent.probe.status()
    hostname = status["hostinfo"]["hostname"]
    assert spans[0]["hostname"] == hostname
    assert hostname == host.os_hostname == agent.hostname
    assert not re.fullmatch(r"i-[0-9a-f]+", hostname) and hostname != host.instance_id
    with waiting_for(intervals.metrics(), started) as timeout:
        series = intake.wait_for_metric("ecs_lab.app.requests", tags=[f"service:{SERVICE}"], timeout=timeout)
    got = set(series[0]["tags"])
    assert task_tags <= got, sorted(task_tags - got)
    assert not [t for t in got if t.startswith("ecs_launch_type:")], sorted(got)
    hosts = {r["name"] for r in series[0]["resources"] if r["type"] == "host"}
    assert hosts == {hostname}, series[0]["resources"]


def test_the_agent_tried_ec2_for_its_hostname_and_imds_got_nothing(anywhere_lab, host, agent):
    stats = agent.probe.status()["hostnameStats"]
    assert stats["provider"] in ("container", "os"), stats
    assert stats["errors"].get("aws", "").startswith("Unable to determine hostname from EC2"), stats
    # Nothing of the lab answers as this host's IMDS, and the lab's IMDS (which records every request
    # it gets, by instance) got none at all: this lab has no EC2 instance to ask it.
    (listed,) = anywhere_lab.status()["instances"]
    assert listed["imds_url"] is None, listed
    stats = _imds_stats(anywhere_lab)
    assert stats["total"] == 0, stats


def _imds_stats(anywhere_lab) -> dict:
    """What the lab's IMDS recorded: on docker its control API on the lab network (the IMDS
    container; never 169.254.x from the host), on local its model in this process."""
    if anywhere_lab.backend_name == "docker":
        (listed,) = anywhere_lab.status()["instances"]
        with _opener.open(f"{listed['imds_control_url']}/ecs-lab/stats", timeout=10) as resp:
            return json.load(resp)
    return anywhere_lab.backend.imds.model.stats.as_json()
