"""The `awslogs` log driver on the local backend: a task's stdout/stderr become CloudWatch Logs events
on the control plane's Logs API, read back with real botocore as a user reads them
(`aws logs get-log-events`); a missing group without `awslogs-create-group` fails the task with the
docker daemon's error; log drivers ECS does not know are refused at registration with ECS's text."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from lab.pytest_plugin import start_lab, stop_lab
from lab.tasks import LAB_IMAGE
from lab.world import wait_until


@pytest.fixture(scope="module")
def lab():
    lab = start_lab(apps=())
    try:
        yield lab
    finally:
        stop_lab(lab)


def _client(lab, service: str):
    return boto3.client(service, endpoint_url=lab.state["control_plane"], region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def _run(lab, family: str, script: str, options: dict[str, str]) -> str:
    ecs = _client(lab, "ecs")
    ecs.register_task_definition(family=family, containerDefinitions=[{
        "name": "app", "image": LAB_IMAGE, "memory": 64, "entryPoint": ["sh", "-c"], "command": [script],
        "logConfiguration": {"logDriver": "awslogs", "options": options}}])
    return ecs.run_task(cluster=lab.cluster_name, taskDefinition=family)["tasks"][0]["taskArn"]


def _stop(lab, arn: str) -> None:
    _client(lab, "ecs").stop_task(cluster=lab.cluster_name, task=arn)


def test_a_running_apps_lines_are_read_back_with_botocore(lab):
    group, marker = f"/ecs/logs-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:8]
    arn = _run(lab, "awslogs-running",
               f"echo hello-{marker}; echo to-stderr-{marker} >&2; echo bye-{marker}; exec sleep 60",
               {"awslogs-group": group, "awslogs-region": "us-east-1", "awslogs-stream-prefix": "web",
                "awslogs-create-group": "true"})
    logs = _client(lab, "logs")
    stream = f"web/app/{arn.rsplit('/', 1)[-1]}"  # prefix/container/task id, as ECS names it
    try:
        def lines() -> list[str] | None:
            try:
                events = logs.get_log_events(logGroupName=group, logStreamName=stream,
                                             startFromHead=True)["events"]
            except ClientError:
                return None  # the group/stream is created when the container starts
            got = [e["message"] for e in events]
            return got if len(got) >= 3 else None

        # docker's awslogs driver publishes every 5 s: the lines arrive while the app still runs.
        got = wait_until(lines, 20, what=f"3 events in {group}/{stream}")
        assert got == [f"hello-{marker}", f"to-stderr-{marker}", f"bye-{marker}"]
        streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
        assert [s["logStreamName"] for s in streams] == [stream]
        # The same events through the real aws CLI, as the ECS docs tell users to read them.
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                    "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": "/dev/null",
                    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_PAGER": ""})
        out = subprocess.run([sys.executable, "-m", "awscli", "--endpoint-url", lab.state["control_plane"],
                              "--output", "json", "logs", "get-log-events", "--log-group-name", group,
                              "--log-stream-name", stream, "--start-from-head"],
                             env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert [e["message"] for e in json.loads(out.stdout)["events"]] == got
        task = _client(lab, "ecs").describe_tasks(cluster=lab.cluster_name, tasks=[arn])["tasks"][0]
        assert task["lastStatus"] == "RUNNING", "the lines were read from a task that still runs"
    finally:
        _stop(lab, arn)


def test_lines_written_just_before_exit_are_delivered(lab):
    group = f"/ecs/exit-{uuid.uuid4().hex[:6]}"
    logs = _client(lab, "logs")
    logs.create_log_group(logGroupName=group)  # made by the user: no awslogs-create-group
    arn = _run(lab, "awslogs-exits", "for i in $(seq 1 200); do echo line-$i; done",
               {"awslogs-group": group, "awslogs-stream-prefix": "batch"})
    stream = f"batch/app/{arn.rsplit('/', 1)[-1]}"

    def stopped() -> bool:
        t = _client(lab, "ecs").describe_tasks(cluster=lab.cluster_name, tasks=[arn])["tasks"][0]
        return t["lastStatus"] == "STOPPED"

    wait_until(stopped, 30, what="the task whose only container exited to stop")
    events = logs.get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)["events"]
    assert [e["message"] for e in events] == [f"line-{i}" for i in range(1, 201)], (
        "the driver sends what is left when the container stops, in order")


def test_a_missing_group_fails_the_task_with_the_daemons_error(lab):
    group = f"/ecs/missing-{uuid.uuid4().hex[:6]}"
    arn = _run(lab, "awslogs-missing", "echo never", {"awslogs-group": group, "awslogs-stream-prefix": "x"})

    def reason() -> str | None:
        t = _client(lab, "ecs").describe_tasks(cluster=lab.cluster_name, tasks=[arn])["tasks"][0]
        return t.get("stoppedReason") if t["lastStatus"] == "STOPPED" else None

    text = wait_until(reason, 20, what="the task to stop")
    assert text.startswith("CannotStartContainerError: Error response from daemon: failed to initialize "
                           "logging driver"), text
    assert "The specified log group does not exist." in text


@pytest.mark.parametrize("driver,valid", [
    ("bogus", "json-file,syslog,journald,gelf,fluentd,awslogs,splunk,awsfirelens"),
])
def test_an_unknown_driver_is_refused_at_registration(lab, driver, valid):
    with pytest.raises(ClientError) as exc:
        _client(lab, "ecs").register_task_definition(family="bad-driver", containerDefinitions=[{
            "name": "app", "image": LAB_IMAGE, "memory": 64, "logConfiguration": {"logDriver": driver}}])
    assert exc.value.response["Error"]["Code"] == "ClientException"
    message = exc.value.response["Error"]["Message"]
    assert message == f"{driver} is not a valid log driver. Must be one of [{valid}]"


@pytest.mark.parametrize("options,reason", [
    ({"awslogs-group": "g", "awslogs-bogus": "1"},
     "CannotCreateContainerError: Error response from daemon: unknown log opt 'awslogs-bogus' for awslogs "
     "log driver"),
    ({"awslogs-group": "g", "awslogs-multiline-pattern": "^INFO"},
     "UnsupportedField: logConfiguration.options.awslogs-multiline-pattern is not supported by the lab's "
     "awslogs driver"),
])
def test_options_docker_does_not_know_or_the_lab_does_not_reproduce_are_refused(options, reason):
    from lab.ecs.awslogs import AwsLogsDriver, AwsLogsError
    from lab.tasks import LogConfiguration

    with pytest.raises(AwsLogsError) as exc:
        # Refused before any call: the endpoint is never contacted.
        AwsLogsDriver("http://127.0.0.1:9", "us-east-1", LogConfiguration("awslogs", options),
                      container="app", task_arn="arn:aws:ecs:us-east-1:123456789012:task/c/abc",
                      docker_id="d" * 64)
    assert str(exc.value) == reason
