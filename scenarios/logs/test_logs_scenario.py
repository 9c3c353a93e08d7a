"""logs: on ECS EC2 the agent's container log collection (DD_LOGS_ENABLED with
DD_LOGS_CONFIG_CONTAINER_COLLECT_ALL, as the Datadog ECS logs docs set it) delivers an app's stdout
lines to the intake with the ECS tags; a task whose container uses the `awslogs` driver runs and its
lines are read back from CloudWatch Logs with botocore, as `aws logs get-log-events` reads them; a
FireLens task (the Datadog FireLens document's app options, on EC2) delivers its app's lines through
its log router with dd_service, dd_source, dd_tags and the ECS fields.

Waits: the agent's logs batch wait (from `agent config`, else its documented default) + container
discovery + margin, as the agent under test reports it; awslogs: docker's driver publishes every 5 s;
FireLens: fluent-bit flushes every second (its default `Flush`), once the task runs.
On docker the agent reads the containers' logs through the docker socket its task definition mounts,
the awslogs driver is fed from the docker API, and the FireLens router is a container in its own
network namespace (bridge mode), which the app reaches at FLUENT_HOST
(docs/logs.md#firelens-tasks-on-ec2-and-fargate).
"""

from __future__ import annotations

import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from lab.agent_probe import waiting_for
from lab.fakes.intake.client import IntakeClient
from lab.pytest_plugin import intake_client
from lab.world import wait_until

LAB_WITH = {"agent_env": {"DD_LOGS_ENABLED": "true", "DD_LOGS_CONFIG_CONTAINER_COLLECT_ALL": "true"},
            "apps": ("imdsv1",)}
# docker's awslogs driver (moby daemon/logger/awslogs batchPublishFrequency) + margin for a busy machine.
AWSLOGS_PUBLISH = 5.0
AWSLOGS_MARGIN = 10.0
# fluent-bit's default [SERVICE] Flush (1 s), counted once the task runs (its router listens).
FLUENT_BIT_FLUSH = 1.0
ROUTER_START_AND_MARGIN = 15.0
# The task's start: the router (python or fluent-bit) then the app; docker waits up to 3x the lab's
# readiness bound for each.
TASK_START = 90.0


@pytest.fixture(scope="module")
def logs_lab(lab_with):
    return lab_with(**LAB_WITH)


