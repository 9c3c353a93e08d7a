"""What the ECS agent serves on an ECS Anywhere host (ECS_EXTERNAL=true), without sockets: the same
introspection API, task metadata v4 with `LaunchType: EXTERNAL` and none of what it would read from
EC2 (zone, VPC, host addresses, instance tags), and no `AWS_EXECUTION_ENV` in the containers."""

from __future__ import annotations

import json

import pytest

from lab.fakes.ecs_metadata.model import EcsMetadata, container_env, write_metadata_file
from lab.world import Container, PortMapping, Task, World


@pytest.fixture
def external():
    world = World()
    world.add_instance("127.0.22.1")
    inst = world.add_instance("127.0.22.2", launch_type="EXTERNAL")
    task = Task("app", 3, [Container("web", "my/web:1", ports=[PortMapping(8080, 32768)])],
                service_name="web-svc")
    world.add_task(inst, task)
    inst.arn = f"arn:aws:ecs:us-east-1:123456789012:container-instance/{world.cluster.name}/abc"
    return world, inst, task


def test_an_external_host_is_a_managed_instance_without_ec2_identity(external):
    world, inst, _ = external
    assert inst.instance_id.startswith("mi-") and len(inst.instance_id) == 20
    assert (inst.availability_zone, inst.tags, inst.imds_enabled) == ("", {}, False)
    assert world.instance(1).instance_id.startswith("i-0")  # the EC2 one beside it is unchanged


def test_introspection_names_the_container_instance_as_on_ec2(external):
    world, inst, task = external
    m = EcsMetadata(world)
    assert m.introspection(inst, "/v1/metadata", {}).body["ContainerInstanceArn"] == inst.arn
    tasks = m.introspection(inst, "/v1/tasks", {}).body["Tasks"]
    assert [t["Arn"] for t in tasks] == [task.arn]


def test_task_metadata_v4_says_external_and_omits_what_comes_from_ec2(external):
    world, inst, task = external
    body = EcsMetadata(world).task_json(inst, task, 4, with_tags=True)
    assert body["LaunchType"] == "EXTERNAL"
    for absent in ("AvailabilityZone", "VPCID", "ContainerInstanceTags"):
        assert absent not in body, absent
    ec2_body = EcsMetadata(world).task_json(world.instance(1), task, 4, with_tags=True)
    assert {"AvailabilityZone", "VPCID", "ContainerInstanceTags"} <= set(ec2_body)


def test_metadata_file_has_no_host_address_and_containers_no_execution_env(external, tmp_path):
    world, inst, task = external
    c = task.containers[0]
    doc = write_metadata_file(tmp_path / "meta.json", inst, task, c)
    on_disk = json.loads((tmp_path / "meta.json").read_text())
    assert on_disk == doc
    assert doc["ContainerInstanceARN"] == inst.arn
    for absent in ("AvailabilityZone", "HostPrivateIPv4Address", "HostPublicIPv4Address"):
        assert absent not in doc, absent
    env = container_env(inst, task, c, base_url="http://127.0.0.1:51679", relative_credentials=False)
    assert "AWS_EXECUTION_ENV" not in env
    assert env["ECS_CONTAINER_METADATA_URI_V4"].endswith(c.metadata_token)
    ec2_env = container_env(world.instance(1), task, c, base_url="http://127.0.0.1:51679",
                            relative_credentials=False)
    assert ec2_env["AWS_EXECUTION_ENV"] == "AWS_ECS_EC2"
