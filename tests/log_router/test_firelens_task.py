"""A FireLens task on EC2 (local backend), registered and run through the control plane as a user
does: the log router container runs with the fluent-bit configuration ECS generates (the lab's
stand-in where no fluent-bit is installed, by the same code path), the app's stdout/stderr reach it
over the forward protocol as the awsfirelens driver sends them, and its datadog output, redirected to
the lab's intake, delivers the lines with the task definition's dd_service, dd_source, dd_tags and
the ECS fields of enable-ecs-log-metadata (remapped to tags by `provider ecs`)."""

from __future__ import annotations

import uuid

import boto3
import pytest

from lab.fakes.intake.client import IntakeClient
from lab.pytest_plugin import start_lab, stop_lab
from lab.tasks import LAB_IMAGE
from lab.world import wait_until

# fluent-bit's Flush (1 s) + the stand-in's start + a busy machine.
ARRIVAL_TIMEOUT = 30


@pytest.fixture(scope="module")
def lab():
    lab = start_lab(apps=())
    try:
        yield lab
    finally:
        stop_lab(lab)


def _aws(lab, service: str):
    return boto3.client(service, endpoint_url=lab.state["control_plane"], region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def _firelens_taskdef(family: str, script: str, **extra_options: str) -> dict:
    """The Datadog FireLens document's task definition, on EC2 (bridge mode, memory per container)."""
    return {"family": family, "containerDefinitions": [
        {"name": "app", "image": LAB_IMAGE, "essential": True, "memory": 64,
         "entryPoint": ["sh", "-c"], "command": [script],
         "logConfiguration": {"logDriver": "awsfirelens", "options": {
             "Name": "datadog", "dd_message_key": "log", "apikey": "0123456789abcdef0123456789abcdef",
             "dd_service": "singsong", "dd_source": "httpd", "dd_tags": "env:prod", "provider": "ecs",
             "Host": "http-intake.logs.datadoghq.com", "TLS": "on", "compress": "gzip", **extra_options}}},
        {"name": "log-router", "image": "amazon/aws-for-fluent-bit:latest", "essential": True, "memory": 64,
         "firelensConfiguration": {"type": "fluentbit", "options": {"enable-ecs-log-metadata": "true"}}},
    ]}


def test_app_lines_reach_the_intake_through_the_log_router(lab):
    marker = uuid.uuid4().hex[:8]
    ecs = _aws(lab, "ecs")
    ecs.register_task_definition(**_firelens_taskdef(
        "firelens-ec2", f"echo hello {marker}; echo oops {marker} >&2; exec sleep 120"))
    arn = ecs.run_task(cluster=lab.cluster_name, taskDefinition="firelens-ec2")["tasks"][0]["taskArn"]
    intake = IntakeClient(lab.intake_url)
    try:
        got = intake.wait_for_logs("singsong", count=2, message=marker, timeout=ARRIVAL_TIMEOUT)
        assert sorted(e["message"] for e in got) == [f"hello {marker}", f"oops {marker}"]
        entry = got[0]
        assert entry["ddsource"] == "httpd"
        task_id = arn.split("task/", 1)[1]  # fluent-bit keeps everything after task/ (<cluster>/<id>)
        expected = {"env:prod", f"cluster_name:{lab.cluster_name}", "task_family:firelens-ec2",
                    "task_version:1", f"task_arn:{arn}", "region:us-east-1", f"task_id:{task_id}",
                    "container_name:app"}
        assert expected <= set(entry["tags"]), sorted(expected - set(entry["tags"]))
        assert entry["ec2_instance_id"] == lab.agents[0].instance_id, "the EC2 launch type's metadata field"
        assert entry["source"] in ("stdout", "stderr"), "the fluentd driver's record keys stay"
        raw = intake.payloads("/api/v2/logs", fmt="raw", message=marker)
        assert {p["encoding"] for p in raw} == {"gzip"}, "compress gzip"
        task = ecs.describe_tasks(cluster=lab.cluster_name, tasks=[arn])["tasks"][0]
        assert task["lastStatus"] == "RUNNING"
    finally:
        ecs.stop_task(cluster=lab.cluster_name, task=arn)


def test_lines_written_before_the_app_exits_are_all_delivered(lab):
    marker = uuid.uuid4().hex[:8]
    ecs = _aws(lab, "ecs")
    ecs.register_task_definition(**_firelens_taskdef(
        "firelens-exit", f"for i in $(seq 1 300); do echo {marker} $i; done"))
    arn = ecs.run_task(cluster=lab.cluster_name, taskDefinition="firelens-exit")["tasks"][0]["taskArn"]
    intake = IntakeClient(lab.intake_url)
    got = intake.wait_for_logs("singsong", count=300, message=marker, timeout=ARRIVAL_TIMEOUT)
    assert sorted(int(e["message"].split()[1]) for e in got) == list(range(1, 301))

    def stopped() -> bool:
        task = ecs.describe_tasks(cluster=lab.cluster_name, tasks=[arn])["tasks"][0]
        return task["lastStatus"] == "STOPPED"

    wait_until(stopped, ARRIVAL_TIMEOUT, what="the task whose essential app exited to stop")
    assert len(intake.logs(message=marker)) == 300, "no line twice"


def test_awsfirelens_without_a_router_stops_the_task_with_the_reason(lab):
    ecs = _aws(lab, "ecs")
    td = _firelens_taskdef("firelens-norouter", "echo x")
    td["containerDefinitions"] = td["containerDefinitions"][:1]
    ecs.register_task_definition(**td)
    arn = ecs.run_task(cluster=lab.cluster_name, taskDefinition="firelens-norouter")["tasks"][0]["taskArn"]

    def reason() -> str | None:
        t = ecs.describe_tasks(cluster=lab.cluster_name, tasks=[arn])["tasks"][0]
        return t.get("stoppedReason") if t["lastStatus"] == "STOPPED" else None

    text = wait_until(reason, ARRIVAL_TIMEOUT, what="the task to stop")
    assert "no container has a firelensConfiguration" in text, text
