"""awsvpc tasks on EC2 container instances through the control plane (docs/awsvpc.md), with real
botocore and the lab's instance agents over a fake backend that gives each awsvpc task an address of
its own, as the local and docker backends do:

- the ENI attachment is PRECREATED with its subnet only until the task's address is known, then
  ATTACHED with the ENI's id, MAC, DNS name and that address, which never changes afterwards;
- a stopped task's ENI is deleted (gone from describe-network-interfaces), its attachment DELETED;
- ECS's refusals: an awsvpc definition without a network configuration (create-service too) and
  `assignPublicIp: ENABLED` on the EC2 launch type;
- an awsvpc service on EC2: its tasks get their ENIs in the service's subnet, describe-services shows
  the deployment's network configuration, and scaling in deletes the stopped task's ENI.
"""

from __future__ import annotations

import itertools
import threading

import pytest
from botocore.exceptions import ClientError

from lab.ecs import fargate
from lab.ecs.cluster import EcsCluster
from lab.ecs.front import PUBLIC_IP_NOT_SUPPORTED
from lab.world import ContainerInstance, Task, wait_until

FAMILY = "vpc-on-ec2"
DEFINITION = {"family": FAMILY, "networkMode": "awsvpc", "requiresCompatibilities": ["EC2"],
              "containerDefinitions": [{"name": "app", "image": "ecs-agent-lab/lab:latest", "memory": 64}]}
_ADDRESSES = (f"127.201.3.{n}" for n in itertools.count(10))


class AddressingRunner:
    """A fake backend (the conftest's, which it wraps) that gives each awsvpc task an address of its
    own (its namespace), as the real backends do, and can hold a start until the test lets it go."""

    name = "fake-addressing"

    def __init__(self, fake, *, gate: threading.Event | None = None) -> None:
        self.fake = fake
        self.gate = gate
        self.addresses: dict[str, str] = {}

    @property
    def stopped(self) -> list[str]:
        return self.fake.stopped

    def start_task(self, instance: ContainerInstance, task: Task, specs) -> None:
        if self.gate is not None:
            assert self.gate.wait(30), "the test never let the task start"
        if task.network_mode == "awsvpc":
            address = self.addresses[task.arn] = next(_ADDRESSES)
            for c in task.containers:
                c.ipv4_addresses = [address]
        self.fake.start_task(instance, task, specs)

    def stop_task(self, task_arn: str) -> None:
        self.fake.stop_task(task_arn)


