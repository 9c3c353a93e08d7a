"""An ECS lab driven only through the control plane: the local backend's shared fakes, an embedded
control plane on a free port, and 2 EC2 instances registered as container instances. No agent and
no app runs until a scenario registers them, exactly as users do on a cluster."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from lab.agent_probe import AgentProbe

# The aws CLI of this very environment (a shell `aws` may belong to another Python and botocore).
AWS_CLI = (sys.executable, "-m", "awscli")

ROOT = Path(__file__).resolve().parents[2]
AGENT_TASKDEFS = ROOT / "lab" / "ecs" / "taskdefs"
APP_TASKDEFS = ROOT / "lab" / "apps" / "taskdefs"


@dataclass
class ScenarioCluster:
    lab: Any  # lab.assembly.EcsLab
    backend: Any
    cluster: Any
    world: Any
    intake: Any
    aws_env: dict[str, str]

    @property
    def endpoint(self) -> str:
        return self.cluster.endpoint

    @property
    def name(self) -> str:
        return self.world.cluster.name

    @property
    def ecs(self) -> Any:
        return self.cluster.control_plane.clients.ecs

    def aws(self, *args: str, check: bool = True) -> dict:
        """The real `aws` CLI against the lab's control plane."""
        return self.aws_each([args], check=check)[0]

    def aws_each(self, calls: list[tuple[str, ...]], check: bool = True) -> list[dict]:
        """Several real `aws` CLI commands at once, as separate shells would run them: each is a
        new interpreter (~1 s to start), so independent calls overlap instead of queueing."""
        base = [*AWS_CLI, "--endpoint-url", self.endpoint, "--output", "json"]
        procs = [(args, subprocess.Popen([*base, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True, env=self.aws_env))
                 for args in calls]
        out = []
        for args, proc in procs:
            try:
                stdout, stderr = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                stdout, stderr = proc.communicate()
            if check:
                assert proc.returncode == 0, f"aws {' '.join(args)} failed: {stderr}"
            out.append(json.loads(stdout) if stdout.strip() else {"stderr": stderr})
        return out

    def register(self, path: Path, **changes: Any) -> dict:
        """Register a task definition file with the aws CLI (after `changes`, a copy if any)."""
        if changes:
            td = json.loads(path.read_text())
            td.update(changes)
            path = self.backend.run_dir / f"{td['family']}-{uuid.uuid4().hex[:6]}.json"
            path.write_text(json.dumps(td))
        return self.aws("ecs", "register-task-definition", "--cli-input-json", f"file://{path}")["taskDefinition"]

    def tasks(self, *, service: str | None = None, family: str | None = None,
              desired: str = "RUNNING") -> list[dict]:
        kwargs: dict = {"cluster": self.name, "desiredStatus": desired}
        if service:
            kwargs["serviceName"] = service
        if family:
            kwargs["family"] = family
        arns = self.ecs.list_tasks(**kwargs)["taskArns"]
        return self.ecs.describe_tasks(cluster=self.name, tasks=arns)["tasks"] if arns else []


def start_ecs_lab() -> tuple[ScenarioCluster, contextlib.ExitStack]:
    """The lab and the ExitStack whose close stops it (the control plane, then the backend)."""
    from lab.assembly import EcsLab
    from lab.fakes.intake.client import IntakeClient
    from lab.stack import Ports, Stack
    from lab.subnet_claims import claim_subnet

    claim = claim_subnet(holder="pytest")  # held by the lab, released when it stops
    subnet = claim.subnet
    run_dir = Path(os.environ.get("LAB_HOME", ".lab")) / "pytest" / f"ecs-{subnet.replace('.', '-')}"
    stack = Stack(instances=0, apps=(), subnet=subnet, services_host=f"{subnet}.0.1", ports=Ports.ephemeral(),
                  cluster=f"scn-{uuid.uuid4().hex[:6]}", run_dir=run_dir, deploy=False)
    aws_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    aws_env.update({"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                    "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": "/dev/null",
                    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"})
    owner = contextlib.ExitStack()
    try:
        owner.callback(claim.release)
        lab = owner.enter_context(EcsLab(stack, backend="local", subnet_claim=claim))
        for n in (1, 2):
            lab.cluster.add_instance(stack.private_ip(n))
        return ScenarioCluster(lab, lab.backend, lab.cluster, lab.world, IntakeClient(lab.intake_url),
                               aws_env), owner
    except BaseException:
        owner.close()
        raise


# The lab is started on a thread while the test just before this module runs, so that its start
# overlaps that test's waits (started earlier, it would only load the 2 cores for longer); `ecs_lab`
# takes it over. One never claimed is stopped at session end.
_AHEAD: dict[str, Future] = {}


def pytest_runtest_protocol(item, nextitem) -> None:
    if "lab" in _AHEAD or nextitem is None or "ecs_lab" in getattr(item, "fixturenames", ()):
        return
    if "ecs_lab" in getattr(nextitem, "fixturenames", ()):
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ecs-lab-ahead")
        _AHEAD["lab"] = pool.submit(start_ecs_lab)
        pool.shutdown(wait=False)


_STOPPING: list[threading.Thread] = []
_STOP_ERRORS: list[BaseException] = []


def pytest_sessionfinish(session) -> None:
    ahead = _AHEAD.pop("lab", None)
    if ahead is not None and ahead.exception() is None:
        ahead.result()[1].close()
    for stopping in _STOPPING:
        stopping.join()
    if _STOP_ERRORS:  # a lab that did not stop cleanly fails the run, as a failed teardown would
        raise _STOP_ERRORS[0]


@pytest.fixture(scope="module")
def ecs_lab():
    ahead = _AHEAD.pop("lab", None)
    lab, owner = ahead.result() if ahead is not None else start_ecs_lab()
    try:
        yield lab
    finally:
        # Stopped on a thread (joined at session end): the next module need not wait for it.
        def stop() -> None:
            try:
                owner.close()
            except BaseException as exc:  # noqa: BLE001 - re-raised at session end
                _STOP_ERRORS.append(exc)

        stopping = threading.Thread(target=stop, name="ecs-lab-stop")
        stopping.start()
        _STOPPING.append(stopping)


@pytest.fixture
def task_agent_probe() -> Callable[[Any, str], AgentProbe]:
    """`task_agent_probe(backend, task_arn)`: the agent of a task the control plane placed, seen as the
    real agent offers itself: commands run in its container (`docker exec`). No `/info`: these
    scenarios change its port mappings."""
    from lab.agent_probe import AgentProbe

    def probe(backend: Any, task_arn: str, container: str = "datadog-agent") -> AgentProbe:
        return AgentProbe(lambda argv: backend.exec_in_container(task_arn, container, argv), None)

    return probe
