"""The emulated agent's container log collection on the local backend, read at the intake as a user
reads it (fakeintake's logs API): a task's lines arrive with the ECS tags; with
container_collect_all off only a container with a `com.datadoghq.ad.logs` docker label is collected,
with the label's source, service and tags; bodies are zstd by default and gzip when asked."""

from __future__ import annotations

import uuid

import boto3
import pytest

from lab.fakes.intake.client import IntakeClient
from lab.pytest_plugin import start_lab, stop_lab
from lab.tasks import LAB_IMAGE

LOGS = "/api/v2/logs"


def _lab(**agent_env: str):
    return start_lab(apps=(), agent_env={"DD_LOGS_ENABLED": "true", **agent_env})


def _run(lab, family: str, containers: list[dict]) -> str:
    ecs = boto3.client("ecs", endpoint_url=lab.state["control_plane"], region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    defs = [{"image": LAB_IMAGE, "memory": 64, "entryPoint": ["sh", "-c"], **c} for c in containers]
    ecs.register_task_definition(family=family, containerDefinitions=defs)
    return ecs.run_task(cluster=lab.cluster_name, taskDefinition=family)["tasks"][0]["taskArn"]


def _script(marker: str, n: int = 3) -> list[str]:
    return [f"for i in $(seq 1 {n}); do echo {marker}-line-$i; done; exec sleep 120"]


@pytest.fixture(scope="module")
def collect_all_lab():
    lab = _lab(DD_LOGS_CONFIG_CONTAINER_COLLECT_ALL="true")
    try:
        yield lab
    finally:
        stop_lab(lab)


def test_collect_all_sends_a_tasks_lines_with_ecs_tags_zstd(collect_all_lab):
    lab = collect_all_lab
    intake = IntakeClient(lab.intake_url)
    marker = uuid.uuid4().hex[:8]
    arn = _run(lab, "logs-all", [{"name": "worker", "command": _script(marker),
                                  "environment": [{"name": "DD_SERVICE", "value": "billing"},
                                                  {"name": "DD_ENV", "value": "lab"}]}])
    got = intake.wait_for_logs("billing", count=3, message=marker, timeout=30)
    assert sorted(e["message"] for e in got) == [f"{marker}-line-{i}" for i in (1, 2, 3)]
    entry = got[0]
    tags = set(entry["tags"])
    expected = {f"task_arn:{arn}", "task_family:logs-all", "task_version:1",
                f"ecs_cluster_name:{lab.cluster_name}", "ecs_container_name:worker", "short_image:lab",
                "env:lab", "service:billing"}
    assert expected <= tags, sorted(expected - tags)
    assert any(t.startswith("container_id:") for t in tags)
    assert entry["ddsource"] == "lab", "without a label the source is the short image name"
    assert entry["hostname"] == lab.agents[0].instance_id
    assert entry["status"] == "info" and isinstance(entry["timestamp"], int)
    raw = intake.payloads(LOGS, fmt="raw", message=marker)
    assert raw and {p["encoding"] for p in raw} == {"zstd"}, "current agents compress logs with zstd"


@pytest.fixture(scope="module")
def label_only_lab():
    lab = _lab(DD_LOGS_CONFIG_COMPRESSION_KIND="gzip")
    try:
        yield lab
    finally:
        stop_lab(lab)


def test_without_collect_all_only_labelled_containers_are_collected(label_only_lab):
    lab = label_only_lab
    intake = IntakeClient(lab.intake_url)
    marker = uuid.uuid4().hex[:8]
    label = '[{"source": "python", "service": "checkout", "tags": ["team:shop"]}]'
    _run(lab, "logs-label", [
        {"name": "labelled", "command": _script(f"{marker}-L"),
         "dockerLabels": {"com.datadoghq.ad.logs": label}},
        {"name": "plain", "command": _script(f"{marker}-P"), "essential": False},
    ])
    got = intake.wait_for_logs("checkout", count=3, message=f"{marker}-L", timeout=30)
    assert {e["ddsource"] for e in got} == {"python"}
    assert {"team:shop", "task_family:logs-label", "ecs_container_name:labelled"} <= set(got[0]["tags"])
    raw = intake.payloads(LOGS, fmt="raw", message=marker)
    assert {p["encoding"] for p in raw} == {"gzip"}, "DD_LOGS_CONFIG_COMPRESSION_KIND=gzip"

    # `agent status -j`: the logs agent tails one container, the labelled one.
    status = lab.agents[0].probe.status()["logsStats"]
    tailed = [i["sources"][0]["configuration"] for i in status["integrations"]]
    assert tailed == [{"source": "python", "service": "checkout"}], tailed
    assert not intake.logs(message=f"{marker}-P"), "an unlabelled container is not collected"
