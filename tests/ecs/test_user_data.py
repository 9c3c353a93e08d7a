"""User data (issue item 3): IMDS serves an instance's user data, the instance runs it at boot, and
the ECS Japanese guide's script (seed document 004) starts the agent with `aws ecs start-task` on
its own instance; the agent then sends to the intake, and a second start on that instance is
refused for its ports, as ECS refuses it. On both backends: on the local backend the script is
adapted in its two endpoints (the instance's addresses are loopback ones); on docker it runs inside
the instance as the document wrote it."""

from __future__ import annotations

import json
import time
import urllib.request

import boto3
import msgpack
import pytest

from lab.fakes.imds.model import ImdsModel, ImdsRequest
from lab.fakes.intake.client import IntakeClient
from lab.instance_boot import boot_requirements
from lab.pytest_plugin import start_lab, stop_lab
from lab.world import World, wait_until

AGENT_FAMILY = "datadog-agent-task"

# The document's script, as written (its task definition and cluster names are the lab's): what the
# docker backend's instances run, where localhost:51678 and 169.254.169.254 are the instance's own.
DOCUMENT_SCRIPT = r"""#!/bin/bash
cluster="{cluster}"
task_def="{task_def}"
echo ECS_CLUSTER=$cluster >> /etc/ecs/ecs.config
start ecs
yum install -y aws-cli jq
instance_arn=$(curl -s http://localhost:51678/v1/metadata | jq -r '. | .ContainerInstanceArn' | awk -F/ '{{print $NF}}' )
az=$(curl -s http://169.254.169.254/latest/meta-data/placement/availability-zone)
region=${{az:0:${{#az}} - 1}}
echo "cluster=$cluster az=$az region=$region aws ecs start-task --cluster \
$cluster --task-definition $task_def --container-instances $instance_arn --region $region" >> /etc/rc.local
"""  # noqa: E501 - the document's lines, as written

# The same script for the local backend. Only its endpoints differ: `localhost:51678` and
# `169.254.169.254` are, there, the instance's own loopback addresses, which the boot gives in the
# environment.
SCRIPT = (DOCUMENT_SCRIPT
          .replace("http://localhost:51678", "$ECS_CONTAINER_INSTANCE_INTROSPECTION_URL")
          .replace("http://169.254.169.254/", "${{AWS_EC2_METADATA_SERVICE_ENDPOINT}}"))
SCRIPTS = {"local": SCRIPT, "docker": DOCUMENT_SCRIPT}

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get(url: str) -> str:
    # The lab's own addresses only: loopback (local backend, host-side endpoints) or a lab network.
    assert url.startswith(("http://127.", "http://172.30.")), url
    with _DIRECT.open(url, timeout=10) as resp:
        return resp.read().decode()


def _instance_user_data(lab) -> str:
    """The user data as the instance reads it from its IMDS."""
    inst = lab.instance(1)
    if lab.ecs_lab.backend_name == "docker":
        # From inside the instance's network, at the real address.
        code, out = lab.ecs_lab.backend.run_in_instance(
            1, ["curl", "-sf", "http://169.254.169.254/latest/user-data"], timeout=60)
        assert code == 0, out
        return out
    return _get(inst["imds_url"].rstrip("/") + "/latest/user-data")


def _introspection_metadata(lab) -> dict:
    """The instance's ECS agent's `/v1/metadata` (on docker through the host-side endpoint the
    backend serves over the same world)."""
    inst = lab.instance(1)
    url = inst["ecs_endpoint_host"] if lab.ecs_lab.backend_name == "docker" else inst["ecs_endpoint"]
    return json.loads(_get(url + "/v1/metadata"))


def test_imds_serves_user_data_only_when_given():
    world = World()
    bare = world.add_instance("127.0.51.1")
    given = world.add_instance("127.0.51.2", user_data="#!/bin/bash\necho hi\n")
    model = ImdsModel(world)
    missing = model.handle(ImdsRequest("GET", "/latest/user-data"), bare)
    assert missing.status == 404
    assert "user-data" not in model.handle(ImdsRequest("GET", "/latest/"), bare).body.split("\n")
    served = model.handle(ImdsRequest("GET", "/latest/user-data"), given)
    assert (served.status, served.body) == (200, "#!/bin/bash\necho hi\n")
    assert "user-data" in model.handle(ImdsRequest("GET", "/latest/"), given).body.split("\n")


@pytest.fixture(scope="module", params=["local", pytest.param("docker", marks=pytest.mark.docker)])
def booted(request, tmp_path_factory):
    backend = request.param
    if backend == "local":
        missing = boot_requirements()
        if missing:
            pytest.skip(f"this machine cannot boot an instance with user data: missing {', '.join(missing)}")
    else:
        # One docker lab per engine: a session docker lab of this process pauses for the module.
        request.getfixturevalue("exclusive_docker_engine")
    from lab.subnet_claims import reserve_subnet

    subnet = reserve_subnet()
    cluster = f"ecs-lab-ud-{subnet.replace('.', '-')}"
    script = SCRIPTS[backend].format(cluster=cluster, task_def=AGENT_FAMILY)
    lab = start_lab(backend, instances=1, apps=(), subnet=subnet, cluster=cluster, user_data=script,
                    run_dir=tmp_path_factory.mktemp(f"user-data-{backend}"))
    try:
        yield lab, script
    finally:
        stop_lab(lab)


