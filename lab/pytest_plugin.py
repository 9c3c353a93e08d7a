"""pytest plugin (entry point `ecs_lab`): a session-wide lab and fixtures for scenarios.

A scenario asks for fixtures and nothing else::

    def test_trace_reaches_intake(lab, apps, intake):
        ...

`lab` is started once per pytest run and shared by every scenario, or attached to a lab that is
already running (`ecs-lab up --detach`; found through `$LAB_STATE` or `.lab/state.json`). A scenario
that needs a differently configured agent asks `lab_with(features=..., agent_env=...)`: on the local
backend a second stack (its own cluster on the same control plane, its own loopback subnet), stopped
when the module ends; on docker the session lab's agent service redeployed with those settings. Every
lab starts the same way (`lab.assembly.EcsLab`): they differ only in their `Stack`.

This module is loaded by every pytest run on the machine: it imports nothing heavy at the top.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lab.agent_probe import AgentProbe, ExecFn


def pytest_addoption(parser) -> None:
    group = parser.getgroup("ecs-lab")
    group.addoption("--backend", action="store", default=None, choices=("local", "docker"),
                    help="which backend scenarios run on (default: local, or LAB_BACKEND)")
    group.addoption("--lab-instances", action="store", type=int, default=None,
                    help="number of emulated EC2 instances in the session lab (default 1)")
    group.addoption("--lab-subnet", action="store", default=None,
                    help="first two octets of the session lab's loopback addresses (default: a free 127.X)")


def pytest_configure(config) -> None:
    _OFFERS.clear()  # a run's answers are that run's agent's (pytester may run several in one process)
    config.addinivalue_line(
        "markers", "agent_offers(*what): skip the test when the agent under test does not offer one of "
        "these (names of lab.agent_probe.AgentProbe.offers), with the agent's own reason: its version and "
        "the endpoints its /info lists")


# -- what a scenario sees --------------------------------------------------------------------------


@dataclass
class AgentInfo:
    """One instance's agent, as an app on that instance reaches it, and as an operator inspects it:
    `probe` reads it only through what the real agent offers (`agent status --json`, `agent health`,
    `agent config` in its container, the trace-agent's `/info`)."""

    instance_index: int
    instance_id: str
    private_ip: str
    apm_url: str
    dogstatsd: tuple[str, int]
    pid: int | None
    known_status: str
    log: str | None
    probe: AgentProbe

    @property
    def hostname(self) -> str:
        """What the agent reports as its host on ECS EC2: the IMDS instance-id."""
        return self.instance_id

    def status(self) -> dict:
        """The agent's status document: `agent status --json` run in its container."""
        return self.probe.status()


def agent_exec(lab: Lab, index: int) -> ExecFn:
    """Run a command in instance `index`'s agent container, as `docker exec` would.

    A lab started in this process asks its backend (`exec_in_container` on the agent task, looked
    up at each call: a redeploy replaces the task). An attached lab has no backend object here: on
    docker the agent container is exec'd into by id; on the local backend the agent is a process,
    and a command in its "container" is run with that process's environment and working directory.
    """
    def run(argv: list[str]) -> tuple[int, str]:
        backend = lab.backend
        if backend is not None and hasattr(backend, "exec_in_container"):
            task = backend.agent_tasks.get(index)
            if task is None:
                raise OSError(f"instance {index} runs no agent task")
            names = [c.name for c in task.containers]
            name = "datadog-agent" if "datadog-agent" in names else names[0]
            return backend.exec_in_container(task.arn, name, argv)
        inst = lab.state["instances"][index - 1]
        agent = inst.get("agent", {})
        if lab.state.get("backend") == "docker":
            from lab.backends import images

            if not agent.get("docker_id"):
                raise OSError(f"the attached lab names no agent container for instance {index}")
            result = images.docker_client().containers.get(agent["docker_id"]).exec_run(list(argv))
            return result.exit_code, (result.output or b"").decode(errors="replace")
        return _exec_as_process(agent.get("pid"), argv)

    return run


def _exec_as_process(pid: int | None, argv: list[str], timeout: float = 30) -> tuple[int, str]:
    import subprocess
    import sys

    if not pid:
        raise OSError("the attached lab names no agent process")
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError as exc:
        raise OSError(f"cannot read the agent process {pid}'s environment: {exc}") from exc
    env = dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)
    if argv and argv[0] == "agent":
        argv = [sys.executable, "-m", "lab.agent", *argv[1:]]
    done = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=timeout, start_new_session=True)
    return done.returncode, done.stdout.decode(errors="replace")


