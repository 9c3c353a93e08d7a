"""fargate: the seed document's app + Datadog agent sidecar, registered with the aws CLI and run with
`run-task --launch-type FARGATE` on a lab with no EC2 instance (either backend).

What a user checks on ECS, and what this proves:
- the task runs with launch type FARGATE, no container instance, an ENI with its private address,
  the subnet's availability zone and connectivity;
- inside the task: task metadata v4 says FARGATE with the task's identity and limits, `/task/stats`
  has every container, and IMDS is unreachable (as from a Fargate task);
- the app's traces (to localhost:8126) and DogStatsD metrics (to localhost:8125) reach the intake
  through the sidecar with the task's tags; the sidecar's `ecs_fargate` check sends `ecs.fargate.*`.

The agent is a black box: its container is reached with `agent ...` commands (docker exec) and every
wait is one of its own intervals (lab.agent_probe).
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from lab.agent_probe import AgentProbe, waiting_for
from lab.world import wait_until

TASKDEF = Path(__file__).with_name("app-with-agent-sidecar.json")
FAMILY = "ecs-lab-fargate-web"
SERVICE = "fargate-web"
FARGATE_METRICS = ("ecs.fargate.cpu.usage", "ecs.fargate.mem.usage", "ecs.fargate.mem.limit",
                   "ecs.fargate.io.bytes.read", "ecs.fargate.net.bytes_rcvd", "ecs.fargate.cpu.task.limit",
                   "ecs.fargate.mem.task.limit")
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# A task is RUNNING once its containers started and its agent sidecar is ready: on docker, when
# docker's health check first passes, one `interval` (30 s) after the start, a second try one more.
RUNNING_WITHIN = 150


@pytest.fixture(scope="module")
def fargate_task(fargate_lab):
    """The document's task definition registered with the aws CLI and run on FARGATE."""
    fl = fargate_lab
    registered = fl.aws("ecs", "register-task-definition", "--cli-input-json", f"file://{TASKDEF}")
    assert registered["taskDefinition"]["compatibilities"] == ["EC2", "FARGATE"]
    subnets = fl.aws("ec2", "describe-subnets", "--filters", "Name=default-for-az,Values=true")["Subnets"]
    subnet = sorted(subnets, key=lambda s: s["AvailabilityZone"])[0]
    net = json.dumps({"awsvpcConfiguration": {"subnets": [subnet["SubnetId"]], "assignPublicIp": "DISABLED"}})
    out = fl.aws("ecs", "run-task", "--cluster", fl.name, "--task-definition", FAMILY, "--launch-type",
                 "FARGATE", "--network-configuration", net)
    assert out["failures"] == [], out["failures"]
    arn = out["tasks"][0]["taskArn"]

    task = fl.wait_running(arn, RUNNING_WITHIN, what="the Fargate task RUNNING")
    yield {"arn": arn, "described": task, "subnet": subnet}
    fl.ecs.stop_task(cluster=fl.name, task=arn, reason="scenario done")


@pytest.fixture(scope="module")
def probe(fargate_lab, fargate_task) -> AgentProbe:
    backend = fargate_lab.lab.backend
    return AgentProbe(lambda argv: backend.exec_in_container(fargate_task["arn"], "datadog-agent", argv),
                      None)


def _in_task(fargate_lab, fargate_task, container: str, script: str) -> tuple[int, str]:
    return fargate_lab.lab.backend.exec_in_container(fargate_task["arn"], container, ["sh", "-c", script])


def test_the_task_runs_on_fargate_without_an_instance(fargate_lab, fargate_task):
    task, subnet = fargate_task["described"], fargate_task["subnet"]
    assert task["launchType"] == "FARGATE" and "containerInstanceArn" not in task
    assert task["availabilityZone"] == subnet["AvailabilityZone"]
    assert task["connectivity"] == "CONNECTED"
    details = {d["name"]: d["value"] for d in task["attachments"][0]["details"]}
    assert details["subnetId"] == subnet["SubnetId"] and details["privateIPv4Address"]
    assert fargate_lab.ecs.list_container_instances(cluster=fargate_lab.name)["containerInstanceArns"] == []
    assert {c["lastStatus"] for c in task["containers"]} == {"RUNNING"}


def test_inside_the_task_metadata_v4_only(fargate_lab, fargate_task):
    code, out = _in_task(fargate_lab, fargate_task, "web",
                         'curl -sf "$ECS_CONTAINER_METADATA_URI_V4/task"')
    assert code == 0, out
    meta = json.loads(out)
    assert meta["LaunchType"] == "FARGATE" and meta["TaskARN"] == fargate_task["arn"]
    assert meta["Family"] == FAMILY and meta["Revision"] == "1"
    assert meta["Cluster"].endswith(f":cluster/{fargate_lab.name}")
    assert meta["AvailabilityZone"] == fargate_task["subnet"]["AvailabilityZone"]
    assert meta["Limits"] == {"CPU": 1.0, "Memory": 2048}
    assert {c["Name"] for c in meta["Containers"]} == {"web", "datadog-agent"}
    code, out = _in_task(fargate_lab, fargate_task, "web",
                         'curl -sf "$ECS_CONTAINER_METADATA_URI_V4/task/stats"')
    assert code == 0, out
    stats = json.loads(out)
    assert set(stats) == {c["DockerId"] for c in meta["Containers"]}
    assert all(s.get("cpu_stats") and s.get("memory_stats") for s in stats.values())
    # No IMDS from a Fargate task: where an SDK looks for it (its endpoint variable, else
    # 169.254.169.254, which the docker backend's task cannot route to) nothing answers, and the
    # task's environment says Fargate, with no container metadata file (an EC2 feature).
    code, out = _in_task(fargate_lab, fargate_task, "web",
                         'echo "$AWS_EXECUTION_ENV ${ECS_CONTAINER_METADATA_FILE:-nofile}"; '
                         'curl -s -m 2 "${AWS_EC2_METADATA_SERVICE_ENDPOINT:-http://169.254.169.254}'
                         '/latest/meta-data/instance-id"')
    assert out.split("\n")[0] == "AWS_ECS_FARGATE nofile" and code != 0, (code, out)


