"""ECS awareness with the lab's fake ECS metadata and IMDS: hostname, and ECS tags on traces,
metrics and processes of a task container (a local process carrying ECS_CONTAINER_METADATA_URI_V4)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from lab.agent.config import AgentConfig
from lab.agent.ecs_tags import container_tags, parse_image
from lab.agent.hostname import resolve_hostname
from lab.fakes.ecs_metadata.model import container_env
from lab.fakes.ecs_metadata.server import EcsMetadataServer
from lab.fakes.imds.server import ImdsServer
from lab.world import Container, Task, World

CHILD = textwrap.dedent("""
    import sys, time
    from ddtrace.trace import tracer
    from datadog.dogstatsd import DogStatsd
    with tracer.trace("web.request", service="ecs-web", resource="GET /"):
        pass
    tracer.flush()
    d = DogStatsd(host="127.0.0.1", port=int(sys.argv[1]), disable_telemetry=True)
    d.gauge("ecs.app.gauge", 1)
    d.flush()
    print("sent", flush=True)
    time.sleep(120)
""")


@pytest.fixture
def ecs_world():
    world = World()
    inst = world.add_instance("127.0.0.1")
    task = world.add_task(
        inst,
        Task(
            family="web",
            revision=3,
            service_name="web-svc",
            containers=[Container(name="app", image="ecs-lab/web:1.4")],
        ),
    )
    with EcsMetadataServer(world) as ecs:
        intro = ecs.listen_introspection("127.0.0.1", 0, inst)
        ecs.listen_task_metadata("127.0.0.1", 0)
        yield world, inst, task, intro.url, ecs.task_metadata_url


def test_ecs_tags_reach_traces_metrics_and_processes(ecs_world, start_agent, intake):
    from lab.proto import agent_payload_pb2, metrics_payload_pb2, process_codec

    world, inst, task, intro_url, tmd_url = ecs_world
    agent = start_agent(DD_ECS_AGENT_URL=intro_url, DD_PROCESS_AGENT_ENABLED="true")
    c = task.containers[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD_")}
    env.update(container_env(inst, task, c, base_url=tmd_url, relative_credentials=False))
    env.update(
        {
            "DD_TRACE_AGENT_URL": f"http://127.0.0.1:{agent.ports.apm}",
            "DD_ENV": "lab",
            "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false",
            "DD_REMOTE_CONFIGURATION_ENABLED": "false",
        }
    )
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(agent.ports.dogstatsd)], env=env, stdout=subprocess.PIPE, text=True
    )
    c.pid = child.pid
    c.mark_running()
    world.touch()
    try:
        expected = {
            "task_family:web",
            "task_name:web",
            "task_version:3",
            "ecs_cluster_name:ecs-lab",
            "cluster_name:ecs-lab",
            "ecs_container_name:app",
            "ecs_service:web-svc",
            "image_name:ecs-lab/web",
            "short_image:web",
            "image_tag:1.4",
            "region:us-east-1",
            "aws_account:123456789012",
            f"container_name:{c.docker_name}",
        }

        def trace_tags(cap):
            p = agent_payload_pb2.AgentPayload()
            p.ParseFromString(cap.body)
            return {
                t for tp in p.tracerPayloads for t in tp.tags.get("_dd.tags.container", "").split(",") if t
            }

        cap = intake.wait_for("/api/v0.2/traces", lambda cp: expected <= trace_tags(cp), timeout=20)
        assert f"task_arn:{task.arn}" in trace_tags(cap)  # traces carry high-cardinality container tags

        def metric_tags(cap):
            p = metrics_payload_pb2.MetricPayload()
            p.ParseFromString(cap.body)
            return {t for s in p.series if s.metric == "ecs.app.gauge" for t in s.tags}

        cap = intake.wait_for("/api/v2/series", lambda cp: expected <= metric_tags(cp), timeout=20)
        assert f"task_arn:{task.arn}" not in metric_tags(cap)  # low cardinality by default

        def proc_in_container(cap):
            msg = process_codec.decode_message(cap.raw)
            return any(p.pid == child.pid and p.containerId == c.docker_id for p in msg.body.processes)

        intake.wait_for("/api/v1/collector", proc_in_container, timeout=20)
        # With process collection on, containers travel inside the process payloads, ECS tags and all.
        cap = intake.wait_for("/api/v1/collector", lambda cap: _container(cap, c.docker_id), timeout=20)
        assert expected <= set(_container(cap, c.docker_id).tags)
        snap = agent.status()["ecs"]
        assert snap["cluster"] == "ecs-lab" and snap["task_metadata_v4"] is True
    finally:
        child.kill()
        child.wait()


def test_without_dd_ecs_agent_url_the_agent_looks_where_the_real_one_does(tmp_path, monkeypatch):
    """pkg/util/ecs/metadata: a docker container named `ecs-agent`, then (only where the lab owns
    link-local addresses) the default gateway and 169.254.172.1, then localhost, all on 51678."""
    from lab.agent import ecs as ecs_mod
    from lab.agent.ecs import EcsAwareness

    env = {"DD_API_KEY": "k", "LAB_AGENT_DOCKER_SOCKET": str(tmp_path / "no-docker.sock")}
    assert EcsAwareness(AgentConfig.from_env(env)).candidates() == ["http://localhost:51678"]
    monkeypatch.setattr(ecs_mod, "_default_gateway", lambda: "172.30.1.1")
    linked = AgentConfig.from_env({**env, "LAB_AGENT_ALLOW_LINK_LOCAL_IMDS": "true"})
    assert EcsAwareness(linked).candidates() == [
        "http://172.30.1.1:51678", "http://169.254.172.1:51678", "http://localhost:51678"]
    given = AgentConfig.from_env({**env, "DD_ECS_AGENT_URL": "http://127.0.0.9:51678/"})
    assert EcsAwareness(given).candidates() == ["http://127.0.0.9:51678"]


def test_discovery_takes_the_first_candidate_that_is_an_ecs_agent(ecs_world, monkeypatch):
    """A candidate counts only if its `GET /` lists `AvailableCommands`, as the agent checks."""
    from aiohttp import web

    from lab.agent.ecs import EcsAwareness
    from lab.serving import ServerThread

    _, _, _, intro_url, _ = ecs_world
    async def not_an_ecs_agent(request: web.Request) -> web.Response:
        return web.json_response({"hello": "a web server, not an ECS agent"})

    impostor = web.Application()
    impostor.router.add_get("/", not_an_ecs_agent)
    with ServerThread("impostor") as srv:
        impostor_url = srv.add_app(impostor, "127.0.0.1", 0).url
        awareness = EcsAwareness(AgentConfig.from_env({"DD_API_KEY": "k"}))
        monkeypatch.setattr(awareness, "candidates", lambda: ["http://127.0.0.1:9", impostor_url, intro_url])
        assert awareness.discover() == intro_url.rstrip("/")
        monkeypatch.setattr(awareness, "candidates", lambda: [impostor_url])
        assert awareness.discover() is None


def _container(cap, docker_id: str):
    from lab.proto import process_codec

    return next((x for x in process_codec.decode_message(cap.raw).body.containers if x.id == docker_id), None)


@pytest.mark.parametrize("processes", ["true", "false"])
def test_container_check_and_process_check_are_mutually_exclusive(ecs_world, start_agent, intake, processes):
    """As pkg/process/checks `canEnableContainerChecks`: with process collection on, containers go
    in the process payloads and no `/api/v1/container` is sent; with it off, the container check
    sends them (ECS tags included) and no process payload is sent."""
    world, inst, task, intro_url, tmd_url = ecs_world
    c = task.containers[0]
    # A task container as the local backend runs one: a process with the container's ECS environment.
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD_")}
    env.update(container_env(inst, task, c, base_url=tmd_url, relative_credentials=False))
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], env=env)
    c.pid = child.pid
    c.mark_running()
    world.touch()
    try:
        agent = start_agent(DD_ECS_AGENT_URL=intro_url, DD_PROCESS_AGENT_ENABLED=processes,
                            LAB_AGENT_PROCESS_INTERVAL="0.5")
        sent, silent = (("/api/v1/collector", "/api/v1/container") if processes == "true"
                        else ("/api/v1/container", "/api/v1/collector"))
        # Two payloads carrying the container, so the other check would have run meanwhile too.
        intake.wait_for(sent, lambda cap: _container(cap, c.docker_id), timeout=20)
        cap = intake.wait_for(sent, lambda cap: _container(cap, c.docker_id)
                              and cap is not intake.payloads(sent)[0], timeout=20)
        assert {"task_family:web", "ecs_cluster_name:ecs-lab"} <= set(_container(cap, c.docker_id).tags)
        assert intake.payloads(silent) == [], f"{silent} was sent with process collection {processes}"
        assert agent.status()["config"]["container_check"] is (processes == "false")
    finally:
        child.kill()
        child.wait()


def test_hostname_is_the_imds_instance_id_on_ecs_ec2():
    world = World()
    inst = world.add_instance("127.0.0.1")
    with ImdsServer(world) as imds:
        url = imds.listen("127.0.0.1", 0, inst).url
        env = {
            "DD_API_KEY": "k",
            "AWS_EXECUTION_ENV": "AWS_ECS_EC2",
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": url,
        }
        result = resolve_hostname(AgentConfig.from_env(env), env)
    assert (result.hostname, result.provider) == (inst.instance_id, "aws")


def test_hostname_falls_back_to_imdsv1_when_the_token_call_fails():
    world = World()
    inst = world.add_instance("127.0.0.1")
    with ImdsServer(world) as imds:
        url = imds.listen("127.0.0.1", 0, inst).url
        imds.model.faults.add(path="/latest/api/token", status=403, times=10)
        env = {
            "DD_API_KEY": "k",
            "AWS_EXECUTION_ENV": "AWS_ECS_EC2",
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": url,
        }
        result = resolve_hostname(AgentConfig.from_env(env), env)
    assert result.hostname == inst.instance_id


def test_dd_hostname_wins_and_no_endpoint_never_means_link_local():
    env = {"DD_API_KEY": "k", "DD_HOSTNAME": "given"}
    assert resolve_hostname(AgentConfig.from_env(env), env).hostname == "given"
    env = {"DD_API_KEY": "k", "AWS_EXECUTION_ENV": "AWS_ECS_EC2"}
    result = resolve_hostname(AgentConfig.from_env(env), env)
    assert result.provider == "os"  # the host's 169.254.169.254 was not asked


@pytest.mark.parametrize(
    "image, expected",
    [
        ("ecs-lab/web:1.4", ("ecs-lab/web", "web", "1.4")),
        ("public.ecr.aws/datadog/agent:7", ("public.ecr.aws/datadog/agent", "agent", "7")),
        ("localhost:5000/app", ("localhost:5000/app", "app", "latest")),
        ("nginx@sha256:abc", ("nginx", "nginx", "latest")),
    ],
)
def test_image_tags(image, expected):
    assert parse_image(image) == expected


def test_task_arn_only_above_low_cardinality():
    ct = container_tags(
        {
            "TaskARN": "arn:aws:ecs:eu-west-1:1:task/c/abc",
            "Family": "f",
            "Revision": 1,
            "Cluster": "arn:aws:ecs:eu-west-1:1:cluster/c",
        },
        {"Name": "n", "DockerId": "d"},
    )
    assert "task_arn:arn:aws:ecs:eu-west-1:1:task/c/abc" not in ct.at("low")
    assert "task_arn:arn:aws:ecs:eu-west-1:1:task/c/abc" in ct.at("orchestrator")
    assert "ecs_cluster_name:c" in ct.at("low") and "region:eu-west-1" in ct.at("low")
    assert "container_id:d" in ct.at("high")
