"""The FARGATE launch type's rules, each one broken on purpose through real botocore against the
lab's control plane: the refusal is ECS's error class and text, and nothing is recorded.

Then the accepted path: run-task and create-service on FARGATE with an awsvpcConfiguration give
tasks with launch type FARGATE, no container instance, an ENI attachment with its private address
in the subnet, the subnet's availability zone, and connectivity once running.
"""

from __future__ import annotations

import copy
import re

import pytest
from botocore.exceptions import ClientError

from lab.ecs import fargate
from lab.world import wait_until

GOOD = {
    "family": "fg-app",
    "requiresCompatibilities": ["FARGATE"],
    "networkMode": "awsvpc",
    "cpu": "256",
    "memory": "512",
    "executionRoleArn": "arn:aws:iam::123456789012:role/ecsTaskExecutionRole",
    "containerDefinitions": [{"name": "app", "image": "ecs-agent-lab/lab:latest", "essential": True,
                              "portMappings": [{"containerPort": 8080, "protocol": "tcp"}]}],
}


def _taskdef(**changes) -> dict:
    td = copy.deepcopy(GOOD)
    for key, value in changes.items():
        if value is None:
            td.pop(key, None)
        else:
            td[key] = value
    return td


def _container(**changes) -> dict:
    c = copy.deepcopy(GOOD["containerDefinitions"][0])
    c.update(changes)
    return c