def _subnet(control_plane) -> str:
    subnets = control_plane.clients.ec2.describe_subnets(
        Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    return sorted(subnets, key=lambda s: s["AvailabilityZone"])[0]["SubnetId"]


def _eni(task: dict) -> tuple[str, dict[str, str]]:
    (attachment,) = [a for a in task.get("attachments", []) if a["type"] == "ElasticNetworkInterface"]
    return attachment["status"], {d["name"]: d["value"] for d in attachment["details"]}


def _eni_exists(control_plane, eni_id: str) -> bool:
    try:
        control_plane.clients.ec2.describe_network_interfaces(NetworkInterfaceIds=[eni_id])
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "InvalidNetworkInterfaceID.NotFound", exc.response
        return False
    return True


def _refused(call, text: str) -> None:
    with pytest.raises(ClientError) as exc:
        call()
    err = exc.value.response["Error"]
    assert (err["Code"], err["Message"]) == ("InvalidParameterException", text)


def test_the_eni_address_is_absent_until_attached_and_never_changes_once_shown(control_plane, world,
                                                                               fake_runner):
    ecs = control_plane.clients.ecs
    cluster = world.cluster.name
    gate = threading.Event()
    runner = AddressingRunner(fake_runner, gate=gate)
    ecs.register_task_definition(**DEFINITION)
    subnet = _subnet(control_plane)
    shown: list[tuple[str, str, str]] = []  # (lastStatus, attachment status, address) as seen
    watching = threading.Event()

    def watch(arn: str) -> None:
        # describe-tasks as a user polls it from run-task on, every answer kept.
        while not watching.is_set():
            task = ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]
            status, details = _eni(task)
            shown.append((task["lastStatus"], status, details.get("privateIPv4Address", "")))
            watching.wait(0.02)

    with EcsCluster(world, runner, control_plane=control_plane, agent_interval=0.1) as lab_cluster:
        lab_cluster.add_instance("127.0.1.9")
        out = ecs.run_task(cluster=cluster, taskDefinition=FAMILY, launchType="EC2",
                           networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet]}})
        arn = out["tasks"][0]["taskArn"]
        # The run-task reply: the ENI is not attached yet, so it has no address, id or MAC.
        assert _eni(out["tasks"][0]) == ("PRECREATED", {"subnetId": subnet})
        watcher = threading.Thread(target=watch, args=(arn,), daemon=True)
        watcher.start()
        try:
            wait_until(lambda: any(s[0] == "PENDING" for s in shown), 10,
                       what="describe-tasks to show the task PENDING while its start is held")
            held = ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]
            assert held["lastStatus"] == "PENDING" and _eni(held) == ("PRECREATED", {"subnetId": subnet})
            gate.set()
            running = wait_until(
                lambda: (t := ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0])["lastStatus"]
                == "RUNNING" and t, 10, what="the task RUNNING")
            wait_until(lambda: shown and shown[-1][0] == "RUNNING", 10, what="the watcher to see RUNNING")
        finally:
            watching.set()
            watcher.join(5)
        status, details = _eni(running)
        address = runner.addresses[arn]
        assert status == "ATTACHED" and details["privateIPv4Address"] == address, details
        assert set(details) == {"subnetId", "networkInterfaceId", "macAddress", "privateDnsName",
                                "privateIPv4Address"}
        # Every address describe-tasks ever showed is the one the task runs with: none changed.
        assert {a for _, _, a in shown if a} == {address}, shown
        assert all(a == "" for _, s, a in shown if s == "PRECREATED"), shown
        eni = control_plane.clients.ec2.describe_network_interfaces(
            NetworkInterfaceIds=[details["networkInterfaceId"]])["NetworkInterfaces"][0]
        assert (eni["PrivateIpAddress"], eni["SubnetId"], eni["Status"]) == (address, subnet, "in-use")

        ecs.stop_task(cluster=cluster, task=arn, reason="test done")
        stopped = wait_until(
            lambda: (t := ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0])["lastStatus"]
            == "STOPPED" and arn in runner.stopped and _eni(t)[0] == "DELETED" and t, 10,
            what="the task STOPPED with its ENI deleted")
        # ECS deletes the ENI it made; the stopped task still names it.
        assert _eni(stopped)[1]["privateIPv4Address"] == address
        assert not _eni_exists(control_plane, details["networkInterfaceId"])


def test_awsvpc_refusals_on_ec2(control_plane, world):
    ecs = control_plane.clients.ecs
    cluster = world.cluster.name
    inst = control_plane.add_instance(world, "127.0.1.9")
    ecs.register_task_definition(**DEFINITION)
    subnet = _subnet(control_plane)
    public = {"awsvpcConfiguration": {"subnets": [subnet], "assignPublicIp": "ENABLED"}}
    _refused(lambda: ecs.create_service(cluster=cluster, serviceName="no-config", taskDefinition=FAMILY,
                                        desiredCount=1, launchType="EC2"), fargate.NO_NETWORK_CONFIGURATION)
    _refused(lambda: ecs.create_service(cluster=cluster, serviceName="public", taskDefinition=FAMILY,
                                        desiredCount=1, launchType="EC2", networkConfiguration=public),
             PUBLIC_IP_NOT_SUPPORTED)
    _refused(lambda: ecs.run_task(cluster=cluster, taskDefinition=FAMILY, launchType="EC2",
                                  networkConfiguration=public), PUBLIC_IP_NOT_SUPPORTED)
    _refused(lambda: ecs.start_task(cluster=cluster, taskDefinition=FAMILY, containerInstances=[inst.arn],
                                    networkConfiguration=public), PUBLIC_IP_NOT_SUPPORTED)
    assert PUBLIC_IP_NOT_SUPPORTED == "Assign public IP is not supported for this launch type."
    # Nothing was recorded: no service, no task.
    described = ecs.describe_services(cluster=cluster, services=["no-config", "public"])
    assert described["services"] == [] and len(described["failures"]) == 2
    assert ecs.list_tasks(cluster=cluster, desiredStatus="RUNNING")["taskArns"] == []
    assert ecs.list_tasks(cluster=cluster, desiredStatus="STOPPED")["taskArns"] == []


