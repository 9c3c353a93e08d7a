"""The control plane as users drive it: the real `aws` CLI and boto3 against the lab's :4566 twin,
tasks placed and run as ECS would (DAEMON: one per instance, instances added later included)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from lab.ecs.instance_agent import InstanceAgent
from lab.world import Cluster, World, wait_until

# The aws CLI of this very environment (a shell `aws` may belong to another Python and botocore).
AWS_CLI = (sys.executable, "-m", "awscli")

TASKDEFS = Path(__file__).resolve().parents[2] / "lab" / "ecs" / "taskdefs"


def aws(control_plane, env, *args) -> dict:
    proc = subprocess.run([*AWS_CLI, "--endpoint-url", control_plane.endpoint, "--output", "json", *args],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout) if proc.stdout.strip() else {}


def test_docs_agent_task_definition_registers_with_the_real_aws_cli(control_plane, aws_env):
    out = aws(control_plane, aws_env, "ecs", "register-task-definition",
              "--cli-input-json", f"file://{TASKDEFS / 'datadog-agent-ecs-apm.json'}")
    td = out["taskDefinition"]
    assert td["family"] == "datadog-agent-task" and td["revision"] >= 1
    agent = td["containerDefinitions"][0]
    assert agent["portMappings"][0]["hostPort"] == 8126
    assert agent["healthCheck"]["command"] == ["CMD-SHELL", "agent health"]
    assert {v["name"] for v in td["volumes"]} == {"docker_sock", "proc", "cgroup"}


def test_boto3_through_localstack_client_sees_the_same_definition(control_plane):
    ecs = control_plane.clients.ecs_client()
    td = json.loads((TASKDEFS / "datadog-agent-sysprobe-ecs.json").read_text())
    arn = ecs.register_task_definition(**td)["taskDefinition"]["taskDefinitionArn"]
    got = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
    caps = got["containerDefinitions"][0]["linuxParameters"]["capabilities"]["add"]
    assert "SYS_ADMIN" in caps and "NET_ADMIN" in caps


def test_server_side_refusal_reaches_the_cli(control_plane, aws_env, tmp_path):
    path = tmp_path / "no-memory.json"
    path.write_text(json.dumps({"family": "nomem", "containerDefinitions": [{"name": "web", "image": "x"}]}))
    proc = subprocess.run([*AWS_CLI, "--endpoint-url", control_plane.endpoint, "ecs",
                           "register-task-definition", "--cli-input-json", f"file://{path}"],
                          capture_output=True, text=True,
                          env=aws_env, timeout=60)
    assert proc.returncode != 0
    assert "ClientException" in proc.stderr and "'memory' or 'memoryReservation'" in proc.stderr


def test_instances_are_registered_with_their_imds_identity(control_plane, world):
    inst = control_plane.add_instance(world, "127.0.1.1")
    ec2 = control_plane.clients.ec2.describe_instances(InstanceIds=[inst.instance_id])
    assert ec2["Reservations"][0]["Instances"][0]["InstanceId"] == inst.instance_id
    ci = control_plane.clients.ecs.describe_container_instances(
        cluster=world.cluster.name, containerInstances=[inst.arn])["containerInstances"][0]
    assert ci["ec2InstanceId"] == inst.identity_document()["instanceId"] == inst.instance_id
    assert ci["status"] == "ACTIVE"


def test_run_task_port_clash_is_refused_with_the_ecs_reason(control_plane, aws_env, world):
    control_plane.add_instance(world, "127.0.1.1")
    aws(control_plane, aws_env, "ecs", "register-task-definition",
        "--cli-input-json", f"file://{TASKDEFS / 'datadog-agent-ecs-apm.json'}")
    first = aws(control_plane, aws_env, "ecs", "run-task", "--cluster", world.cluster.name,
                "--task-definition", "datadog-agent-task")
    assert len(first["tasks"]) == 1 and first["tasks"][0]["lastStatus"] == "PENDING"
    second = aws(control_plane, aws_env, "ecs", "run-task", "--cluster", world.cluster.name,
                 "--task-definition", "datadog-agent-task")
    assert second["tasks"] == []
    assert second["failures"][0]["reason"] == "RESOURCE:PORTS"


def test_run_task_beyond_memory_is_refused(control_plane, world):
    control_plane.add_instance(world, "127.0.1.1")
    ecs = control_plane.clients.ecs
    ecs.register_task_definition(family="hog", containerDefinitions=[{"name": "h", "image": "x",
                                                                       "memory": 100_000}])
    out = ecs.run_task(cluster=world.cluster.name, taskDefinition="hog")
    assert out["tasks"] == [] and out["failures"][0]["reason"] == "RESOURCE:MEMORY"


def _agents(control_plane, world, runner):
    return [InstanceAgent(world, inst, runner, control_plane.clients, interval=0.1).start()
            for inst in world.instances]


def _running(control_plane, world, service):
    ecs = control_plane.clients.ecs
    arns = ecs.list_tasks(cluster=world.cluster.name, serviceName=service)["taskArns"]
    if not arns:
        return []
    tasks = ecs.describe_tasks(cluster=world.cluster.name, tasks=arns)["tasks"]
    return [t for t in tasks if t["lastStatus"] == "RUNNING"]


def test_daemon_service_runs_one_agent_per_instance_including_a_new_one(control_plane, world, fake_runner):
    for n in (1, 2):
        control_plane.add_instance(world, f"127.0.1.{n}")
    ecs = control_plane.clients.ecs
    td = json.loads((TASKDEFS / "datadog-agent-ecs-apm.json").read_text())
    ecs.register_task_definition(**td)
    ecs.create_service(cluster=world.cluster.name, serviceName="datadog-agent",
                       taskDefinition="datadog-agent-task", schedulingStrategy="DAEMON")
    agents = _agents(control_plane, world, fake_runner)
    try:
        tasks = wait_until(lambda: len(_running(control_plane, world, "datadog-agent")) == 2
                           and _running(control_plane, world, "datadog-agent"), 10, what="2 daemon tasks")
        assert {t["containerInstanceArn"] for t in tasks} == {i.arn for i in world.instances}
        # The world (what IMDS, introspection and task metadata answer from) holds the same ARNs.
        world_arns = {t.arn for i in world.instances for t in i.tasks}
        assert world_arns == {t["taskArn"] for t in tasks}
        assert fake_runner.running_on(1) and fake_runner.running_on(2)

        third = control_plane.add_instance(world, "127.0.1.3")
        agents.append(InstanceAgent(world, third, fake_runner, control_plane.clients, interval=0.1).start())
        wait_until(lambda: len(_running(control_plane, world, "datadog-agent")) == 3, 10,
                   what="a daemon task on the instance added later")
        assert len(fake_runner.running_on(3)) == 1
        svc = ecs.describe_services(cluster=world.cluster.name, services=["datadog-agent"])["services"][0]
        assert (svc["desiredCount"], svc["runningCount"]) == (3, 3)
        # Exactly one per instance: the scheduler does not add more on later passes.
        control_plane.reconcile_services()
        assert [len(fake_runner.running_on(n)) for n in (1, 2, 3)] == [1, 1, 1]
    finally:
        for a in agents:
            a.stop()


def test_stopped_task_is_stopped_on_its_instance_and_replaced(control_plane, world, fake_runner):
    control_plane.add_instance(world, "127.0.1.1")
    ecs = control_plane.clients.ecs
    ecs.register_task_definition(family="daemon-x", containerDefinitions=[{"name": "a", "image": "x",
                                                                            "memory": 64}])
    ecs.create_service(cluster=world.cluster.name, serviceName="dx", taskDefinition="daemon-x",
                       schedulingStrategy="DAEMON")
    agents = _agents(control_plane, world, fake_runner)
    try:
        first = wait_until(lambda: _running(control_plane, world, "dx"), 10, what="daemon task")[0]["taskArn"]
        ecs.stop_task(cluster=world.cluster.name, task=first, reason="test")
        wait_until(lambda: first in fake_runner.stopped, 10, what="the instance agent to stop the task")
        replacement = wait_until(lambda: [t for t in _running(control_plane, world, "dx")
                                          if t["taskArn"] != first], 10, what="a replacement task")
        assert replacement[0]["containerInstanceArn"] == world.instances[0].arn
        stopped = ecs.describe_tasks(cluster=world.cluster.name, tasks=[first])["tasks"][0]
        assert stopped["lastStatus"] == "STOPPED" and stopped["stoppedReason"] == "test"
    finally:
        for a in agents:
            a.stop()


def test_assignments_are_pushed_to_instance_agents_not_left_for_their_next_poll(control_plane, world,
                                                                               fake_runner):
    """ECS pushes task assignments to its agents (ACS): a task run or stopped through the API is
    acted on at once. The agent here polls once a minute, so only the push can start it in time."""
    inst = control_plane.add_instance(world, "127.0.1.1")
    ecs = control_plane.clients.ecs
    ecs.register_task_definition(family="pushed", containerDefinitions=[{"name": "a", "image": "x",
                                                                          "memory": 64}])
    agent = InstanceAgent(world, inst, fake_runner, control_plane.clients, interval=60)
    unsubscribe = control_plane.on_assignments(agent.wake)
    agent.start()
    try:
        wait_until(lambda: agent.reconcile_passes >= 1, 10, what="the agent's first pass")
        arn = ecs.run_task(cluster=world.cluster.name, taskDefinition="pushed")["tasks"][0]["taskArn"]
        wait_until(lambda: arn in fake_runner.running_on(1), 10, what="the pushed task to start")
        ecs.stop_task(cluster=world.cluster.name, task=arn, reason="test")
        wait_until(lambda: arn in fake_runner.stopped, 10, what="the pushed stop to stop the task")
    finally:
        unsubscribe()
        agent.stop()


def test_unknown_image_stops_the_task_with_the_backend_reason(control_plane, world, fake_runner):
    runner = fake_runner
    runner.unknown_images = ("acme/",)
    control_plane.add_instance(world, "127.0.1.1")
    ecs = control_plane.clients.ecs
    ecs.register_task_definition(family="acme", containerDefinitions=[{"name": "a", "image": "acme/app:1",
                                                                        "memory": 64}])
    arn = ecs.run_task(cluster=world.cluster.name, taskDefinition="acme")["tasks"][0]["taskArn"]
    agents = _agents(control_plane, world, runner)
    try:
        def stopped():
            t = ecs.describe_tasks(cluster=world.cluster.name, tasks=[arn])["tasks"][0]
            return t if t["lastStatus"] == "STOPPED" else None
        t = wait_until(stopped, 10, what="the task to stop")
        assert "acme/app:1" in t["stoppedReason"]
    finally:
        for a in agents:
            a.stop()


@pytest.mark.parametrize("field", ["logConfiguration", "ulimits"])
def test_a_field_the_lab_cannot_honour_is_named(control_plane, world, fake_runner, field):
    control_plane.add_instance(world, "127.0.1.1")
    ecs = control_plane.clients.ecs
    extra = {"logConfiguration": {"logDriver": "splunk", "options": {"splunk-url": "https://127.0.0.1"}},
             "ulimits": [{"name": "nofile", "softLimit": 1024, "hardLimit": 2048}]}[field]
    ecs.register_task_definition(family=f"u-{field}", containerDefinitions=[
        {"name": "a", "image": "x", "memory": 64, field: extra}])
    arn = ecs.run_task(cluster=world.cluster.name, taskDefinition=f"u-{field}")["tasks"][0]["taskArn"]
    agents = _agents(control_plane, world, fake_runner)
    try:
        def reason():
            t = ecs.describe_tasks(cluster=world.cluster.name, tasks=[arn])["tasks"][0]
            return t.get("stoppedReason") if t["lastStatus"] == "STOPPED" else None
        assert field in wait_until(reason, 10, what="the task to stop")
        assert not fake_runner.started
    finally:
        for a in agents:
            a.stop()


def test_health_check_status_is_visible_in_describe_tasks(control_plane, world, fake_runner):
    from lab.ecs.cluster import EcsCluster

    with EcsCluster(world, fake_runner, control_plane=control_plane, agent_interval=0.1) as cluster:
        cluster.add_instance("127.0.1.1")
        ecs = control_plane.clients.ecs
        td = json.loads((TASKDEFS / "datadog-agent-ecs-apm.json").read_text())
        td["family"] = "agent-health"
        ecs.register_task_definition(**td)
        arn = ecs.run_task(cluster=world.cluster.name, taskDefinition="agent-health")["tasks"][0]["taskArn"]
        task = wait_until(lambda: world.find_task(arn), 10, what="the task in the world")[1]
        task.containers[0].health_status = "HEALTHY"  # what the backend's health check runner found
        world.touch()

        def described():
            t = ecs.describe_tasks(cluster=world.cluster.name, tasks=[arn])["tasks"][0]
            return t if t.get("healthStatus") == "HEALTHY" else None
        t = wait_until(described, 10, what="healthStatus HEALTHY in describe-tasks")
        assert t["containers"][0]["healthStatus"] == "HEALTHY"
        task.containers[0].health_status = "UNHEALTHY"
        world.touch()
        wait_until(lambda: ecs.describe_tasks(cluster=world.cluster.name, tasks=[arn])["tasks"][0]
                   .get("healthStatus") == "UNHEALTHY", 10, what="healthStatus UNHEALTHY")


def test_replica_service_spreads_and_scales_in(control_plane, world, fake_runner):
    from lab.ecs.cluster import EcsCluster

    with EcsCluster(world, fake_runner, control_plane=control_plane, agent_interval=0.1) as cluster:
        for n in (1, 2):
            cluster.add_instance(f"127.0.1.{n}")
        ecs = control_plane.clients.ecs
        ecs.register_task_definition(family="web-replica", containerDefinitions=[
            {"name": "web", "image": "ecs-agent-lab/lab:latest", "memory": 128,
             "portMappings": [{"containerPort": 8080}]}])
        ecs.create_service(cluster=world.cluster.name, serviceName="web", taskDefinition="web-replica",
                           desiredCount=4)
        tasks = wait_until(lambda: len(_running(control_plane, world, "web")) == 4
                           and _running(control_plane, world, "web"), 10, what="4 replica tasks")
        per_instance = sorted(sum(t["containerInstanceArn"] == i.arn for t in tasks) for i in world.instances)
        assert per_instance == [2, 2]  # spread over instances, dynamic host ports stack
        ecs.update_service(cluster=world.cluster.name, service="web", desiredCount=1)
        wait_until(lambda: len(_running(control_plane, world, "web")) == 1, 10, what="scale in to 1")
        svc = ecs.describe_services(cluster=world.cluster.name, services=["web"])["services"][0]
        assert (svc["desiredCount"], svc["runningCount"]) == (1, 1)


def test_an_instance_the_backend_built_keeps_its_id_in_the_control_plane(control_plane, world):
    inst = world.add_instance("127.0.1.7")  # as a backend builds it, IMDS may already serve this id
    before = inst.instance_id
    control_plane.adopt_instance(world, inst)
    assert inst.instance_id == before
    described = control_plane.clients.ec2.describe_instances(InstanceIds=[before])
    ec2 = described["Reservations"][0]["Instances"][0]
    assert ec2["PrivateIpAddress"] == "127.0.1.7"
    ci = control_plane.clients.ecs.describe_container_instances(
        cluster=world.cluster.name, containerInstances=[inst.arn])["containerInstances"][0]
    assert ci["ec2InstanceId"] == before


def test_a_later_lab_at_the_same_address_gets_its_instance_described(control_plane):
    """Docker labs in one process all put instance 1 at 172.30.1.1, so each gives it the same stable
    id: the instance a finished lab left must not make that id name two machines (moto then failed
    describe-instances with a 500)."""
    ids, arns = [], []
    for _ in range(2):
        world = World(Cluster(name=f"test-{uuid.uuid4().hex[:8]}"))
        inst = world.add_instance("127.0.1.77")
        control_plane.adopt_instance(world, inst)
        ids.append(inst.instance_id)
        arns.append(inst.arn)
    assert ids[0] == ids[1]  # the premise: the same address gives the same id
    ec2 = control_plane.clients.ec2
    described = ec2.describe_instances(InstanceIds=[ids[1]])["Reservations"]
    assert [i["InstanceId"] for r in described for i in r["Instances"]] == [ids[1]]
    everywhere = [i["InstanceId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
    assert everywhere.count(ids[1]) == 1
    interfaces = ec2.describe_network_interfaces(
        Filters=[{"Name": "attachment.instance-id", "Values": [ids[1]]}])["NetworkInterfaces"]
    assert len(interfaces) == 1, interfaces


def test_a_new_revision_is_a_deployment_that_settles(control_plane, world, fake_runner):
    """update-service to a new revision: a PRIMARY deployment of it IN_PROGRESS with the old one
    ACTIVE, each counting its own tasks; COMPLETED once the new tasks run and the old ones are gone,
    the old deployment dropped, and ECS's events written."""
    control_plane.add_instance(world, "127.0.1.1")
    ecs = control_plane.clients.ecs
    td = json.loads((TASKDEFS / "datadog-agent-ecs-apm.json").read_text())
    first = ecs.register_task_definition(**td)["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(cluster=world.cluster.name, serviceName="datadog-agent",
                       taskDefinition=first, schedulingStrategy="DAEMON")
    agents = _agents(control_plane, world, fake_runner)

    def service():
        return ecs.describe_services(cluster=world.cluster.name, services=["datadog-agent"])["services"][0]

    try:
        wait_until(lambda: service()["deployments"][0].get("rolloutState") == "COMPLETED", 10,
                   what="the first deployment completed")
        td["containerDefinitions"][0]["environment"].append({"name": "LAB_DEPLOYMENT", "value": "2"})
        second = ecs.register_task_definition(**td)["taskDefinition"]["taskDefinitionArn"]
        answer = ecs.update_service(cluster=world.cluster.name, service="datadog-agent",
                                    taskDefinition=second)["service"]
        primary, old = answer["deployments"]
        assert (primary["status"], primary["taskDefinition"], primary["rolloutState"]) == (
            "PRIMARY", second, "IN_PROGRESS")
        assert (old["status"], old["taskDefinition"]) == ("ACTIVE", first)
        svc = wait_until(lambda: (s := service())["deployments"][0]["rolloutState"] == "COMPLETED" and s,
                         15, what="the new deployment completed")
        assert [d["taskDefinition"] for d in svc["deployments"]] == [second]
        assert (svc["deployments"][0]["runningCount"], svc["deployments"][0]["desiredCount"]) == (1, 1)
        assert [t["taskDefinitionArn"] for t in _running(control_plane, world, "datadog-agent")] == [second]
        messages = [e["message"] for e in svc["events"]]
        assert messages[0] == "(service datadog-agent) has reached a steady state."
        assert any("has stopped 1 running tasks" in m for m in messages), messages
        assert sum("has started 1 tasks" in m for m in messages) == 2, messages
        # The same revision again is no new deployment.
        again = ecs.update_service(cluster=world.cluster.name, service="datadog-agent", taskDefinition=second)
        assert len(again["service"]["deployments"]) == 1
    finally:
        for a in agents:
            a.stop()


