"""Task placement as ECS does it on EC2, as plain data (no sockets, no moto).

What a task needs (`TaskNeeds`: CPU units, MiB, host ports per protocol) is read from its task
definition; what an instance offers is its registered resources minus the needs of the tasks
already placed there. A placement ECS would refuse comes back as a `Failure` with ECS's own reason
string (Amazon ECS developer guide, "API failure reasons"): `RESOURCE:CPU`, `RESOURCE:MEMORY`,
`RESOURCE:PORTS`, `RESOURCE:PORTS_UDP`, `AGENT` (the container agent is disconnected), `ATTRIBUTE`
(a placement constraint is not met), `INACTIVE` (the instance is draining/inactive). Nothing is
ever dropped silently: moto alone places nothing on a port clash and says nothing.

DAEMON services: exactly one task per ACTIVE container instance, instances added later included
("service scheduler concepts": the daemon scheduler places a task on each new instance).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# What the ECS agent reserves on every instance (its default ECS_RESERVED_PORTS): these host ports
# are never free for tasks. moto registers the same list.
AGENT_RESERVED_PORTS = frozenset({22, 2375, 2376, 51678, 51679})
DEFAULT_INSTANCE_CPU = 4096  # an m5.large-ish box: 2 vCPU would be 2048; moto registers 4096
DEFAULT_INSTANCE_MEMORY = 7482


@dataclass(frozen=True)
class TaskNeeds:
    """What placing one task takes from an instance."""

    cpu: int = 0
    memory: int = 0
    ports_tcp: frozenset[int] = frozenset()
    ports_udp: frozenset[int] = frozenset()

    @classmethod
    def from_task_definition(cls, taskdef: dict) -> TaskNeeds:
        """Sum the containers' reservations; take host ports under the task's network mode.

        ECS reserves, per container, `memoryReservation` if set else `memory` (the hard limit);
        a task-level `cpu`/`memory` (allowed on EC2) overrides the sum. Host ports: in `bridge`
        mode `hostPort` (absent or 0 = dynamic, nothing reserved); in `host` mode the
        containerPort *is* the host port; in `awsvpc` the task has its own ENI, so none.
        """
        mode = taskdef.get("networkMode") or "bridge"
        cpu = mem = 0
        tcp: set[int] = set()
        udp: set[int] = set()
        for c in taskdef.get("containerDefinitions", []):
            cpu += int(c.get("cpu") or 0)
            mem += int(c.get("memoryReservation") or c.get("memory") or 0)
            for pm in c.get("portMappings") or []:
                if mode == "awsvpc":
                    continue
                port = pm.get("containerPort") if mode == "host" else pm.get("hostPort")
                if not port:
                    continue
                (udp if pm.get("protocol", "tcp") == "udp" else tcp).add(int(port))
        if taskdef.get("cpu"):
            cpu = int(taskdef["cpu"])
        if taskdef.get("memory"):
            mem = int(taskdef["memory"])
        return cls(cpu=cpu, memory=mem, ports_tcp=frozenset(tcp), ports_udp=frozenset(udp))

    def clashes(self, other: TaskNeeds) -> tuple[set[int], set[int]]:
        return set(self.ports_tcp & other.ports_tcp), set(self.ports_udp & other.ports_udp)


@dataclass
class PlacedTask:
    """A task already on an instance (not STOPPED), as placement sees it."""

    arn: str
    needs: TaskNeeds
    family: str = ""
    group: str = ""  # "service:<name>" or "family:<family>", as ECS groups tasks
    # Asked to stop (desired STOPPED) but not reported STOPPED yet: it still holds its resources,
    # and it is on its way out, never a service's surplus.
    stopping: bool = False


@dataclass
class InstanceView:
    """A container instance as the scheduler sees it."""

    arn: str
    ec2_instance_id: str = ""
    status: str = "ACTIVE"  # ACTIVE | DRAINING | INACTIVE
    agent_connected: bool = True
    cpu: int = DEFAULT_INSTANCE_CPU
    memory: int = DEFAULT_INSTANCE_MEMORY
    reserved_tcp: frozenset[int] = AGENT_RESERVED_PORTS
    reserved_udp: frozenset[int] = frozenset()
    attributes: dict[str, str] = field(default_factory=dict)
    # An ECS Anywhere instance (registered with a managed instance id `mi-...`, no EC2 behind it):
    # only EXTERNAL tasks go there, and EXTERNAL tasks go nowhere else.
    external: bool = False
    tasks: list[PlacedTask] = field(default_factory=list)

    @property
    def short_id(self) -> str:
        return self.arn.rsplit("/", 1)[-1]

    def remaining(self) -> TaskNeeds:
        used_tcp = set(self.reserved_tcp)
        used_udp = set(self.reserved_udp)
        cpu, mem = self.cpu, self.memory
        for t in self.tasks:
            cpu -= t.needs.cpu
            mem -= t.needs.memory
            used_tcp |= t.needs.ports_tcp
            used_udp |= t.needs.ports_udp
        # "remaining" ports are the ones in use, as ECS's remainingResources PORTS lists them
        return TaskNeeds(cpu=cpu, memory=mem, ports_tcp=frozenset(used_tcp), ports_udp=frozenset(used_udp))


@dataclass(frozen=True)
class Failure:
    """One entry of an ECS `failures` list."""

    arn: str
    reason: str
    detail: str = ""

    def as_ecs(self) -> dict:
        out = {"arn": self.arn, "reason": self.reason}
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass
class Placement:
    placed: list[str] = field(default_factory=list)  # container instance ARNs, one per task
    failures: list[Failure] = field(default_factory=list)

    def service_event(self, service_name: str) -> str | None:
        """The service event ECS writes when it cannot place a task (developer guide, "service
        event messages")."""
        if self.placed or not self.failures:
            return None
        f = self.failures[0]
        if f.reason == "MISSING" or not f.arn:
            # Nothing to be the "closest match": ECS says the cluster has no instances.
            return (f"(service {service_name}) was unable to place a task because no container instance "
                    "met all of its requirements. Reason: No Container Instances were found in your "
                    "cluster. For more information, see the Troubleshooting section.")
        why = {
            "RESOURCE:MEMORY": "has insufficient memory available",
            "RESOURCE:CPU": "has insufficient CPU units available",
            "RESOURCE:PORTS": "is already using a port required by your task",
            "RESOURCE:PORTS_UDP": "is already using a port required by your task",
            "AGENT": "encountered an error \"AGENT\"",
            "ATTRIBUTE": "does not meet all of the placement constraints",
            "INACTIVE": "is not ACTIVE",
        }.get(f.reason, f"failed with {f.reason}")
        return (f"(service {service_name}) was unable to place a task because no container instance "
                f"met all of its requirements. The closest matching (container-instance "
                f"{f.arn.rsplit('/', 1)[-1]}) {why}. For more information, see the Troubleshooting "
                f"section.")


def check_fit(instance: InstanceView, needs: TaskNeeds) -> Failure | None:
    """Why `instance` cannot take a task with `needs`, in ECS's words; None if it can."""
    if instance.status != "ACTIVE":
        return Failure(instance.arn, "INACTIVE", f"container instance is {instance.status}")
    if not instance.agent_connected:
        return Failure(instance.arn, "AGENT", "the ECS container agent on the instance is disconnected")
    left = instance.remaining()
    if needs.cpu > left.cpu:
        return Failure(instance.arn, "RESOURCE:CPU", f"task needs {needs.cpu} CPU units, {left.cpu} remain")
    if needs.memory > left.memory:
        return Failure(instance.arn, "RESOURCE:MEMORY",
                       f"task needs {needs.memory} MiB, {left.memory} remain")
    tcp = sorted(needs.ports_tcp & left.ports_tcp)
    if tcp:
        return Failure(instance.arn, "RESOURCE:PORTS", f"host port(s) {tcp}/tcp already in use")
    udp = sorted(needs.ports_udp & left.ports_udp)
    if udp:
        return Failure(instance.arn, "RESOURCE:PORTS_UDP", f"host port(s) {udp}/udp already in use")
    return None


def _meets_constraints(instance: InstanceView, group: str, constraints: Sequence[dict],
                       placed_here: int) -> bool:
    for c in constraints:
        kind = c.get("type")
        if kind == "distinctInstance":
            if placed_here or any(t.group == group for t in instance.tasks):
                return False
        elif kind == "memberOf":
            if not _member_of(instance, c.get("expression", "")):
                return False
    return True


def _member_of(instance: InstanceView, expression: str) -> bool:
    """The cheap part of the cluster query language: `attribute:<name> ==|!= <value>` (and `in`)."""
    expr = expression.strip()
    for op in ("==", "!=", " in "):
        if op in expr:
            lhs, rhs = (s.strip() for s in expr.split(op, 1))
            name = lhs.removeprefix("attribute:")
            if name == "ec2InstanceId":
                actual = instance.ec2_instance_id
            else:
                actual = instance.attributes.get(name, "")
            if op == "==":
                return actual == rhs
            if op == "!=":
                return actual != rhs
            values = [v.strip() for v in rhs.strip("[]").split(",")]
            return actual in values
    raise ValueError(f"unsupported memberOf expression {expression!r} (the lab knows ==, != and in)")


def _strategy_key(strategy: Sequence[dict], group: str, virtual: dict[str, list[PlacedTask]]):
    """Sort key for candidates under ECS placement strategies (evaluated in order).

    spread(field) -> fewest tasks of this group on the instance (the lab knows `instanceId`/`host`
    and treats attribute fields the same way, per instance); binpack(memory|cpu) -> least of that
    resource remaining; random -> arbitrary but stable. Default (none given): spread by instance.
    """
    import random

    def key(inst: InstanceView):
        tasks = inst.tasks + virtual[inst.arn]
        view = InstanceView(**{**inst.__dict__, "tasks": tasks})
        parts: list = []
        for s in strategy or [{"type": "spread", "field": "instanceId"}]:
            kind = s.get("type")
            if kind == "spread":
                parts.append(sum(1 for t in tasks if t.group == group))
                parts.append(len(tasks))
            elif kind == "binpack":
                left = view.remaining()
                parts.append(left.cpu if (s.get("field") or "").lower() == "cpu" else left.memory)
            elif kind == "random":
                parts.append(random.Random(inst.arn + str(len(tasks))).random())
            else:
                raise ValueError(f"unsupported placement strategy type {kind!r}")
        parts.append(inst.arn)
        return tuple(parts)

    return key


def place(needs: TaskNeeds, instances: Iterable[InstanceView], count: int = 1, *, group: str = "",
          constraints: Sequence[dict] = (), strategy: Sequence[dict] = ()) -> Placement:
    """Place `count` tasks; without a `strategy` ECS spreads over instances, then fills.

    Each refused instance contributes one failure with its reason (as RunTask reports them);
    tasks that found no home leave those failures in the result.
    """
    pool = list(instances)
    result = Placement()
    placed_on: dict[str, int] = {}
    virtual: dict[str, list[PlacedTask]] = {i.arn: [] for i in pool}
    for _ in range(count):
        candidates: list[InstanceView] = []
        refusals: list[Failure] = []
        for inst in pool:
            view = InstanceView(**{**inst.__dict__, "tasks": inst.tasks + virtual[inst.arn]})
            if not _meets_constraints(view, group, constraints, placed_on.get(inst.arn, 0)):
                refusals.append(Failure(inst.arn, "ATTRIBUTE", "placement constraint not met"))
                continue
            why = check_fit(view, needs)
            if why:
                refusals.append(why)
            else:
                candidates.append(inst)
        if not candidates:
            for f in refusals:
                if f not in result.failures:
                    result.failures.append(f)
            if not pool:
                result.failures.append(Failure("", "MISSING", "no container instances in the cluster"))
            break
        best = min(candidates, key=_strategy_key(strategy, group, virtual))
        result.placed.append(best.arn)
        placed_on[best.arn] = placed_on.get(best.arn, 0) + 1
        virtual[best.arn].append(PlacedTask(arn="", needs=needs, group=group))
    return result


def daemon_gaps(service_group: str, instances: Iterable[InstanceView]) -> list[InstanceView]:
    """ACTIVE instances that have no task of this DAEMON service yet (one task each, no more)."""
    return [i for i in instances
            if i.status == "ACTIVE" and not any(t.group == service_group for t in i.tasks)]


def daemon_surplus(service_group: str, instances: Iterable[InstanceView]) -> list[str]:
    """Task ARNs beyond the first on any instance: a DAEMON service runs exactly one per instance.
    A task already asked to stop is not counted: it is leaving, and counting it could stop the task
    that replaces it (an old revision's task whose start settles after a redeploy placed the new)."""
    extra: list[str] = []
    for inst in instances:
        mine = [t.arn for t in inst.tasks if t.group == service_group and not t.stopping]
        extra.extend(sorted(mine)[1:])
    return extra
