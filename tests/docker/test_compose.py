"""docker-compose.yml and DockerBackend describe the same world."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lab.backends.docker_topology import Topology
from lab.compose import render as render_compose

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]


def test_compose_file_is_the_backends_topology():
    on_disk = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert on_disk == render_compose(), (
        "docker-compose.yml drifted from the backend: regenerate it with "
        "`python -m lab.compose > docker-compose.yml`")


def test_compose_networks_addresses_and_ports_match_the_backend():
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    topo = Topology()
    for key, net in topo.networks().items():
        assert doc["networks"][key]["internal"] is True
        assert doc["networks"][key]["ipam"]["config"] == [net]
    assert doc["services"]["imds"]["networks"]["linklocal"]["ipv4_address"] == "169.254.169.254"
    assert doc["services"]["services"]["networks"]["linklocal"]["ipv4_address"] == "169.254.170.2"
    ports = doc["services"]["host-ports-1"]["command"]
    assert "172.30.1.1:8126/tcp=172.30.1.2:8126" in ports and "172.30.1.1:8125/udp=172.30.1.2:8125" in ports
    env = doc["services"]["datadog-agent-1"]["environment"]
    assert env["DD_DD_URL"] == env["DD_APM_DD_URL"] == topo.intake_url
    assert env["DD_SITE"].endswith(".invalid") and env["DD_PROXY_HTTPS"] == topo.egress_proxy_url


def _compose_cmd() -> list[str]:
    import shutil
    import subprocess

    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise AssertionError("neither `docker compose` nor docker-compose is installed: "
                         "`sudo bash .ci/docker-engine.sh` installs Debian's docker-compose")


def test_compose_up_gives_an_instance_whose_imds_and_agent_answer(tmp_path):
    import subprocess
    import uuid

    from lab.backends import images
    from lab.backends.docker import sweep, take_engine_lock

    client = images.docker_client()
    images.ensure_lab_image(client)
    compose = [*_compose_cmd(), "-p", "ecs-agent-lab-test", "-f", str(ROOT / "docker-compose.yml")]
    (ROOT / ".lab" / "compose").mkdir(parents=True, exist_ok=True)
    lock = take_engine_lock(f"compose test, pid {__import__('os').getpid()}")
    try:
        up = subprocess.run([*compose, "up", "-d", "imds", "services", "datadog-agent-1", "host-ports-1"],
                            capture_output=True, text=True, timeout=120)
        assert up.returncode == 0, up.stderr
        topo = Topology()
        probe = client.api.create_container(
            "ecs-agent-lab/lab:latest", entrypoint=[],
            labels={"ecs-agent-lab": "1", "ecs-agent-lab.run": "compose"},
            name=f"ecs-lab-compose-probe-{uuid.uuid4().hex[:6]}",
            # `up -d` returns once the containers run, not once they listen: both calls retry.
            command=["sh", "-c", "for i in $(seq 100); do curl -sf -m 2 "
                     "http://169.254.169.254/latest/meta-data/local-ipv4 && break; sleep 0.2; done; echo; "
                     "for i in $(seq 100); do curl -sf -m 2 http://172.30.1.1:8126/info >/dev/null "
                     "&& echo agent-ok && exit 0; sleep 0.2; done; exit 1"],
            host_config=client.api.create_host_config(network_mode="ecs-agent-lab-linklocal"),
            networking_config=client.api.create_networking_config({
                "ecs-agent-lab-linklocal": client.api.create_endpoint_config(
                    ipv4_address=topo.block_addresses(1)[-1])}))
        client.api.connect_container_to_network(probe["Id"], "ecs-agent-lab-instance1")
        client.api.start(probe["Id"])
        code = client.api.wait(probe["Id"], timeout=60)["StatusCode"]
        out = client.api.logs(probe["Id"]).decode()
        assert (code, out.split()) == (0, ["172.30.1.1", "agent-ok"]), out
    finally:
        subprocess.run([*compose, "down", "-v", "--remove-orphans"], capture_output=True, timeout=120)
        sweep(client, run_id="compose")
        lock.close()
