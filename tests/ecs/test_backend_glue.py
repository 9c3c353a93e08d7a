"""How a backend hands the control plane what it needs, and what really runs for an image (without
starting a backend): the agent's redirects come from the backend's `InstanceEndpoints`, through the
one writer of agent env (`lab.ecs.agent_env`), whatever the backend."""

from __future__ import annotations

from types import SimpleNamespace

import docker.errors
import pytest

from lab.backends.docker import DockerBackend
from lab.backends.docker_topology import Topology
from lab.ecs.agent_env import INTAKE_URL_KEYS, Redirects
from lab.ecs.translate import container_specs
from lab.stack import Stack
from lab.tasks import LAB_IMAGE, CannotPullContainerError, ContainerSpec, InstanceEndpoints
from lab.world import ContainerInstance


class _Images:
    def __init__(self, present):
        self.present = set(present)

    def get(self, image):
        if image not in self.present:
            raise docker.errors.ImageNotFound(image)
        return image


def _docker(present=(), agent_image=None, tmp_path=None) -> DockerBackend:
    client = SimpleNamespace(images=_Images(present))
    return DockerBackend(Stack(run_dir=tmp_path), client=client, agent_image=agent_image)


def _inst() -> ContainerInstance:
    return ContainerInstance(index=1, private_ip="172.30.1.1")


def test_an_agent_image_runs_as_the_emulated_agent_by_default(tmp_path, monkeypatch):
    monkeypatch.delenv("LAB_AGENT_IMAGE", raising=False)
    backend = _docker(tmp_path=tmp_path)
    spec = backend._image_for(_inst(), ContainerSpec("datadog-agent", "public.ecr.aws/datadog/agent:latest"))
    assert spec.image == LAB_IMAGE
    assert "emulated agent" in backend.agent_describe()


def test_a_real_agent_image_in_the_engine_runs_as_itself(tmp_path, monkeypatch):
    monkeypatch.delenv("LAB_AGENT_IMAGE", raising=False)
    backend = _docker(present={"datadog/agent:7.60.0"}, tmp_path=tmp_path)
    spec = backend._image_for(_inst(), ContainerSpec("datadog-agent", "datadog/agent:7.60.0"))
    assert spec.image == "datadog/agent:7.60.0"


def test_a_chosen_agent_image_missing_from_the_engine_is_an_error_not_a_substitute(tmp_path, monkeypatch):
    monkeypatch.delenv("LAB_AGENT_IMAGE", raising=False)
    backend = _docker(agent_image="datadog/agent:7.99.0", tmp_path=tmp_path)
    with pytest.raises(CannotPullContainerError, match=r"docker load|docker pull"):
        backend._image_for(_inst(), ContainerSpec("datadog-agent", "public.ecr.aws/datadog/agent:latest"))


def test_any_other_missing_image_names_itself_and_how_to_get_it(tmp_path):
    backend = _docker(tmp_path=tmp_path)
    with pytest.raises(CannotPullContainerError, match="nginx:1.27"):
        backend._image_for(_inst(), ContainerSpec("web", "nginx:1.27"))


def test_docker_redirects_leave_the_agent_its_own_netns():
    endpoints = Topology(instances=1).instance_endpoints(egress_proxy=True)
    td = {"family": "a", "containerDefinitions": [{"name": "datadog-agent", "memory": 256,
                                                   "image": "public.ecr.aws/datadog/agent:latest"}]}
    (spec,) = container_specs(td, redirects=Redirects.for_instance(endpoints))
    assert spec.env["DD_DD_URL"] == endpoints.intake_url
    assert spec.env["DD_ECS_AGENT_URL"] == endpoints.ecs_agent_url
    assert "LAB_AGENT_HOST_ADDRESSES" not in spec.env and "LAB_AGENT_LOCALHOST" not in spec.env


def test_local_redirects_put_the_agent_on_its_instance_addresses():
    endpoints = InstanceEndpoints(intake_url="http://127.9.0.1:8091", ecs_agent_url="http://127.9.1.1:51678",
                                  imds_url="http://127.9.1.1:1338", agent_localhost="127.9.2.1",
                                  private_ip="127.9.1.1")
    td = {"family": "a", "containerDefinitions": [{
        "name": "datadog-agent", "memory": 256, "image": "public.ecr.aws/datadog/agent:latest",
        "environment": [{"name": "DD_FIPS_LOCAL_ADDRESS", "value": "127.0.0.1"}],
        "portMappings": [{"containerPort": 8126, "hostPort": 8126, "protocol": "tcp"}]}]}
    (spec,) = container_specs(td, redirects=Redirects.for_instance(endpoints))
    assert {spec.env[k] for k in INTAKE_URL_KEYS} == {"http://127.9.0.1:8091"}
    assert spec.env["DD_APM_PROFILING_DD_URL"] == "http://127.9.0.1:8091/api/v2/profile"
    assert spec.env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] == "http://127.9.1.1:1338"
    assert spec.env["DD_FIPS_LOCAL_ADDRESS"] == "127.9.2.1"
    assert spec.env["LAB_AGENT_HOST_ADDRESSES"] == "127.9.1.1,127.9.2.1"
