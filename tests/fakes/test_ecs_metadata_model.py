"""The ECS metadata model without sockets: shapes the Datadog agent and SDKs parse."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from lab.fakes.ecs_metadata.model import (
    AVAILABLE_COMMANDS,
    EcsMetadata,
    container_env,
    write_metadata_file,
)
from lab.fakes.ecs_metadata.stats import StatsUnavailable
from lab.world import ECS_AGENT_VERSION, Container, PortMapping, Task, World


class NoStats:
    def container_stats(self, container):
        raise StatsUnavailable(f"{container.name} has no stats in this test")


@pytest.fixture
def world() -> World:
    w = World()
    inst = w.add_instance("127.0.21.1", tags={"Name": "one", "team": "apm"})
    w.add_instance("127.0.21.2")
    task = Task("web", 7, [Container("app", "my/app:1.2", ports=[PortMapping(8080, 32768)], cpu=128,
                                     memory=256),
                           Container("sidecar", "my/sidecar:3")],
                cpu=512, memory=1024, service_name="web-svc")
    w.add_task(inst, task)
    for c in task.containers:
        c.mark_running()
    task.known_status = "RUNNING"
    return w


def _first(world: World):
    inst = world.instance(1)
    task = inst.tasks[0]
    return inst, task, task.containers[0]


def test_introspection_root_lists_the_real_agents_commands(world):
    m = EcsMetadata(world, NoStats())
    a = m.introspection(world.instance(1), "/", {})
    assert a.status == 200 and a.body == {"AvailableCommands": AVAILABLE_COMMANDS}
    # Go's ServeMux answers any unknown path with the root handler.
    assert m.introspection(world.instance(1), "/nothing/here", {}).body == a.body


def test_v1_metadata_names_cluster_instance_and_agent_version(world):
    inst = world.instance(1)
    body = EcsMetadata(world, NoStats()).introspection(inst, "/v1/metadata", {}).body
    assert body == {"Cluster": "ecs-lab", "ContainerInstanceArn": inst.arn, "Version": ECS_AGENT_VERSION}


def test_v1_tasks_filters_by_docker_id_and_task_arn(world):
    m = EcsMetadata(world, NoStats())
    inst, task, c = _first(world)
    full = m.introspection(inst, "/v1/tasks", {}).body
    assert [t["Arn"] for t in full["Tasks"]] == [task.arn]
    assert {x["DockerId"] for x in full["Tasks"][0]["Containers"]} == {x.docker_id for x in task.containers}
    assert full["Tasks"][0]["Version"] == "7"
    by_short = m.introspection(inst, "/v1/tasks", {"dockerid": c.docker_id[:12]})
    assert by_short.status == 200 and by_short.body["Arn"] == task.arn
    assert m.introspection(inst, "/v1/tasks", {"taskarn": task.arn}).body["Family"] == "web"
    missing = m.introspection(inst, "/v1/tasks", {"taskarn": "arn:nope"})
    assert missing.status == 404
    both = m.introspection(inst, "/v1/tasks", {"taskarn": task.arn, "dockerid": c.docker_id})
    assert both.status == 400
    assert m.rejected["introspection:/v1/tasks"] == 2


def test_v1_tasks_of_another_instance_do_not_leak(world):
    m = EcsMetadata(world, NoStats())
    assert m.introspection(world.instance(2), "/v1/tasks", {}).body == {"Tasks": []}


def test_v4_task_and_container_carry_what_the_agent_parses(world):
    m = EcsMetadata(world, NoStats())
    inst, task, c = _first(world)
    t = m.task_metadata("GET", f"/v4/{c.metadata_token}/task", {}, None).body
    for key in ("Cluster", "TaskARN", "Family", "Revision", "DesiredStatus", "KnownStatus", "Limits",
                "AvailabilityZone", "LaunchType", "Containers", "ServiceName"):
        assert key in t, key
    assert t["LaunchType"] == "EC2" and t["Revision"] == "7" and t["ServiceName"] == "web-svc"
    assert t["Limits"] == {"CPU": 0.5, "Memory": 1024}
    app = next(x for x in t["Containers"] if x["Name"] == "app")
    assert app["DockerId"] == c.docker_id
    assert app["Labels"]["com.amazonaws.ecs.task-arn"] == task.arn
    assert app["Ports"] == [{"ContainerPort": 8080, "Protocol": "tcp", "HostPort": 32768,
                             "HostIp": "0.0.0.0"}]
    assert app["Networks"][0]["NetworkMode"] == "bridge"
    assert app["ContainerARN"].startswith("arn:aws:ecs:us-east-1:")
    me = m.task_metadata("GET", f"/v4/{c.metadata_token}", {}, None).body
    assert me["Name"] == "app" and me["Limits"] == {"CPU": 128, "Memory": 256}


def test_v3_has_no_v4_only_fields(world):
    m = EcsMetadata(world, NoStats())
    _, _, c = _first(world)
    t = m.task_metadata("GET", f"/v3/{c.metadata_token}/task", {}, None).body
    assert "LaunchType" not in t and "ContainerARN" not in t["Containers"][0]


def test_task_with_tags_has_container_instance_tags(world):
    m = EcsMetadata(world, NoStats())
    _, _, c = _first(world)
    t = m.task_metadata("GET", f"/v4/{c.metadata_token}/taskWithTags", {}, None).body
    assert t["ContainerInstanceTags"] == {"Name": "one", "team": "apm"}
    # The ECS agent's TaskResponse omits an empty TaskTags (omitempty); a tagged task has them.
    assert "TaskTags" not in t
    _, task, _ = _first(world)
    task.tags = {"env": "lab"}
    t = m.task_metadata("GET", f"/v4/{c.metadata_token}/taskWithTags", {}, None).body
    assert t["TaskTags"] == {"env": "lab"}


def test_unknown_token_is_a_404_with_a_reason_and_counted(world):
    m = EcsMetadata(world, NoStats())
    a = m.task_metadata("GET", "/v4/not-a-token/task", {}, None)
    assert a.status == 404 and "not-a-token" in a.body
    assert m.rejected["v4:/task"] == 1
    assert m.recent_rejections[-1]["reason"] == "unknown metadata token not-a-token"


def test_stats_without_a_source_say_why(world):
    m = EcsMetadata(world, NoStats())
    _, _, c = _first(world)
    a = m.task_metadata("GET", f"/v4/{c.metadata_token}/stats", {}, None)
    assert a.status == 500 and "no stats in this test" in a.body
    # /task/stats answers with an empty object per container, like NewV4TaskStatsResponse.
    t = m.task_metadata("GET", f"/v4/{c.metadata_token}/task/stats", {}, None)
    assert t.status == 200 and set(t.body) == {x.docker_id for x in world.instance(1).tasks[0].containers}


def test_v2_resolves_the_caller_by_address(world):
    m = EcsMetadata(world, NoStats())
    inst, task, c = _first(world)
    assert m.task_metadata("GET", "/v2/metadata", {}, "10.1.2.3").status == 404
    c.ipv4_addresses = ["10.1.2.3"]
    a = m.task_metadata("GET", "/v2/metadata", {}, "10.1.2.3")
    assert a.status == 200 and a.body["TaskARN"] == task.arn
    one = m.task_metadata("GET", f"/v2/metadata/{c.docker_id[:12]}", {}, "10.1.2.3")
    assert one.body["DockerId"] == c.docker_id


def test_credentials_shape_errors_and_rotation_id(world):
    m = EcsMetadata(world, NoStats())
    _, task, _ = _first(world)
    cid = m.grant_task_role(task, "arn:aws:iam::123456789012:role/web")
    a = m.task_metadata("GET", f"/v2/credentials/{cid}", {}, None)
    assert a.status == 200
    assert set(a.body) == {"RoleArn", "AccessKeyId", "SecretAccessKey", "Token", "Expiration"}
    assert a.body["AccessKeyId"].startswith("ASIA") and a.body["RoleArn"].endswith("role/web")
    # Stable until close to expiry.
    assert m.credentials(cid).body == a.body
    assert m.task_metadata("GET", "/v2/credentials/", {}, None).body["code"] == "NoIdInRequest"
    bad = m.task_metadata("GET", "/v2/credentials/nope", {}, None)
    assert bad.status == 400 and bad.body["code"] == "InvalidIdInRequest"
    v1 = m.task_metadata("GET", "/v1/credentials", {"id": cid}, None)
    assert v1.body["AccessKeyId"] == a.body["AccessKeyId"]


def test_task_protection_state_round_trip(world):
    m = EcsMetadata(world, NoStats())
    _, task, c = _first(world)
    path = f"/api/{c.metadata_token}/task-protection/v1/state"
    assert m.task_metadata("GET", path, {}, None).body["protection"]["ProtectionEnabled"] is False
    put = m.task_metadata("PUT", path, {}, None, json.dumps({"ProtectionEnabled": True,
                                                              "ExpiresInMinutes": 5}).encode())
    assert put.body["protection"]["ProtectionEnabled"] is True and put.body["protection"]["ExpirationDate"]
    assert m.task_metadata("PUT", path, {}, None, b"{not json").status == 400


def test_container_env_local_uses_full_uri_docker_uses_relative(world):
    m = EcsMetadata(world, NoStats())
    inst, task, c = _first(world)
    cid = m.grant_task_role(task)
    local = container_env(inst, task, c, base_url="http://127.0.0.1:51679", relative_credentials=False,
                          metadata_file="/tmp/x.json")
    assert local["ECS_CONTAINER_METADATA_URI_V4"] == f"http://127.0.0.1:51679/v4/{c.metadata_token}"
    assert local["ECS_CONTAINER_METADATA_URI"] == f"http://127.0.0.1:51679/v3/{c.metadata_token}"
    assert local["AWS_CONTAINER_CREDENTIALS_FULL_URI"] == f"http://127.0.0.1:51679/v2/credentials/{cid}"
    assert local["AWS_EXECUTION_ENV"] == "AWS_ECS_EC2"
    assert local["ECS_CONTAINER_METADATA_FILE"] == "/tmp/x.json"
    assert "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI" not in local
    docker = container_env(inst, task, c, base_url="http://169.254.170.2", relative_credentials=True)
    assert docker["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] == f"/v2/credentials/{cid}"
    assert docker["ECS_AGENT_URI"] == f"http://169.254.170.2/api/{c.metadata_token}"
    with pytest.raises(ValueError, match="botocore"):
        container_env(inst, task, c, base_url="http://10.0.0.5:80", relative_credentials=False)


def test_metadata_file_gives_the_host_private_ip_to_jq(world, tmp_path):
    inst, task, c = _first(world)
    path = tmp_path / "meta.json"
    data = write_metadata_file(path, inst, task, c)
    assert data["MetadataFileStatus"] == "READY"
    on_disk = json.loads(path.read_text())
    for key in ("Cluster", "ContainerInstanceARN", "TaskARN", "TaskDefinitionFamily",
                "TaskDefinitionRevision",
                "ContainerID", "ContainerName", "DockerContainerName", "ImageID", "ImageName", "PortMappings",
                "Networks", "MetadataFileStatus", "AvailabilityZone", "HostPrivateIPv4Address"):
        assert key in on_disk, key
    assert on_disk["ContainerID"] == c.docker_id
    assert [p.name for p in tmp_path.iterdir()] == ["meta.json"]  # no temp file left behind
    if shutil.which("jq"):
        # The Datadog docs' line: cat $ECS_CONTAINER_METADATA_FILE | jq -r .HostPrivateIPv4Address
        out = subprocess.run(["sh", "-c", f"cat {path} | jq -r .HostPrivateIPv4Address"],
                             capture_output=True, text=True, check=True).stdout.strip()
    else:
        out = on_disk["HostPrivateIPv4Address"]
    assert out == "127.0.21.1"


def test_docker_stats_without_an_engine_say_so(world):
    from lab.fakes.ecs_metadata.stats import AutoStats, DockerStats

    _, _, c = _first(world)
    with pytest.raises(StatsUnavailable, match="docker"):
        DockerStats(client=_NoEngine()).container_stats(c)
    # No pid: AutoStats asks docker, and the reason reaches the HTTP answer.
    m = EcsMetadata(world, AutoStats(docker_source=DockerStats(client=_NoEngine())))
    a = m.task_metadata("GET", f"/v4/{c.metadata_token}/stats", {}, None)
    assert a.status == 500 and "engine is down" in a.body


class _NoEngine:
    class containers:  # noqa: N801 - mirrors docker.DockerClient.containers
        @staticmethod
        def get(_id):
            raise ConnectionRefusedError("engine is down")


def test_health_is_written_for_a_health_checked_container_unknown_included(world):
    """As the ECS agent: `Health` for every container whose definition has a health check, UNKNOWN
    (without `statusSince`) before the first check; none for a container without one."""
    m = EcsMetadata(world, NoStats())
    _, task, c = _first(world)
    c.health_checked = True

    def containers() -> dict[str, dict]:
        body = m.task_metadata("GET", f"/v4/{c.metadata_token}/task", {}, None).body
        return {x["Name"]: x for x in body["Containers"]}

    assert containers()["app"]["Health"] == {"status": "UNKNOWN"}
    assert "Health" not in containers()["sidecar"]
    c.health_status = "HEALTHY"
    health = containers()["app"]["Health"]
    assert health["status"] == "HEALTHY" and health["statusSince"] == c.started_at
