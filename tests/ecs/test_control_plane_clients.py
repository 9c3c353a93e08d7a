"""The lab's control-plane clients: localstack-client pointed at the control plane through its public
`localstack_host`, and the lab's calls reach the control plane it started even when the user's shell
exports $AWS_ENDPOINT_URL (which localstack-client would otherwise follow)."""

from __future__ import annotations

import pytest

from lab.ecs.client import ControlPlaneClients
from lab.ecs.control_plane import ControlPlane


@pytest.fixture(scope="module")
def control_plane():
    with ControlPlane(port=0) as cp:
        yield cp


def test_localstack_client_routes_to_the_given_host(control_plane, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("USE_SSL", raising=False)
    clients = ControlPlaneClients(control_plane.endpoint)
    assert clients.routed_by_localstack_client("ecs")
    ecs = clients.client("ecs")
    assert ecs.meta.endpoint_url == control_plane.endpoint
    arn = ecs.create_cluster(clusterName="clients-own-host")["cluster"]["clusterArn"]
    assert arn in ecs.list_clusters()["clusterArns"]


def test_the_users_aws_endpoint_url_does_not_take_the_labs_calls_elsewhere(control_plane, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard port: nothing answers
    clients = ControlPlaneClients(control_plane.endpoint)
    assert not clients.routed_by_localstack_client("ecs")
    ecs = clients.client("ecs")
    assert ecs.meta.endpoint_url == control_plane.endpoint
    arn = ecs.create_cluster(clusterName="clients-despite-env")["cluster"]["clusterArn"]
    assert arn in ecs.list_clusters()["clusterArns"]


def test_an_endpoint_without_a_port_is_refused():
    with pytest.raises(ValueError, match="needs a host and a port"):
        ControlPlaneClients("http://127.0.0.1")
