"""Container definitions honoured field by field; secrets resolved from the control plane; the lab's
redirects applied to agent containers at deploy time, never to the user's file."""

from __future__ import annotations

import copy
import dataclasses
import json
import uuid
from pathlib import Path

import pytest

from lab.datadog_sites import SITES
from lab.ecs.agent_env import INTAKE_URL_KEYS, LAB_SITE, Redirects
from lab.ecs.instance_agent import InstanceAgent
from lab.ecs.translate import (
    ControlPlaneSecrets,
    SecretResolutionError,
    container_specs,
    execution_role,
    world_task,
)
from lab.tasks import UnsupportedField
from lab.world import wait_until

TASKDEFS = Path(__file__).resolve().parents[2] / "lab" / "ecs" / "taskdefs"
REDIRECTS = Redirects(intake_url="http://127.0.0.1:8091", egress_proxy_url="http://127.0.0.1:3128",
                      ecs_agent_url="http://127.0.1.1:51678", imds_url="http://127.0.1.1:1338",
                      agent_localhost="127.0.2.1", private_ip="127.0.1.1")


def load(name):
    return json.loads((TASKDEFS / name).read_text())


def test_agent_definition_maps_field_by_field():
    td = load("datadog-agent-ecs-full.json")
    (spec,) = container_specs(td)
    assert spec.image == "public.ecr.aws/datadog/agent:latest"
    assert (spec.cpu, spec.memory, spec.essential) == (100, 512, True)
    assert {(p.container_port, p.host_port, p.protocol) for p in spec.ports} == {(8126, 8126, "tcp"),
                                                                                   (8125, 8125, "udp")}
    mounts = {m.target: (m.source, m.read_only) for m in spec.mounts}
    assert mounts["/var/run/docker.sock"] == ("/var/run/docker.sock", True)
    assert mounts["/host/proc"] == ("/proc/", True)
    assert mounts["/host/sys/fs/cgroup"] == ("/sys/fs/cgroup/", True)
    assert spec.health_check.command == ["CMD-SHELL", "agent health"]
    hc = spec.health_check
    assert (hc.interval, hc.timeout, hc.retries, hc.start_period) == (30, 5, 3, 15)
    assert spec.env["DD_DOGSTATSD_NON_LOCAL_TRAFFIC"] == "true"


def test_sysprobe_capabilities_and_debugfs():
    (spec,) = container_specs(load("datadog-agent-sysprobe-ecs.json"))
    assert "SYS_ADMIN" in spec.capabilities_add and "NET_RAW" in spec.capabilities_add
    assert any(m.target == "/sys/kernel/debug" and m.source == "/sys/kernel/debug" for m in spec.mounts)


def test_fips_sidecar_in_host_mode_keeps_container_ports_and_dependencies():
    td = load("datadog-agent-ecs-fips.json")
    td["containerDefinitions"][0]["dependsOn"] = [{"containerName": "fips-proxy", "condition": "START"}]
    agent, proxy = container_specs(td, redirects=REDIRECTS)
    assert agent.depends_on == [("fips-proxy", "START")]
    assert [p.host_port for p in proxy.ports] == list(range(9803, 9819))
    # Inside the agent's netns 127.0.0.1 is the instance's agent-localhost on the local backend.
    assert agent.env["DD_FIPS_LOCAL_ADDRESS"] == "127.0.2.1"
    assert proxy.env["LAB_INTAKE_URL"] == "http://127.0.0.1:8091"


def test_sh_c_entrypoint_passes_through_untouched():
    line = "export DD_AGENT_HOST=$(curl http://169.254.169.254/latest/meta-data/local-ipv4); exec app"
    td = {"family": "app", "containerDefinitions": [{"name": "app", "image": "ecs-agent-lab/lab:latest",
                                                      "memory": 64, "entryPoint": ["sh", "-c", line],
                                                      "command": ["--port", "8080"],
                                                      "portMappings": [{"containerPort": 8080}]}]}
    (spec,) = container_specs(td, redirects=REDIRECTS)
    assert spec.entry_point == ["sh", "-c", line] and spec.command == ["--port", "8080"]
    assert spec.ports[0].host_port is None  # bridge without hostPort: a dynamic host port
    assert "DD_DD_URL" not in spec.env  # redirects are for agent containers only