def test_the_documents_script_starts_the_agent_on_its_own_instance(booted):
    lab, script = booted
    assert _instance_user_data(lab) == script
    ecs = boto3.client("ecs", endpoint_url=lab.ecs_lab.control_plane.endpoint, region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    arns = ecs.list_tasks(cluster=lab.cluster_name)["taskArns"]
    tasks = ecs.describe_tasks(cluster=lab.cluster_name, tasks=arns)["tasks"]
    agents = [t for t in tasks if t["taskDefinitionArn"].rsplit("/", 1)[-1].startswith(AGENT_FAMILY + ":")]
    assert len(agents) == 1, [t["taskDefinitionArn"] for t in tasks]
    agent = agents[0]
    meta = _introspection_metadata(lab)
    assert agent["containerInstanceArn"] == meta["ContainerInstanceArn"]
    assert agent["lastStatus"] == "RUNNING"
    assert not agent.get("group", "").startswith("service:"), "started by start-task, not by a service"
    assert ecs.list_services(cluster=lab.cluster_name)["serviceArns"] == []
    # What the script wrote stayed in the instance's own /etc.
    etc = lab.ecs_lab.stack.run_dir / "instances" / "1" / "root" / "etc"
    assert (etc / "ecs" / "ecs.config").read_text() == f"ECS_CLUSTER={lab.cluster_name}\n"
    assert "aws ecs start-task" in (etc / "rc.local").read_text()
    # The boot's output is kept as cloud-init keeps it: the stand-ins' lines and the aws CLI's answer
    # to rc.local's start-task, which names this very task.
    log = (lab.ecs_lab.stack.run_dir / "instances" / "1" / "cloud-init-output.log").read_text()
    assert "ecs start/running" in log and "Package jq already installed" in log, log
    assert agent["taskArn"] in log, log


def test_a_second_start_on_the_same_instance_is_refused_for_ports(booted):
    lab, _ = booted
    ecs = boto3.client("ecs", endpoint_url=lab.ecs_lab.control_plane.endpoint, region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    meta = _introspection_metadata(lab)
    again = ecs.start_task(cluster=lab.cluster_name, taskDefinition=AGENT_FAMILY,
                           containerInstances=[meta["ContainerInstanceArn"]])
    assert again["tasks"] == []
    assert [f["reason"] for f in again["failures"]] == ["RESOURCE:PORTS"]
    assert again["failures"][0]["arn"] == meta["ContainerInstanceArn"]


def test_the_started_agent_sends_series_and_traces_to_the_intake(booted):
    lab, _ = booted
    inst = lab.instance(1)
    intake = IntakeClient(lab.intake_url)
    trace_id = int(time.time() * 1000) % (2**62)
    span = [[{"trace_id": trace_id, "span_id": 1, "parent_id": 0, "name": "user-data.check",
              "resource": "boot", "service": "user-data-probe", "type": "custom",
              "start": time.time_ns(), "duration": 1000, "meta": {}, "metrics": {}, "error": 0}]]
    req = urllib.request.Request(inst["apm_url"].rstrip("/") + "/v0.4/traces", data=msgpack.packb(span),
                                 method="PUT", headers={"Content-Type": "application/msgpack",
                                                        "X-Datadog-Trace-Count": "1"})
    assert inst["apm_url"].startswith(("http://127.", "http://172.30."))
    with _DIRECT.open(req, timeout=10) as resp:
        assert resp.status == 200
    wait_until(lambda: intake.spans(service="user-data-probe"), timeout=60,
               what="the booted agent's trace at the intake")
    spans = intake.spans(service="user-data-probe")
    assert spans[0]["trace_id"] == trace_id
    series = wait_until(lambda: intake.metrics("datadog.agent.running"), timeout=60,
                        what="the booted agent's own series at the intake")
    hosts = {next((x.get("name") for x in r.get("resources", []) if x.get("type") == "host"), None)
             for r in series}
    assert hosts - {None}, f"series without a host resource: {series[:1]}"


def test_user_data_that_is_not_a_script_is_refused_by_both_boots(tmp_path):
    from lab.backends.docker_boot import boot_instance
    from lab.instance_boot import UserDataError, run_user_data

    cloud_config = "#cloud-config\nruncmd:\n  - echo hi\n"
    with pytest.raises(UserDataError, match="not a script"):
        boot_instance(None, 1, cloud_config, instance_dir=tmp_path, control_plane_url="http://127.0.0.1:1")
    if not boot_requirements():
        with pytest.raises(UserDataError, match="not a script"):
            run_user_data(cloud_config, instance_dir=tmp_path, imds_url="http://127.0.0.1:1",
                          introspection_url="http://127.0.0.1:1", control_plane_url="http://127.0.0.1:1")
