"""Stacks that modules ask `lab_with` for are started ahead, on a background thread, a few tests
before their module runs: their start then overlaps those tests' waits on the intake instead of
adding to the run (started much earlier, they would only load the 2 cores for longer). A module
names its stack's settings in a module-level `LAB_WITH` dict and passes the same dict to
`lab_with`, which takes the running stack over (and stops it when the module ends).

Under pytest-xdist (`-n 2`) each worker has its own session lab on its own claimed subnet
(lab/subnet_claims.py) and its own embedded control plane; a module runs on one worker (file
scheduling), so its stacks start once; a stack is started ahead when the worker's next test is the
module's first (which module a worker gets next is known only then)."""

from __future__ import annotations

import contextlib
import os
import sys
import time
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lab.agent_probe import Intervals, waiting_for

LEAD = 3  # tests before the module's first lab_with test: a stack starts in ~1.5 s
_START_AT: dict[int, list[dict]] = {}  # item index -> LAB_WITH settings to start when it runs


def _xdist_worker(config) -> bool:
    return hasattr(config, "workerinput")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`-n N` with the default distribution: whole modules to a worker, so that a module's stacks
    (`lab_with`, the control-plane scenarios' own lab) are started once, not once per worker."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadFileScheduling

    return LoadFileScheduling(config, log)


def pytest_collection_finish(session) -> None:
    backend = session.config.getoption("--backend") or os.environ.get("LAB_BACKEND", "local")
    if backend != "local" or session.config.option.collectonly or _xdist_worker(session.config):
        return
    seen: set[int] = set()
    for index, item in enumerate(session.items):
        settings = getattr(getattr(item, "module", None), "LAB_WITH", None)
        if "lab_with" in getattr(item, "fixturenames", ()) and isinstance(settings, dict) \
                and id(item.module) not in seen:
            seen.add(id(item.module))
            _START_AT.setdefault(max(0, index - LEAD), []).append(settings)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem) -> None:
    if _xdist_worker(item.config):
        if nextitem is not None and getattr(nextitem, "module", None) is not getattr(item, "module", None):
            _start_ahead_of(nextitem)
        return
    if not _START_AT:
        return
    from lab.pytest_plugin import start_ahead

    for settings in _START_AT.pop(item.session.items.index(item), ()):
        start_ahead(**settings)


def _start_ahead_of(nextitem) -> None:
    """On an xdist worker: the stack of the next test, the first of its module, when the module
    names one (`LAB_WITH`) and the test asks for it."""
    settings = getattr(nextitem.module, "LAB_WITH", None)
    backend = nextitem.config.getoption("--backend")
    if (isinstance(settings, dict) and "lab_with" in nextitem.fixturenames
            and (backend or os.environ.get("LAB_BACKEND", "local")) == "local"):
        from lab.pytest_plugin import start_ahead

        start_ahead(**settings)  # once per settings: a key already started is left alone


# -- the send phase ------------------------------------------------------------------------------------
# The agent's intervals are what a scenario pays for: a real agent flushes metrics every 15 s from
# 10 s buckets, writes traces every 5 s, and its process check sends nothing on its first 10 s run.
# So every scenario on the session lab sends its traffic once, at the start (the `send_phase`), and
# then each test waits on the same deadline counted from that moment: the run pays agent start + one
# flush + one bucket once, not per test. Waits come from the agent under test (`probe.intervals()`).


@dataclass
class SendPhase:
    """The traffic every session-lab scenario sends at the start, and the deadlines it is due by."""

    lab: Any
    intervals: Intervals
    started: float  # time.monotonic() when sending began
    intake: Any  # an intake session opened before sending: it sees everything sent here
    agent_hosts: dict[str, dict] = field(default_factory=dict)  # variant -> GET / answer
    work: dict[str, dict] = field(default_factory=dict)  # variant -> GET /work answer
    errors: dict[str, int] = field(default_factory=dict)  # variant -> HTTP status of GET /error
    requests: dict[str, int] = field(default_factory=dict)  # variant -> /work requests sent
    held_mb: dict[str, int] = field(default_factory=dict)  # variant -> MiB the app holds

    def wait(self, kind: str, **kwargs: Any) -> AbstractContextManager[float]:
        """`with send_phase.wait("metrics") as timeout:` the seconds left until that kind of data is
        due (`Intervals.metrics`, `traces`, `processes`, `check_metrics`, ...), counted from the send;
        a timeout inside says which of the agent's intervals it waited for."""
        return waiting_for(getattr(self.intervals, kind)(**kwargs), self.started)

    def wait_from_now(self, kind: str, **kwargs: Any) -> AbstractContextManager[float]:
        """The same wait counted from now: for what a test itself does after the send phase."""
        return waiting_for(getattr(self.intervals, kind)(**kwargs))


WORK_REQUESTS = 3  # /work requests of the DogStatsD scenario's app (imdsv1), besides one per variant
HOLD_MB = 96  # memory the container_metrics scenario's app (imdsv1) holds from the send phase on


def send_traffic(lab: Any) -> SendPhase:
    """Drive every session-lab scenario's traffic once (each app: / and /work; imdsv1 also /error,
    more /work requests and holding HOLD_MB MiB), after reading the agent's intervals."""
    import urllib.error

    from lab.pytest_plugin import intake_client

    intervals = lab.agents[0].probe.intervals()
    intake = intake_client(lab.intake_url, "send-phase")
    phase = SendPhase(lab, intervals, time.monotonic(), intake)
    for variant, app in lab.refresh().apps.items():
        phase.agent_hosts[variant] = app.get("/")
        phase.work[variant] = app.get("/work?ms=2&depth=2")
        phase.requests[variant] = 1
    app = lab.apps.get("imdsv1")
    if app is not None:
        for _ in range(WORK_REQUESTS):
            app.get("/work?ms=1&depth=2")
        app.get("/work?ms=1&depth=1")
        phase.requests["imdsv1"] += WORK_REQUESTS + 1
        try:
            app.get("/error")
        except urllib.error.HTTPError as exc:
            phase.errors["imdsv1"] = exc.code
        phase.held_mb["imdsv1"] = app.get(f"/memory?mb={HOLD_MB}")["held_mb"]
    return phase