def test_redirects_apply_to_the_agent_at_deploy_time_without_touching_the_file():
    td = load("datadog-agent-ecs.json")
    original = copy.deepcopy(td)
    (spec,) = container_specs(td, redirects=REDIRECTS)
    assert td == original
    env = spec.env
    assert env["DD_SITE"] == LAB_SITE and env["DD_SITE"].endswith(".invalid")
    for key in ("DD_DD_URL", "DD_APM_DD_URL", "DD_PROCESS_CONFIG_PROCESS_DD_URL",
                "DD_LOGS_CONFIG_LOGS_DD_URL", "DD_ORCHESTRATOR_EXPLORER_ORCHESTRATOR_DD_URL"):
        assert env[key] == "http://127.0.0.1:8091"
    assert env["DD_PROXY_HTTPS"] == "http://127.0.0.1:3128"
    assert env["DD_REMOTE_CONFIGURATION_ENABLED"] == "false"
    assert env["DD_ECS_AGENT_URL"] == "http://127.0.1.1:51678"
    assert env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] == "http://127.0.1.1:1338"
    assert env["DD_API_KEY"] == "<YOUR_DATADOG_API_KEY>"
    # What the user left out stays out: the lab does not fix the user's settings.
    assert "DD_DOGSTATSD_NON_LOCAL_TRAFFIC" not in env and "DD_APM_NON_LOCAL_TRAFFIC" not in env


SITE_URLS = {site: f"http://127.0.0.1:{9000 + i}" for i, site in enumerate(SITES)}


@pytest.mark.parametrize("site", SITES)
def test_a_documented_dd_site_is_kept_and_points_every_url_at_its_listener(site):
    td = load("datadog-agent-ecs.json")
    agent = td["containerDefinitions"][0]
    agent["environment"] = [e for e in agent["environment"] if e["name"] != "DD_SITE"]
    agent["environment"].append({"name": "DD_SITE", "value": site})
    redirects = dataclasses.replace(REDIRECTS, site_intake_urls=SITE_URLS)
    (spec,) = container_specs(td, redirects=redirects)
    assert spec.env["DD_SITE"] == site, "the user's site: agent config shows it"
    assert {spec.env[k] for k in INTAKE_URL_KEYS} == {SITE_URLS[site]}


@pytest.mark.parametrize("site,why", [("datadoghq.co", "a typo is no Datadog site"), ("", "unset")])
def test_any_other_dd_site_gets_the_lab_s_unresolvable_one(site, why):
    td = load("datadog-agent-ecs.json")
    agent = td["containerDefinitions"][0]
    agent["environment"] = [e for e in agent["environment"] if e["name"] != "DD_SITE"]
    if site:
        agent["environment"].append({"name": "DD_SITE", "value": site})
    (spec,) = container_specs(td, redirects=dataclasses.replace(REDIRECTS, site_intake_urls=SITE_URLS))
    assert spec.env["DD_SITE"] == LAB_SITE, why
    assert {spec.env[k] for k in INTAKE_URL_KEYS} == {REDIRECTS.intake_url}


def test_without_the_egress_proxy_a_real_site_is_not_kept_but_still_recorded():
    td = load("datadog-agent-ecs.json")
    agent = td["containerDefinitions"][0]
    agent["environment"] = [e for e in agent["environment"] if e["name"] != "DD_SITE"]
    agent["environment"].append({"name": "DD_SITE", "value": "datadoghq.eu"})
    redirects = dataclasses.replace(REDIRECTS, site_intake_urls=SITE_URLS, egress_proxy_url=None)
    (spec,) = container_specs(td, redirects=redirects)
    assert spec.env["DD_SITE"] == LAB_SITE, "no proxy to catch a missed sender: nothing real to reach"
    assert spec.env["DD_DD_URL"] == SITE_URLS["datadoghq.eu"], "still sent to the EU listener"


