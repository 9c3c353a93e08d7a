"""A lab with no EC2 instance at all: the local backend's fakes (intake, task metadata), the
embedded control plane and the cluster's Fargate agent. Nothing runs until the scenario registers
its task definition and runs it on FARGATE, as users do."""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

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

    def aws(self, *args: str) -> dict:
        """The real `aws` CLI of this environment against the lab's control plane."""
        import json
        import subprocess

        done = subprocess.run([*AWS_CLI, "--endpoint-url", self.endpoint, "--output", "json", *args],
                              capture_output=True, text=True, env=self.aws_env, timeout=120)
        assert done.returncode == 0, f"aws {' '.join(args)} failed: {done.stderr}"
        return json.loads(done.stdout) if done.stdout.strip() else {}


@pytest.fixture(scope="module")
def fargate_lab():
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
        lab = owner.enter_context(EcsLab(stack, backend="local"))
        yield FargateLab(lab, IntakeClient(lab.intake_url), aws_env)