def _refused(call, code: str, text: str) -> None:
    with pytest.raises(ClientError) as exc:
        call()
    err = exc.value.response["Error"]
    assert (err["Code"], err["Message"]) == (code, text)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def _default_subnet(control_plane) -> dict:
    subnets = control_plane.clients.ec2.describe_subnets(
        Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    assert subnets, "moto's default VPC has a subnet per availability zone"
    return sorted(subnets, key=lambda s: s["AvailabilityZone"])[0]


REGISTER_CASES = {
    "network mode bridge": (_taskdef(networkMode="bridge"), fargate.NOT_AWSVPC),
    "network mode absent": (_taskdef(networkMode=None), fargate.NOT_AWSVPC),
    "no task cpu": (_taskdef(cpu=None), fargate.NO_TASK_CPU),
    "no task memory": (_taskdef(memory=None), fargate.NO_TASK_MEMORY),
    "256 cpu with 4096 memory": (_taskdef(memory="4096"), fargate.size_error("256", "4096")),
    "512 cpu with 512 memory": (_taskdef(cpu="512", memory="512"), fargate.size_error("512", "512")),
    "hostPort differs from containerPort": (
        _taskdef(containerDefinitions=[_container(portMappings=[{"containerPort": 8080, "hostPort": 80}])]),
        fargate.HOST_PORT_MISMATCH),
    "host volume": (
        _taskdef(volumes=[{"name": "data", "host": {"sourcePath": "/srv/data"}}],
                 containerDefinitions=[_container(mountPoints=[{"sourceVolume": "data",
                                                                "containerPath": "/data"}])]),
        fargate.SOURCE_PATH),
    "docker socket mount": (
        _taskdef(volumes=[{"name": "docker_sock", "host": {"sourcePath": "/var/run/docker.sock"}}],
                 containerDefinitions=[_container(mountPoints=[{"sourceVolume": "docker_sock",
                                                                "containerPath": "/var/run/docker.sock",
                                                                "readOnly": True}])]),
        fargate.SOURCE_PATH),
    "privileged container": (_taskdef(containerDefinitions=[_container(privileged=True)]),
                             fargate.PRIVILEGED),
    "secrets without execution role": (
        _taskdef(executionRoleArn=None, containerDefinitions=[_container(secrets=[
            {"name": "DD_API_KEY",
             "valueFrom": "arn:aws:secretsmanager:us-east-1:123456789012:secret:dd"}])]),
        fargate.EXECUTION_ROLE_SECRETS),
    "FireLens without execution role": (
        _taskdef(executionRoleArn=None, containerDefinitions=[
            _container(name="log_router", image="amazon/aws-for-fluent-bit:stable", portMappings=[],
                       firelensConfiguration={"type": "fluentbit"}),
            _container(logConfiguration={"logDriver": "awsfirelens", "options": {"Name": "datadog"}})]),
        fargate.EXECUTION_ROLE_FIRELENS),
}


@pytest.mark.parametrize("case", sorted(REGISTER_CASES))
def test_register_refuses_what_fargate_cannot_run(control_plane, case):
    taskdef, text = REGISTER_CASES[case]
    ecs = control_plane.clients.ecs
    family = f"refused-{abs(hash(case)) % 10**8}"
    _refused(lambda: ecs.register_task_definition(**dict(taskdef, family=family)), "ClientException", text)
    with pytest.raises(ClientError):
        ecs.describe_task_definition(taskDefinition=family)  # nothing registered


def test_the_valid_sizes_register(control_plane):
    ecs = control_plane.clients.ecs
    for cpu, memory in (("256", "512"), ("1024", "8192"), ("4096", "30720"), ("16384", "122880")):
        got = ecs.register_task_definition(**_taskdef(family="fg-size", cpu=cpu, memory=memory))
        assert got["taskDefinition"]["compatibilities"] == ["EC2", "FARGATE"]


def test_run_task_refusals(control_plane, world):
    ecs = control_plane.clients.ecs
    cluster = world.cluster.name
    control_plane.ensure_cluster(cluster)
    subnet = _default_subnet(control_plane)["SubnetId"]
    ecs.register_task_definition(**GOOD)
    ecs.register_task_definition(family="ec2-only", containerDefinitions=[
        {"name": "a", "image": "ecs-agent-lab/lab:latest", "memory": 64}])
    net = {"awsvpcConfiguration": {"subnets": [subnet]}}
    run = ecs.run_task
    _refused(lambda: run(cluster=cluster, taskDefinition="ec2-only", launchType="FARGATE",
                         networkConfiguration=net),
             "InvalidParameterException", fargate.NOT_FARGATE_COMPATIBLE)
    _refused(lambda: run(cluster=cluster, taskDefinition="fg-app", launchType="FARGATE"),
             "InvalidParameterException", fargate.NO_NETWORK_CONFIGURATION)
    _refused(lambda: run(cluster=cluster, taskDefinition="ec2-only", launchType="FARGATE"),
             "InvalidParameterException", fargate.NO_NETWORK_CONFIGURATION)
    _refused(lambda: run(cluster=cluster, taskDefinition="fg-app", launchType="FARGATE",
                         networkConfiguration={"awsvpcConfiguration": {"subnets": []}}),
             "InvalidParameterException", fargate.NO_SUBNETS)
    _refused(lambda: run(cluster=cluster, taskDefinition="fg-app", launchType="FARGATE",
                         networkConfiguration={"awsvpcConfiguration": {"subnets": ["subnet-0nothere"]}}),
             "InvalidParameterException", fargate.unknown_subnet_error("subnet-0nothere"))
    assert ecs.list_tasks(cluster=cluster)["taskArns"] == []
    assert ecs.list_tasks(cluster=cluster, desiredStatus="STOPPED")["taskArns"] == []


def test_daemon_service_on_fargate_is_refused(control_plane, world):
    ecs = control_plane.clients.ecs
    cluster = world.cluster.name
    control_plane.ensure_cluster(cluster)
    ecs.register_task_definition(**GOOD)
    subnet = _default_subnet(control_plane)["SubnetId"]
    _refused(lambda: ecs.create_service(cluster=cluster, serviceName="fg-daemon", taskDefinition="fg-app",
                                        launchType="FARGATE", schedulingStrategy="DAEMON",
                                        networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet]}}),
             "InvalidParameterException", fargate.DAEMON)
    assert ecs.list_services(cluster=cluster)["serviceArns"] == []


def test_run_task_on_fargate_places_without_instances(control_plane, world):
    ecs = control_plane.clients.ecs
    cluster = world.cluster.name
    control_plane.ensure_cluster(cluster)
    subnet = _default_subnet(control_plane)
    ecs.register_task_definition(**GOOD)
    out = ecs.run_task(cluster=cluster, taskDefinition="fg-app", launchType="FARGATE", count=2,
                       networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet["SubnetId"]],
                                                                     "assignPublicIp": "DISABLED"}})
    assert out["failures"] == [] and len(out["tasks"]) == 2
    for task in out["tasks"]:
        assert task["launchType"] == "FARGATE"
        assert "containerInstanceArn" not in task
        assert task["availabilityZone"] == subnet["AvailabilityZone"]
        assert task["lastStatus"] == "PROVISIONING" and "connectivity" not in task
        eni = task["attachments"][0]
        assert eni["type"] == "ElasticNetworkInterface"
        details = {d["name"]: d["value"] for d in eni["details"]}
        assert details["subnetId"] == subnet["SubnetId"]
        ip = details["privateIPv4Address"]
        got = control_plane.clients.ec2.describe_network_interfaces(
            NetworkInterfaceIds=[details["networkInterfaceId"]])["NetworkInterfaces"][0]
        assert got["PrivateIpAddress"] == ip and got["SubnetId"] == subnet["SubnetId"]
    # Listing by instance still answers (a FARGATE run-task once broke every such call).
    assert ecs.list_tasks(cluster=cluster, launchType="FARGATE")["taskArns"]
    # The task reported running: connectivity shows, as describe-tasks shows it on ECS.
    arn = out["tasks"][0]["taskArn"]
    ecs.submit_task_state_change(cluster=cluster, task=arn, status="RUNNING")
    desc = ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]
    assert desc["lastStatus"] == "RUNNING" and desc["connectivity"] == "CONNECTED"


