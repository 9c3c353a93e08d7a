"""An ECS lab driven only through the control plane: the local backend's shared fakes, an embedded
control plane on a free port, and 2 EC2 instances registered as container instances. No agent and
no app runs until a scenario registers them, exactly as users do on a cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# The aws CLI of this very environment (a shell `aws` may belong to another Python and botocore).
AWS_CLI = (sys.executable, "-m", "awscli")

ROOT = Path(__file__).resolve().parents[2]
AGENT_TASKDEFS = ROOT / "lab" / "ecs" / "taskdefs"
APP_TASKDEFS = ROOT / "lab" / "apps" / "taskdefs"


@dataclass
class EcsLab:
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
        proc = subprocess.run([*AWS_CLI, "--endpoint-url", self.endpoint, "--output", "json", *args],
                              capture_output=True, text=True, env=self.aws_env, timeout=60)
        if check:
            assert proc.returncode == 0, f"aws {' '.join(args)} failed: {proc.stderr}"
        return json.loads(proc.stdout) if proc.stdout.strip() else {"stderr": proc.stderr}

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


@pytest.fixture(scope="module")
def ecs_lab(tmp_path_factory):
    from lab.backends.local import LocalBackend
    from lab.backends.stack import Ports, Stack
    from lab.ecs.cluster import EcsCluster
    from lab.ecs.local_backend import attach_instance, redirects_for
    from lab.fakes.intake.client import IntakeClient
    from lab.pytest_plugin import free_subnet
    from lab.world import Cluster, World

    subnet = free_subnet()
    run_dir = tmp_path_factory.mktemp("ecs-lab")
    world = World(Cluster(name=f"scn-{uuid.uuid4().hex[:6]}"))
    stack = Stack(instances=0, apps=(), subnet=subnet, services_host=f"{subnet}.0.1", ports=Ports.ephemeral(),
                  cluster=world.cluster.name, run_dir=run_dir)
    aws_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    aws_env.update({"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                    "AWS_DEFAULT_REGION": world.cluster.region, "AWS_CONFIG_FILE": "/dev/null",
                    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"})
    with LocalBackend(stack, world=world) as backend, \
            EcsCluster(world, backend, port=0, agent_interval=0.1, redirects_for=redirects_for(backend),
                       on_instance=attach_instance(backend)) as cluster:
        for n in (1, 2):
            cluster.add_instance(stack.private_ip(n))
        intake = IntakeClient(backend.intake_url)
        yield EcsLab(backend, cluster, world, intake, aws_env)
