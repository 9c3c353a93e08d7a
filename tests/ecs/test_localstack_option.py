"""`--control-plane localstack`: LocalStack's ECS is a Pro feature; without what it needs the lab
says so plainly instead of starting something that has no ECS."""

from __future__ import annotations

import pytest

from lab.ecs.control_plane import ControlPlane, ControlPlaneError


def test_localstack_without_auth_token_names_the_pro_requirement(monkeypatch):
    monkeypatch.delenv("LOCALSTACK_AUTH_TOKEN", raising=False)
    with pytest.raises(ControlPlaneError, match="LOCALSTACK_AUTH_TOKEN.*Pro"):
        ControlPlane(port=0, kind="localstack").start()


def test_localstack_without_docker_says_it_needs_docker(monkeypatch, tmp_path):
    monkeypatch.setenv("LOCALSTACK_AUTH_TOKEN", "ls-test")
    monkeypatch.setenv("PATH", str(tmp_path))  # no docker on PATH
    with pytest.raises(ControlPlaneError, match="needs a docker engine"):
        ControlPlane(port=0, kind="localstack").start()


def test_auth_token_in_the_environment_selects_localstack(monkeypatch):
    monkeypatch.setenv("LOCALSTACK_AUTH_TOKEN", "ls-test")
    assert ControlPlane(port=0).kind == "localstack"
    monkeypatch.delenv("LOCALSTACK_AUTH_TOKEN")
    assert ControlPlane(port=0).kind == "moto"


def test_busy_port_names_its_holder():
    from lab.serving import PortInUseError

    with ControlPlane(port=0) as first:
        with pytest.raises(PortInUseError):
            ControlPlane(port=first.port).start()