def test_create_service_on_fargate_starts_its_tasks(control_plane, world):
    ecs = control_plane.clients.ecs
    cluster = world.cluster.name
    control_plane.ensure_cluster(cluster)
    subnet = _default_subnet(control_plane)["SubnetId"]
    ecs.register_task_definition(**GOOD)
    ecs.create_service(cluster=cluster, serviceName="fg-svc", taskDefinition="fg-app", desiredCount=2,
                       launchType="FARGATE",
                       networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet]}})
    arns = wait_until(lambda: len(ecs.list_tasks(cluster=cluster, serviceName="fg-svc")["taskArns"]) == 2
                      and ecs.list_tasks(cluster=cluster, serviceName="fg-svc")["taskArns"], 10,
                      what="the service's 2 Fargate tasks")
    tasks = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"]
    assert {t["launchType"] for t in tasks} == {"FARGATE"}
    assert all("containerInstanceArn" not in t for t in tasks)
    ecs.delete_service(cluster=cluster, service="fg-svc", force=True)


def test_a_fargate_task_runs_on_a_host_of_its_own(control_plane, world, fake_runner):
    """The cluster's Fargate agent starts each FARGATE task on its own host (no container instance),
    with the subnet's availability zone, and reports it RUNNING; a stop is carried out and reported."""
    from lab.ecs.cluster import EcsCluster

    ecs = control_plane.clients.ecs
    subnet = _default_subnet(control_plane)
    ecs.register_task_definition(**GOOD)
    with EcsCluster(world, fake_runner, control_plane=control_plane, agent_interval=0.1) as cluster:
        out = ecs.run_task(cluster=world.cluster.name, taskDefinition="fg-app", launchType="FARGATE", count=2,
                           networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet["SubnetId"]]}})
        arns = [t["taskArn"] for t in out["tasks"]]

        def running() -> bool:
            tasks = ecs.describe_tasks(cluster=world.cluster.name, tasks=arns)["tasks"]
            return all(t["lastStatus"] == "RUNNING" for t in tasks)

        wait_until(running, 10, what="both Fargate tasks RUNNING")
        assert world.instances == [] and len(world.fargate_hosts) == 2
        hosts = {arn: world.find_task(arn)[0] for arn in arns}
        assert len({h.private_ip for h in hosts.values()}) == 2  # each task its own address
        for h in hosts.values():
            assert h.launch_type == "FARGATE" and h.availability_zone == subnet["AvailabilityZone"]
        assert cluster.status()["fargate_tasks"] == {arn: h.private_ip for arn, h in hosts.items()}
        ecs.stop_task(cluster=world.cluster.name, task=arns[0], reason="by the test")
        wait_until(lambda: arns[0] in fake_runner.stopped, 10, what="the Fargate agent stopping the task")
        assert ecs.describe_tasks(cluster=world.cluster.name, tasks=[arns[0]])["tasks"][0]["lastStatus"] \
            == "STOPPED"
        assert arns[1] not in fake_runner.stopped


INTAKE_HOST = "http-intake.logs.datadoghq.com"


def _run_fargate(control_plane, world, family: str) -> str:
    subnet = _default_subnet(control_plane)["SubnetId"]
    out = control_plane.clients.ecs.run_task(
        cluster=world.cluster.name, taskDefinition=family, launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet]}})
    assert out["failures"] == [], out["failures"]
    return out["tasks"][0]["taskArn"]


def test_a_fargate_task_the_lab_cannot_run_stops_with_the_reason(control_plane, world, fake_runner):
    """awsfirelens with no log router container registers (it has an execution role) but cannot run:
    the task stops with the reason named, and leaves no host behind."""
    from lab.ecs.cluster import EcsCluster

    ecs = control_plane.clients.ecs
    ecs.register_task_definition(**_taskdef(family="fg-firelens", containerDefinitions=[
        _container(logConfiguration={"logDriver": "awsfirelens", "options": {"Name": "datadog"}})]))
    with EcsCluster(world, fake_runner, control_plane=control_plane, agent_interval=0.1):
        arn = _run_fargate(control_plane, world, "fg-firelens")

        def stopped() -> dict | None:
            t = ecs.describe_tasks(cluster=world.cluster.name, tasks=[arn])["tasks"][0]
            return t if t["lastStatus"] == "STOPPED" else None

        task = wait_until(stopped, 10, what="the FireLens task STOPPED")
        reason = task["stoppedReason"]
        assert reason.startswith("UnsupportedField: firelensConfiguration:"), reason
        assert "no container has a firelensConfiguration" in reason, reason
        assert world.fargate_hosts == [] and fake_runner.started == []