@pytest.fixture(scope="session")
def send_phase(lab):
    phase = send_traffic(lab)
    try:
        yield phase
    finally:
        for variant in phase.held_mb:
            with contextlib.suppress(Exception):
                lab.apps[variant].get("/memory?mb=0")
        phase.intake.close()


@pytest.fixture(scope="session", autouse=True)
def _send_first(request):
    """Send at the very start of the run when any collected scenario uses the send phase. Not on an
    xdist worker: it sees every collected test but may be given none that sends (its session lab
    would only load the machine); there the send phase starts with the first test that asks."""
    if _xdist_worker(request.config):
        return
    if any("send_phase" in getattr(item, "fixturenames", ()) for item in request.session.items):
        request.getfixturevalue("send_phase")


def pytest_collection_modifyitems(session, config, items) -> None:
    """Modules that need the docker engine to themselves (`exclusive_docker_engine`: the session
    lab is stopped for them and started anew after) run last, so that every other module's data,
    sent once by the session's send phase, is still in the intake it was sent to."""
    items.sort(key=lambda item: "exclusive_docker_engine" in getattr(item, "fixturenames", ()))


# -- Fargate scenarios -------------------------------------------------------------------------------
AWS_CLI = (sys.executable, "-m", "awscli")


@dataclass
class FargateLab:
    lab: Any  # lab.assembly.EcsLab
    intake: Any  # lab.fakes.intake.client.IntakeClient
    aws_env: dict[str, str]

    @property
    def name(self) -> str:
        return self.lab.world.cluster.name

    @property
    def endpoint(self) -> str:
        return self.lab.cluster.endpoint

    @property
    def ecs(self) -> Any:
        return self.lab.cluster.control_plane.clients.ecs

    def wait_running(self, arn: str, within: float, what: str) -> dict:
        """The task as describe-tasks shows it once RUNNING. A task that stops fails at once with
        ECS's stoppedReason; one still not RUNNING after `within` seconds fails with each container's
        status, health and last log lines, which say why (an agent that never started, a health
        check that never passed)."""
        from lab.world import wait_until

        def described() -> dict:
            return self.ecs.describe_tasks(cluster=self.name, tasks=[arn])["tasks"][0]

        def running() -> dict | None:
            task = described()
            assert task["lastStatus"] != "STOPPED", f"the task stopped: {task.get('stoppedReason')}"
            return task if task["lastStatus"] == "RUNNING" else None

        try:
            return wait_until(running, within, what=what)
        except TimeoutError as exc:
            task = described()
            lines = [f"{exc}: lastStatus {task['lastStatus']}, health {task.get('healthStatus')}"]
            for c in task.get("containers", []):
                lines.append(f"- {c['name']}: {c.get('lastStatus')}, health {c.get('healthStatus')}, "
                             f"reason {c.get('reason', '')!r}")
                try:
                    log = self.lab.backend.container_logs(arn, c["name"], 15)
                except Exception as log_exc:  # noqa: BLE001 - the diagnosis must not hide the timeout
                    log = f"(no log: {log_exc})"
                lines += ["    " + line for line in log.splitlines()[-15:]]
            raise TimeoutError("\n".join(lines)) from None

    def aws(self, *args: str) -> dict:
        """The real `aws` CLI of this environment against the lab's control plane."""
        import json
        import subprocess

        done = subprocess.run([*AWS_CLI, "--endpoint-url", self.endpoint, "--output", "json", *args],
                              capture_output=True, text=True, env=self.aws_env, timeout=120)
        assert done.returncode == 0, f"aws {' '.join(args)} failed: {done.stderr}"
        return json.loads(done.stdout) if done.stdout.strip() else {}


@pytest.fixture(scope="module")
def fargate_lab(request, exclusive_docker_engine):
    """A lab with no EC2 instance at all: the backend's fakes (intake, task metadata), the embedded
    control plane and the cluster's Fargate agent, on either backend (`--backend`). Nothing runs
    until the scenario registers its task definition and runs it on FARGATE, as users do (scenarios
    fargate, fargate_firelens)."""
    backend = request.config.getoption("--backend") or os.environ.get("LAB_BACKEND", "local")
    from lab.assembly import EcsLab
    from lab.fakes.intake.client import IntakeClient
    from lab.pytest_plugin import free_subnet
    from lab.stack import Ports, Stack

    subnet = free_subnet()
    run_dir = Path(os.environ.get("LAB_HOME", ".lab")) / "pytest" / f"fargate-{subnet.replace('.', '-')}"
    stack = Stack(instances=0, apps=(), subnet=subnet, services_host=f"{subnet}.0.1", ports=Ports.ephemeral(),
                  cluster=f"fg-{uuid.uuid4().hex[:6]}", run_dir=run_dir, deploy=False)
    aws_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    aws_env.update({"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                    "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": "/dev/null",
                    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_PAGER": ""})
    with contextlib.ExitStack() as owner:
        lab = owner.enter_context(EcsLab(stack, backend=backend))
        yield FargateLab(lab, IntakeClient(lab.intake_url), aws_env)