def test_a_deleted_clusters_leftover_service_does_not_stop_another_clusters_reconcile(control_plane, world):
    """Labs in one process share the control plane. A DAEMON service that outlived its cluster in
    moto's model (seen in CI: another lab's, its cluster gone, its instance still registered) made
    every reconcile raise ClusterNotFoundException before reaching the next lab's services."""
    from lab.ecs.moto_model import ECS_LOCK
    from lab.world import Cluster, World

    scheduler = control_plane.service_scheduler
    gone = World(Cluster(name=f"{world.cluster.name}-gone"))
    control_plane.add_instance(gone, "127.0.2.1")
    control_plane.add_instance(world, "127.0.1.1")
    ecs = control_plane.clients.ecs
    scheduler.paused.add(gone.cluster.name)  # nothing placed before its cluster is gone
    td = json.loads((TASKDEFS / "datadog-agent-ecs-apm.json").read_text())
    arn = ecs.register_task_definition(**td)["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(cluster=gone.cluster.name, serviceName="left-over", taskDefinition=arn,
                       schedulingStrategy="DAEMON")
    with ECS_LOCK:  # what was left: the cluster gone from the model, its service and instance not
        del scheduler.ecs.backend.clusters[gone.cluster.name]
        scheduler.paused.discard(gone.cluster.name)
    ecs.create_service(cluster=world.cluster.name, serviceName="datadog-agent", taskDefinition=arn,
                       schedulingStrategy="DAEMON")
    try:
        with ECS_LOCK:
            scheduler._launches.clear()  # the loop's own passes may have tried already: try again now
            control_plane.reconcile_services()
        tasks = ecs.list_tasks(cluster=world.cluster.name, serviceName="datadog-agent")["taskArns"]
        assert len(tasks) == 1, tasks
    finally:  # the control plane is the session's: later tests' `problems()` must not see the leftover
        with ECS_LOCK:
            backend = scheduler.ecs.backend
            for key in [k for k, svc in backend.services.items() if svc.cluster_name == gone.cluster.name]:
                del backend.services[key]
        control_plane._forget("DeleteCluster", {"cluster": gone.cluster.name})


