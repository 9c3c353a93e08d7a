"""docker-compose.yml and DockerBackend describe the same world."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lab.backends.docker import render_compose
from lab.backends.docker_topology import Topology

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]


def test_compose_file_is_the_backends_topology():
    on_disk = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert on_disk == render_compose(), (
        "docker-compose.yml drifted from the backend: regenerate it with "
        "`python -m lab.backends.docker compose > docker-compose.yml`")


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
