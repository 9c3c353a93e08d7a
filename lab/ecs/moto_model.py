"""The lab's adapter over moto's in-process ECS models: what the front and the scheduler read and write.

moto keeps ECS as data only (it places tasks by its own loose rules and runs nothing). `MotoEcs`
gives the lab's placement model (`lab.ecs.scheduler`) its views of instances and tasks, and makes
the few writes the lab adds: tasks created in PENDING with one container per definition, state
changes reported by instance agents, health, stop requests. moto's backend is plain dicts: every
access goes under `ECS_LOCK`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

from lab.ecs import scheduler
from lab.ecs.assignments import ASSIGNMENTS
from lab.world import DEFAULT_ACCOUNT, DEFAULT_REGION

# One lock for every ECS call and every reconcile: moto's backend is plain dicts, not thread-safe.
ECS_LOCK = threading.RLock()
# ECS's task states before RUNNING: what `pendingTasksCount` counts (developer guide, "task lifecycle").
PENDING_STATES = ("PROVISIONING", "PENDING", "ACTIVATING")
# Capacity providers that run tasks on AWS-managed capacity, not on container instances.
FARGATE_PROVIDERS = ("FARGATE", "FARGATE_SPOT")


def ecs_backend(region: str = DEFAULT_REGION, account: str = DEFAULT_ACCOUNT) -> Any:
    from moto.ecs.models import ecs_backends

    return ecs_backends[account][region]


def taskdef_dict(td: Any) -> dict:
    return {"networkMode": td.network_mode, "containerDefinitions": td.container_definitions,
            "cpu": td.cpu, "memory": td.memory, "family": td.family, "revision": td.revision}


class MotoEcs:
    """The lab's view of (and the few writes it makes to) moto's ECS backend for one region."""

    def __init__(self, region: str = DEFAULT_REGION, account: str = DEFAULT_ACCOUNT) -> None:
        self.region = region
        self.account = account

    @property
    def backend(self) -> Any:
        return ecs_backend(self.region, self.account)

    # -- views ----------------------------------------------------------------------------------
    def needs_of(self, task_definition_arn: str) -> scheduler.TaskNeeds:
        return scheduler.TaskNeeds.from_task_definition(
            taskdef_dict(self.backend.describe_task_definition(task_definition_arn)))

    def live_tasks(self, cluster_name: str) -> list[Any]:
        return [t for t in self.backend.tasks.get(cluster_name, {}).values()
                if t.last_status != "STOPPED" and t.desired_status != "STOPPED"]

    def instance_views(self, cluster_name: str) -> list[scheduler.InstanceView]:
        by_arn: dict[str, list[scheduler.PlacedTask]] = {}
        # A task asked to stop still holds its ports, memory and addresses until its instance agent
        # reports it STOPPED: ECS places nothing in its place before (a DAEMON deployment stops the
        # old task, then starts the new one on that instance).
        for t in self.backend.tasks.get(cluster_name, {}).values():
            stopping = t.desired_status == "STOPPED" and t.last_status not in ("STOPPED", "PENDING")
            if t.last_status == "STOPPED" or (t.desired_status == "STOPPED" and not stopping):
                continue
            if t.container_instance_arn:
                by_arn.setdefault(t.container_instance_arn, []).append(scheduler.PlacedTask(
                    arn=t.task_arn, needs=self.needs_of(t.task_definition_arn), group=t.group,
                    stopping=stopping))
        views = []
        for ci in self.backend.container_instances.get(cluster_name, {}).values():
            reg = {r["name"]: r for r in ci.registered_resources}
            views.append(scheduler.InstanceView(
                arn=ci.container_instance_arn, ec2_instance_id=ci.ec2_instance_id, status=ci.status,
                agent_connected=ci.agent_connected,
                cpu=int(reg.get("CPU", {}).get("integerValue", scheduler.DEFAULT_INSTANCE_CPU)),
                memory=int(reg.get("MEMORY", {}).get("integerValue", scheduler.DEFAULT_INSTANCE_MEMORY)),
                reserved_tcp=frozenset(int(p) for p in reg.get("PORTS", {}).get("stringSetValue", [])),
                reserved_udp=frozenset(int(p) for p in reg.get("PORTS_UDP", {}).get("stringSetValue", [])),
                attributes=dict(ci.attributes), tasks=by_arn.get(ci.container_instance_arn, []),
                external=str(ci.ec2_instance_id).startswith("mi-")))
        return views

    def views_for_launch_type(self, cluster_name: str,
                              launch_type: str | None) -> list[scheduler.InstanceView]:
        """The instances a task of `launch_type` may be placed on: EXTERNAL tasks on external
        instances only, every other task on EC2 instances only (ECS developer guide, "Amazon ECS
        Anywhere": the EXTERNAL launch type is for external instances)."""
        want_external = launch_type == "EXTERNAL"
        return [v for v in self.instance_views(cluster_name) if v.external == want_external]

    def register_external(self, cluster_name: str, managed_instance_id: str) -> str:
        """An external container instance, as the ECS agent of an SSM-activated host registers it:
        its `ec2InstanceId` is the managed instance id, and it has no EC2 attributes (AMI, zone,
        instance type). moto's model looks an EC2 instance up for those: given none here."""
        from types import SimpleNamespace
        from unittest import mock

        from moto.ec2.models import ec2_backends
        from moto.ecs.models import ContainerInstance

        b = self.backend
        cluster = b._get_cluster(cluster_name)
        ec2 = ec2_backends[self.account][self.region]
        no_ec2 = SimpleNamespace(image_id=None, availability_zone=None, instance_type=None, platform="linux")
        with mock.patch.object(ec2, "get_instance", return_value=no_ec2):
            ci = ContainerInstance(managed_instance_id, self.account, self.region, cluster.name, b)
        # The ECS agent in external mode also registers `ecs.capability.external`
        # (agent/app/agent_capability.go of aws/amazon-ecs-agent, externalSpecificCapabilities).
        ci.attributes = {"ecs.os-type": "linux", "ecs.cpu-architecture": "x86_64",
                         "ecs.capability.external": None}
        b.container_instances.setdefault(cluster.name, {})[ci.container_instance_arn.rsplit("/", 1)[-1]] = ci
        cluster.registered_container_instances_count += 1
        return ci.container_instance_arn

    # -- writes ---------------------------------------------------------------------------------
    def start_on(self, cluster_name: str, task_definition: str, instance_arns: list[str], *,
                 started_by: str = "", group: str | None = None, overrides: dict | None = None,
                 tags: list | None = None, launch_type: str = "EC2",
                 capacity_provider: str | None = None,
                 network_configuration: dict | None = None) -> list[Any]:
        """Create tasks on the given instances, in PENDING, one moto container per definition.

        ECS sets `launchType` or `capacityProviderName`, never both: a task placed through a
        capacity provider strategy names its provider and has no launch type. An `awsvpc` task gets
        its ENI in the network configuration's first subnet (moto's EC2 makes it)."""
        b = self.backend
        td = b.describe_task_definition(task_definition)
        if td.network_mode == "awsvpc" and network_configuration:
            tasks = self._start_awsvpc_on(cluster_name, td, instance_arns, network_configuration,
                                          started_by=started_by, group=group, overrides=overrides, tags=tags)
        else:
            tasks = b.start_task(cluster_name, task_definition, instance_arns, overrides or {}, started_by,
                                 tags or [], group)
        now = time.time()
        for t in tasks:
            t.last_status = "PENDING"
            t.lab_created_at = now  # describe-tasks `createdAt` (moto keeps no task times)
            t.capacity_provider_name = capacity_provider
            t.launch_type = "" if capacity_provider else launch_type
            t.containers = _containers_of(td, t)
        if tasks:
            ASSIGNMENTS.publish()
        return tasks

    def _start_awsvpc_on(self, cluster_name: str, td: Any, instance_arns: list[str],
                         network_configuration: dict, *, started_by: str, group: str | None,
                         overrides: dict | None, tags: list | None) -> list[Any]:
        """moto's StartTask for an awsvpc definition on container instances: moto's own takes no
        network configuration, and its Task refuses awsvpc without one."""
        from moto.ecs.models import Task

        b = self.backend
        cluster = b._get_cluster(cluster_name)
        vpc = dict(network_configuration["awsvpcConfiguration"])
        if not vpc.get("securityGroups"):
            vpc["securityGroups"] = self.default_security_groups(vpc["subnets"][0])
        requirements = b._calculate_task_resource_requirements(td)
        tasks = []
        for arn in instance_arns:
            instance = b.container_instances[cluster.name][arn.rsplit("/", 1)[-1]]
            t = Task(cluster=cluster, task_definition=td,
                     container_instance_arn=instance.container_instance_arn,
                     resource_requirements=requirements, backend=b, group=group or f"family:{td.family}",
                     overrides=overrides or {}, started_by=started_by, tags=tags or [],
                     networking_configuration={"awsvpcConfiguration": vpc})
            self._precreate_eni(t)
            b.update_container_instance_resources(instance, requirements)
            b.tasks.setdefault(cluster.name, {})[t.task_arn] = t
            tasks.append(t)
        return tasks

    def _precreate_eni(self, t: Any) -> None:
        """An EC2 awsvpc task's ENI attachment as ECS shows it before the ENI is attached: status
        PRECREATED and only its subnet (ECS API reference, `Attachment`). moto's Task made an ENI
        with an address of its own choosing; the backend picks the task's address later
        (`attach_eni`), so that ENI is dropped: no address is shown that would change."""
        from moto.ec2.models import ec2_backends

        enis = ec2_backends[self.account][self.region].enis
        for attachment in getattr(t, "attachments", None) or []:
            if attachment.get("type") != "ElasticNetworkInterface":
                continue
            details = {d["name"]: d["value"] for d in attachment.get("details", [])}
            enis.pop(details.get("networkInterfaceId", ""), None)
            attachment["status"] = "PRECREATED"
            attachment["details"] = [{"name": "subnetId", "value": details.get("subnetId", "")}]

    def subnets(self) -> dict[str, Any]:
        """moto EC2's subnets in this region, by id (its default VPC has one per availability zone)."""
        from moto.ec2.models import ec2_backends

        return {s.id: s for by_id in ec2_backends[self.account][self.region].subnets.values()
                for s in by_id.values()}

    def default_security_groups(self, subnet_id: str) -> list[str]:
        """ECS uses the VPC's default security group when an awsvpcConfiguration names none (moto
        needs one named)."""
        from moto.ec2.models import ec2_backends

        subnet = self.subnets().get(subnet_id)
        if subnet is None:
            return []
        groups = ec2_backends[self.account][self.region].groups.get(subnet.vpc_id, {}).values()
        return [g.id for g in groups if g.name == "default"][:1]

    def start_fargate(self, cluster_name: str, task_definition: str, count: int, *,
                      network_configuration: dict, started_by: str = "", group: str | None = None,
                      overrides: dict | None = None, tags: list | None = None,
                      capacity_provider: str | None = None) -> list[Any]:
        """Create FARGATE tasks: no container instance, each with its own ENI in the first subnet
        (moto's EC2 makes the interface and its private address), in PENDING until the lab's
        Fargate agent reports them RUNNING."""
        from moto.ecs.models import Task

        b = self.backend
        cluster = b._get_cluster(cluster_name)
        td = b.describe_task_definition(task_definition)
        vpc = dict(network_configuration["awsvpcConfiguration"])
        subnet = self.subnets()[vpc["subnets"][0]]
        if not vpc.get("securityGroups"):
            vpc["securityGroups"] = self.default_security_groups(subnet.id)
        config = {"awsvpcConfiguration": vpc}
        tasks = []
        for _ in range(count):
            t = Task(cluster=cluster, task_definition=td, container_instance_arn=None,
                     resource_requirements=None, backend=b, group=group or f"family:{td.family}",
                     overrides=overrides or {}, started_by=started_by, tags=tags or [],
                     launch_type="" if capacity_provider else "FARGATE", networking_configuration=config,
                     platform_version="1.4.0", capacity_provider_name=capacity_provider)
            t.last_status = "PROVISIONING"
            t.lab_availability_zone = subnet.availability_zone
            t.containers = _containers_of(td, t)
            b.tasks.setdefault(cluster.name, {})[t.task_arn] = t
            tasks.append(t)
        if tasks:
            ASSIGNMENTS.publish()
        return tasks

    def recount(self) -> None:
        """Set every cluster's and container instance's task counters from the tasks themselves.

        moto moves its counters by its own rules (a task it never started RUNNING is counted
        running, a `StopTask` of a PENDING task takes one off running: -1), and the lab's tasks
        start PENDING and change state through instance agents. Counting the tasks at each read is
        the one rule that cannot drift from what `describe-tasks` says."""
        b = self.backend
        for cluster in b.clusters.values():
            tasks = list(b.tasks.get(cluster.name, {}).values())
            cluster.running_tasks_count = sum(1 for t in tasks if t.last_status == "RUNNING")
            cluster.pending_tasks_count = sum(1 for t in tasks if t.last_status in PENDING_STATES)
            for ci in b.container_instances.get(cluster.name, {}).values():
                mine = [t for t in tasks if t.container_instance_arn == ci.container_instance_arn]
                ci.running_tasks_count = sum(1 for t in mine if t.last_status == "RUNNING")
                ci.pending_tasks_count = sum(1 for t in mine if t.last_status in PENDING_STATES)
            self._recount_remaining(cluster.name)

    def _recount_remaining(self, cluster_name: str) -> None:
        """`remainingResources` from the lab's placement model: moto adds every host port of a
        task to `PORTS` whatever its protocol (8125/udp listed as TCP, `PORTS_UDP` left empty)."""
        by_arn = {ci.container_instance_arn: ci
                  for ci in self.backend.container_instances.get(cluster_name, {}).values()}
        for view in self.instance_views(cluster_name):
            ci = by_arn.get(view.arn)
            if ci is None:
                continue
            # The registered ports first, in their order, then each placed task's (ECS's listing).
            reg = {r["name"]: list(r.get("stringSetValue") or []) for r in ci.registered_resources}
            sets = {"PORTS": reg.get("PORTS", []), "PORTS_UDP": reg.get("PORTS_UDP", [])}
            cpu, memory = view.cpu, view.memory
            for placed in view.tasks:
                cpu -= placed.needs.cpu
                memory -= placed.needs.memory
                for name, ports in (("PORTS", placed.needs.ports_tcp), ("PORTS_UDP", placed.needs.ports_udp)):
                    sets[name] += [str(p) for p in sorted(ports) if str(p) not in sets[name]]
            values = {"CPU": cpu, "MEMORY": memory}
            for resource in ci.remaining_resources:
                name = resource.get("name")
                if name in values:
                    resource["integerValue"] = values[name]
                elif name in sets:
                    resource["stringSetValue"] = sets[name]

    # -- surviving moto's reset ------------------------------------------------------------------
    def snapshot(self, cluster_names: Iterable[str]) -> dict[str, Any]:
        """The records of the given clusters as moto holds them: what `restore` puts back after a
        `/moto-api/reset` (the objects themselves, taken before moto drops its backends)."""
        from moto.ec2.models import ec2_backends

        b = self.backend
        names = [n for n in cluster_names if n in b.clusters]
        services = {k: v for k, v in b.services.items() if v.cluster_name in names}
        tasks = {n: dict(b.tasks.get(n, {})) for n in names}
        instances = {n: dict(b.container_instances.get(n, {})) for n in names}
        used = {s.task_definition for s in services.values()} | {
            t.task_definition_arn for ts in tasks.values() for t in ts.values()}
        taskdefs = {fam: {rev: td for rev, td in revs.items() if td.arn in used}
                    for fam, revs in b.task_definitions.items()}
        ec2_ids = {ci.ec2_instance_id for cis in instances.values() for ci in cis.values()}
        ec2 = ec2_backends[self.account][self.region]
        reservations = {rid: r for rid, r in ec2.reservations.items()
                        if any(i.id in ec2_ids for i in r.instances)}
        return {"clusters": {n: b.clusters[n] for n in names}, "services": services, "tasks": tasks,
                "instances": instances, "taskdefs": {f: r for f, r in taskdefs.items() if r},
                "settings": dict(b.account_settings), "reservations": reservations}

    def restore(self, snap: dict[str, Any]) -> None:
        """Put a `snapshot` back into moto's fresh backends, pointing each record at them."""
        from moto.ec2.models import ec2_backends

        b = self.backend
        b.account_settings.update(snap["settings"])
        b.clusters.update(snap["clusters"])
        b.services.update(snap["services"])
        for name, tasks in snap["tasks"].items():
            b.tasks.setdefault(name, {}).update(tasks)
        for name, cis in snap["instances"].items():
            b.container_instances.setdefault(name, {}).update(cis)
        for fam, revs in snap["taskdefs"].items():
            b.task_definitions.setdefault(fam, {}).update(revs)
        # Records reach their backend through `_backend` (task ARNs follow its account settings).
        records = [*snap["services"].values(), *(t for ts in snap["tasks"].values() for t in ts.values()),
                   *(c for cis in snap["instances"].values() for c in cis.values())]
        for record in records:
            if hasattr(record, "_backend"):
                record._backend = b
        ec2_backends[self.account][self.region].reservations.update(snap["reservations"])

    def find_task(self, task: str) -> tuple[str, Any] | None:
        tid = task.rsplit("/", 1)[-1]
        for cluster_name, tasks in self.backend.tasks.items():
            for arn, t in tasks.items():
                if arn.rsplit("/", 1)[-1] == tid:
                    return cluster_name, t
        return None

    def submit_state_change(self, task: str, status: str, reason: str = "",
                            containers: Iterable[dict] = (),
                            pull_times: tuple[float | None, float | None] = (None, None)) -> None:
        found = self.find_task(task)
        if not found:
            raise KeyError(task)
        cluster_name, t = found
        was_stopped = t.last_status == "STOPPED"
        now = time.time()
        if status == "RUNNING" and not getattr(t, "lab_started_at", None):
            t.lab_started_at = now  # describe-tasks `startedAt`, `connectivityAt`, `pullStoppedAt`
        if status == "STOPPED" and not was_stopped:
            t.lab_stopped_at = now
        # The pull times the agent reported (epoch seconds on the wire): describe-tasks shows them.
        if pull_times[0] is not None:
            t.lab_pull_started_at = float(pull_times[0])
        if pull_times[1] is not None:
            t.lab_pull_stopped_at = float(pull_times[1])
        t.last_status = status
        by_name = {c.name: c for c in t.containers}
        for rep in containers:
            c = by_name.get(rep.get("containerName"))
            if c is None:
                continue
            if rep.get("status"):
                c.last_status = rep["status"]
            if rep.get("runtimeId"):
                c.runtime_id = rep["runtimeId"]
            if rep.get("exitCode") is not None:
                c.exit_code = rep["exitCode"]
            if rep.get("reason"):
                c.reason = rep["reason"]
            if rep.get("networkBindings"):
                c.network_bindings = list(rep["networkBindings"])  # describe-tasks networkBindings
        if status == "STOPPED" and not was_stopped:
            t.desired_status = "STOPPED"
            t.stopped_reason = reason or t.stopped_reason
            self._release(cluster_name, t)
        if status == "STOPPED":
            # Also when moto's own StopTask marked it STOPPED before its agent had stopped it.
            self._release_eni(t)

    def set_health(self, task: str, container_health: dict[str, str], essential: set[str]) -> None:
        """Container health as the agent saw it run (the ECS agent reports it over its private
        telemetry channel, not a public API); the task is HEALTHY when every essential container
        with a health check is, UNHEALTHY when one is not (developer guide, "task health")."""
        found = self.find_task(task)
        if not found:
            return
        t = found[1]
        for c in t.containers:
            if c.name in container_health:
                c.health_status = container_health[c.name]
        judged = [h for name, h in container_health.items() if name in essential and h != "UNKNOWN"]
        if any(h == "UNHEALTHY" for h in judged):
            t.health_status = "UNHEALTHY"
        elif judged and all(h == "HEALTHY" for h in judged):
            t.health_status = "HEALTHY"
        else:
            t.health_status = "UNKNOWN"

    def attach_eni(self, task: str, address: str) -> None:
        """An awsvpc task on an EC2 instance is running at `address` (the backend's): its ENI is
        created with that address and its attachment becomes ATTACHED with the ENI's id, MAC, DNS
        name and address. On ECS the control plane picks the ENI's address and the instance's ECS
        agent plumbs the task's namespace with it; here the backend picks (a free address of its
        own network), so the ENI is made once the address is known, and `describe-tasks`,
        `describe-network-interfaces` and task metadata show one address that never changes. An
        attachment already ATTACHED keeps its address (a later report changes nothing)."""
        from moto.ec2.models import ec2_backends

        found = self.find_task(task)
        if not found:
            return
        t = found[1]
        ec2 = ec2_backends[self.account][self.region]
        vpc = (getattr(t, "network_configuration", None) or {}).get("awsvpcConfiguration") or {}
        for attachment in getattr(t, "attachments", None) or []:
            stopping = t.desired_status == "STOPPED" or t.last_status == "STOPPED"
            eni_type = attachment.get("type") == "ElasticNetworkInterface"
            if not eni_type or attachment.get("status") != "PRECREATED" or stopping:
                continue  # attached already, or stopping: its address stays what was shown
            subnet = next((d["value"] for d in attachment.get("details", []) if d["name"] == "subnetId"), "")
            eni = ec2.create_network_interface(subnet=subnet, private_ip_address=address,
                                               group_ids=list(vpc.get("securityGroups") or []),
                                               description=f"ECS task {task.rsplit('/', 1)[-1]}")
            eni.status = "in-use"
            eni.device_index = 1  # the instance's primary interface is 0
            attachment["status"] = "ATTACHED"
            attachment["details"] = [
                {"name": "subnetId", "value": subnet},
                {"name": "networkInterfaceId", "value": eni.id},
                {"name": "macAddress", "value": eni.mac_address},
                {"name": "privateDnsName", "value": eni.private_dns_name},
                {"name": "privateIPv4Address", "value": eni.private_ip_address},
            ]

    def stopped_before_attach(self, task: str) -> None:
        """moto's own StopTask marks a task STOPPED at once: one whose ENI was never attached (no
        instance agent had started it) has no ENI to delete, and its attachment is DELETED now; an
        attached one waits for its agent's STOPPED report (`submit_state_change`)."""
        found = self.find_task(task)
        if found and found[1].last_status == "STOPPED":
            for attachment in getattr(found[1], "attachments", None) or []:
                kind, status = attachment.get("type"), attachment.get("status")
                if kind == "ElasticNetworkInterface" and status == "PRECREATED":
                    attachment["status"] = "DELETED"

    def _release_eni(self, t: Any) -> None:
        """A stopped task's ENI is deleted and its attachment shows DELETED, its details kept ("When
        the task stops or if the service is scaled down, the task ENI is detached and deleted":
        developer guide, "Allocate a network interface for an Amazon ECS task")."""
        from moto.ec2.models import ec2_backends

        enis = ec2_backends[self.account][self.region].enis
        for attachment in getattr(t, "attachments", None) or []:
            if attachment.get("type") != "ElasticNetworkInterface" or attachment.get("status") == "DELETED":
                continue
            eni_id = next((d["value"] for d in attachment.get("details", [])
                           if d["name"] == "networkInterfaceId"), "")
            enis.pop(eni_id, None)
            attachment["status"] = "DELETED"

    def stop(self, cluster_name: str, task_arn: str, reason: str) -> None:
        """Ask for a task to stop (desired STOPPED); its agent reports STOPPED once it has."""
        t = self.backend.tasks.get(cluster_name, {}).get(task_arn)
        if t is None or t.desired_status == "STOPPED":
            return
        t.desired_status = "STOPPED"
        t.stopped_reason = reason
        ASSIGNMENTS.publish()

    def _release(self, cluster_name: str, t: Any) -> None:
        if not t.container_instance_arn or not t.resource_requirements:
            return
        ci = self.backend.container_instances.get(cluster_name, {}).get(
            t.container_instance_arn.rsplit("/", 1)[-1])
        if ci is None:
            return
        try:
            self.backend.update_container_instance_resources(ci, t.resource_requirements, removing=True)
        except ValueError:  # moto's own port bookkeeping already dropped it (StopTask)
            pass


def _containers_of(td: Any, task: Any) -> list[Any]:
    """One moto container per container definition of `td`, named and sized as the definition says,
    with an ARN of the task's and no health yet (UNKNOWN, as ECS shows before any check)."""
    from moto.ecs.models import Container

    containers = []
    for cdef in td.container_definitions:
        c = Container(td)
        c.name, c.image = cdef.get("name"), cdef.get("image")
        c.cpu, c.memory = cdef.get("cpu"), cdef.get("memory")
        c.environment, c.command = cdef.get("environment"), cdef.get("command")
        c.container_arn = c.container_arn.replace(td.arn, task.task_arn.replace(":task/", ":container/"))
        c.task_arn = task.task_arn
        c.health_status = "UNKNOWN"
        containers.append(c)
    return containers