@dataclass
class AppInfo:
    variant: str
    service: str
    pid: int | None
    task_arn: str
    docker_id: str
    log: str | None
    url: str | None
    instance_index: int = 1
    task_version: int = 1  # the revision of its task definition (task definitions are account-wide)

    def get(self, path: str = "/", timeout: float = 10.0) -> dict:
        """GET a path of the app (JSON), as a client of the service would."""
        import json
        import urllib.request

        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{self.url}{path}", timeout=timeout) as resp:
            return json.loads(resp.read())


@dataclass
class Lab:
    """A running lab, started here or attached; read from the dict `ecs-lab status --json` prints."""

    state: dict
    ecs_lab: Any = None  # the owner object (lab.assembly.EcsLab) when started in this process
    attached: bool = False
    link_local_watch: Any = None  # LinkLocalWatch of the session lab
    _extra: dict = field(default_factory=dict)

    @property
    def backend(self) -> Any:
        """The backend (LocalBackend/DockerBackend) when the lab runs in this process."""
        return self.ecs_lab.backend if self.ecs_lab is not None else None

    @property
    def cluster_name(self) -> str:
        return self.state.get("cluster", "ecs-lab")

    def refresh(self) -> Lab:
        if self.ecs_lab is not None:
            self.state = self.ecs_lab.status()
        else:
            from lab.state_file import read_state

            self.state = read_state(Path(self.state["state_file"])) or self.state
        return self

    @property
    def intake_url(self) -> str:
        return self.state["intake_url"]

    @property
    def egress_proxy_url(self) -> str | None:
        return self.state.get("egress_proxy_url")

    @property
    def world(self):
        return self.ecs_lab.world if self.ecs_lab is not None else None

    @property
    def features(self) -> set[str]:
        return set(self.state.get("features", ()))

    @property
    def agents(self) -> list[AgentInfo]:
        out = []
        for inst in self.state["instances"]:
            host, _, port = inst["dogstatsd"].rpartition(":")
            agent = inst.get("agent", {})
            probe = AgentProbe(agent_exec(self, inst["index"]), inst["apm_url"])
            out.append(AgentInfo(inst["index"], inst["instance_id"], inst["private_ip"], inst["apm_url"],
                                 (host, int(port)), agent.get("pid"), agent.get("status", "UNKNOWN"),
                                 agent.get("log"), probe))
        return out

    @property
    def apps(self) -> dict[str, AppInfo]:
        return {v: AppInfo(v, a["service"], a.get("pid"), a["task_arn"], a.get("docker_id", ""), a.get("log"),
                           a.get("url"), a.get("instance", 1), a.get("task_version", 1))
                for v, a in self.state.get("apps", {}).items()}

    def imds_url(self, n: int = 1) -> str:
        return self.state["instances"][n - 1]["imds_url"]

    def instance(self, n: int = 1) -> dict:
        return self.state["instances"][n - 1]

    def log_tail(self, component: str, lines: int = 30) -> str:
        from lab.backends.process import tail_file

        proc = self.state.get("processes", {}).get(component)
        return tail_file(Path(proc["log"]), lines) if proc else f"(no component {component!r})"

    def pids(self) -> dict[str, int]:
        return {name: p["pid"] for name, p in self.state.get("processes", {}).items() if p.get("pid")}


