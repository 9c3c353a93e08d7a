"""The emulated EC2 instance as ECS builds it: IMDS by caller, host ports, agent, intake."""

from __future__ import annotations

import json
import urllib.request

import pytest

from lab.world import wait_until

pytestmark = pytest.mark.docker


def _intake(backend, query: str):
    with urllib.request.urlopen(f"{backend.intake_url}{query}", timeout=2) as resp:
        return json.load(resp)


def test_docs_curl_gets_each_instance_private_ip(docker_lab):
    # The docs' line: export DD_AGENT_HOST=$(curl http://169.254.169.254/latest/meta-data/local-ipv4)
    for n in (1, 2):
        code, out = docker_lab.run_in_instance(
            n, ["curl", "-sS", "-m", "5", "http://169.254.169.254/latest/meta-data/local-ipv4"])
        assert (code, out) == (0, f"172.30.{n}.1"), out


def test_imdsv2_token_flow_from_a_container(docker_lab):
    line = ('T=$(curl -sS -m 5 -X PUT http://169.254.169.254/latest/api/token '
            '-H "X-aws-ec2-metadata-token-ttl-seconds: 60"); '
            'curl -sS -m 5 -H "X-aws-ec2-metadata-token: $T" '
            'http://169.254.169.254/latest/meta-data/instance-id')
    code, out = docker_lab.run_in_instance(2, ["sh", "-c", line])
    assert code == 0 and out == docker_lab.world.instance(2).instance_id, out


def test_introspection_answers_as_the_callers_instance(docker_lab):
    code, out = docker_lab.run_in_instance(
        2, ["curl", "-sS", "-m", "5", "http://169.254.170.2:51678/v1/tasks"])
    assert code == 0, out
    tasks = json.loads(out)["Tasks"]
    agent = docker_lab.agent_tasks[2]
    # The real docker id of the agent container, so a real agent can tag by it.
    assert [t["Containers"][0]["DockerId"] for t in tasks] == [agent.containers[0].docker_id]


def test_agent_is_healthy_by_the_task_definition_check(docker_lab):
    info = docker_lab.client.api.inspect_container(docker_lab.agent_tasks[1].containers[0].docker_id)
    assert info["Config"]["Healthcheck"]["Test"] == ["CMD-SHELL", "agent health"]
    assert info["State"]["Health"]["Status"] == "healthy"
    env = dict(e.split("=", 1) for e in info["Config"]["Env"])
    assert env["AWS_EXECUTION_ENV"] == "AWS_ECS_EC2"
    # The docs' DD_SITE kept (behind the recording egress proxy), every URL at its site's listener.
    assert env["DD_SITE"] == "datadoghq.com" and env["DD_PROXY_HTTPS"]
    assert env["DD_DD_URL"] == docker_lab.topo.instance_endpoints(True).site_intake_urls["datadoghq.com"]
    binds = set(info["HostConfig"]["Binds"])
    assert {"/var/run/docker.sock:/var/run/docker.sock:ro", "/proc/:/host/proc/:ro",
            "/sys/fs/cgroup/:/host/sys/fs/cgroup:ro"} <= binds


def test_app_trace_reaches_intake_through_the_instance_host_port(docker_lab):
    app = docker_lab.app_tasks["imdsv1"].containers[0]
    code, out = docker_lab.run_in_instance(1, ["sh", "-c", (
        f"for i in $(seq 100); do curl -sf -m 2 http://{app.ipv4_addresses[0]}:8080/ && exit 0; "
        "sleep 0.2; done; exit 1")])
    assert code == 0, out
    assert json.loads(out.strip().splitlines()[-1])["agent_host"] == "172.30.1.1"

    def trace_from_app():
        query = "/fakeintake/payloads?endpoint=/api/v0.2/traces&format=json"
        for p in _intake(docker_lab, query)["payloads"]:
            for tp in p["data"]["tracerPayloads"]:
                if tp.get("container_id") == app.docker_id:
                    return tp
        return None

    tp = wait_until(trace_from_app, 30, what="a trace from the app's container at the intake")
    services = {s["service"] for c in tp["chunks"] for s in c["spans"]}
    assert "web-imdsv1" in services
    # The agent found the task through introspection + the app's ECS_CONTAINER_METADATA_URI_V4.
    ecs_tags = set(tp["tags"]["_dd.tags.container"].split(","))
    assert {"task_family:web-imdsv1-task", "ecs_cluster_name:ecs-lab", "ecs_container_name:app"} <= ecs_tags