def test_a_cluster_paused_by_one_control_plane_is_left_alone_by_all_others_in_the_process(
        control_plane, world):
    """moto keeps one model per process, so each embedded control plane's scheduler schedules every
    service in it. Seen in the unit suite: a sandbox test paused its own lab's scheduler to hold a
    rollout open, and this session's control plane, started by an earlier test in the same worker,
    went on and completed the rollout. A pause is for every scheduler of the process."""
    from lab.ecs.control_plane import ControlPlane
    from lab.ecs.moto_model import ECS_LOCK

    control_plane.add_instance(world, "127.0.1.1")
    ecs = control_plane.clients.ecs
    td = json.loads((TASKDEFS / "datadog-agent-ecs-apm.json").read_text())
    arn = ecs.register_task_definition(**td)["taskDefinition"]["taskDefinitionArn"]

    def tasks() -> list[str]:
        return ecs.list_tasks(cluster=world.cluster.name, serviceName="datadog-agent")["taskArns"]

    with ControlPlane(port=0) as other:
        other.service_scheduler.pause(world.cluster.name)
        try:
            ecs.create_service(cluster=world.cluster.name, serviceName="datadog-agent", taskDefinition=arn,
                               schedulingStrategy="DAEMON")
            with ECS_LOCK:
                control_plane.service_scheduler._launches.clear()
                control_plane.reconcile_services()
            assert tasks() == [], "the session's scheduler placed a task in a cluster another one paused"
        finally:
            other.service_scheduler.resume(world.cluster.name)
        # Let go, the same scheduler places the daemon's task at once (the test can fail).
        control_plane.reconcile_services()
        assert len(tasks()) == 1, tasks()
    ecs.delete_service(cluster=world.cluster.name, service="datadog-agent", force=True)