class LinkLocalWatch:
    """Samples, for the whole session, every socket of every lab process (and its children) and keeps
    any whose peer is link-local (169.254.x: on this host, someone else's cloud metadata service)."""

    def __init__(self, lab: Lab, interval: float = 0.5) -> None:
        import threading

        self.lab = lab
        self.interval = interval
        self.offenders: list[tuple[int, str, str]] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lab-link-local-watch", daemon=True)

    def start(self) -> LinkLocalWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def sample(self) -> None:
        import ipaddress

        import psutil

        # On docker a process in a lab container's netns reaches the lab's own link-local network
        # (169.254.169.254 is the lab's IMDS there, which no_egress proves); only processes in the
        # docker host's netns could reach someone else's 169.254.x.
        docker = self.lab.state.get("backend") == "docker"
        host_netns = os.readlink("/proc/self/ns/net")
        for pid in self.lab.pids().values():
            try:
                root = psutil.Process(pid)
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            for proc in procs:
                try:
                    if docker and os.readlink(f"/proc/{proc.pid}/ns/net") != host_netns:
                        continue
                except OSError:
                    continue
                try:
                    conns = proc.net_connections(kind="inet")
                    name = " ".join(proc.cmdline()[:4])
                except psutil.Error:
                    continue
                for c in conns:
                    if c.raddr and ipaddress.ip_address(c.raddr.ip).is_link_local:
                        self.offenders.append((proc.pid, name, f"{c.raddr.ip}:{c.raddr.port}"))
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.lab.refresh()
                self.sample()
            except Exception:  # noqa: BLE001 - a watcher must never break the session
                continue


# -- starting ----------------------------------------------------------------------------------------


def free_subnet() -> str:
    """A 127.X loopback /16 for a lab another process (or a later `EcsLab`) will run: reserved for a
    while in the machine's subnet claims (lab/subnet_claims.py), so no automatic claim takes it
    meanwhile; the lab claims it by number when it starts. A lab of this process is better started
    by `start_lab`, which holds its claim from the start."""
    from lab.subnet_claims import reserve_subnet

    return reserve_subnet()


def start_lab(backend_name: str = "local", *, instances: int = 1, subnet: str | None = None,
              features: set[str] | frozenset[str] | None = None, agent_env: dict[str, str] | None = None,
              apps: tuple[str, ...] | None = None, run_dir: Path | None = None,
              cluster: str | None = None, ready_timeout: float | None = None,
              user_data: str | None = None, external_instances: int = 0) -> Lab:
    """Start a private stack (own subnet, ephemeral shared ports) through `EcsLab`; call `stop_lab`.

    The subnet (`subnet`, else a free one) is claimed machine-wide for the lab's life
    (lab/subnet_claims.py), so labs of other processes (pytest-xdist workers, CI jobs, `ecs-lab up
    --name`) never get the same one.

    Every lab in this process shares one embedded control plane (`lab.assembly`), each with its own
    cluster: the session lab's is `ecs-lab` (which the scenarios' ECS tags name); a second stack's
    is named after its subnet unless `cluster` says otherwise.
    """
    from lab.assembly import EcsLab
    from lab.stack import DEFAULT_FEATURES, Ports, Stack
    from lab.subnet_claims import claim_subnet

    claim = claim_subnet(subnet, holder="pytest")
    subnet = claim.subnet
    kwargs: dict = {
        "instances": instances, "subnet": subnet, "services_host": f"{subnet}.0.1",
        "ports": Ports.ephemeral(), "features": frozenset(features or DEFAULT_FEATURES),
        "agent_env": dict(agent_env or {}),
        "run_dir": run_dir or Path(os.environ.get("LAB_HOME", ".lab")) / "pytest" / subnet.replace(".", "-"),
    }
    kwargs["cluster"] = cluster or f"ecs-lab-{subnet.replace('.', '-')}"
    claim.record(holder="pytest", cluster=kwargs["cluster"], run_dir=str(kwargs["run_dir"]))  # ecs-lab list
    if ready_timeout is not None:
        kwargs["ready_timeout"] = ready_timeout
    if apps is not None:
        kwargs["apps"] = apps
    if user_data is not None:
        kwargs["user_data"] = user_data
    if external_instances:
        kwargs["external_instances"] = external_instances  # ECS Anywhere hosts (docs/ecs_anywhere.md)
    try:
        ecs_lab = EcsLab(Stack(**kwargs), backend=backend_name, subnet_claim=claim)
    except BaseException:
        claim.release()
        raise
    _stop_on_sigterm()
    ecs_lab.__enter__()
    import atexit

    atexit.register(ecs_lab.__exit__, None, None, None)
    try:
        return Lab(state=ecs_lab.status(), ecs_lab=ecs_lab)
    except BaseException:
        ecs_lab.__exit__(None, None, None)
        raise


