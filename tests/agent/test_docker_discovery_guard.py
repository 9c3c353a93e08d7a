"""The emulated agent never follows a container's metadata URI to the host's 169.254.170.2.

Found by the no_egress scenario: with a Docker engine on the host running another docker lab, the
local backend's agent listed those containers through the host's docker socket and called their
`ECS_CONTAINER_METADATA_URI_V4` (http://169.254.170.2/v4/...), an address that on the host belongs
to someone else (docs/environment.md#link-local-addresses-belong-to-someone-else).
"""

from __future__ import annotations

import sys
import types

from lab.agent.config import AgentConfig
from lab.agent.ecs import EcsAwareness


class _Container:
    def __init__(self, cid: str, env: list[str], ip: str) -> None:
        self.id = cid
        self.attrs = {"Config": {"Env": env},
                      "NetworkSettings": {"Networks": {"lab": {"IPAddress": ip}}}}


def _fake_docker(monkeypatch, containers: list[_Container]) -> None:
    client = types.SimpleNamespace(containers=types.SimpleNamespace(list=lambda: containers))
    module = types.ModuleType("docker")
    module.DockerClient = lambda **_: client
    monkeypatch.setitem(sys.modules, "docker", module)


CONTAINERS = [
    _Container("a" * 64, ["ECS_CONTAINER_METADATA_URI_V4=http://169.254.170.2/v4/tok-a"], "172.30.1.5"),
    _Container("b" * 64, ["ECS_CONTAINER_METADATA_URI_V4=http://127.0.0.1:51679/v4/tok-b"], "172.30.1.6"),
]


def _awareness(tmp_path, **extra_env) -> EcsAwareness:
    socket_path = tmp_path / "docker.sock"
    socket_path.touch()
    env = {"DD_API_KEY": "x", "LAB_AGENT_DOCKER_SOCKET": str(socket_path), **extra_env}
    return EcsAwareness(AgentConfig.from_env(env))


def test_link_local_metadata_uris_from_docker_are_not_followed_on_the_host(tmp_path, monkeypatch):
    _fake_docker(monkeypatch, CONTAINERS)
    assert _awareness(tmp_path)._docker_metadata_uris() == ["http://127.0.0.1:51679/v4/tok-b"]


def test_link_local_metadata_uris_are_followed_where_the_lab_owns_them(tmp_path, monkeypatch):
    _fake_docker(monkeypatch, CONTAINERS)
    uris = _awareness(tmp_path, LAB_AGENT_ALLOW_LINK_LOCAL_IMDS="1")._docker_metadata_uris()
    assert uris == ["http://169.254.170.2/v4/tok-a", "http://127.0.0.1:51679/v4/tok-b"]


def test_an_empty_docker_socket_setting_turns_docker_discovery_off(monkeypatch):
    _fake_docker(monkeypatch, CONTAINERS)
    config = AgentConfig.from_env({"DD_API_KEY": "x", "LAB_AGENT_DOCKER_SOCKET": ""})
    assert config.docker_socket == ""
    assert EcsAwareness(config)._docker_metadata_uris() == []
