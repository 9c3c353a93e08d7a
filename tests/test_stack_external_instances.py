"""`Stack(external_instances=N)`: ECS Anywhere hosts follow the EC2 instances; what cannot work is
refused up front with a clear reason; on the docker backend they are instance networks whose
link-local block the IMDS container does not answer."""

from __future__ import annotations

import pytest

from lab.backends.docker import DockerBackend
from lab.backends.docker_topology import MAX_INSTANCES, Topology
from lab.stack import Stack


def test_external_hosts_are_numbered_after_the_ec2_instances():
    stack = Stack(instances=2, external_instances=1)
    assert [stack.is_external(n) for n in (1, 2, 3, 4)] == [False, False, True, False]


@pytest.mark.parametrize("kwargs, message", [
    ({"instances": 0, "external_instances": 1}, "sample apps are EC2 services"),
    ({"external_instances": -1}, "cannot be negative"),
    ({"external_instances": 1, "user_data": "#!/bin/sh\n"}, "external instances have none"),
])
def test_what_cannot_run_is_refused_with_its_reason(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Stack(**kwargs)


def test_external_hosts_only_with_no_sample_apps_is_a_valid_stack():
    assert Stack(instances=0, external_instances=2, apps=()).external_instances == 2


def test_the_docker_backend_gives_external_hosts_a_network_and_no_route_back_from_imds():
    # Instance 1 is EC2, 2 and 3 are ECS Anywhere hosts: each gets its instance network, and the IMDS
    # container routes their link-local blocks (only theirs) nowhere, before any task starts.
    topo = Topology(instances=1, external_instances=2)
    assert {"instance1", "instance2", "instance3"} <= set(topo.networks())
    assert topo.imds_blackholes() == [["ip", "route", "add", "unreachable", topo.instance_block(n)]
                                      for n in (2, 3)]
    assert Topology(instances=2).imds_blackholes() == []  # EC2 only: the IMDS runs as before


def test_the_docker_backend_counts_external_hosts_against_its_instance_networks():
    with pytest.raises(ValueError, match="EC2 and external together"):
        Topology(instances=MAX_INSTANCES, external_instances=1)


def test_an_agent_on_a_docker_external_host_is_not_told_it_runs_on_ec2():
    # Built without touching the engine: the endpoints are the topology's.
    backend = DockerBackend(Stack(instances=1, external_instances=1))
    world = backend.world
    ec2 = world.add_instance(Topology.private_ip(1))
    onprem = world.add_instance(Topology.private_ip(2), launch_type="EXTERNAL")
    assert backend.instance_endpoints(ec2).extra_env["AWS_EXECUTION_ENV"] == "AWS_ECS_EC2"
    endpoints = backend.instance_endpoints(onprem)
    assert "AWS_EXECUTION_ENV" not in endpoints.extra_env
    assert endpoints.ecs_agent_url == "http://169.254.170.2:51678"  # introspection as on any instance
    assert endpoints.private_ip == onprem.private_ip
