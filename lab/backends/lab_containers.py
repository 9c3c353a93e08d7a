"""The docker backend's long-lived parts as `testcontainers` objects.

What testcontainers expresses, it owns: the lab's networks (`testcontainers.core.network.Network`,
created with the lab's IPAM, `internal` and labels) and the containers that live as long as the lab
(the services, the IMDS, each instance's "instance host" netns), as `DockerContainer`s the backend
enters and exits. Task containers stay on docker-py's low-level API in `lab.backends.docker`: ECS
creates each with a fixed address on the link-local network, joins its other networks, writes its
metadata file and only then starts them in `dependsOn` order; testcontainers' `start()` creates and
starts in one step, so it cannot express that (docs/docker_backend.md#what-testcontainers-runs).

Ryuk, testcontainers' reaper, is off unless the user turned it on: its image
(`testcontainers/ryuk`) comes from a registry, which the lab's machines cannot reach. Nothing is
lost: everything here carries the lab's labels (`ecs-agent-lab=1` and the run's id), which
`DockerBackend.stop()` and `ecs-lab down --all` (`lab.backends.docker.sweep`) remove by.
"""

from __future__ import annotations

from typing import Any

from lab.docker_engine import ryuk_off_unless_asked


def lab_network(name: str, *, subnet: str, gateway: str, ip_range: str | None,
                labels: dict[str, str]) -> Any:
    """An internal bridge network with a fixed subnet, as a testcontainers `Network` (not created
    yet: the owner calls `create()` and `remove()`)."""
    import docker.types
    from testcontainers.core.network import Network

    ryuk_off_unless_asked()
    ipam = docker.types.IPAMConfig(pool_configs=[
        docker.types.IPAMPool(subnet=subnet, gateway=gateway, iprange=ip_range)])
    net = Network(docker_network_kw={"driver": "bridge", "internal": True, "ipam": ipam,
                                     "labels": dict(labels), "check_duplicate": True})
    # testcontainers names networks with a random uuid; the lab's have fixed names (the compose file,
    # `docker network ls`, leftovers named in errors), and `name` is the Network's public attribute.
    net.name = name
    return net


def lab_container(image: str, *, name: str, network: Any, ipv4_address: str | None, labels: dict[str, str],
                  command: list[str] | None, entrypoint: list[str] | None = None,
                  volumes: dict[str, str] | None = None, api_version: str = "1.41",
                  cap_add: list[str] | None = None) -> Any:
    """A long-lived lab container as a testcontainers `DockerContainer` on `network` (a `lab_network`)
    at `ipv4_address` (None: docker picks). Not started: the owner enters/exits it, or calls
    `start()`/`stop()`. `volumes` are read-only binds {host path: container path}."""
    from docker.types import EndpointConfig
    from testcontainers.core.container import DockerContainer

    ryuk_off_unless_asked()
    container = DockerContainer(image, name=name).with_command(command)
    for host_path, container_path in (volumes or {}).items():
        container.with_volume_mapping(host_path, container_path, "ro")
    # The address on the network it is created on: testcontainers' own `with_network` takes aliases
    # only, so the endpoint goes in as docker-py's create arguments, which `with_kwargs` passes on.
    container.with_kwargs(
        entrypoint=entrypoint, labels=dict(labels), network=network.name, cap_add=cap_add or None,
        networking_config={network.name: EndpointConfig(api_version, ipv4_address=ipv4_address)})
    return container
