"""The ECS control plane driving the local backend: instances registered through the control plane
get the local backend's per-instance listeners, and agent containers get its redirects.

    with LocalBackend(Stack(instances=0, apps=()), world=world) as backend, \\
         EcsCluster(world, backend, redirects_for=redirects_for(backend),
                    on_instance=attach_instance(backend)) as cluster:
        cluster.add_instance(backend.stack.private_ip(1))

With `instances=0` the backend starts only the shared fakes (intake, egress proxy, IMDS and ECS
metadata servers); every instance, agent and app then comes from what users register on :4566.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lab.ecs.translate import Redirects
from lab.world import ContainerInstance


def attach_instance(backend: Any) -> Callable[[ContainerInstance], None]:
    """Serve IMDS and ECS agent introspection for an instance the control plane registered."""

    def attach(inst: ContainerInstance) -> None:
        if hasattr(backend, "attach_instance"):  # the backend's own hook, once it has one
            backend.attach_instance(inst)
            return
        ports = backend.stack.ports
        if inst.index not in backend.imds_urls:
            backend.imds_urls[inst.index] = backend.imds.listen(inst.private_ip, ports.imds, inst).url
        if inst.index not in backend.ecs_agent_urls:
            backend.ecs_agent_urls[inst.index] = backend.ecs_metadata.listen_introspection(
                inst.private_ip, ports.ecs_introspection, inst).url

    return attach


def redirects_for(backend: Any) -> Callable[[ContainerInstance], Redirects]:
    """The lab's deploy-time settings for agent containers on this instance of the local backend."""

    def redirects(inst: ContainerInstance) -> Redirects:
        n = inst.index
        return Redirects(intake_url=backend.intake_url, egress_proxy_url=backend.egress_proxy_url,
                         ecs_agent_url=backend.ecs_agent_urls.get(n), imds_url=backend.imds_urls.get(n),
                         agent_localhost=backend.stack.agent_localhost(n), private_ip=inst.private_ip)

    return redirects
