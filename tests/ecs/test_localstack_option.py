"""`--control-plane localstack`: LocalStack's ECS is a Pro feature, started through testcontainers'
LocalStack module; without what it needs the lab says so plainly instead of starting something that
has no ECS. The image cannot be pulled here, so the engine is replaced only where a test must see
what would be asked of it."""

from __future__ import annotations

import docker.errors
import pytest

from lab.ecs.control_plane import LOCALSTACK_IMAGE, ControlPlane, ControlPlaneError


def test_localstack_without_auth_token_names_the_pro_requirement(monkeypatch):
    monkeypatch.delenv("LOCALSTACK_AUTH_TOKEN", raising=False)
    with pytest.raises(ControlPlaneError, match="LOCALSTACK_AUTH_TOKEN.*Pro"):
        ControlPlane(port=0, kind="localstack").start()


def test_localstack_without_docker_says_it_needs_docker(monkeypatch, tmp_path):
    monkeypatch.setenv("LOCALSTACK_AUTH_TOKEN", "ls-test")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
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


class _EngineWithoutTheImage:
    """A docker engine that has no LocalStack image and reaches no registry."""

    class images:  # noqa: N801 - docker-py's attribute name
        pulled: list[str] = []

        @classmethod
        def get(cls, tag):
            raise docker.errors.ImageNotFound(f"No such image: {tag}")

        @classmethod
        def pull(cls, tag):
            cls.pulled.append(tag)
            raise docker.errors.APIError("Get https://registry-1.docker.io/v2/: dial tcp: no route to host")


def test_missing_image_says_how_to_load_it(monkeypatch):
    from lab import docker_engine as images

    monkeypatch.setenv("LOCALSTACK_AUTH_TOKEN", "ls-test")
    monkeypatch.delenv("LAB_LOCALSTACK_IMAGE", raising=False)
    monkeypatch.setattr(images, "docker_client", lambda timeout=120: _EngineWithoutTheImage())
    cp = ControlPlane(port=0, kind="localstack")
    with pytest.raises(ControlPlaneError) as err:
        cp.start()
    message = str(err.value)
    assert f"cannot pull {LOCALSTACK_IMAGE}" in message and "no route to host" in message
    assert "docker load -i localstack-pro.tar" in message
    assert "without --control-plane localstack" in message
    assert cp._container is None


def test_a_user_with_the_image_gets_localstack_through_testcontainers(monkeypatch):
    """With the image in the engine, the container is testcontainers' LocalStackContainer: asked of the
    engine with the token, the docker socket, a loopback-only port and the lab's labels (what
    `ecs-lab down --all` sweeps by). The engine's create is the one part replaced: it records the
    request and refuses, and the refusal reaches the user as a LocalStack start failure."""
    from testcontainers.community.localstack import LocalStackContainer
    from testcontainers.core import docker_client as tc_docker_client

    from lab import docker_engine as images
    from lab.docker_engine import LABEL, ROLE_LABEL, RUN_LABEL

    monkeypatch.setenv("LOCALSTACK_AUTH_TOKEN", "ls-test")
    monkeypatch.delenv("LAB_LOCALSTACK_IMAGE", raising=False)
    monkeypatch.setattr(images, "image_exists", lambda client, tag: tag == LOCALSTACK_IMAGE)
    asked: list[dict] = []

    def create(self, image, command=None, environment=None, ports=None, labels=None, detach=False, **kwargs):
        asked.append({"image": image, "environment": environment, "ports": ports, "labels": labels, **kwargs})
        raise docker.errors.APIError("engine refused (test)")

    monkeypatch.setattr(tc_docker_client.DockerClient, "create", create)
    started: list[object] = []
    real_start = LocalStackContainer.start

    def start(self, timeout: float = 60):
        started.append(self)
        return real_start(self, timeout=timeout)

    monkeypatch.setattr(LocalStackContainer, "start", start)

    cp = ControlPlane(host="127.0.0.1", port=0, kind="localstack")
    with pytest.raises(ControlPlaneError, match="did not start: engine refused"):
        cp.start()

    assert len(started) == 1 and isinstance(started[0], LocalStackContainer)
    (request,) = asked
    assert request["image"] == LOCALSTACK_IMAGE
    assert request["environment"]["LOCALSTACK_AUTH_TOKEN"] == "ls-test"
    assert request["ports"] == {"4566": ("127.0.0.1", None)}, "the edge port is published on loopback only"
    assert request["volumes"]["/var/run/docker.sock"]["bind"] == "/var/run/docker.sock"
    assert request["labels"][LABEL] == "1" and request["labels"][ROLE_LABEL] == "localstack"
    assert request["labels"][RUN_LABEL].split("-")[-2].isdigit(), "the run id names the owner pid"
    assert cp._container is None, "a failed start leaves nothing for the caller to stop"


def test_ryuk_is_off_unless_the_user_turned_it_on(monkeypatch):
    from testcontainers.core.config import testcontainers_config

    from lab.docker_engine import RYUK_SWITCH, ryuk_off_unless_asked

    monkeypatch.delenv(RYUK_SWITCH, raising=False)
    monkeypatch.setattr(testcontainers_config, "_ryuk_disabled", None)
    assert ryuk_off_unless_asked() is True
    assert testcontainers_config.ryuk_disabled is True

    monkeypatch.setenv(RYUK_SWITCH, "false")
    monkeypatch.setattr(testcontainers_config, "_ryuk_disabled", None)
    assert ryuk_off_unless_asked() is False, "a user who turned Ryuk on keeps it"
