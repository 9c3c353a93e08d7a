"""fargate_firelens: the seed document's Fargate task (app + FireLens log router + Datadog agent
sidecar), registered with the aws CLI and run with `run-task --launch-type FARGATE` on a lab with no
EC2 instance (either backend).

What a user checks, and what this proves:
- the app's lines go through FireLens (its `awsfirelens` options: Name datadog, Host, TLS, apikey,
  dd_service, dd_source, dd_tags, dd_message_key, provider ecs, compress gzip) to the intake with
  the document's service, source, `env:prod` and the task's ECS fields as tags, and no
  `ec2_instance_id` (a Fargate task has no instance);
- the app's traces (localhost:8126) and DogStatsD metrics (localhost:8125) reach the intake through
  the sidecar with the task's tags, and the sidecar's `ecs_fargate` check sends `ecs.fargate.*`;
- the agent's health check as the document sets it (retries 2, startPeriod 60) makes the container
  and the task HEALTHY.

Waits: FireLens, fluent-bit's 1 s flush + the router's start; the agent, its own intervals
(lab.agent_probe: `agent config` in its container, else its documented defaults).
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from lab.agent_probe import AgentProbe, waiting_for
from lab.world import wait_until

TASKDEF = Path(__file__).with_name("app-firelens-agent-sidecar.json")
DOC = json.loads(TASKDEF.read_text())
FAMILY = DOC["family"]
APP, ROUTER, AGENT = (c["name"] for c in DOC["containerDefinitions"])
FIRELENS = DOC["containerDefinitions"][0]["logConfiguration"]["options"]
SERVICE = FIRELENS["dd_service"]
FLUENT_BIT_FLUSH = 1.0  # fluent-bit's default `Flush`
ROUTER_START_AND_MARGIN = 20.0  # the router, then the app after it (START dependency), on 2 busy cores
FARGATE_METRICS = ("ecs.fargate.cpu.usage", "ecs.fargate.mem.usage", "ecs.fargate.mem.limit",
                   "ecs.fargate.cpu.task.limit", "ecs.fargate.mem.task.limit")
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# A task is RUNNING once its containers started and its agent sidecar is ready: on docker, when
# docker's health check first passes, one `interval` (30 s) after the start, a second try one more.
RUNNING_WITHIN = 150


@pytest.fixture(scope="module")
def fargate_task(fargate_lab):
    fl = fargate_lab
    registered = fl.aws("ecs", "register-task-definition", "--cli-input-json", f"file://{TASKDEF}")
    assert registered["taskDefinition"]["requiresCompatibilities"] == ["FARGATE"]
    subnets = fl.aws("ec2", "describe-subnets", "--filters", "Name=default-for-az,Values=true")["Subnets"]
    subnet = sorted(subnets, key=lambda s: s["AvailabilityZone"])[0]
    net = json.dumps({"awsvpcConfiguration": {"subnets": [subnet["SubnetId"]], "assignPublicIp": "DISABLED"}})
    started = time.monotonic()
    out = fl.aws("ecs", "run-task", "--cluster", fl.name, "--task-definition", FAMILY, "--launch-type",
                 "FARGATE", "--network-configuration", net)
    assert out["failures"] == [], out["failures"]
    arn = out["tasks"][0]["taskArn"]

    task = fl.wait_running(arn, RUNNING_WITHIN, what="the Fargate FireLens task RUNNING")
    yield {"arn": arn, "described": task, "subnet": subnet, "started": started}
    fl.ecs.stop_task(cluster=fl.name, task=arn, reason="scenario done")


@pytest.fixture(scope="module")
def probe(fargate_lab, fargate_task) -> AgentProbe:
    backend = fargate_lab.lab.backend
    return AgentProbe(lambda argv: backend.exec_in_container(fargate_task["arn"], AGENT, argv), None)


def _task_tags(fargate_lab, fargate_task) -> set[str]:
    arn = fargate_task["arn"]
    return {f"task_family:{FAMILY}", "task_version:1", f"ecs_cluster_name:{fargate_lab.name}",
            f"region:{arn.split(':')[3]}", f"availability_zone:{fargate_task['subnet']['AvailabilityZone']}",
            "ecs_launch_type:fargate"}


def test_every_container_runs_on_fargate(fargate_lab, fargate_task):
    task = fargate_task["described"]
    assert task["launchType"] == "FARGATE" and "containerInstanceArn" not in task
    assert {c["name"]: c["lastStatus"] for c in task["containers"]} == {
        APP: "RUNNING", ROUTER: "RUNNING", AGENT: "RUNNING"}


def test_the_apps_lines_reach_the_intake_through_firelens(fargate_lab, fargate_task):
    arn = fargate_task["arn"]
    # The app's first line (the web app says where it listens), sent by the router as fluent-bit's
    # datadog output sends it, with the document's dd_service / dd_source / dd_tags.
    got = fargate_lab.intake.wait_for_logs(SERVICE, message_matching="listening on",
                                           timeout=FLUENT_BIT_FLUSH + ROUTER_START_AND_MARGIN)
    entry = got[0]
    assert entry["ddsource"] == FIRELENS["dd_source"]
    assert "ecs-lab web: listening on" in entry["message"]
    expected = {"env:prod", f"cluster_name:{fargate_lab.name}", f"task_family:{FAMILY}", "task_version:1",
                f"task_arn:{arn}", f"region:{arn.split(':')[3]}", f"container_name:{APP}"}
    tags = set(entry["tags"])
    assert expected <= tags, f"missing {sorted(expected - tags)}"
    # ECS's generated configuration adds ec2_instance_id on EC2 only.
    assert "ec2_instance_id" not in entry
    # Only the app logs through FireLens: the router's and the agent's own output stay out.
    names = {t for e in fargate_lab.intake.logs() for t in e["tags"] if t.startswith("container_name:")}
    assert names == {f"container_name:{APP}"}


@pytest.mark.agent_offers("traces_v05", "dogstatsd_metrics")  # the app: ddtrace, DogStatsD
def test_traces_and_metrics_go_through_the_sidecar_with_task_tags(fargate_lab, fargate_task, probe):
    intervals = probe.intervals()
    address = fargate_lab.lab.cluster.status()["fargate_tasks"][fargate_task["arn"]]
    started = time.monotonic()
    for _ in range(5):
        with _opener.open(f"http://{address}:8080/work", timeout=10) as resp:
            assert resp.status == 200
    task_tags = _task_tags(fargate_lab, fargate_task)
    with waiting_for(intervals.traces(), started) as timeout:
        spans = fargate_lab.intake.wait_for_spans(SERVICE, timeout=timeout)
    tags = set(spans[0]["container_tags"])
    assert task_tags | {f"task_arn:{fargate_task['arn']}", f"ecs_container_name:{APP}"} <= tags, sorted(tags)
    with waiting_for(intervals.metrics(), started) as timeout:
        series = fargate_lab.intake.wait_for_metric("ecs_lab.app.requests", tags=[f"service:{SERVICE}"],
                                                    timeout=timeout)
    got = set(series[0]["tags"])
    assert task_tags | {"env:prod"} <= got, sorted(task_tags - got)


@pytest.mark.agent_offers("check_metrics")
def test_the_ecs_fargate_check_sends_its_metrics_for_all_three_containers(fargate_lab, fargate_task, probe):
    arn = fargate_task["arn"]
    expected = {f"ecs_container_name:{n}" for n in (APP, ROUTER, AGENT)}

    def containers() -> set[str]:
        usage = fargate_lab.intake.metrics("ecs.fargate.mem.usage", tags=[f"task_arn:{arn}"])
        return {t for s in usage for t in s["tags"] if t.startswith("ecs_container_name:")}

    with waiting_for(probe.intervals().check_metrics(runs=2)) as timeout:
        for name in FARGATE_METRICS:
            fargate_lab.intake.wait_for_metric(name, tags=[f"task_arn:{arn}"], timeout=timeout)
        # Each check run reports every container of the task; the first series may hold fewer.
        wait_until(lambda: containers() >= expected, timeout,
                   what=f"ecs.fargate.mem.usage for each of {sorted(expected)}")
    assert containers() == expected
    limit = fargate_lab.intake.metrics("ecs.fargate.mem.task.limit", tags=[f"task_arn:{arn}"])
    assert {p["value"] for s in limit for p in s["points"]} == {int(DOC["memory"]) * 1024**2}


@pytest.mark.agent_offers("agent_health")
def test_the_documents_health_check_makes_the_sidecar_healthy(fargate_lab, fargate_task, probe):
    assert probe.health(), "agent health in the sidecar"
    check = DOC["containerDefinitions"][2]["healthCheck"]
    described = fargate_lab.ecs.describe_task_definition(taskDefinition=FAMILY)["taskDefinition"]
    kept = described["containerDefinitions"][2]["healthCheck"]
    assert (kept["retries"], kept["startPeriod"]) == (check["retries"], check["startPeriod"])

    def healthy() -> dict | None:
        ecs = fargate_lab.ecs
        task = ecs.describe_tasks(cluster=fargate_lab.name, tasks=[fargate_task["arn"]])["tasks"][0]
        agent = next(c for c in task["containers"] if c["name"] == AGENT)
        assert agent.get("healthStatus") != "UNHEALTHY", "the agent's health check failed `retries` times"
        return task if agent.get("healthStatus") == "HEALTHY" else None

    # ECS runs the first check at once; a failure inside startPeriod does not count, and the next
    # check comes an interval later: HEALTHY by startPeriod + interval + timeout (+ margin).
    deadline = check["startPeriod"] + check["interval"] + check["timeout"] + 15
    elapsed = time.monotonic() - fargate_task["started"]
    task = wait_until(healthy, max(deadline - elapsed, 5), what="the agent container HEALTHY")
    assert task["healthStatus"] == "HEALTHY"


def test_failures_in_the_start_period_do_not_count_towards_retries(fargate_lab, fargate_task):
    """The document's `retries` and `startPeriod` on a check that always fails (interval shortened so
    that more than `retries` runs fit well inside the start period): ECS keeps the container UNKNOWN,
    never UNHEALTHY, until the start period ends."""
    fl = fargate_lab
    check = DOC["containerDefinitions"][2]["healthCheck"]
    # Each run of the check leaves a line in the container (read back with an exec, as a user would).
    runs = f"/tmp/health-runs-{uuid.uuid4().hex[:8]}"
    interval = 5
    fl.ecs.register_task_definition(
        family="ecs-lab-fargate-startperiod", networkMode="awsvpc", requiresCompatibilities=["FARGATE"],
        cpu="256", memory="512", containerDefinitions=[{
            "name": "app", "image": "ecs-agent-lab/lab:latest", "essential": True,
            "entryPoint": ["sh", "-c", "exec sleep 600"],
            "healthCheck": {"command": ["CMD-SHELL", f"echo run >> {runs}; false"], "interval": interval,
                            "timeout": 5, "retries": check["retries"], "startPeriod": check["startPeriod"]}}])
    net = {"awsvpcConfiguration": {"subnets": [fargate_task["subnet"]["SubnetId"]]}}
    out = fl.ecs.run_task(cluster=fl.name, taskDefinition="ecs-lab-fargate-startperiod", launchType="FARGATE",
                          networkConfiguration=net)
    arn = out["tasks"][0]["taskArn"]
    started = time.monotonic()
    try:
        def app() -> dict:
            task = fl.ecs.describe_tasks(cluster=fl.name, tasks=[arn])["tasks"][0]
            assert task["lastStatus"] != "STOPPED", task.get("stoppedReason")
            return next(c for c in task["containers"] if c["name"] == "app")

        def failed_more_than_retries() -> bool:
            code, out = fl.lab.backend.exec_in_container(arn, "app", ["sh", "-c", f"cat {runs} || true"])
            return code == 0 and len(out.split()) > check["retries"]

        wait_until(failed_more_than_retries, (check["retries"] + 2) * interval + 30,
                   what=f"more than {check['retries']} failed health checks")
        assert time.monotonic() - started < check["startPeriod"], "too slow to observe the start period"
        assert app().get("healthStatus", "UNKNOWN") == "UNKNOWN", app()
    finally:
        # On the local backend the container's /tmp is the host's: leave nothing behind.
        with contextlib.suppress(Exception):
            fl.lab.backend.exec_in_container(arn, "app", ["rm", "-f", runs])
        fl.ecs.stop_task(cluster=fl.name, task=arn, reason="scenario done")
