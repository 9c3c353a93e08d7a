"""One way to start a lab: a backend + the ECS control plane + the stack's deployment + the wait.

`ecs-lab up` (the supervisor), the pytest plugin's labs (the session lab and every `lab_with`
stack) and users' own test suites all start a lab through `EcsLab`, so they differ only in their
`Stack`:

    from lab import EcsLab

    with EcsLab(Stack(instances=2), backend="docker") as lab:
        work = lab.apps["imdsv1"].get("/work")            # a trace from a sample app
        lab.intake.wait_for_spans(service="web-imdsv1", timeout=30)
        assert lab.agents[0].is_healthy()                  # `agent health` in its container
        print(lab.endpoints.control_plane, lab.status()["instances"])

Entering it starts the backend's fakes (IMDS, ECS metadata, intake, egress proxy) and the control
plane (embedded moto, or LocalStack) at once, registers the backend's instances as container
instances (each gets its instance agent), then deploys the stack as users deploy on ECS
(`lab.ecs.stack_services`: the agent as a DAEMON service, each sample app as a REPLICA service) and
waits until every instance runs its agent and every app runs. Leaving it stops scheduling, the
tasks, the backend's servers and the control plane, in that order; Ctrl-C and failures leave the
same way.

In one process, every embedded-moto lab shares one control plane (moto's state is per process, and
two service schedulers over it would both launch every service's tasks): a second lab is a second
cluster on it, which is what `lab_with` stacks are.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from lab.ecs.cluster import EcsCluster
from lab.ecs.control_plane import ControlPlane
from lab.ecs.stack_services import (
    StackDeployment,
    deploy_stack,
    redeploy_agent,
    remove_cluster,
    services_status,
)
from lab.running import (
    LabEndpoints,
    RunningAgent,
    RunningApp,
    agents_from_status,
    apps_from_status,
    endpoints_from_status,
)
from lab.serving import gc_paused
from lab.stack import AGENT_SERVICES, Stack, app_service
from lab.subnet_claims import SubnetClaim, claim_subnet
from lab.world import Cluster, World, wait_until

# The backends by name: the CLI's `--backend`, LAB_BACKEND, the pytest plugin's option.
BACKENDS = {"local": "lab.backends.local:LocalBackend", "docker": "lab.backends.docker:DockerBackend"}

Progress = Callable[[str], None]


def backend_class(name: str) -> type:
    try:
        module, attr = BACKENDS[name].split(":")
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}") from None
    return getattr(importlib.import_module(module), attr)


class _SharedControlPlane:
    """The process's embedded control plane, started by the first lab that needs one and stopped
    when the last leaves."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cp: ControlPlane | None = None
        self._users = 0

    def acquire(self, host: str, port: int) -> ControlPlane:
        with self._lock:
            if self._cp is None:
                self._cp = ControlPlane(host=host, port=port, kind="moto").start()
            self._users += 1
            return self._cp

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users <= 0 and self._cp is not None:
                cp, self._cp, self._users = self._cp, None, 0
                cp.stop()


SHARED_CONTROL_PLANE = _SharedControlPlane()


# Packages that the control plane's start (moto, through `responses`) and the backend's start (the
# docker SDK) both import on first use, from two threads at once. requests imports its own
# submodules in a cycle (requests -> sessions -> adapters), and Python's per-module import locks
# turn two threads' first imports of such a package into a deadlock that it breaks by handing one
# thread a half-made module: "cannot import name 'HTTPAdapter' from partially initialized module
# 'requests.adapters'" (seen in CI: every docker lab of a fresh pytest process failed to start).
# Imported here, on the caller's thread, before the control plane's thread starts.
SHARED_FIRST_IMPORTS = ("requests", "urllib3")


def import_shared_dependencies() -> None:
    for name in SHARED_FIRST_IMPORTS:
        importlib.import_module(name)