def _stop_on_sigterm() -> None:
    """The lab's processes live in their own sessions, so a SIGTERM'd pytest would orphan them:
    turn SIGTERM into KeyboardInterrupt, which pytest unwinds through the fixtures' teardown."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        def on_sigterm(signum, frame):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            raise KeyboardInterrupt("SIGTERM")

        signal.signal(signal.SIGTERM, on_sigterm)


def stop_lab(lab: Lab) -> None:
    if lab.ecs_lab is not None:
        lab.ecs_lab.__exit__(None, None, None)


def _attach() -> Lab | None:
    from lab.state_file import read_state, state_path

    state = read_state(state_path())
    if not state or not state.get("ready"):
        return None
    state.setdefault("state_file", str(state_path()))
    return Lab(state=state, attached=True)


# -- fixtures ------------------------------------------------------------------------------------------


_SESSION_LAB: Lab | None = None  # the `lab` fixture's value, for lab_with / exclusive_docker_engine


@pytest.fixture(scope="session")
def lab(request) -> Lab:
    """The session-wide lab: the running one (`ecs-lab up --detach`) or one started for this run."""
    global _SESSION_LAB
    backend = request.config.getoption("--backend") or os.environ.get("LAB_BACKEND", "local")
    attached = _attach()
    if attached is not None and attached.state.get("backend", "local") != backend:
        attached = None  # a running lab of the other backend is not what was asked for
    if attached is not None:
        attached.link_local_watch = LinkLocalWatch(attached).start()
        _SESSION_LAB = attached
        try:
            yield attached
        finally:
            attached.link_local_watch.stop()
            _SESSION_LAB = None
        return
    started = start_lab(backend, instances=request.config.getoption("--lab-instances") or 1,
                        subnet=request.config.getoption("--lab-subnet"), cluster="ecs-lab")
    started.link_local_watch = LinkLocalWatch(started).start()
    _SESSION_LAB = started
    try:
        yield started
    finally:
        started.link_local_watch.stop()
        stop_lab(started)
        _SESSION_LAB = None


def _docker_variant(session: Lab, *, features: set[str] | None, agent_env: dict[str, str] | None,
                    apps: tuple[str, ...] | None, instances: int) -> Lab:
    """`lab_with` on docker: the session lab's agent service, redeployed with other settings.

    One docker lab runs per engine (169.254.169.254 lives in one network), so a second stack cannot
    start beside the session's; its agent service gets a new task definition revision instead, as an
    agent redeploy on ECS: apps keep running and keep sending to the instance IP."""
    from dataclasses import replace

    from lab.stack import DEFAULT_FEATURES

    if session.ecs_lab is None:
        pytest.skip("lab_with on docker redeploys the session lab's agents; a docker lab attached from "
                    "another process (ecs-lab up --detach) cannot be redeployed from here")
    stack = session.ecs_lab.stack
    missing = set(apps or ()) - set(stack.apps)
    if instances != stack.instances or missing:
        pytest.skip(f"lab_with on docker reuses the session lab (instances={stack.instances}, "
                    f"apps={sorted(stack.apps)}); asked for instances={instances}, apps {sorted(missing)}")
    session.ecs_lab.redeploy_agent(replace(stack, features=frozenset(features or DEFAULT_FEATURES),
                                           agent_env=dict(agent_env or {})))
    variant = Lab(state=session.ecs_lab.status(), ecs_lab=session.ecs_lab)
    if apps is not None:  # only the apps asked for, as a separate stack would have
        variant.state["apps"] = {v: a for v, a in variant.state["apps"].items() if v in apps}
    return variant


_AHEAD: dict[tuple, Any] = {}  # lab_with key -> Future[Lab] of a stack started ahead of its module


def _lab_with_key(features, agent_env, apps, instances) -> tuple:
    return (frozenset(features or ()), tuple(sorted((agent_env or {}).items())), apps, instances)


def start_ahead(*, features: set[str] | None = None, agent_env: dict[str, str] | None = None,
                apps: tuple[str, ...] | None = None, instances: int = 1, subnet: str | None = None) -> None:
    """Start, on a background thread, the local stack a later module will ask `lab_with` for with
    the same settings: its start overlaps the earlier modules' waits instead of adding to the run.
    The module's `lab_with` takes it over (and stops it); one never claimed is stopped at exit."""
    from concurrent.futures import ThreadPoolExecutor

    key = _lab_with_key(features, agent_env, apps, instances)
    if key in _AHEAD:
        return
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lab-ahead")
    _AHEAD[key] = pool.submit(start_lab, "local", instances=instances, features=features,
                              agent_env=agent_env, apps=apps, subnet=subnet)
    pool.shutdown(wait=False)


