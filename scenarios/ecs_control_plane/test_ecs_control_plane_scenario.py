"""ecs_control_plane: the docs' agent task definition and a sample app, registered with the real
`aws` CLI / boto3 against the lab's control plane, run as ECS runs them; then the mistakes ECS users
make, each with a failure text that names the field and the fix.

The agent runs as a DAEMON service on 2 instances; an app task is started on each instance (`aws
ecs start-task --container-instances`, as the docs' user-data script does). Each app finds its
agent through IMDS `local-ipv4`, so its traces must arrive with its own instance's hostname: an app
on instance 2 never reports through the agent of instance 1.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from pathlib import Path

import pytest
import requests

from lab.agent_probe import AgentProbe, NotOffered, waiting_for
from lab.ecs.diagnose import agent_findings, secrets_findings
from lab.world import wait_until

ROOT = Path(__file__).resolve().parents[2]
AGENT_TASKDEFS = ROOT / "lab" / "ecs" / "taskdefs"
APP_TASKDEFS = ROOT / "lab" / "apps" / "taskdefs"

AGENT_SERVICE = "datadog-agent"
APP_FAMILY = "ecs-lab-web-imdsv1"


def _agent_revision(lab, td: dict) -> dict:
    """Put `td` behind the DAEMON service (create it, or roll it to this revision) and wait."""
    services = lab.ecs.describe_services(cluster=lab.name, services=[AGENT_SERVICE])["services"]
    if services and services[0]["status"] == "ACTIVE":
        # Rolling the service to a new revision is plumbing here (creating it is what users' CLI does).
        lab.ecs.update_service(cluster=lab.name, service=AGENT_SERVICE,
                               taskDefinition=td["taskDefinitionArn"])
    else:
        lab.aws("ecs", "create-service", "--cluster", lab.name, "--service-name", AGENT_SERVICE,
                "--task-definition", td["taskDefinitionArn"], "--scheduling-strategy", "DAEMON")

    def settled():
        tasks = lab.tasks(service=AGENT_SERVICE)
        mine = [t for t in tasks if t["taskDefinitionArn"] == td["taskDefinitionArn"]
                and t["lastStatus"] == "RUNNING"]
        return mine if len(mine) == 2 and len(tasks) == 2 else None

    tasks = wait_until(settled, 40, what=f"2 RUNNING agent tasks of {td['taskDefinitionArn']} "
                                          f"(service events: {_events(lab)})")
    # RUNNING says the container started; the agent answers its CLI (`agent config`, `status`) once
    # its API listens, some time after: a scenario asks it once `agent health` passes, as a user does.
    for t in tasks:
        arn = t["taskArn"]
        probe = AgentProbe(lambda argv, a=arn: lab.backend.exec_in_container(a, "datadog-agent", argv), None)
        with contextlib.suppress(NotOffered):  # an agent kind without the CLI: nothing to ask it
            probe.wait_healthy(60)
    return tasks


def _events(lab) -> list[str]:
    svc = lab.ecs.describe_services(cluster=lab.name, services=[AGENT_SERVICE])["services"]
    return [e["message"] for e in svc[0].get("events", [])[:3]] if svc else []


def _app_url(lab, task_arn: str) -> str:
    rc = lab.backend.tasks[task_arn].containers[0]
    port = wait_until(lambda: Path(rc.env["LAB_APP_PORT_FILE"]).read_text().strip(), 20,
                      what=f"the app of {task_arn} to listen")
    return f"http://{rc.env['LAB_APP_BIND']}:{port}"


@pytest.fixture(scope="module")
def apps(ecs_lab):
    """The sample app registered with boto3 and started on each instance with `aws ecs start-task`."""
    td = json.loads((APP_TASKDEFS / "imdsv1.json").read_text())
    registered = ecs_lab.ecs.register_task_definition(**td)["taskDefinition"]
    out = {}
    instances = list(ecs_lab.world.instances)
    # One `aws ecs start-task` per instance, as each instance's user data runs it: concurrently.
    each = ecs_lab.aws_each([("ecs", "start-task", "--cluster", ecs_lab.name, "--task-definition",
                              registered["taskDefinitionArn"], "--container-instances", inst.arn)
                             for inst in instances])
    for inst, started in zip(instances, each, strict=True):
        assert not started["failures"], started["failures"]
        out[inst.index] = started["tasks"][0]["taskArn"]

    def running():
        tasks = ecs_lab.tasks(family=APP_FAMILY)
        return len([t for t in tasks if t["lastStatus"] == "RUNNING"]) == 2

    wait_until(running, 30, what="2 RUNNING app tasks")
    return {n: {"arn": arn, "url": _app_url(ecs_lab, arn), "revision": registered["revision"],
                "docker_id": ecs_lab.world.find_task(arn)[1].containers[0].docker_id}
            for n, arn in out.items()}


@pytest.mark.agent_offers("traces_v05", "dogstatsd_metrics")  # the app's ddtrace sends /v0.5/traces
def test_docs_agent_runs_once_per_instance_and_apps_report_through_their_own(ecs_lab, apps,
                                                                              task_agent_probe):
    td = ecs_lab.register(AGENT_TASKDEFS / "datadog-agent-ecs-full.json")
    agents = _agent_revision(ecs_lab, td)
    assert {t["containerInstanceArn"] for t in agents} == {i.arn for i in ecs_lab.world.instances}
    # The ECS introspection API / task metadata (the world) describe the same tasks, same ARNs.
    for inst in ecs_lab.world.instances:
        world_agents = [t.arn for t in inst.tasks if t.family == "datadog-agent-task"
                        and t.known_status == "RUNNING"]
        assert world_agents == [t["taskArn"] for t in agents if t["containerInstanceArn"] == inst.arn]

    # The ECS agent introspection API of each instance and the app's task metadata (v4) name the
    # same tasks as the control plane.
    for inst in ecs_lab.world.instances:
        listed = requests.get(ecs_lab.backend.ecs_agent_urls[inst.index] + "/v1/tasks", timeout=5).json()
        arns = {t["Arn"] for t in listed["Tasks"] if t["KnownStatus"] == "RUNNING"}
        assert {apps[inst.index]["arn"]} | {t["taskArn"] for t in agents
                                           if t["containerInstanceArn"] == inst.arn} <= arns
        rc = ecs_lab.backend.tasks[apps[inst.index]["arn"]].containers[0]
        meta = requests.get(rc.env["ECS_CONTAINER_METADATA_URI_V4"] + "/task", timeout=5).json()
        assert meta["TaskARN"] == apps[inst.index]["arn"] and meta["Family"] == APP_FAMILY

    # Waits from the agent of instance 1 (both run the same task definition).
    first = ecs_lab.world.instance(1).arn
    (agent_arn,) = [t["taskArn"] for t in agents if t["containerInstanceArn"] == first]
    intervals = task_agent_probe(ecs_lab.backend, agent_arn).intervals()
    for app in apps.values():
        requests.get(app["url"] + "/work?ms=1&depth=1", timeout=10)
    sent = time.monotonic()
    for inst in ecs_lab.world.instances:
        app = apps[inst.index]
        with waiting_for(intervals.traces(), sent) as timeout:
            spans = ecs_lab.intake.wait_for_spans(
                service="ecs-lab-web", timeout=timeout,
                predicate=lambda s, d=app["docker_id"]: s.get("container_id") == d)
        hosts = {s["hostname"] for s in spans}
        assert hosts == {inst.instance_id}, (
            f"traces of the app on instance {inst.index} arrived with hostname(s) {sorted(hosts)}; "
            f"expected only its own instance's {inst.instance_id}: it must report through its own agent")

    # Metrics carry the task's family and version, and come from each app's own instance.
    for inst in ecs_lab.world.instances:
        family_tags = [f"task_family:{APP_FAMILY}", f"task_version:{apps[inst.index]['revision']}"]
        with waiting_for(intervals.metrics(), sent) as timeout:
            ecs_lab.intake.wait_for_metric("ecs_lab.app.requests", tags=family_tags, timeout=timeout,
                                           predicate=lambda s, i=inst.instance_id: _host(s) == i)


def _host(series: dict) -> str | None:
    for r in series.get("resources") or []:
        if r.get("type") == "host":
            return r.get("name")
    return series.get("host")


@pytest.mark.agent_offers("traces_v05")  # no trace proves something only where the app's traces arrive
def test_missing_8126_host_port_leaves_traces_nowhere_and_says_why(ecs_lab, apps, task_agent_probe):
    td = json.loads((AGENT_TASKDEFS / "datadog-agent-ecs-apm.json").read_text())
    td["containerDefinitions"][0]["portMappings"] = [{"containerPort": 8126, "protocol": "tcp"}]
    findings = agent_findings(td)
    assert [f.code for f in findings] == ["apm_host_port"]
    # Registered in-process: the aws CLI's register-task-definition is the first test's; this one is
    # about what the missing hostPort does.
    agents = _agent_revision(ecs_lab, ecs_lab.ecs.register_task_definition(**td)["taskDefinition"])

    inst = ecs_lab.world.instance(1)

    def refused() -> bool:
        # The previous revision's agent is stopped once the new one runs (a rolling deployment):
        # until then it still holds the port.
        try:
            socket.create_connection((inst.private_ip, 8126), timeout=2).close()
        except ConnectionRefusedError:
            return True
        return False

    wait_until(refused, 30, interval=0.2,
               what=f"{inst.private_ip}:8126 to refuse connections once the old agent task stopped")
    # How long a trace takes to reach the intake when the path works: the tracer's writer interval
    # (ddtrace's DD_TRACE_WRITER_INTERVAL_SECONDS, 1 s by default) plus the trace writer flush of the
    # running agent of instance 1, plus a margin. That long without the trace: it never came.
    (agent_arn,) = [t["taskArn"] for t in agents if t["containerInstanceArn"] == inst.arn]
    app_env = ecs_lab.backend.tasks[apps[1]["arn"]].containers[0].env
    tracer_interval = float(app_env.get("DD_TRACE_WRITER_INTERVAL_SECONDS", 1.0))
    wait = task_agent_probe(ecs_lab.backend, agent_arn).intervals().traces(tracer_flush=tracer_interval)
    work = requests.get(apps[1]["url"] + "/work?ms=1&depth=1", timeout=10).json()
    with pytest.raises(AssertionError, match="no span for service=ecs-lab-web"):
        ecs_lab.intake.wait_for_spans(service="ecs-lab-web", timeout=wait.seconds,
                                      predicate=lambda s: str(s.get("trace_id")) == str(work["trace_id"]))
    # The failure text a user reads:
    assert "no hostPort 8126/tcp" in str(findings[0]) and '"hostPort": 8126' in str(findings[0])


@pytest.mark.agent_offers("dogstatsd_metrics")  # the agent's own DogStatsD settings
def test_dogstatsd_without_non_local_traffic_is_named(ecs_lab):
    td = json.loads((AGENT_TASKDEFS / "datadog-agent-ecs-dogstatsd.json").read_text())
    env = td["containerDefinitions"][0]["environment"]
    td["containerDefinitions"][0]["environment"] = [e for e in env
                                                    if e["name"] != "DD_DOGSTATSD_NON_LOCAL_TRAFFIC"]
    (finding,) = agent_findings(td)
    assert finding.code == "dogstatsd_non_local"
    assert "ignores metrics from other containers" in finding.message
    _agent_revision(ecs_lab, ecs_lab.ecs.register_task_definition(**td)["taskDefinition"])
    # The agent's DogStatsD listens on its own localhost only: the instance IP has no listener.
    inst = ecs_lab.world.instance(1)
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.bind((inst.private_ip, 8125))  # would fail with EADDRINUSE if the agent held it
    finally:
        probe.close()


def test_fips_sidecar_over_127_0_0_1_in_bridge_mode_is_named():
    td = json.loads((AGENT_TASKDEFS / "datadog-agent-ecs-fips.json").read_text())
    td.pop("networkMode")  # the docs' fragment pasted into a bridge-mode task definition
    (finding,) = agent_findings(td)
    assert finding.code == "fips_bridge"
    assert "each container of the task has its own 127.0.0.1" in finding.message


TRUST_ECS_TASKS = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]}


def _execution_role(lab) -> str:
    """The task execution role as the ECS docs have users create it (`aws iam create-role`)."""
    found = lab.aws("iam", "get-role", "--role-name", "ecsTaskExecutionRole", check=False)
    if "Role" in found:
        return found["Role"]["Arn"]
    return lab.aws("iam", "create-role", "--role-name", "ecsTaskExecutionRole",
                   "--assume-role-policy-document", json.dumps(TRUST_ECS_TASKS))["Role"]["Arn"]


def _agent_with_secrets(lab, family: str, secrets: list[dict], role: str | None) -> dict:
    td = json.loads((AGENT_TASKDEFS / "datadog-agent-ecs.json").read_text())
    agent = td["containerDefinitions"][0]
    names = {s["name"] for s in secrets}
    agent["environment"] = [e for e in agent["environment"] if e["name"] not in names]
    agent["secrets"] = secrets
    td["family"] = family
    if role:
        td["executionRoleArn"] = role
    path = lab.backend.run_dir / f"{family}.json"
    path.write_text(json.dumps(td))
    return lab.register(path)


def _run_until_stopped(lab, registered: dict) -> dict:
    run = lab.aws("ecs", "run-task", "--cluster", lab.name, "--task-definition",
                  registered["taskDefinitionArn"])
    arn = run["tasks"][0]["taskArn"]

    def stopped():
        t = lab.ecs.describe_tasks(cluster=lab.name, tasks=[arn])["tasks"][0]
        return t if t["lastStatus"] == "STOPPED" else None

    return wait_until(stopped, 20, what=f"task {arn} to stop")


def test_dd_api_key_secret_that_does_not_exist_stops_the_task_with_ecs_reason(ecs_lab):
    region = ecs_lab.world.cluster.region
    missing = f"arn:aws:secretsmanager:{region}:123456789012:secret:datadog-api-key-Xy12Ab"
    registered = _agent_with_secrets(ecs_lab, "datadog-agent-secret-check",
                                     [{"name": "DD_API_KEY", "valueFrom": missing}], _execution_role(ecs_lab))
    reason = _run_until_stopped(ecs_lab, registered)["stoppedReason"]
    assert reason.startswith("ResourceInitializationError: unable to pull secrets or registry auth")
    assert missing in reason and "ResourceNotFoundException" in reason
    (finding,) = secrets_findings(reason)
    assert "aws secretsmanager describe-secret" in finding.message


def test_secrets_without_an_execution_role_stop_the_task_as_ecs_does(ecs_lab):
    created = ecs_lab.aws("secretsmanager", "create-secret", "--name", f"datadog-api-key-{ecs_lab.name}-x",
                          "--secret-string", "1" * 32)
    registered = _agent_with_secrets(ecs_lab, "datadog-agent-no-role",
                                     [{"name": "DD_API_KEY", "valueFrom": created["ARN"]}], None)
    reason = _run_until_stopped(ecs_lab, registered)["stoppedReason"]
    assert reason == ("ResourceInitializationError: unable to pull secrets or registry auth: execution "
                      "resource retrieval failed: ASM secret resource: unable to find execution role "
                      "credentials")
    (finding,) = secrets_findings(reason)
    assert finding.code == "execution_role_missing" and "ecs-tasks.amazonaws.com" in finding.message


@pytest.mark.agent_offers("agent_config", "check_metrics")  # `agent config`; its checks' series
def test_the_api_key_from_secrets_manager_reaches_the_intake_and_ssm_sets_the_tags(ecs_lab, task_agent_probe):
    """The docs' recommendation: DD_API_KEY from a Secrets Manager secret (and here DD_TAGS from an SSM
    parameter), fetched with the task's execution role before the agent starts."""
    key = "5ec4e7" + "a" * 21 + "asm01"
    secret = ecs_lab.aws("secretsmanager", "create-secret", "--name", f"datadog-api-key-{ecs_lab.name}",
                         "--secret-string", key)
    ecs_lab.aws("ssm", "put-parameter", "--name", f"/{ecs_lab.name}/datadog/tags", "--type", "String",
                "--value", "team:platform")
    region = ecs_lab.world.cluster.region
    parameter = f"arn:aws:ssm:{region}:123456789012:parameter/{ecs_lab.name}/datadog/tags"
    registered = _agent_with_secrets(ecs_lab, "datadog-agent-secrets",
                                     [{"name": "DD_API_KEY", "valueFrom": secret["ARN"]},
                                      {"name": "DD_TAGS", "valueFrom": parameter}], _execution_role(ecs_lab))
    agents = _agent_revision(ecs_lab, registered)
    probe = task_agent_probe(ecs_lab.backend, agents[0]["taskArn"])
    config = probe.config()
    assert config["api_key"].endswith("asm01") and "team:platform" in config["tags"]
    with waiting_for(probe.intervals().flush_after()) as timeout:
        def keyed() -> list[dict] | None:
            rows = ecs_lab.intake.payloads("/api/v2/series", fmt="raw")
            return [r for r in rows if r["api_key"] == key] or None
        rows = wait_until(keyed, timeout, what="a series payload sent with the secret's key as DD-API-KEY")
    assert rows
