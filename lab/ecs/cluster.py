"""The ECS side of a running lab, as one owner: the control plane plus one instance agent per EC2
instance, driving a backend. `lab.assembly.EcsLab` composes it; its exit stops what it started.

    with EcsCluster(world, backend, port=4566) as ecs:
        inst = ecs.add_instance("127.0.1.1")   # EC2 instance + container instance + instance agent
        ...                                    # users register task definitions / services on :4566

The backend (`lab.tasks.InstanceHost`) runs the tasks, serves each new instance (its IMDS and ECS
agent listeners) before any task lands on it, and says where the lab's services are as seen from
inside it, which become that instance's agent redirects (`lab.ecs.agent_env.Redirects`).
`on_instance` / `redirects_for` override those two (tests with a bare runner); `redirects_for`
returning None runs definitions unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lab.ecs.agent_env import Redirects
from lab.ecs.control_plane import DEFAULT_PORT, ControlPlane
from lab.ecs.fargate_agent import FargateAgent
from lab.ecs.instance_agent import InstanceAgent
from lab.tasks import InstanceHost, TaskRunner
from lab.world import ContainerInstance, World


class EcsCluster:
    def __init__(self, world: World, runner: InstanceHost | TaskRunner, *, host: str = "127.0.0.1",
                 port: int = DEFAULT_PORT,
                 kind: str | None = None, control_plane: ControlPlane | None = None,
                 redirects_for: Callable[[ContainerInstance], Redirects | None] | None = None,
                 on_instance: Callable[[ContainerInstance], None] | None = None,
                 agent_interval: float = 0.25) -> None:
        self.world = world
        self.runner = runner
        self._own_control_plane = control_plane is None
        self.control_plane = control_plane or ControlPlane(host=host, port=port, kind=kind)
        # A bare TaskRunner (tests, benchmarks) hosts nothing: its tasks run as defined.
        endpoints = getattr(runner, "instance_endpoints", None)
        if redirects_for is None and endpoints is not None:
            def redirects_for(inst: ContainerInstance) -> Redirects:
                return Redirects.for_instance(endpoints(inst))
        self.redirects_for = redirects_for or (lambda inst: None)
        self.on_instance = on_instance or getattr(runner, "serve_instance", lambda inst: None)
        self.agent_interval = agent_interval
        self.agents: dict[int, InstanceAgent] = {}
        self.fargate: FargateAgent | None = None
        self._unsubscribe: list[Callable[[], None]] = []

    @property
    def endpoint(self) -> str:
        return self.control_plane.endpoint

    def start(self) -> EcsCluster:
        if self._own_control_plane:
            self.control_plane.start()
        try:
            self.control_plane.ensure_cluster(self.world.cluster.name)
            if self.control_plane.service_scheduler:
                # A cluster name comes back when a later lab reuses the subnet: schedule it again.
                self.control_plane.service_scheduler.resume(self.world.cluster.name)
            for inst in list(self.world.instances):
                if not inst.arn or inst.index not in self.agents:
                    self.adopt_instance(inst)
            self._start_fargate()
        except BaseException:
            self.stop()
            raise
        return self

    def add_instance(self, private_ip: str, **kwargs: Any) -> ContainerInstance:
        """A new EC2 instance joins the cluster; DAEMON services get a task on it."""
        inst = self.control_plane.add_instance(self.world, private_ip, **kwargs)
        self._start_agent(inst)
        return inst

    def adopt_instance(self, inst: ContainerInstance) -> ContainerInstance:
        """Register an instance the backend built itself (it keeps its instance id)."""
        self.control_plane.adopt_instance(self.world, inst)
        self._start_agent(inst)
        return inst

    def _start_agent(self, inst: ContainerInstance) -> None:
        # The backend serves the instance (IMDS, ECS agent introspection) before tasks land on it.
        self.on_instance(inst)
        agent = InstanceAgent(self.world, inst, self.runner, self.control_plane.clients,
                              redirects=self.redirects_for(inst), interval=self.agent_interval,
                              report_health=self.control_plane.report_health,
                              report_address=self.control_plane.report_eni_address)
        self._unsubscribe.append(self.control_plane.on_assignments(agent.wake))
        self.agents[inst.index] = agent.start()

    def _start_fargate(self) -> None:
        """The cluster's FARGATE tasks: each gets a host of its own from the backend."""
        placeholder = ContainerInstance(index=0, private_ip="0.0.0.0", launch_type="FARGATE",
                                        region=self.world.cluster.region)
        agent = FargateAgent(self.world, placeholder, self.runner, self.control_plane.clients,
                             interval=self.agent_interval, report_health=self.control_plane.report_health,
                             redirects_for=self.redirects_for)
        self._unsubscribe.append(self.control_plane.on_assignments(agent.wake))
        self.fargate = agent.start()

    def stop_scheduling(self) -> None:
        """Stop placing and relaunching tasks (the service scheduler, the instance agents' loops);
        running tasks keep running. For a backend about to stop them all itself: otherwise each app
        it stops is an essential container exiting, which a service replaces, as on ECS."""
        scheduler = self.control_plane.service_scheduler
        if scheduler:
            # The embedded control plane is shared by every lab of the process: pause this lab's
            # cluster only, or the other labs' DAEMON agents would no longer be replaced. A lab with
            # a control plane of its own stops that one's scheduler too; the pause still matters,
            # since another control plane of the process schedules the same moto model.
            scheduler.pause(self.world.cluster.name)
            if self._own_control_plane:
                scheduler.stop()
        for agent in [*self.agents.values(), *([self.fargate] if self.fargate else [])]:
            agent.stop(stop_tasks=False)

    def stop(self) -> None:
        while self._unsubscribe:
            self._unsubscribe.pop()()
        for agent in [*self.agents.values(), *([self.fargate] if self.fargate else [])]:
            try:
                agent.stop()
            except Exception:  # noqa: BLE001 - stop the rest whatever one of them says
                pass
        self.agents.clear()
        self.fargate = None
        if self._own_control_plane:
            self.control_plane.stop()

    def __enter__(self) -> EcsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def status(self) -> dict:
        """For the state file: where users point `aws --endpoint-url`."""
        agents = [*self.agents.values(), *([self.fargate] if self.fargate else [])]
        hosts = self.fargate.hosts if self.fargate else {}
        return {"control_plane": self.endpoint, "cluster": self.world.cluster.name,
                "container_instances": {str(i.index): i.arn for i in self.world.instances},
                "fargate_tasks": {arn: h.private_ip for arn, h in hosts.items()},
                "start_failures": [f.__dict__ for a in agents for f in a.failures]}