@pytest.fixture(scope="module")
def lab_with(request):
    """Factory for a differently configured stack, private to the requesting module.

    `lab_with(features={"apm", "dogstatsd"}, agent_env={"DD_ENV": "x"})` -> Lab. Stacks with the same
    settings are shared within the module and stopped when it ends. On the local backend it is a
    second stack on its own subnet; on docker (one lab per engine) the session lab's agents are
    redeployed with these settings and restored when the module ends.
    """
    from lab.assembly import backend_class

    backend = request.config.getoption("--backend") or os.environ.get("LAB_BACKEND", "local")
    side_by_side = backend_class(backend).SIDE_BY_SIDE
    stacks: dict[tuple, Lab] = {}
    session: Lab | None = None
    session_stack = None

    def factory(*, features: set[str] | None = None, agent_env: dict[str, str] | None = None,
                apps: tuple[str, ...] | None = None, instances: int = 1) -> Lab:
        nonlocal session, session_stack
        key = _lab_with_key(features, agent_env, apps, instances)
        if not side_by_side:
            session = session or request.getfixturevalue("lab")
            if session.ecs_lab is not None and session_stack is None:
                session_stack = session.ecs_lab.stack
            active = stacks.get(key)
            if active is None or active.ecs_lab.stack is not active._extra.get("stack"):
                stacks.clear()  # one agent configuration at a time: the previous variant is gone
                active = _docker_variant(session, features=features, agent_env=agent_env, apps=apps,
                                         instances=instances)
                active._extra["stack"] = active.ecs_lab.stack
                stacks[key] = active
            return active
        if key not in stacks:
            ahead = _AHEAD.pop(key, None)
            stacks[key] = ahead.result() if ahead is not None else start_lab(
                backend, instances=instances, features=features, agent_env=agent_env, apps=apps)
        return stacks[key]

    try:
        yield factory
    finally:
        if not side_by_side:
            if session is not None and session_stack is not None and session.ecs_lab is not None \
                    and session.ecs_lab.stack is not session_stack:
                session.ecs_lab.redeploy_agent(session_stack)  # the session's own agents again
                session.refresh()
        else:
            for started in stacks.values():
                stop_lab(started)


@pytest.fixture(scope="module")
def exclusive_docker_engine(request):
    """For a module that runs its own docker lab (e.g. with its own control plane): one docker lab
    runs per engine, so the session's docker lab (if this process runs one) is stopped for the
    module and started again, with the same stack, when it ends. The session `Lab` object is
    updated in place, so fixtures holding it see the new lab. The module's `agent_offers` marks are
    answered first, by the session lab's agent."""
    _ask_offers_ahead(request)
    session = _SESSION_LAB
    if session is None or session.ecs_lab is None or session.ecs_lab.backend.SIDE_BY_SIDE:
        yield
        return
    stack = session.ecs_lab.stack
    stop_lab(session)
    try:
        yield
    finally:
        if _session_lab_needed_after(request):
            _restart_session_lab(session, stack)


def _restart_session_lab(session: Lab, stack: Any) -> None:
    from lab.assembly import EcsLab

    ecs_lab = EcsLab(stack, backend=session.ecs_lab.backend_name)
    ecs_lab.__enter__()
    import atexit

    atexit.register(ecs_lab.__exit__, None, None, None)
    session.ecs_lab = ecs_lab
    session.refresh()


def _session_lab_needed_after(request) -> bool:
    """Whether a test after this module may use the session lab. The scenarios run the modules that
    need the engine to themselves last (scenarios/conftest.py), one after another: starting the
    session lab again between them (a minute of docker work on 2 cores) would only be stopped again."""
    items = list(getattr(request.session, "items", ()))
    module_items = [i for i, item in enumerate(items) if getattr(item, "module", None) is request.module]
    if not module_items:
        return True
    return any("exclusive_docker_engine" not in getattr(item, "fixturenames", ())
               for item in items[module_items[-1] + 1:])


