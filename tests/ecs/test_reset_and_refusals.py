"""`/moto-api/reset` on a running lab, and calls the lab cannot serve, answered as ECS answers them.

moto's server-mode tests (and users) reset moto while the lab's instances, agents and tasks keep
running; the lab's own clusters must come back whole, so the instance agents keep their tasks and new
calls work. A launch the task definition does not allow (EXTERNAL without requiresCompatibilities
EXTERNAL) is ECS's error and records nothing that breaks later calls.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from lab.ecs.instance_agent import InstanceAgent
from lab.world import wait_until

TASKDEFS = Path(__file__).resolve().parents[2] / "lab" / "ecs" / "taskdefs"


def _running(ecs, cluster: str, service: str) -> list[dict]:
    arns = ecs.list_tasks(cluster=cluster, serviceName=service)["taskArns"]
    tasks = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"] if arns else []
    return [t for t in tasks if t["lastStatus"] == "RUNNING"]


def _reset(endpoint: str) -> None:
    req = urllib.request.Request(endpoint + "/moto-api/reset", data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
        assert resp.status == 200


def test_reset_keeps_the_labs_cluster_usable(control_plane, world, fake_runner):
    for n in (1, 2):
        control_plane.add_instance(world, f"127.0.2.{n}")
    ecs = control_plane.clients.ecs
    cluster = world.cluster.name
    ecs.register_task_definition(**json.loads((TASKDEFS / "datadog-agent-ecs-apm.json").read_text()))
    ecs.create_service(cluster=cluster, serviceName="datadog-agent", taskDefinition="datadog-agent-task",
                       schedulingStrategy="DAEMON")
    errors: list[str] = []
    agents = [InstanceAgent(world, i, fake_runner, control_plane.clients, interval=0.1,
                            on_error=errors.append).start() for i in world.instances]
    try:
        before = wait_until(lambda: len(_running(ecs, cluster, "datadog-agent")) == 2
                            and _running(ecs, cluster, "datadog-agent"), 10, what="2 daemon tasks")
        ecs.create_cluster(clusterName="users-own-cluster")  # a user's, not the lab's
        _reset(control_plane.endpoint)

        got = ecs.describe_clusters(clusters=[cluster])["clusters"]
        assert got and got[0]["status"] == "ACTIVE" and got[0]["registeredContainerInstancesCount"] == 2
        assert got[0]["runningTasksCount"] == 2 and got[0]["pendingTasksCount"] == 0
        # What was not the lab's went, as with moto.
        assert ecs.describe_clusters(clusters=["users-own-cluster"])["clusters"] == []
        # The same tasks, same ARNs, still running on the same instances; nothing restarted.
        after = _running(ecs, cluster, "datadog-agent")
        assert {t["taskArn"] for t in after} == {t["taskArn"] for t in before}
        assert sorted(len(fake_runner.running_on(n)) for n in (1, 2)) == [1, 1]
        assert control_plane.problems() == []
        # Usable: a new task is placed and run by an instance agent; EC2 still knows the instances.
        ecs.register_task_definition(family="after-reset", containerDefinitions=[
            {"name": "app", "image": "busybox", "memory": 64}])
        run = ecs.run_task(cluster=cluster, taskDefinition="after-reset")
        assert run["failures"] == [] and len(run["tasks"]) == 1
        wait_until(lambda: ecs.describe_tasks(cluster=cluster, tasks=[run["tasks"][0]["taskArn"]])
                   ["tasks"][0]["lastStatus"] == "RUNNING", 10, what="the task run after the reset")
        ids = [i.instance_id for i in world.instances]
        reservations = control_plane.clients.ec2.describe_instances(InstanceIds=ids)["Reservations"]
        assert sorted(i["InstanceId"] for r in reservations for i in r["Instances"]) == sorted(ids)
        assert not [e for e in errors if "ClusterNotFound" in e]
    finally:
        for a in agents:
            a.stop()


def test_problems_name_a_missing_cluster(control_plane, world):
    control_plane.add_instance(world, "127.0.2.9")
    assert control_plane.problems() == []
    # Behind the lab's back (moto's own backend, as a crash or a foreign tool might leave it).
    from lab.ecs.moto_model import ECS_LOCK, MotoEcs

    with ECS_LOCK:
        del MotoEcs(control_plane.region).backend.clusters[world.cluster.name]
    assert any(world.cluster.name in p and "missing" in p for p in control_plane.problems())
    control_plane.ensure_cluster(world.cluster.name)


@pytest.mark.parametrize("launch", [{"launchType": "EXTERNAL"}])
def test_a_launch_the_definition_does_not_allow_is_ecs_error_and_breaks_nothing(control_plane, world, launch):
    inst = control_plane.add_instance(world, "127.0.2.20")
    ecs = control_plane.clients.ecs
    ecs.register_task_definition(family="fg",
                                 containerDefinitions=[{"name": "a", "image": "x", "memory": 64}])
    with pytest.raises(ClientError) as exc:
        ecs.run_task(cluster=world.cluster.name, taskDefinition="fg", **launch)
    assert exc.value.response["Error"]["Code"] == "InvalidParameterException"
    assert exc.value.response["Error"]["Message"] == "Task definition does not support launch_type EXTERNAL."
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as exc:
        ecs.create_service(cluster=world.cluster.name, serviceName="fg", taskDefinition="fg",
                           desiredCount=1, **launch)
    assert exc.value.response["Error"]["Code"] == "InvalidParameterException"
    # Nothing recorded, and the calls that used to answer 500 afterwards answer.
    assert ecs.list_tasks(cluster=world.cluster.name, containerInstance=inst.arn)["taskArns"] == []
    assert ecs.list_tasks(cluster=world.cluster.name, desiredStatus="STOPPED")["taskArns"] == []
    assert ecs.list_services(cluster=world.cluster.name)["serviceArns"] == []
    ok = ecs.run_task(cluster=world.cluster.name, taskDefinition="fg")
    assert ok["failures"] == [] and ok["tasks"][0]["launchType"] == "EC2"


def test_ec2_capacity_provider_places_on_the_labs_instances(control_plane, world):
    inst = control_plane.add_instance(world, "127.0.2.30")
    ecs = control_plane.clients.ecs
    name = f"cp-{world.cluster.name}"
    ecs.create_capacity_provider(name=name, autoScalingGroupProvider={"autoScalingGroupArn": "asg:arn"})
    ecs.register_task_definition(family="cp",
                                 containerDefinitions=[{"name": "a", "image": "x", "memory": 64}])
    out = ecs.run_task(cluster=world.cluster.name, taskDefinition="cp",
                       capacityProviderStrategy=[{"capacityProvider": name, "weight": 1}],
                       tags=[{"key": "team", "value": "apm"}])
    task = out["tasks"][0]
    assert task["containerInstanceArn"] == inst.arn and task["capacityProviderName"] == name
    assert task.get("launchType", "") == "" and task["tags"] == [{"key": "team", "value": "apm"}]
    assert task["lastStatus"] == "PENDING"
    counts = ecs.describe_clusters(clusters=[world.cluster.name])["clusters"][0]
    assert (counts["pendingTasksCount"], counts["runningTasksCount"]) == (1, 0)
    with pytest.raises(ClientError) as exc:
        ecs.run_task(cluster="no-such-cluster", taskDefinition="cp")
    assert exc.value.response["Error"]["Code"] == "ClusterNotFoundException"
    with pytest.raises(ClientError) as exc:
        ecs.start_task(cluster=world.cluster.name, taskDefinition="cp", containerInstances=[])
    assert exc.value.response["Error"]["Code"] == "InvalidParameterException"
