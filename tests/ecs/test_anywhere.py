"""ECS Anywhere (issue item 2), through botocore against the control plane: an external instance
registered with its managed instance id (`mi-...`, no EC2 identity), and ECS's launch type rules:
EXTERNAL tasks and services go to external instances only, other tasks never do, and a definition
must ask for EXTERNAL (`requiresCompatibilities`) to be launched so."""

from __future__ import annotations

import re

import pytest
from botocore.exceptions import ClientError

EXTERNAL_TD = {
    "family": "anywhere-agent", "requiresCompatibilities": ["EXTERNAL"], "networkMode": "bridge",
    "containerDefinitions": [{"name": "datadog-agent", "image": "public.ecr.aws/datadog/agent:latest",
                              "memory": 256, "portMappings": [{"containerPort": 8126, "hostPort": 8126}]}],
}
EC2_TD = {"family": "plain-ec2", "containerDefinitions": [{"name": "a", "image": "x", "memory": 64}]}


@pytest.fixture
def mixed(control_plane, world):
    """A cluster with one EC2 container instance and one external one."""
    ec2_instance = control_plane.add_instance(world, "127.0.2.40")
    mid, external_arn = control_plane.register_external_instance(world.cluster.name)
    ecs = control_plane.clients.ecs
    ecs.register_task_definition(**EXTERNAL_TD)
    ecs.register_task_definition(**EC2_TD)
    return ecs, world.cluster.name, ec2_instance, mid, external_arn


def test_an_external_instance_has_a_managed_instance_id_and_no_ec2_identity(mixed):
    ecs, cluster, ec2_instance, mid, external_arn = mixed
    assert re.fullmatch(r"mi-[0-9a-f]{17}", mid)
    described = {ci["containerInstanceArn"]: ci for ci in ecs.describe_container_instances(
        cluster=cluster, containerInstances=[external_arn, ec2_instance.arn])["containerInstances"]}
    external = described[external_arn]
    assert external["ec2InstanceId"] == mid
    names = {a["name"] for a in external["attributes"]}
    assert not names & {"ecs.ami-id", "ecs.availability-zone", "ecs.instance-type"}, names
    ec2_names = {a["name"] for a in described[ec2_instance.arn]["attributes"]}
    assert {"ecs.ami-id", "ecs.availability-zone"} <= ec2_names
    assert external["status"] == "ACTIVE"


def test_external_tasks_go_to_external_instances_only(mixed):
    ecs, cluster, ec2_instance, _, external_arn = mixed
    out = ecs.run_task(cluster=cluster, taskDefinition="anywhere-agent", launchType="EXTERNAL")
    assert out["failures"] == []
    assert [t["containerInstanceArn"] for t in out["tasks"]] == [external_arn]
    assert out["tasks"][0]["launchType"] == "EXTERNAL"
    # The external instance's one 8126 is taken now: a second EXTERNAL task does not spill to EC2.
    again = ecs.run_task(cluster=cluster, taskDefinition="anywhere-agent", launchType="EXTERNAL")
    assert again["tasks"] == []
    assert [f["reason"] for f in again["failures"]] == ["RESOURCE:PORTS"]
    assert again["failures"][0]["arn"] == external_arn


def test_ec2_tasks_never_land_on_an_external_instance(mixed):
    ecs, cluster, ec2_instance, _, external_arn = mixed
    out = ecs.run_task(cluster=cluster, taskDefinition="plain-ec2", count=4)
    assert out["failures"] == []
    assert {t["containerInstanceArn"] for t in out["tasks"]} == {ec2_instance.arn}
    assert {t["launchType"] for t in out["tasks"]} == {"EC2"}


def test_a_definition_without_external_compatibility_is_refused_for_external(mixed):
    ecs, cluster, *_ = mixed
    with pytest.raises(ClientError) as exc:
        ecs.run_task(cluster=cluster, taskDefinition="plain-ec2", launchType="EXTERNAL")
    assert exc.value.response["Error"]["Code"] == "InvalidParameterException"
    assert exc.value.response["Error"]["Message"] == "Task definition does not support launch_type EXTERNAL."


def test_an_external_daemon_service_runs_on_external_instances_only(control_plane, mixed):
    ecs, cluster, ec2_instance, _, external_arn = mixed
    ecs.create_service(cluster=cluster, serviceName="anywhere-agent", taskDefinition="anywhere-agent",
                       schedulingStrategy="DAEMON", launchType="EXTERNAL")
    control_plane.reconcile_services()
    arns = ecs.list_tasks(cluster=cluster, serviceName="anywhere-agent")["taskArns"]
    tasks = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"]
    assert [(t["containerInstanceArn"], t["launchType"]) for t in tasks] == [(external_arn, "EXTERNAL")]


def test_a_managed_instance_id_must_look_like_one(control_plane, world):
    with pytest.raises(ValueError, match="'mi-' and 17 hex digits"):
        control_plane.register_external_instance(world.cluster.name, "i-0123456789abcdef0")


def test_a_backends_external_instance_registers_with_its_managed_id_and_runs_the_agent_daemon(
        control_plane, world, fake_runner):
    """The path a backend's ECS Anywhere host takes (`EcsCluster.adopt_instance`): registered with the
    world's managed instance id, no EC2 instance launched for it, and the docs' agent task definition
    (with `requiresCompatibilities: EXTERNAL`) placed there by a DAEMON service of launch type
    EXTERNAL, which the instance agent hands to the backend."""
    from lab.ecs.cluster import EcsCluster
    from lab.ecs.stack_services import agent_task_definition
    from lab.stack import EXTERNAL_AGENT_SERVICE, Stack
    from lab.world import wait_until

    inst = world.add_instance("127.0.2.41", launch_type="EXTERNAL")
    assert re.fullmatch(r"mi-[0-9a-f]{17}", inst.instance_id)
    ec2 = control_plane.clients.ec2
    before = {i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}
    with EcsCluster(world, fake_runner, control_plane=control_plane, agent_interval=0.1):
        ecs = control_plane.clients.ecs
        ci = ecs.describe_container_instances(cluster=world.cluster.name,
                                              containerInstances=[inst.arn])["containerInstances"][0]
        assert ci["ec2InstanceId"] == inst.instance_id
        assert "ecs.capability.external" in {a["name"] for a in ci["attributes"]}
        after = {i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]}
        assert after == before, "an external instance has no EC2 instance behind it"

        td = agent_task_definition(Stack(instances=0, external_instances=1, apps=()))
        assert td["requiresCompatibilities"] == ["EXTERNAL"]
        registered = ecs.register_task_definition(**td)["taskDefinition"]
        assert set(registered["compatibilities"]) == {"EC2", "EXTERNAL"}
        ecs.create_service(cluster=world.cluster.name, serviceName=EXTERNAL_AGENT_SERVICE,
                           taskDefinition=registered["taskDefinitionArn"], schedulingStrategy="DAEMON",
                           launchType="EXTERNAL")
        control_plane.reconcile_services()
        started = wait_until(lambda: fake_runner.running_on(inst.index), 10,
                             what="the agent task started on the external instance")
        task = ecs.describe_tasks(cluster=world.cluster.name, tasks=started)["tasks"][0]
        assert (task["launchType"], task["containerInstanceArn"]) == ("EXTERNAL", inst.arn)