def _aws(lab, service: str):
    # What a user's boto3 / aws CLI does against the lab's control plane (dummy credentials).
    return boto3.client(service, endpoint_url=lab.state["control_plane"], region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


@pytest.mark.agent_offers("logs")  # the agent's own container log collection
def test_the_sample_apps_own_lines_arrive_with_its_service_and_ecs_tags(logs_lab):
    lab = logs_lab
    app, agent = lab.apps["imdsv1"], lab.agents[0]
    # The app printed its one "listening" line when it started, before this test: the whole intake
    # of this stack (its own, private to the module) is read, not a session begun now.
    intake = IntakeClient(lab.intake_url)
    with waiting_for(agent.probe.intervals().logs()) as timeout:
        got = intake.wait_for_logs(app.service, message="ecs-lab web: listening", timeout=timeout)
    tags = set(got[0]["tags"])
    expected = {f"task_arn:{app.task_arn}", f"task_family:{app.service}-task",
                f"task_version:{app.task_version}", f"ecs_cluster_name:{lab.cluster_name}",
                "ecs_container_name:app", "short_image:lab", f"container_id:{app.docker_id}"}
    assert expected <= tags, f"missing {sorted(expected - tags)}; got {sorted(tags)}"
    assert got[0]["hostname"] == agent.instance_id, "the agent's hostname on ECS EC2 is the instance id"


@pytest.mark.agent_offers("logs")  # the agent's own container log collection
def test_a_registered_tasks_lines_arrive_in_order_with_its_ecs_tags(logs_lab):
    lab = logs_lab
    agent = lab.agents[0]
    intake = intake_client(lab.intake_url)
    marker = uuid.uuid4().hex[:8]
    ecs = _aws(lab, "ecs")
    ecs.register_task_definition(family="logs-scenario", containerDefinitions=[{
        "name": "worker", "image": "ecs-agent-lab/lab:latest", "memory": 64, "entryPoint": ["sh", "-c"],
        "command": [f"for i in $(seq 1 50); do echo {marker} $i; done; exec sleep 300"],
        "environment": [{"name": "DD_SERVICE", "value": "scenario-worker"}]}])
    arn = ecs.run_task(cluster=lab.cluster_name, taskDefinition="logs-scenario")["tasks"][0]["taskArn"]
    try:
        with waiting_for(agent.probe.intervals().logs()) as timeout:
            got = intake.wait_for_logs("scenario-worker", count=50, message=marker, timeout=timeout)
        assert [e["message"] for e in sorted(got, key=lambda e: (e["seq"], e["timestamp"]))] == [
            f"{marker} {i}" for i in range(1, 51)], "every line, once, in order"
        expected = {f"task_arn:{arn}", "task_family:logs-scenario", "ecs_container_name:worker"}
        assert expected <= set(got[0]["tags"])
    finally:
        ecs.stop_task(cluster=lab.cluster_name, task=arn)


def test_an_awslogs_tasks_lines_are_read_back_with_botocore(logs_lab):
    lab = logs_lab
    marker, group = uuid.uuid4().hex[:8], f"/ecs/logs-scenario-{uuid.uuid4().hex[:6]}"
    ecs = _aws(lab, "ecs")
    ecs.register_task_definition(family="awslogs-scenario", containerDefinitions=[{
        "name": "web", "image": "ecs-agent-lab/lab:latest", "memory": 64, "entryPoint": ["sh", "-c"],
        "command": [f"echo started {marker}; echo failed {marker} >&2; echo ready {marker}; exec sleep 300"],
        "logConfiguration": {"logDriver": "awslogs", "options": {
            "awslogs-group": group, "awslogs-region": "us-east-1", "awslogs-stream-prefix": "ecs",
            "awslogs-create-group": "true"}}}])
    arn = ecs.run_task(cluster=lab.cluster_name, taskDefinition="awslogs-scenario")["tasks"][0]["taskArn"]
    logs = _aws(lab, "logs")
    stream = f"ecs/web/{arn.rsplit('/', 1)[-1]}"
    try:
        def read() -> list[str] | None:
            try:
                events = logs.get_log_events(logGroupName=group, logStreamName=stream,
                                             startFromHead=True)["events"]
            except ClientError:
                return None
            return [e["message"] for e in events] if len(events) >= 3 else None

        got = wait_until(read, AWSLOGS_PUBLISH + AWSLOGS_MARGIN,
                         what=f"3 events in {group}/{stream} (the awslogs driver publishes every 5 s)")
        # stdout and stderr reach the log driver through two copiers (docker's as the lab's): a line
        # of one may overtake a line of the other written at the same instant; within one, order holds.
        assert sorted(got) == sorted([f"started {marker}", f"failed {marker}", f"ready {marker}"]), got
        assert got.index(f"started {marker}") < got.index(f"ready {marker}"), got
    finally:
        ecs.stop_task(cluster=lab.cluster_name, task=arn)


def test_a_firelens_tasks_lines_reach_the_intake_through_its_log_router(logs_lab):
    lab = logs_lab
    marker = uuid.uuid4().hex[:8]
    ecs = _aws(lab, "ecs")
    # The app writes one line to stdout (the awsfirelens driver ships it) and sends one record from
    # its code to FLUENT_HOST:FLUENT_PORT, the router's forward input, as a fluent-logger library
    # does (Message mode: [tag, time, record]) with a tag the router's output matches.
    in_code = ("import msgpack,os,socket,time; "
               "s=socket.create_connection((os.environ['FLUENT_HOST'], int(os.environ['FLUENT_PORT'])), 10); "
               "s.sendall(msgpack.packb(['app-firelens-logger', int(time.time()), "
               f"{{'log': 'in code {marker}'}}])); s.close()")
    ecs.register_task_definition(family="firelens-scenario", containerDefinitions=[
        {"name": "app", "image": "ecs-agent-lab/lab:latest", "essential": True, "memory": 64,
         "entryPoint": ["sh", "-c"],
         "command": [f'echo GET /index {marker}; python -c "{in_code}"; exec sleep 300'],
         # The document's options; Host and TLS are redirected to the lab's intake at deploy time.
         "logConfiguration": {"logDriver": "awsfirelens", "options": {
             "Name": "datadog", "dd_message_key": "log", "apikey": "0123456789abcdef0123456789abcdef",
             "dd_service": "singsong", "dd_source": "httpd", "dd_tags": "env:prod", "provider": "ecs",
             "Host": "http-intake.logs.datadoghq.com", "TLS": "on", "compress": "gzip"}}},
        {"name": "log-router", "image": "amazon/aws-for-fluent-bit:latest", "essential": True, "memory": 64,
         "firelensConfiguration": {"type": "fluentbit", "options": {"enable-ecs-log-metadata": "true"}}},
    ])
    arn = ecs.run_task(cluster=lab.cluster_name, taskDefinition="firelens-scenario")["tasks"][0]["taskArn"]
    intake = intake_client(lab.intake_url)
    try:
        def running() -> bool:
            task = ecs.describe_tasks(cluster=lab.cluster_name, tasks=[arn])["tasks"][0]
            if task["lastStatus"] == "STOPPED":
                raise AssertionError(f"the FireLens task stopped: {task.get('stoppedReason')}")
            return task["lastStatus"] == "RUNNING"

        wait_until(running, TASK_START, interval=0.3, what="the FireLens task RUNNING")
        got = intake.wait_for_logs("singsong", message=marker, count=2,
                                   timeout=FLUENT_BIT_FLUSH + ROUTER_START_AND_MARGIN)
        entry = next(e for e in got if e["message"] == f"GET /index {marker}")
        assert entry["ddsource"] == "httpd"
        expected = {"env:prod", f"cluster_name:{lab.cluster_name}", "task_family:firelens-scenario",
                    f"task_arn:{arn}", "region:us-east-1", "container_name:app"}
        assert expected <= set(entry["tags"]), f"missing {sorted(expected - set(entry['tags']))}"
        assert entry["ec2_instance_id"] == lab.agents[0].instance_id
        # The record sent to FLUENT_HOST:FLUENT_PORT went through the same router and output.
        sent = next((e for e in got if e["message"] == f"in code {marker}"), None)
        assert sent is not None, [e["message"] for e in got]
        assert {"env:prod", f"task_arn:{arn}"} <= set(sent["tags"]), sent["tags"]
    finally:
        ecs.stop_task(cluster=lab.cluster_name, task=arn)