def test_a_fargate_firelens_task_gets_its_routers_configuration(control_plane, world, fake_runner):
    """The Fargate agent prepares a FireLens task as the instance agent does: the router container
    gets ECS's generated fluent-bit configuration (the task's metadata records, no ec2_instance_id on
    Fargate) and the app starts after it."""
    from lab.ecs.cluster import EcsCluster

    ecs = control_plane.clients.ecs
    ecs.register_task_definition(**_taskdef(family="fg-firelens-ok", containerDefinitions=[
        _container(logConfiguration={"logDriver": "awsfirelens", "options": {
            "Name": "datadog", "apikey": "k", "dd_service": "svc", "Host": INTAKE_HOST}}),
        _container(name="log-router", image="amazon/aws-for-fluent-bit:latest",
                   firelensConfiguration={"type": "fluentbit",
                                          "options": {"enable-ecs-log-metadata": "true"}})]))
    with EcsCluster(world, fake_runner, control_plane=control_plane, agent_interval=0.1):
        arn = _run_fargate(control_plane, world, "fg-firelens-ok")
        wait_until(lambda: any(a == arn for _, a, _ in fake_runner.started), 10,
                   what="the FireLens task started on its Fargate host")
        specs = {s.name: s for _, a, got in fake_runner.started if a == arn for s in got}
        router, app = specs["log-router"], specs[_container()["name"]]
        conf = router.log_router_config or ""
        assert f"ecs_task_arn {arn}" in conf and "ecs_task_definition fg-firelens-ok:1" in conf, conf
        assert "ec2_instance_id" not in conf, conf
        output = re.search(r"\[OUTPUT\]\n((?:[ \t]+\S.*\n?)+)", conf)
        assert output, conf
        options = dict(line.split(None, 1) for line in output.group(1).strip().splitlines())
        assert options["Name"] == "datadog" and options["dd_service"] == "svc", options
        assert ("log-router", "START") in app.depends_on


def test_run_task_of_an_awsvpc_definition_on_ec2_gets_an_eni_on_its_instance(control_plane, world):
    """awsvpc on EC2 (docs/awsvpc.md): refused without a network configuration, as ECS refuses it;
    with one, the task is placed on the container instance with an ENI attachment in the subnet named,
    PRECREATED until its instance attaches it (tests/ecs/test_awsvpc_on_ec2.py follows it on)."""
    ecs = control_plane.clients.ecs
    cluster = world.cluster.name
    control_plane.ensure_cluster(cluster)
    inst = control_plane.add_instance(world, "127.0.1.9")
    subnet = _default_subnet(control_plane)
    ecs.register_task_definition(family="ec2-vpc", networkMode="awsvpc", requiresCompatibilities=["EC2"],
                                 containerDefinitions=[{"name": "a", "image": "ecs-agent-lab/lab:latest",
                                                        "memory": 64}])
    _refused(lambda: ecs.run_task(cluster=cluster, taskDefinition="ec2-vpc", launchType="EC2"),
             "InvalidParameterException", fargate.NO_NETWORK_CONFIGURATION)
    out = ecs.run_task(cluster=cluster, taskDefinition="ec2-vpc", launchType="EC2",
                       networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet["SubnetId"]]}})
    assert out["failures"] == [] and len(out["tasks"]) == 1
    task = out["tasks"][0]
    assert task["launchType"] == "EC2" and task["containerInstanceArn"] == inst.arn
    eni = task["attachments"][0]
    details = {d["name"]: d["value"] for d in eni["details"]}
    assert eni["type"] == "ElasticNetworkInterface" and eni["status"] == "PRECREATED"
    assert details == {"subnetId": subnet["SubnetId"]}
    ecs.stop_task(cluster=cluster, task=task["taskArn"])
    # No instance agent ever started it: stopped with its ENI never attached, nothing left to delete.
    stopped = ecs.describe_tasks(cluster=cluster, tasks=[task["taskArn"]])["tasks"][0]
    assert stopped["lastStatus"] == "STOPPED" and stopped["attachments"][0]["status"] == "DELETED"