def intake_client(url: str, label: str = ""):
    """An IntakeClient scoped to the calling test: it sees only payloads that arrived after it began."""
    from lab.fakes.intake.client import IntakeClient

    return IntakeClient(url).open_session(label)


@pytest.fixture
def intake(lab, request):
    """The fake intake's client, with a per-test cursor so tests never see each other's payloads."""
    client = intake_client(lab.intake_url, request.node.nodeid)
    yield client
    client.close_session()


_OFFERS: dict[str, Any] = {}  # what -> Offer of the session lab's agent (one agent image per run)


def require_offers(probe: AgentProbe, *what: str, cache: dict[str, Any] | None = None) -> None:
    """Skip the calling test, saying why, unless the agent behind `probe` offers every one of `what`
    (decided by the probe: /info endpoints, `agent status --json` providers, the agent's CLI)."""
    for name in what:
        offer = cache.get(name) if cache is not None else None
        if offer is None:
            offer = probe.offers(name)
            if cache is not None:
                cache[name] = offer
        if not offer:
            pytest.skip(f"{name}: {offer.reason}")


def skip_unless_offered(lab: Lab, *what: str) -> None:
    """`require_offers` of the session lab's agent, each answer kept for the run (the agent image is
    chosen for the whole run). For a module-scoped fixture that would start or redeploy something the
    agent cannot serve: the `agent_offers` mark is read only after module fixtures are set up."""
    require_offers(lab.agents[0].probe, *what, cache=_OFFERS)


@pytest.fixture(autouse=True)
def _agent_offers(request) -> None:
    """`@pytest.mark.agent_offers("processes", ...)`: asked of the session lab's agent, once per run."""
    names = [name for mark in request.node.iter_markers("agent_offers") for name in mark.args]
    for name in names:
        offer = _OFFERS.get(name)
        if offer is None:  # not known yet: ask the session lab's agent (starting it if need be)
            skip_unless_offered(request.getfixturevalue("lab"), *names)
            return
        if not offer:
            pytest.skip(f"{name}: {offer.reason}")


def _ask_offers_ahead(request) -> None:
    """What the `agent_offers` marks of the requesting module ask, answered by the session lab's agent
    now: a module that stops the session lab (`exclusive_docker_engine`) runs its own agents of the
    same image, and its marks are read only after the session lab is gone."""
    session_items = list(request.session.items)
    items = [item for item in session_items if item.module is request.module]
    wanted = [[name for mark in item.iter_markers("agent_offers") for name in mark.args] for item in items]
    # Every later module's marks too: the modules that take the engine run last, one after another,
    # and the session lab is not started again between them (`_session_lab_needed_after`).
    first = session_items.index(items[0]) if items else len(session_items)
    names = {name for item in session_items[first:] for mark in item.iter_markers("agent_offers")
             for name in mark.args} - set(_OFFERS)
    if names:
        probe = request.getfixturevalue("lab").agents[0].probe
        for name in sorted(names):
            _OFFERS[name] = probe.offers(name)
    # When no test of the module can run on this agent, do not take the engine (nor start the
    # module's own lab) only to skip them all.
    missing = [next((n for n in names if not _OFFERS[n]), None) for names in wanted]
    if items and all(missing):
        reasons = sorted({f"{n}: {_OFFERS[n].reason}" for n in missing})
        pytest.skip("; ".join(reasons))


@pytest.fixture
def agent(lab) -> AgentInfo:
    """Instance 1's agent (`lab.agents` has them all)."""
    return lab.agents[0]


@pytest.fixture
def agents(lab) -> list[AgentInfo]:
    return lab.agents


@pytest.fixture
def apps(lab) -> dict[str, AppInfo]:
    """The sample apps by DD_AGENT_HOST variant: imdsv1, imdsv2, metadata_file, in_code."""
    return lab.refresh().apps


@pytest.fixture
def imds(lab) -> str:
    """Instance 1's fake IMDS base URL."""
    return lab.imds_url(1)


@pytest.fixture
def world(lab):
    """The world model (only when the lab runs in this process)."""
    if lab.world is None:
        pytest.skip("the world model is only available when the lab runs inside this pytest process")
    return lab.world