def test_every_lab_network_is_internal(docker_lab):
    nets = docker_lab.client.api.networks(filters={"label": [f"ecs-agent-lab.run={docker_lab.run_id}"]})
    assert {n["Name"] for n in nets} == {"ecs-lab-linklocal", "ecs-lab-lab", "ecs-lab-instance1",
                                         "ecs-lab-instance2"}
    assert all(n["Internal"] for n in nets)
    # No resolver answers for outside names either (internal networks get no DNS forwarding).
    code, out = docker_lab.run_in_instance(
        1, ["sh", "-c", "timeout 2 getent hosts deb.debian.org || echo unresolved"])
    assert out.strip() == "unresolved"


def test_awsvpc_task_containers_share_one_localhost(docker_lab):
    from lab.tasks import LAB_IMAGE, ContainerSpec
    from lab.world import Container, Task

    server = ContainerSpec(name="server", image=LAB_IMAGE, entry_point=[],
                           command=["python", "-m", "http.server", "9000", "--bind", "127.0.0.1"])
    client = ContainerSpec(name="client", image=LAB_IMAGE, entry_point=[], depends_on=[("server", "START")],
                           command=["sh", "-c", "for i in $(seq 100); do "
                                    "curl -sf -m 1 -o /dev/null http://127.0.0.1:9000/ && exit 0; "
                                    "sleep 0.1; done; exit 1"])
    task = Task(family="awsvpc-pair", revision=1, network_mode="awsvpc",
                containers=[Container(name=n, image=LAB_IMAGE) for n in ("server", "client")])
    inst = docker_lab.world.instance(1)
    docker_lab.start_task(inst, task, [server, client])
    try:
        result = docker_lab.client.api.wait(task.container("client").docker_id, timeout=60)
        assert result["StatusCode"] == 0, docker_lab.logs(task.container("client").docker_id)
        # Both report the task ENI's address, on the instance's subnet.
        assert task.container("server").ipv4_addresses == task.container("client").ipv4_addresses
        assert task.container("server").ipv4_addresses[0].startswith("172.30.1.")
    finally:
        docker_lab.stop_task(task.arn)


def test_an_agent_switches_between_host_and_bridge_mode(docker_ecs_lab):
    """Redeployed through the control plane (a new revision of its task definition) with FIPS on, the
    agent runs in the instance's network (host mode, as the docs' FIPS definition), and back."""
    # The host-mode instance netns takes a docker-chosen address; it must never be the bridge-mode
    # agent's fixed .2, or the switch back fails with "Address already in use".
    from dataclasses import replace

    docker_lab = docker_ecs_lab.backend
    original = docker_ecs_lab.stack
    try:
        docker_ecs_lab.redeploy_agent(replace(original, features=original.features | {"fips"}))
        assert {t.network_mode for t in docker_lab.agent_tasks.values()} == {"host"}
        for n in docker_lab.agent_tasks:
            ip = docker_lab._ip_on(docker_lab.instance_hosts[n], f"instance{n}")
            assert int(ip.rsplit(".", 1)[1]) >= 128, f"instance {n}'s host netns took {ip}"
    finally:
        docker_ecs_lab.redeploy_agent(original)
    assert {t.network_mode for t in docker_lab.agent_tasks.values()} == {"bridge"}
    for n, task in docker_lab.agent_tasks.items():
        c = task.container("datadog-agent")
        assert c.health_status == "HEALTHY" and c.ipv4_addresses == [f"172.30.{n}.2"]