@pytest.mark.parametrize("container_extra,named", [
    ({"logConfiguration": {"logDriver": "splunk"}}, "logConfiguration.logDriver"),
    ({"logConfiguration": {"logDriver": "awslogs", "secretOptions": [{"name": "a", "valueFrom": "b"}]}},
     "logConfiguration.secretOptions"),
    ({"linuxParameters": {"devices": [{"hostPath": "/dev/fuse"}]}}, "linuxParameters.devices"),
    ({"privileged": True}, "privileged"),
])
def test_unsupported_fields_are_named(container_extra, named):
    container = {"name": "a", "image": "x", "memory": 64, **container_extra}
    td = {"family": "x", "containerDefinitions": [container]}
    with pytest.raises(UnsupportedField, match=named.replace(".", r"\.")):
        container_specs(td)


def test_non_host_volume_is_named():
    td = {"family": "x", "containerDefinitions": [{"name": "a", "image": "x", "memory": 64}],
          "volumes": [{"name": "data", "efsVolumeConfiguration": {"fileSystemId": "fs-1"}}]}
    with pytest.raises(UnsupportedField, match=r"volumes\[0\]\.efsVolumeConfiguration"):
        container_specs(td)


def test_world_task_carries_family_revision_and_arn():
    td = {**load("datadog-agent-ecs.json"), "revision": 7}
    task = world_task(td, arn="arn:aws:ecs:us-east-1:123456789012:task/c/abc", service_name="dd")
    assert (task.family, task.revision, task.arn, task.service_name) == ("datadog-agent-task", 7,
                                                                         task.arn, "dd")
    assert [c.name for c in task.containers] == ["datadog-agent"]


# -- secrets against the control plane ---------------------------------------------------------------


def test_secrets_resolve_from_secrets_manager_and_ssm(control_plane):
    sm = control_plane.clients.secrets_client()
    ssm = control_plane.clients.ssm_client()
    plain = sm.create_secret(Name="dd-api-key-plain", SecretString="0123456789abcdef")["ARN"]
    as_json = sm.create_secret(Name="dd-json", SecretString=json.dumps({"api_key": "from-json"}))["ARN"]
    ssm.put_parameter(Name="/dd/site", Value="datadoghq.eu", Type="String")
    param_arn = f"arn:aws:ssm:{control_plane.region}:123456789012:parameter/dd/site"
    td = {"family": "s", "containerDefinitions": [{"name": "a", "image": "x", "memory": 64, "secrets": [
        {"name": "DD_API_KEY", "valueFrom": plain},
        {"name": "FROM_JSON", "valueFrom": f"{as_json}:api_key::"},
        {"name": "SITE_BY_NAME", "valueFrom": "/dd/site"},
        {"name": "SITE_BY_ARN", "valueFrom": param_arn}]}]}
    resolver = ControlPlaneSecrets(sm, ssm)
    (spec,) = container_specs(td, resolve_secret=resolver.resolve)
    assert spec.env == {"DD_API_KEY": "0123456789abcdef", "FROM_JSON": "from-json",
                        "SITE_BY_NAME": "datadoghq.eu", "SITE_BY_ARN": "datadoghq.eu"}


def test_missing_secret_arn_gives_the_ecs_error(control_plane):
    missing = f"arn:aws:secretsmanager:{control_plane.region}:123456789012:secret:does-not-exist-AbCdEf"
    resolver = ControlPlaneSecrets(control_plane.clients.secretsmanager, control_plane.clients.ssm)
    with pytest.raises(SecretResolutionError) as err:
        resolver.resolve(missing)
    text = str(err.value)
    assert text.startswith("ResourceInitializationError: unable to pull secrets or registry auth: ")
    assert missing in text and "ResourceNotFoundException" in text