def test_a_deleted_cluster_is_no_longer_paused_and_one_made_again_under_its_name_is_scheduled(
        control_plane, world):
    """A lab pauses its cluster when it stops and deletes it last; a cluster made later under that
    name (a later lab on the same subnet, a user's create-cluster) is scheduled from the start."""
    from lab.ecs.stack_services import remove_cluster

    scheduler = control_plane.service_scheduler
    ecs = control_plane.clients.ecs
    td = json.loads((TASKDEFS / "datadog-agent-ecs-apm.json").read_text())
    arn = ecs.register_task_definition(**td)["taskDefinition"]["taskDefinitionArn"]
    name = world.cluster.name
    scheduler.pause(name)
    control_plane.add_instance(world, "127.0.1.1")
    ecs.create_service(cluster=name, serviceName="datadog-agent", taskDefinition=arn,
                       schedulingStrategy="DAEMON")
    control_plane.reconcile_services()
    assert ecs.list_tasks(cluster=name)["taskArns"] == [], "a paused cluster's daemon was placed"
    remove_cluster(ecs, name)
    assert name not in scheduler.paused
    again = World(Cluster(name=name))
    control_plane.add_instance(again, "127.0.1.2")
    ecs.create_service(cluster=name, serviceName="datadog-agent", taskDefinition=arn,
                       schedulingStrategy="DAEMON")
    wait_until(lambda: len(ecs.list_tasks(cluster=name)["taskArns"]) == 1, 10,
               what="the daemon's task in the cluster made again")