class EcsLab:
    """Owner of a running lab (see the module docstring). `backend` is a name from `BACKENDS`;
    `control_plane` is "moto" (the process's embedded one, shared), "localstack" (a LocalStack Pro
    container of this lab's own) or None (LocalStack when LOCALSTACK_AUTH_TOKEN is set, else moto)."""

    def __init__(self, stack: Stack | None = None, *, backend: str = "local",
                 control_plane: str | None = None, progress: Progress | None = None,
                 subnet_claim: SubnetClaim | None = None, **backend_options: Any) -> None:
        self.stack = stack or Stack()
        self.backend_name = backend
        if self.stack.user_data is not None and backend != "local" \
                and not hasattr(backend_class(backend), "boot_instance"):
            raise ValueError(f"the {backend} backend cannot boot an instance with user data")
        self.world = World(Cluster(name=self.stack.cluster))
        self.progress = progress or (lambda _m: None)
        self.backend = backend_class(backend)(self.stack, world=self.world, progress=self.progress,
                                              **backend_options)
        self._control_plane_kind = control_plane
        self.control_plane: ControlPlane | None = None
        self.cluster: EcsCluster | None = None
        self.deployment: StackDeployment | None = None
        self.started_in: float | None = None
        # The claim on the stack's loopback subnet (lab.subnet_claims), held while the lab runs:
        # given (already claimed, e.g. handed down by `ecs-lab up`) or taken at start.
        self.subnet_claim = subnet_claim
        self._exit = contextlib.ExitStack()

    # -- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> EcsLab:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> EcsLab:
        t0 = time.monotonic()
        self._claim_subnet()
        # Start-up allocates what lives as long as the lab (imports, moto's models): see gc_paused.
        with gc_paused():
            # moto's import and first requests cost ~1 s of CPU: begun first, they overlap the fakes.
            wait_control_plane = self._start_control_plane()
            self._exit.callback(self._stop_backend)
            self.backend.start()
            for inst in self.world.instances:
                # Launched with it: IMDS serves it from the first request (/latest/user-data).
                inst.user_data = self.stack.user_data
            cp = wait_control_plane()
            self._join_cluster(cp)
            if self.stack.deploy and self.stack.instances + self.stack.external_instances > 0:
                self._deploy(cp)
        self.started_in = time.monotonic() - t0
        self.progress(f"lab ready in {self.started_in:.1f}s")
        return self

    def stop(self) -> None:
        # The backend takes no new task first, and its starts in flight give up (a lab stopped during
        # its deploy): the instance agents' start threads end at once instead of running on while
        # the backend tears down. Then scheduling stops: otherwise each app the backend stops is an
        # essential container exiting, which its service would replace.
        refuse_new_tasks = getattr(self.backend, "refuse_new_tasks", None)
        if refuse_new_tasks is not None:
            refuse_new_tasks()
        if self.cluster is not None:
            self.cluster.stop_scheduling()
        self._exit.close()

    def _claim_subnet(self) -> None:
        """A local lab owns its whole 127.X (instances, agents, apps, shared servers): claimed before
        anything binds there, released last. A docker lab's networks are the engine's, serialized by
        the engine lock instead (lab.backends.docker), so it claims nothing (a claim given is still
        released with the lab)."""
        s = self.stack
        if self.subnet_claim is None and getattr(self.backend, "SIDE_BY_SIDE", False):
            self.subnet_claim = claim_subnet(s.subnet, name=s.name, cluster=s.cluster, run_dir=str(s.run_dir),
                                             holder="EcsLab")
        if self.subnet_claim is None:
            return
        self._exit.callback(self.subnet_claim.release)
        if self.subnet_claim.subnet != s.subnet:
            raise ValueError(f"the lab's subnet is {s.subnet} but its claim is on {self.subnet_claim.subnet}")

    def _stop_backend(self) -> None:
        self.backend.stop()

    def _start_control_plane(self) -> Callable[[], ControlPlane]:
        """Start (or join) the control plane on a thread; the returned callable waits for it and
        raises what its start raised."""
        s = self.stack
        kind = self._control_plane_kind or ControlPlane(port=0).kind
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                if kind == "moto":
                    result["cp"] = SHARED_CONTROL_PLANE.acquire(s.services_host, s.ports.control_plane)
                else:
                    result["cp"] = ControlPlane(host=s.services_host, port=s.ports.control_plane,
                                                kind=kind).start()
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                result["error"] = exc

        self.progress(f"starting the ECS control plane ({kind}) on {s.services_host}:{s.ports.control_plane}")
        import_shared_dependencies()
        starter = threading.Thread(target=run, name="lab-control-plane-start", daemon=True)
        starter.start()

        def release() -> None:
            starter.join(timeout=120)
            cp = result.get("cp")
            if cp is None:
                return
            if kind == "moto":
                SHARED_CONTROL_PLANE.release()
            else:
                cp.stop()

        self._exit.callback(release)

        def wait() -> ControlPlane:
            starter.join()
            if "error" in result:
                raise result["error"]
            self.control_plane = result["cp"]
            return self.control_plane

        return wait

    def _join_cluster(self, cp: ControlPlane) -> None:
        name = self.world.cluster.name
        remove_cluster(cp.clients.ecs, name)  # what a lab that died in this process left

        def undeploy() -> None:
            with contextlib.suppress(Exception):
                remove_cluster(cp.clients.ecs, name)

        self._exit.callback(undeploy)
        # Entering the cluster registers every instance of the world as a container instance (its
        # IMDS identity, its instance id) and starts its instance agent.
        self.cluster = self._exit.enter_context(EcsCluster(self.world, self.backend, control_plane=cp))
        self.progress(f"control plane {cp.endpoint}: {len(self.world.instances)} container instance(s) "
                      f"in cluster {name}")

    def _deploy(self, cp: ControlPlane) -> None:
        # The sample apps on instance 1, as the scenarios expect (one app per DD_AGENT_HOST variant).
        user_data = self.stack.user_data
        self.deployment = deploy_stack(cp.clients.ecs, self.stack, self.world.cluster.name,
                                       apps_on=(self.world.instance(1).instance_id
                                                if self.stack.instances else None),
                                       agent_daemon=user_data is None)
        apps = f" and {len(self.deployment.app_services)} app service(s)" if self.stack.apps else ""
        if user_data is None:
            daemons = " and ".join(self.deployment.agent_services())
            self.progress(f"deployed DAEMON service {daemons}{apps}")
        else:
            self.progress(f"registered {self.deployment.agent_task_definition}{apps}; booting with user data")
        cp.reconcile_services()
        if user_data is not None:
            self._boot_instances(cp, user_data)
        self.wait_deployed()

    def _boot_instances(self, cp: ControlPlane, user_data: str) -> None:
        """Each instance runs its user data once its ECS agent has registered it: on the local
        backend as a process of the machine in a mount namespace of its own (lab/instance_boot.py), on
        a backend whose instances are containers inside the instance (its `boot_instance`, e.g.
        lab/backends/docker_boot.py)."""
        from lab.instance_boot import run_user_data

        by_index = {i["index"]: i for i in self.backend.status()["instances"]}
        boot_instance = getattr(self.backend, "boot_instance", None)
        for inst in self.world.instances:
            instance_dir = self.stack.run_dir / "instances" / str(inst.index)
            timeout = self.stack.ready_timeout * 6
            if boot_instance is not None:
                result = boot_instance(inst.index, user_data, instance_dir=instance_dir,
                                       control_plane_url=cp.endpoint, timeout=timeout)
            else:
                where = by_index[inst.index]
                result = run_user_data(user_data, instance_dir=instance_dir, imds_url=where["imds_url"],
                                       introspection_url=where["ecs_endpoint"],
                                       control_plane_url=cp.endpoint, timeout=timeout)
            self.progress(f"instance {inst.index} ran its user data (exit {result.exit_code})")

    # -- the stack's services -------------------------------------------------------------------
    def _running(self, service: str) -> list:
        return [(inst, t) for inst in self.world.instances for t in list(inst.tasks)
                if t.service_name == service and t.known_status == "RUNNING"]

    def _running_agents(self) -> list:
        """The running agent tasks: the DAEMON service's, or, when user data starts the agent
        (no service), every running task of the agent's task definition family."""
        if self.deployment is None or self.deployment.agent_service or self.deployment.external_agent_service:
            return [found for service in AGENT_SERVICES for found in self._running(service)]
        family = self.deployment.agent_task_definition.rsplit("/", 1)[-1].rsplit(":", 1)[0]
        return [(inst, t) for inst in self.world.instances for t in list(inst.tasks)
                if t.family == family and t.known_status == "RUNNING"]

    def wait_deployed(self, agent_task_definition: str | None = None, timeout: float | None = None) -> None:
        """Until every instance runs its agent (of `agent_task_definition`, when given) and every app
        runs; a task the cluster refused or stopped fails with ECS's reason."""
        assert self.cluster is not None and self.control_plane is not None
        indexes = {inst.index for inst in self.world.instances}
        family_revision = agent_task_definition.rsplit("/", 1)[-1] if agent_task_definition else None

        def failures() -> list:
            return [f for agent in self.cluster.agents.values() for f in agent.failures]

        def started() -> bool:
            if failures():
                return True  # said below, with ECS's reason
            agents = {inst.index for inst, t in self._running_agents()
                      if not family_revision or f"{t.family}:{t.revision}" == family_revision}
            apps = all(self._running(app_service(v)) for v in self.stack.apps)
            return agents >= indexes and apps

        try:
            # Past the backends' own readiness bounds (3x ready_timeout), so a task that cannot get
            # ready fails with the backend's reason (reported by the instance agent), not this bound.
            wait_until(started, timeout=timeout or self.stack.ready_timeout * 4, interval=0.05,
                       what="the stack's services to run (DAEMON agent on every instance, the apps)")
        except TimeoutError as exc:
            events = [f"{svc['name']}: {svc['running']}/{svc['desired']} running; {svc['last_event'] or ''}"
                      for svc in self.services()]
            raise TimeoutError(f"{exc}; services: {'; '.join(events)}") from None
        if failures():
            first = failures()[0]
            raise RuntimeError(f"the stack's task {first.task_arn} could not start: {first.reason}")

    def redeploy_agent(self, stack: Stack) -> None:
        """Run the agent with another configuration (features, agent env) on the same instances, as
        an agent redeploy on ECS: a new task definition revision and `update-service`; the apps keep
        running and keep sending to the instance IP. Returns once the new agents run."""
        if stack.instances != self.stack.instances or stack.apps != self.stack.apps:
            raise ValueError("redeploy_agent keeps the instances and apps; start another lab to change them")
        assert self.control_plane is not None and self.deployment is not None
        for agent in self.cluster.agents.values():
            agent.failures.clear()
        self.stack = replace(stack)
        arn = redeploy_agent(self.control_plane.clients.ecs, self.stack, self.deployment)
        self.control_plane.reconcile_services()
        self.wait_deployed(agent_task_definition=arn, timeout=self.stack.ready_timeout * 4)

        def old_gone() -> bool:
            return all(f"{t.family}:{t.revision}" == arn.rsplit("/", 1)[-1]
                       for _inst, t in self._running_agents())

        wait_until(old_gone, timeout=60, what="the previous agent tasks to stop")

    def services(self) -> list[dict]:
        if self.control_plane is None:
            return []
        return services_status(self.control_plane.clients.ecs, self.world.cluster.name)

    # -- reading --------------------------------------------------------------------------------
    @property
    def intake_url(self) -> str:
        return self.backend.intake_url

    @property
    def intake(self) -> Any:
        """A fakeintake-style client of this lab's intake (`lab.fakes.intake.client.IntakeClient`)."""
        from lab.fakes.intake.client import IntakeClient

        return IntakeClient(self.intake_url)

    @property
    def agents(self) -> list[RunningAgent]:
        """Each instance's agent (instance id, private IP, APM URL, DogStatsD address, task ARN), read
        through its own CLI in its container (`agent health`, `agent status -j`, `agent config`)."""
        return agents_from_status(self.backend.status(), self.exec_in_container)

    @property
    def apps(self) -> dict[str, RunningApp]:
        """The stack's sample apps by variant (service, task ARN, URL)."""
        return apps_from_status(self.backend.status())

    @property
    def endpoints(self) -> LabEndpoints:
        """Where the control plane, the intake and each instance's IMDS answer."""
        cp = self.control_plane.endpoint if self.control_plane is not None else None
        return endpoints_from_status(self.backend.status(), cp)

    def exec_in_container(self, task_arn: str, container: str, argv: list[str],
                          timeout: float = 30) -> tuple[int, str]:
        """`docker exec` into a container of a running task: (exit code, output)."""
        return self.backend.exec_in_container(task_arn, container, argv, timeout)

    def status(self) -> dict:
        """What `ecs-lab status --json` prints and the pytest plugin reads: the backend's view of the
        instances, agents, apps and processes, the control plane's, and which agent ran."""
        out = self.backend.status()
        out["started_in"] = self.started_in
        # The lab's readiness bound: how long a task may take to start (tools that roll a service
        # wait past the backends' own bound, 3x this).
        out["ready_timeout"] = self.stack.ready_timeout
        describe = getattr(self.backend, "agent_describe", None)
        out["agent_runs_as"] = describe() if describe else None
        problems: list[str] = []
        if self.control_plane is not None:
            problems.extend(self.control_plane.problems())
        # A lab that has a problem is not ready, whatever it said before (`ecs-lab status`, attach).
        out["problems"] = problems
        out["ready"] = not problems
        if self.cluster is not None:
            out.update(self.cluster.status())
            try:
                out["services"] = self.services()
            except Exception as exc:  # noqa: BLE001 - status must answer while the control plane stops
                out["services_error"] = repr(exc)
        return out