def test_task_with_a_missing_dd_api_key_secret_stops_with_that_reason(control_plane, world, fake_runner):
    inst = control_plane.add_instance(world, "127.0.1.1")
    td = load("datadog-agent-ecs.json")
    agent = td["containerDefinitions"][0]
    agent["environment"] = [e for e in agent["environment"] if e["name"] != "DD_API_KEY"]
    missing = f"arn:aws:secretsmanager:{control_plane.region}:123456789012:secret:dd-api-key-typo-Zz9Zz9"
    agent["secrets"] = [{"name": "DD_API_KEY", "valueFrom": missing}]
    td["family"] = "agent-with-secret"
    td["executionRoleArn"] = execution_role(control_plane.clients.iam)
    ecs = control_plane.clients.ecs
    ecs.register_task_definition(**td)
    arn = ecs.run_task(cluster=world.cluster.name, taskDefinition="agent-with-secret")["tasks"][0]["taskArn"]
    with InstanceAgent(world, inst, fake_runner, control_plane.clients, interval=0.1) as agent_loop:
        def stopped():
            t = ecs.describe_tasks(cluster=world.cluster.name, tasks=[arn])["tasks"][0]
            return t if t["lastStatus"] == "STOPPED" else None
        t = wait_until(stopped, 10, what="the task to stop")
    assert t["stoppedReason"].startswith("ResourceInitializationError: unable to pull secrets")
    assert missing in t["stoppedReason"]
    assert agent_loop.failures[0].task_arn == arn
    assert not fake_runner.started


def _stopped_reason(control_plane, world, fake_runner, td: dict) -> str:
    inst = control_plane.add_instance(world, "127.0.1.1")
    ecs = control_plane.clients.ecs
    ecs.register_task_definition(**td)
    # On this instance: an instance added by an earlier call has no instance agent any more, and a
    # task the scheduler placed there would never start (nor stop).
    arn = ecs.start_task(cluster=world.cluster.name, taskDefinition=td["family"],
                         containerInstances=[inst.arn])["tasks"][0]["taskArn"]
    with InstanceAgent(world, inst, fake_runner, control_plane.clients, interval=0.1):
        def stopped():
            t = ecs.describe_tasks(cluster=world.cluster.name, tasks=[arn])["tasks"][0]
            return t if t["lastStatus"] == "STOPPED" else None
        t = wait_until(stopped, 10, what="the task to stop")
    assert not fake_runner.started
    return t["stoppedReason"]


def _with_secret(family: str, value_from: str, role: str | None) -> dict:
    td = {"family": family, "containerDefinitions": [{
        "name": "a", "image": "ecs-agent-lab/lab:latest", "memory": 64,
        "secrets": [{"name": "DD_API_KEY", "valueFrom": value_from}]}]}
    if role:
        td["executionRoleArn"] = role
    return td


@pytest.mark.parametrize("kind", ["asm", "ssm"])
def test_secrets_without_an_execution_role_stop_the_task_as_the_ecs_agent_does(control_plane, world,
                                                                               fake_runner, kind):
    sm, ssm = control_plane.clients.secretsmanager, control_plane.clients.ssm
    if kind == "asm":
        value_from = sm.create_secret(Name=f"no-role-{uuid.uuid4().hex[:6]}", SecretString="k" * 32)["ARN"]
    else:
        name = f"/no-role/{uuid.uuid4().hex[:6]}"
        ssm.put_parameter(Name=name, Value="k" * 32, Type="SecureString")
        value_from = f"arn:aws:ssm:{control_plane.region}:123456789012:parameter{name}"
    td = _with_secret(f"no-role-{kind}", value_from, None)
    reason = _stopped_reason(control_plane, world, fake_runner, td)
    resource = "ASM" if kind == "asm" else "ssm"
    assert reason == ("ResourceInitializationError: unable to pull secrets or registry auth: execution "
                      f"resource retrieval failed: {resource} secret resource: unable to find execution "
                      "role credentials")