def test_a_service_whose_reconcile_fails_stops_no_other_and_is_only_its_own_labs_problem(
        control_plane, world, monkeypatch):
    """One service that makes the scheduler raise (seen once: a cluster gone under its service) must
    not keep the other labs' services from being scheduled; the error is its cluster's, and a lab
    that does not own that cluster does not report it."""
    from lab.ecs.stack_services import remove_cluster

    scheduler = control_plane.service_scheduler
    ecs = control_plane.clients.ecs
    bad = World(Cluster(name=f"{world.cluster.name}-bad"))
    control_plane.add_instance(bad, "127.0.2.1")
    control_plane.add_instance(world, "127.0.1.1")
    td = json.loads((TASKDEFS / "datadog-agent-ecs-apm.json").read_text())
    good_td = ecs.register_task_definition(**td)["taskDefinition"]["taskDefinitionArn"]
    bad_td = ecs.register_task_definition(**{**td, "family": "fails-to-reconcile"})["taskDefinition"]
    needs_of = scheduler.ecs.needs_of

    def failing(arn: str):
        if "fails-to-reconcile" in arn:
            raise RuntimeError("this service's reconcile fails")
        return needs_of(arn)

    monkeypatch.setattr(scheduler.ecs, "needs_of", failing)
    try:
        # The failing service is made first, so a pass meets it before the other.
        ecs.create_service(cluster=bad.cluster.name, serviceName="broken", schedulingStrategy="DAEMON",
                           taskDefinition=bad_td["taskDefinitionArn"])
        ecs.create_service(cluster=world.cluster.name, serviceName="datadog-agent", taskDefinition=good_td,
                           schedulingStrategy="DAEMON")
        control_plane.reconcile_services()
        assert len(ecs.list_tasks(cluster=world.cluster.name)["taskArns"]) == 1
        assert any("this service's reconcile fails" in e for e in scheduler.errors_for({bad.cluster.name}))
        assert scheduler.errors_for({world.cluster.name}) == []
    finally:
        monkeypatch.undo()
        remove_cluster(ecs, bad.cluster.name)  # the world fixture removes its own