def _app_url(fargate_lab, fargate_task) -> str:
    address = fargate_lab.lab.cluster.status()["fargate_tasks"][fargate_task["arn"]]
    return f"http://{address}:8080"


@pytest.mark.agent_offers("traces_v05", "dogstatsd_metrics")  # the app: ddtrace, DogStatsD
def test_traces_and_metrics_go_through_the_sidecar_with_task_tags(fargate_lab, fargate_task, probe):
    intervals = probe.intervals()
    url = _app_url(fargate_lab, fargate_task)
    started = time.monotonic()
    for _ in range(5):
        with _opener.open(f"{url}/work", timeout=10) as resp:
            assert resp.status == 200
    arn = fargate_task["arn"]
    region = arn.split(":")[3]
    az = fargate_task["subnet"]["AvailabilityZone"]
    task_tags = {f"task_family:{FAMILY}", "task_version:1", f"ecs_cluster_name:{fargate_lab.name}",
                 f"region:{region}", f"availability_zone:{az}", "ecs_launch_type:fargate"}
    with waiting_for(intervals.traces(), started) as timeout:
        spans = fargate_lab.intake.wait_for_spans(SERVICE, timeout=timeout)
    tags = set(spans[0]["container_tags"])
    assert task_tags | {f"task_arn:{arn}", "ecs_container_name:web"} <= tags, sorted(tags)
    assert spans[0]["hostname"] == "", "an agent sidecar on Fargate reports no hostname"
    with waiting_for(intervals.metrics(), started) as timeout:
        series = fargate_lab.intake.wait_for_metric("ecs_lab.app.requests", tags=[f"service:{SERVICE}"],
                                                    timeout=timeout)
    got = set(series[0]["tags"])
    assert task_tags <= got, sorted(task_tags - got)


@pytest.mark.agent_offers("check_metrics")
def test_the_ecs_fargate_check_sends_its_metrics(fargate_lab, fargate_task, probe):
    intervals = probe.intervals()
    arn = fargate_task["arn"]
    # Rates need two check runs; started counts from now, the task has run for a while already.
    with waiting_for(intervals.check_metrics(runs=2)) as timeout:
        for name in FARGATE_METRICS:
            fargate_lab.intake.wait_for_metric(name, tags=[f"task_arn:{arn}"], timeout=timeout)
        fargate_lab.intake.wait_for_check_run("fargate_check", status=0, timeout=timeout)
    web_usage = fargate_lab.intake.metrics("ecs.fargate.mem.usage", tags=["ecs_container_name:web"])
    assert web_usage and all(p["value"] > 0 for s in web_usage for p in s["points"])
    tags = set(web_usage[0]["tags"])
    assert {f"ecs_task_family:{FAMILY}", "ecs_task_version:1", f"ecs_cluster:{fargate_lab.name}"} <= tags
    limit = fargate_lab.intake.metrics("ecs.fargate.mem.task.limit")
    assert {p["value"] for s in limit for p in s["points"]} == {2048 * 1024**2}
    net = fargate_lab.intake.metrics("ecs.fargate.net.bytes_rcvd")
    assert any(t.startswith("interface:") for t in net[0]["tags"])


@pytest.mark.agent_offers("agent_health")
def test_the_sidecar_is_healthy_as_agent_health_says(fargate_lab, fargate_task, probe):
    health = probe.health()
    assert health, f"agent health in the Fargate sidecar: {health}"
    # ECS runs the document's health check (`agent health` every 30 s, timeout 5, start period 60):
    # the container and the task become HEALTHY on the first success; a check that fails (or times
    # out on a loaded machine) in the start period is not counted, and the next comes an interval on.
    check = json.loads(TASKDEF.read_text())["containerDefinitions"][1]["healthCheck"]

    def healthy() -> dict | None:
        ecs = fargate_lab.ecs
        task = ecs.describe_tasks(cluster=fargate_lab.name, tasks=[fargate_task["arn"]])["tasks"][0]
        agent = next(c for c in task["containers"] if c["name"] == "datadog-agent")
        return task if agent.get("healthStatus") == "HEALTHY" else None

    task = wait_until(healthy, check["startPeriod"] + check["interval"] + check["timeout"] + 15,
                      what="the agent container HEALTHY by the task definition's health check")
    assert task["healthStatus"] == "HEALTHY"
