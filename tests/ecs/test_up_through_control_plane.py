"""`ecs-lab up` deploys the stack through its ECS control plane, as users deploy on ECS: every
emulated instance is a container instance of the cluster, the agent runs as a DAEMON service (one
task per instance) and the sample app as a REPLICA service, and what the real `aws` CLI and boto3
(through localstack-client) see is what runs: the same task ARNs as the instances' ECS agent
introspection API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

import pytest

from lab.ecs import taskdef
from lab.ecs.agent_env import INTAKE_URL_KEYS
from lab.ecs.stack_services import (
    AGENT_SERVICE,
    APP_TASKDEF_DIR,
    agent_task_definition,
    app_task_definition,
)
from lab.pytest_plugin import free_subnet
from lab.stack import DEFAULT_FEATURES, Stack

INSTANCES = 2


def _cli(*args: str, env: dict, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def running_lab(tmp_path_factory):
    """`ecs-lab up --detach` on a free subnet, control plane on an ephemeral port; `down` after."""
    home = tmp_path_factory.mktemp("up-cp")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAB_", "DD_", "AWS_"))}
    env.update({"LAB_HOME": str(home), "NO_PROXY": "127.0.0.0/8", "no_proxy": "127.0.0.0/8"})
    up = _cli("up", "--detach", "--subnet", free_subnet(), "--instances", str(INSTANCES), "--app", "imdsv1",
              "--control-plane-port", "0", env=env)
    try:
        assert up.returncode == 0, f"ecs-lab up --detach failed:\n{up.stdout}\n{up.stderr}"
        state = json.loads(_cli("status", "--json", env=env).stdout)
        yield state, env
    finally:
        _cli("down", env=env)


def _aws(state: dict, env: dict, *args: str) -> dict:
    """The real aws CLI (awscli on this environment's botocore), as a user runs it."""
    aws_env = {**env, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": "/dev/null",
               "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
    out = subprocess.run([sys.executable, "-m", "awscli", "--endpoint-url", state["control_plane"],
                          "--output", "json", *args], env=aws_env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"aws {' '.join(args)} failed: {out.stderr}"
    return json.loads(out.stdout or "{}")


def _introspection_task_arns(instance: dict) -> set[str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{instance['ecs_endpoint']}/v1/tasks", timeout=5) as resp:
        return {t["Arn"] for t in json.loads(resp.read())["Tasks"]}


def test_up_registers_every_instance_as_a_container_instance(running_lab):
    state, env = running_lab
    assert state["control_plane"].startswith("http://127."), state.get("control_plane")
    listed = _aws(state, env, "ecs", "list-container-instances", "--cluster", state["cluster"])
    arns = listed["containerInstanceArns"]
    assert sorted(arns) == sorted(state["container_instances"].values())
    described = _aws(state, env, "ecs", "describe-container-instances", "--cluster", state["cluster"],
                     "--container-instances", *arns)["containerInstances"]
    assert {ci["ec2InstanceId"] for ci in described} == {i["instance_id"] for i in state["instances"]}, (
        "each container instance is backed by the emulated EC2 instance whose IMDS serves that id")
    assert all(ci["status"] == "ACTIVE" and ci["agentConnected"] for ci in described)


def test_the_agent_runs_as_a_daemon_service_one_task_per_instance(running_lab):
    state, env = running_lab
    svc = _aws(state, env, "ecs", "describe-services", "--cluster", state["cluster"],
               "--services", AGENT_SERVICE)["services"][0]
    assert svc["schedulingStrategy"] == "DAEMON"
    assert (svc["desiredCount"], svc["runningCount"]) == (INSTANCES, INSTANCES), svc
    task_arns = _aws(state, env, "ecs", "list-tasks", "--cluster", state["cluster"],
                     "--service-name", AGENT_SERVICE)["taskArns"]
    tasks = _aws(state, env, "ecs", "describe-tasks", "--cluster", state["cluster"],
                 "--tasks", *task_arns)["tasks"]
    assert {t["lastStatus"] for t in tasks} == {"RUNNING"}
    by_instance = {t["containerInstanceArn"]: t["taskArn"] for t in tasks}
    assert sorted(by_instance) == sorted(state["container_instances"].values()), "one agent per instance"
    # The ECS agent introspection API of each instance describes the same task, with the same ARN.
    for inst in state["instances"]:
        ci_arn = state["container_instances"][str(inst["index"])]
        assert by_instance[ci_arn] in _introspection_task_arns(inst)
        assert inst["agent"]["status"] == "RUNNING" and inst["agent"]["pid"]


def test_boto3_through_localstack_client_sees_the_app_service_and_its_task(running_lab):
    from urllib.parse import urlparse

    from localstack_client.session import Session

    state, _ = running_lab
    url = urlparse(state["control_plane"])
    session = Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1",
                      localstack_host=f"{url.hostname}:{url.port}")
    session._service_endpoint_mapping = {k: state["control_plane"] for k in session._service_endpoint_mapping}
    ecs = session.client("ecs")
    app = state["apps"]["imdsv1"]
    svc = ecs.describe_services(cluster=state["cluster"], services=[app["service"]])["services"][0]
    assert (svc["schedulingStrategy"], svc["desiredCount"], svc["runningCount"]) == ("REPLICA", 1, 1)
    arns = ecs.list_tasks(cluster=state["cluster"], serviceName=app["service"])["taskArns"]
    assert arns == [app["task_arn"]], "the app the lab reports is the service's task"
    td = ecs.describe_task_definition(taskDefinition=svc["taskDefinition"])["taskDefinition"]
    assert td["containerDefinitions"][0]["image"] == "ecs-agent-lab/lab:latest"
    on = state["instances"][app["instance"] - 1]
    assert app["task_arn"] in _introspection_task_arns(on)


def test_status_shows_the_control_plane_and_deploy_finds_it_without_endpoint(running_lab):
    state, env = running_lab
    shown = _cli("status", env={**env, "COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr
    assert state["control_plane"] in shown.stdout
    assert f"service {AGENT_SERVICE}" in shown.stdout
    assert f"DAEMON {INSTANCES}/{INSTANCES} running" in shown.stdout
    deployed = _cli("deploy", str(APP_TASKDEF_DIR / "imdsv1.json"), env=env)
    assert deployed.returncode == 0, f"{deployed.stdout}\n{deployed.stderr}"
    assert "RUNNING" in deployed.stdout


def test_the_agent_task_definition_is_the_docs_file_with_the_stacks_features_and_no_redirects():
    stack = Stack(features=DEFAULT_FEATURES - {"dogstatsd_non_local"}, agent_env={"DD_ENV": "x"})
    td = agent_task_definition(stack)
    taskdef.validate(td)  # what `aws ecs register-task-definition --cli-input-json` accepts
    (c,) = td["containerDefinitions"]
    env = {e["name"]: e["value"] for e in c["environment"]}
    assert td["family"] == "datadog-agent-task" and c["name"] == "datadog-agent"
    assert env["DD_DOGSTATSD_NON_LOCAL_TRAFFIC"] == "false" and env["DD_APM_NON_LOCAL_TRAFFIC"] == "true"
    assert env["DD_ENV"] == "x"
    assert not set(INTAKE_URL_KEYS) & set(env), "intake redirects are applied at deploy time, not registered"
    assert {(p["containerPort"], p["hostPort"], p["protocol"]) for p in c["portMappings"]} == {
        (8126, 8126, "tcp"), (8125, 8125, "udp")}
    # With FIPS: the docs' FIPS definition's shape, the proxy a sidecar in the agent's (host) network.
    fips = agent_task_definition(stack.with_(features=stack.features | {"fips"}))
    taskdef.validate(fips)
    assert fips["networkMode"] == "host"
    by_name = {x["name"]: x for x in fips["containerDefinitions"]}
    assert set(by_name) == {"datadog-agent", "fips-proxy"}
    agent_env = {e["name"]: e["value"] for e in by_name["datadog-agent"]["environment"]}
    assert agent_env["DD_FIPS_ENABLED"] == "true" and agent_env["DD_FIPS_LOCAL_ADDRESS"] == "127.0.0.1"
    assert {p["containerPort"] for p in by_name["fips-proxy"]["portMappings"]} == set(range(9803, 9819))
    app = app_task_definition(stack, "imdsv2")
    taskdef.validate(app)
    assert app["family"] == "web-imdsv2-task"
    assert {"name": "DD_SERVICE", "value": "web-imdsv2"} in app["containerDefinitions"][0]["environment"]


def test_the_otlp_receiver_settings_publish_its_ports_like_8126():
    """With the agent's OTLP receiver enabled, apps reach 4317/4318 at the instance's IP as they reach
    8126: bridge mode needs host ports for that (the docker backend publishes exactly these)."""
    otlp = {"DD_OTLP_CONFIG_RECEIVER_PROTOCOLS_GRPC_ENDPOINT": "0.0.0.0:4317",
            "DD_OTLP_CONFIG_RECEIVER_PROTOCOLS_HTTP_ENDPOINT": "0.0.0.0:4318"}
    stack = Stack(agent_env=otlp)
    td = agent_task_definition(stack)
    taskdef.validate(td)
    (c,) = td["containerDefinitions"]
    assert {(p["containerPort"], p["hostPort"], p["protocol"]) for p in c["portMappings"]} == {
        (8126, 8126, "tcp"), (8125, 8125, "udp"), (4317, 4317, "tcp"), (4318, 4318, "tcp")}
    # One protocol on a port of the user's choosing: that port only.
    http_only = agent_task_definition(Stack(agent_env={
        "DD_OTLP_CONFIG_RECEIVER_PROTOCOLS_HTTP_ENDPOINT": "0.0.0.0:14318"}))
    assert {p["containerPort"] for p in http_only["containerDefinitions"][0]["portMappings"]} == {
        8126, 8125, 14318}
    # Not enabled, or a value the agent refuses at start (it says why): nothing more is published.
    for env in ({}, {"DD_OTLP_CONFIG_RECEIVER_PROTOCOLS_HTTP_ENDPOINT": "not-an-endpoint"}):
        plain = agent_task_definition(Stack(agent_env=env))
        assert {p["containerPort"] for p in plain["containerDefinitions"][0]["portMappings"]} == {8126, 8125}
    # Host mode (FIPS): the container ports are the instance's; listed without hostPort, as 8126 is.
    fips = agent_task_definition(stack.with_(features=stack.features | {"fips"}))
    taskdef.validate(fips)
    agent = next(x for x in fips["containerDefinitions"] if x["name"] == "datadog-agent")
    assert {(p["containerPort"], p.get("hostPort")) for p in agent["portMappings"]} == {
        (8126, None), (8125, None), (4317, None), (4318, None)}


def test_a_stack_task_the_cluster_cannot_start_fails_start_up_with_ecs_reason(tmp_path):
    from lab.assembly import EcsLab
    from lab.stack import Ports

    subnet = free_subnet()
    stack = Stack(apps=(), agent_image="example.com/not-an-agent:1", subnet=subnet,
                  services_host=f"{subnet}.0.1", ports=Ports.ephemeral(), run_dir=tmp_path)
    with pytest.raises(RuntimeError, match=r"CannotStartContainerError: .*example.com/not-an-agent:1"):
        with EcsLab(stack, backend="local"):
            pass
