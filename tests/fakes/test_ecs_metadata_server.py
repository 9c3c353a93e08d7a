"""The ECS metadata server on real sockets, driven by real clients (curl, botocore)."""

from __future__ import annotations

import json
import subprocess
import sys

import botocore.credentials
import botocore.session
import pytest
from botocore.utils import ContainerMetadataFetcher

from lab.fakes.ecs_metadata.model import container_env
from lab.fakes.ecs_metadata.server import EcsMetadataServer
from lab.fakes.ecs_metadata.stats import PsutilStats
from lab.world import Container, PortMapping, Task, World

GROWER = r"""
import sys
hoard = []
for line in sys.stdin:
    hoard.append(bytearray(int(line) * 1024 * 1024))  # touched pages: resident memory grows
    print("ok", flush=True)
"""


def curl(url: str, *args: str) -> tuple[int, object]:
    out = subprocess.run(["curl", "-s", "-m", "10", "-w", "\n%{http_code}", *args, url],
                         capture_output=True, text=True, check=True).stdout
    body, _, code = out.rpartition("\n")
    try:
        return int(code), json.loads(body)
    except ValueError:
        return int(code), body


@pytest.fixture
def grower():
    proc = subprocess.Popen([sys.executable, "-c", GROWER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    yield proc
    proc.kill()
    proc.wait(timeout=10)


@pytest.fixture
def lab(grower):
    world = World()
    one = world.add_instance("127.0.22.1")
    two = world.add_instance("127.0.22.2")
    web = world.add_task(one, Task("web", 3, [Container("app", "my/app:1", pid=grower.pid,
                                                        ports=[PortMapping(8080, 32768)]),
                                              Container("log-router", "fluent-bit:2")]))
    db = world.add_task(two, Task("db", 1, [Container("redis", "redis:7")]))
    for t in (web, db):
        t.known_status = "RUNNING"
        for c in t.containers:
            c.mark_running()
    with EcsMetadataServer(world, stats_source=PsutilStats()) as server:
        intro = {1: server.listen_introspection("127.0.0.1", 0, one),
                 2: server.listen_introspection("127.0.0.1", 0, two)}
        tmd = server.listen_task_metadata("127.0.0.1", 0)
        yield world, server, intro, tmd, web, db


def test_curl_every_introspection_endpoint(lab):
    world, _, intro, _, web, _ = lab
    code, root = curl(intro[1].url + "/")
    assert code == 200 and "/v1/tasks" in root["AvailableCommands"]
    code, meta = curl(intro[1].url + "/v1/metadata")
    assert code == 200 and meta["ContainerInstanceArn"] == world.instance(1).arn
    assert meta["Version"].startswith("Amazon ECS Agent - v1.")
    app = web.container("app")
    code, one = curl(intro[1].url + f"/v1/tasks?dockerid={app.docker_id}")
    assert code == 200 and one["Arn"] == web.arn
    code, _ = curl(intro[1].url + "/v1/tasks?dockerid=000000000000")
    assert code == 404


def test_two_instances_show_their_own_tasks(lab):
    _, _, intro, _, web, db = lab
    _, tasks1 = curl(intro[1].url + "/v1/tasks")
    _, tasks2 = curl(intro[2].url + "/v1/tasks")
    assert [t["Family"] for t in tasks1["Tasks"]] == ["web"]
    assert [t["Family"] for t in tasks2["Tasks"]] == ["db"]
    assert tasks2["Tasks"][0]["Containers"][0]["DockerId"] == db.containers[0].docker_id


def test_curl_every_task_metadata_endpoint(lab):
    world, _, _, tmd, web, _ = lab
    app = web.container("app")
    for version in ("v3", "v4"):
        base = f"{tmd.url}/{version}/{app.metadata_token}"
        code, me = curl(base)
        assert code == 200 and me["DockerId"] == app.docker_id
        code, task = curl(base + "/task")
        assert code == 200 and task["TaskARN"] == web.arn and len(task["Containers"]) == 2
        code, tagged = curl(base + "/taskWithTags")
        assert code == 200 and tagged["ContainerInstanceTags"] == world.instance(1).tags
        code, stats = curl(base + "/stats")
        assert code == 200 and stats["id"] == app.docker_id
        assert ("network_rate_stats" in stats) == (version == "v4")
        code, tstats = curl(base + "/task/stats")
        assert code == 200 and tstats[app.docker_id]["memory_stats"]["usage"] > 0
        # The log router has no process here: an empty object, as the ECS agent answers.
        assert tstats[web.container("log-router").docker_id] == {}
    code, body = curl(f"{tmd.url}/v4/deadbeef/task")
    assert code == 404 and "deadbeef" in body


def test_v2_answers_the_caller_found_by_source_address(lab):
    _, _, _, tmd, web, _ = lab
    code, body = curl(f"{tmd.url}/v2/metadata")
    assert code == 404 and "127.0.0.1" in body
    web.container("app").ipv4_addresses = ["127.0.0.1"]
    code, task = curl(f"{tmd.url}/v2/metadata")
    assert code == 200 and task["TaskARN"] == web.arn
    code, stats = curl(f"{tmd.url}/v2/stats")
    assert code == 200 and web.container("app").docker_id in stats


def test_task_stats_follow_a_real_process(lab, grower):
    _, _, _, tmd, web, _ = lab
    url = f"{tmd.url}/v4/{web.container('app').metadata_token}/stats"
    _, before = curl(url)
    grower.stdin.write("64\n")
    grower.stdin.flush()
    assert grower.stdout.readline().strip() == "ok"
    _, after = curl(url)
    grown = after["memory_stats"]["usage"] - before["memory_stats"]["usage"]
    assert grown >= 60 * 1024 * 1024, f"memory grew by {grown} bytes only"
    assert after["preread"] == before["read"]
    before_cpu = before["cpu_stats"]["cpu_usage"]["total_usage"]
    assert after["precpu_stats"]["cpu_usage"]["total_usage"] == before_cpu
    assert after["cpu_stats"]["cpu_usage"]["total_usage"] > 0
    assert after["memory_stats"]["max_usage"] >= after["memory_stats"]["usage"]
    assert after["pids_stats"]["current"] >= 1


def _clean_aws_env(monkeypatch, tmp_path):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    # Never let botocore fall back to the host's real IMDS.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_botocore_session_gets_task_role_credentials_from_full_uri(lab, monkeypatch, tmp_path):
    world, server, _, tmd, web, _ = lab
    server.model.grant_task_role(web, "arn:aws:iam::123456789012:role/web-task")
    env = container_env(world.instance(1), web, web.container("app"), base_url=tmd.url,
                        relative_credentials=False)
    _clean_aws_env(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", env["AWS_CONTAINER_CREDENTIALS_FULL_URI"])
    creds = botocore.session.get_session().get_credentials()
    served = server.model.credentials(web.task_role_credentials_id).body
    assert creds.method == "container-role"
    frozen = creds.get_frozen_credentials()
    assert (frozen.access_key, frozen.secret_key, frozen.token) == (
        served["AccessKeyId"], served["SecretAccessKey"], served["Token"])


def test_botocore_relative_uri_path_is_what_the_server_serves(lab):
    world, server, _, tmd, web, _ = lab
    cid = server.model.grant_task_role(web)
    env = container_env(world.instance(1), web, web.container("app"),
                        base_url="http://169.254.170.2", relative_credentials=True)

    class LabFetcher(ContainerMetadataFetcher):
        # Stand in for 169.254.170.2 (never reached from the host): same relative URI, our port.
        IP_ADDRESS = f"127.0.0.1:{tmd.bound_port}"

    provider = botocore.credentials.ContainerProvider(
        environ={"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": env["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"]},
        fetcher=LabFetcher())
    creds = provider.load()
    assert creds.get_frozen_credentials().access_key == server.model.credentials(cid).body["AccessKeyId"]


def test_counters_show_served_and_rejected(lab):
    _, server, intro, tmd, _, _ = lab
    curl(intro[1].url + "/v1/metadata")
    curl(f"{tmd.url}/v4/unknown")
    counters = server.model.counters()
    assert counters["served"]["introspection:/v1/metadata"] >= 1
    assert counters["rejected"]["v4:/"] >= 1


def test_curl_license_credentials_and_agent_api(lab):
    world, server, intro, tmd, web, _ = lab
    code, text = curl(intro[1].url + "/license")
    assert code == 200 and "Apache License" in text
    cid = server.model.grant_task_role(web)
    code, v2 = curl(f"{tmd.url}/v2/credentials/{cid}")
    code1, v1 = curl(f"{tmd.url}/v1/credentials?id={cid}")
    assert code == code1 == 200 and v1 == v2 and v2["Expiration"].endswith("Z")
    code, bad = curl(f"{tmd.url}/v2/credentials/unknown")
    assert code == 400 and bad["code"] == "InvalidIdInRequest"
    env = container_env(world.instance(1), web, web.container("app"), base_url=tmd.url,
                        relative_credentials=False)
    state = env["ECS_AGENT_URI"] + "/task-protection/v1/state"
    code, put = curl(state, "-X", "PUT", "-H", "Content-Type: application/json",
                     "-d", '{"ProtectionEnabled": true, "ExpiresInMinutes": 60}')
    assert code == 200 and put["protection"]["ProtectionEnabled"] is True
    code, got = curl(state)
    assert got["protection"]["TaskArn"] == web.arn and got["protection"]["ProtectionEnabled"] is True


def test_the_ecs_agent_config_switch_and_its_being_down(lab):
    import requests

    world, server, intro, _tmd, _web, _db = lab
    one = world.instance(1)
    with requests.Session() as http:
        http.trust_env = False
        config = intro[1].url + "/ecs-lab/config"
        # The ECS defaults, but for the metadata file, which the lab's instances write.
        assert http.get(config).json() == {"ECS_ENABLE_CONTAINER_METADATA": "true",
                                           "ECS_AWSVPC_BLOCK_IMDS": "false"}
        off = http.post(config, json={"ECS_ENABLE_CONTAINER_METADATA": "false"})
        assert off.status_code == 200 and off.json() == {"ECS_ENABLE_CONTAINER_METADATA": "false",
                                                         "ECS_AWSVPC_BLOCK_IMDS": "false"}
        assert one.container_metadata_enabled is False and world.instance(2).container_metadata_enabled
        block = http.post(config, json={"ECS_AWSVPC_BLOCK_IMDS": "true"})
        assert block.status_code == 200 and block.json()["ECS_AWSVPC_BLOCK_IMDS"] == "true"
        assert one.awsvpc_block_imds is True and world.instance(2).awsvpc_block_imds is False
        bad = http.post(config, json={"ECS_ENABLE_TASK_IAM_ROLE": "true"})
        assert bad.status_code == 400 and "unknown ECS agent setting" in bad.json()["error"]
        # A bad value sets nothing, not even the valid setting beside it.
        mixed = http.post(config, json={"ECS_AWSVPC_BLOCK_IMDS": "false",
                                        "ECS_ENABLE_CONTAINER_METADATA": "maybe"})
        assert mixed.status_code == 400 and "ECS_ENABLE_CONTAINER_METADATA must be true or false" in \
            mixed.json()["error"]
        assert one.awsvpc_block_imds is True
        # The ECS agent stopped: its port refuses connections; started again: it answers.
        server.stop_introspection(1)
        with pytest.raises(requests.ConnectionError):
            http.get(intro[1].url + "/v1/metadata", timeout=2)
        assert http.get(intro[2].url + "/v1/metadata", timeout=2).status_code == 200
        server.resume_introspection(1)
        assert http.get(intro[1].url + "/v1/metadata", timeout=2).status_code == 200