def test_an_execution_role_ecs_cannot_assume_gets_no_credentials(control_plane, world, fake_runner):
    iam = control_plane.clients.iam
    trust_ec2 = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    untrusted = iam.create_role(RoleName=f"not-for-ecs-{uuid.uuid4().hex[:6]}",
                                AssumeRolePolicyDocument=json.dumps(trust_ec2))["Role"]["Arn"]
    arn = control_plane.clients.secretsmanager.create_secret(
        Name=f"untrusted-{uuid.uuid4().hex[:6]}", SecretString="k" * 32)["ARN"]
    for family, role in (("role-untrusted", untrusted),
                         ("role-missing", "arn:aws:iam::123456789012:role/no-such-role")):
        assert "unable to find execution role credentials" in _stopped_reason(
            control_plane, world, fake_runner, _with_secret(family, arn, role))


def test_with_an_assumable_execution_role_the_secret_becomes_the_container_s_env(control_plane, world,
                                                                                fake_runner):
    clients = control_plane.clients
    arn = clients.secretsmanager.create_secret(Name=f"ok-{uuid.uuid4().hex[:6]}",
                                               SecretString="s" * 32)["ARN"]
    td = _with_secret("role-ok", arn, execution_role(clients.iam))
    assert execution_role(clients.iam) == td["executionRoleArn"], "found again, not created twice"
    inst = control_plane.add_instance(world, "127.0.1.1")
    clients.ecs.register_task_definition(**td)
    clients.ecs.run_task(cluster=world.cluster.name, taskDefinition="role-ok")
    with InstanceAgent(world, inst, fake_runner, clients, interval=0.1):
        wait_until(lambda: fake_runner.started, 10, what="the task to start")
    (spec,) = fake_runner.started[0][2]
    assert spec.env["DD_API_KEY"] == "s" * 32


def test_agent_is_reachable_at_the_instance_ip_only_through_published_ports():
    apm = load("datadog-agent-ecs-apm.json")
    (spec,) = container_specs(apm, redirects=REDIRECTS)
    assert spec.env["LAB_AGENT_HOST_ADDRESSES"] == "127.0.1.1,127.0.2.1"
    bare = load("datadog-agent-ecs.json")  # no portMappings: nothing published in bridge mode
    (spec,) = container_specs(bare, redirects=REDIRECTS)
    assert spec.env["LAB_AGENT_HOST_ADDRESSES"] == "127.0.2.1"
    bare["networkMode"] = "host"
    (spec,) = container_specs(bare, redirects=REDIRECTS)
    assert spec.env["LAB_AGENT_HOST_ADDRESSES"] == "127.0.1.1,127.0.2.1"


def test_firelens_routers_start_first_and_their_outputs_go_to_the_lab():
    from lab.ecs.agent_env import Redirects
    from lab.ecs.translate import attach_log_router, world_task

    td = {"family": "fl", "revision": 3, "containerDefinitions": [
        {"name": "app", "image": "x", "memory": 64, "logConfiguration": {
            "logDriver": "awsfirelens",
            "options": {"Name": "datadog", "apikey": "k", "Host": "http-intake.logs.datadoghq.com",
                        "TLS": "on"}}},
        {"name": "router", "image": "amazon/aws-for-fluent-bit:latest", "memory": 64,
         "firelensConfiguration": {"type": "fluentbit"}}]}
    specs = container_specs(td)
    assert specs[0].depends_on == [("router", "START")], "the ECS agent's implicit dependency"
    assert specs[0].log_configuration.driver == "awsfirelens"
    task = world_task(td, arn="arn:aws:ecs:us-east-1:123456789012:task/c/abc")
    attach_log_router(td, specs, task, cluster="c", ec2_instance_id="i-0abc",
                      redirects=Redirects(intake_url="http://127.9.0.1:4321"))
    text = specs[1].log_router_config
    assert specs[0].log_router_config is None and text
    assert "Record ec2_instance_id i-0abc" in text and "Record ecs_task_definition fl:3" in text
    assert "127.9.0.1" in text and "4321" in text and "http-intake.logs.datadoghq.com" not in text
    assert " off" in text.split("[OUTPUT]", 1)[1], "TLS off towards the lab's plain-HTTP intake"