def test_an_awsvpc_service_on_ec2_gives_each_task_its_eni_and_scaling_in_deletes_one(control_plane, world,
                                                                                     fake_runner):
    ecs = control_plane.clients.ecs
    cluster = world.cluster.name
    runner = AddressingRunner(fake_runner)
    ecs.register_task_definition(**DEFINITION)
    subnet = _subnet(control_plane)
    group = control_plane.clients.ec2.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["default"]}])["SecurityGroups"][0]["GroupId"]
    config = {"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group]}}
    with EcsCluster(world, runner, control_plane=control_plane, agent_interval=0.1) as lab_cluster:
        lab_cluster.add_instance("127.0.1.9")
        ecs.create_service(cluster=cluster, serviceName="vpc-svc", taskDefinition=FAMILY, desiredCount=2,
                           launchType="EC2", networkConfiguration=config)
        try:
            def running() -> list[dict] | None:
                arns = ecs.list_tasks(cluster=cluster, serviceName="vpc-svc")["taskArns"]
                tasks = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"] if arns else []
                ok = len(tasks) == 2 and all(t["lastStatus"] == "RUNNING" for t in tasks)
                return tasks if ok else None

            tasks = wait_until(running, 15, what="the service's two tasks RUNNING")
            enis = {t["taskArn"]: _eni(t) for t in tasks}
            for arn, (status, details) in enis.items():
                assert status == "ATTACHED" and details["subnetId"] == subnet, details
                assert details["privateIPv4Address"] == runner.addresses[arn]
                eni = control_plane.clients.ec2.describe_network_interfaces(
                    NetworkInterfaceIds=[details["networkInterfaceId"]])["NetworkInterfaces"][0]
                assert eni["PrivateIpAddress"] == runner.addresses[arn]
                assert [g["GroupId"] for g in eni["Groups"]] == [group]
            assert len({d["privateIPv4Address"] for _, d in enis.values()}) == 2, enis
            svc = ecs.describe_services(cluster=cluster, services=["vpc-svc"])["services"][0]
            assert svc["networkConfiguration"]["awsvpcConfiguration"]["subnets"] == [subnet]
            assert svc["deployments"][0]["networkConfiguration"]["awsvpcConfiguration"]["subnets"] == [subnet]
            assert svc["runningCount"] == 2

            ecs.update_service(cluster=cluster, service="vpc-svc", desiredCount=1)

            def scaled_in() -> tuple[str, str] | None:
                left = ecs.list_tasks(cluster=cluster, serviceName="vpc-svc")["taskArns"]
                gone = [a for a in enis if a not in left]
                if len(left) != 1 or len(gone) != 1:
                    return None
                t = ecs.describe_tasks(cluster=cluster, tasks=gone)["tasks"][0]
                return (gone[0], left[0]) if t["lastStatus"] == "STOPPED" else None

            gone, left = wait_until(scaled_in, 15, what="one of the service's tasks stopped")
            assert not _eni_exists(control_plane, enis[gone][1]["networkInterfaceId"]), \
                "the scaled-in task's ENI is still in describe-network-interfaces"
            assert _eni_exists(control_plane, enis[left][1]["networkInterfaceId"])
        finally:
            ecs.update_service(cluster=cluster, service="vpc-svc", desiredCount=0)
            ecs.delete_service(cluster=cluster, service="vpc-svc", force=True)
