"""Fargate's side of the ECS agent: run the cluster's FARGATE tasks, each on its own host.

On Fargate no container instance exists: ECS provisions a micro-VM per task, attaches the task's
ENI, starts the containers with the ECS agent that runs inside that VM, and reports the state
changes. `FargateAgent` does that for one cluster of the lab, over the wire like the instance agents:

- a FARGATE task (launch type FARGATE, or a FARGATE/FARGATE_SPOT capacity provider) with desired
  status RUNNING -> a host of its own from the backend (`fargate_host`: its address stands for the
  ENI), translated with that host's redirects, started, reported RUNNING (PROVISIONING before);
- failures, stops and essential-container exits as `InstanceAgent` handles them.

A bare TaskRunner (tests) without `fargate_host` gets a world host at the ENI's private address.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from lab.ecs.agent_env import Redirects
from lab.ecs.instance_agent import InstanceAgent, LocalTask, TaskRefused
from lab.ecs.moto_model import FARGATE_PROVIDERS
from lab.tasks import LabStopping, UnsupportedField
from lab.world import ContainerInstance

log = logging.getLogger("lab.ecs.fargate_agent")


def is_fargate_task(desc: dict) -> bool:
    return desc.get("launchType") == "FARGATE" or desc.get("capacityProviderName") in FARGATE_PROVIDERS


def eni_address(desc: dict) -> str:
    for att in desc.get("attachments") or []:
        if att.get("type") == "ElasticNetworkInterface":
            for d in att.get("details") or []:
                if d.get("name") == "privateIPv4Address":
                    return d.get("value", "")
    return ""


@dataclass
class FargateAgent(InstanceAgent):
    """One per cluster: `instance` is unused (Fargate tasks get a host each, in `hosts`)."""

    redirects_for: Callable[[ContainerInstance], Redirects | None] | None = None
    hosts: dict[str, ContainerInstance] = field(default_factory=dict)

    def _list(self, ecs, desired: str) -> dict[str, dict]:
        arns: list[str] = []
        for page in ecs.get_paginator("list_tasks").paginate(cluster=self.cluster, desiredStatus=desired):
            arns.extend(page["taskArns"])
        if desired == "STOPPED":
            return {a: {} for a in arns if a in self.local}
        out: dict[str, dict] = {}
        for i in range(0, len(arns), 100):
            for t in ecs.describe_tasks(cluster=self.cluster, tasks=arns[i:i + 100])["tasks"]:
                if is_fargate_task(t):
                    out[t["taskArn"]] = t
        return out

    def _host(self, desc: dict) -> ContainerInstance:
        make = getattr(self.runner, "fargate_host", None)
        az = desc.get("availabilityZone", "")
        if make is not None:
            return make(desc["taskArn"], az)
        return self.world.add_fargate_host(eni_address(desc) or "127.0.0.1", az)

    def _start(self, desc: dict) -> None:
        arn = desc["taskArn"]
        td = self._taskdef(desc["taskDefinitionArn"])
        host = self._host(desc)
        self.hosts[arn] = host
        redirects = self.redirects_for(host) if self.redirects_for else self.redirects
        try:
            # The instance agent's path (FireLens included); no ec2_instance_id record on Fargate.
            specs, task = self._task(desc, td, resolve_secret=self._secrets.resolve, redirects=redirects,
                                     ec2_instance_id=None)
        except TaskRefused as exc:
            # Never started: its micro-VM goes with it.
            self.hosts.pop(arn, None)
            self.world.remove_fargate_host(host)
            return self._refuse(arn, str(exc))
        task.tags = {t["key"]: t["value"] for t in desc.get("tags") or [] if "key" in t}
        self.world.add_task(host, task)
        self.local[arn] = LocalTask(arn=arn, specs=specs)
        self.clients.ecs.submit_task_state_change(cluster=self.cluster, task=arn, status="PENDING")
        try:
            self.runner.start_task(host, task, specs)
        except LabStopping as exc:
            self._abandon(arn, str(exc))
            return
        except UnsupportedField as exc:
            self._fail_started(arn, f"UnsupportedField: {exc}")
            return
        except Exception as exc:  # noqa: BLE001 - the backend's reason becomes the stopped reason
            self._fail_started(arn, f"CannotStartContainerError: {exc}")
            return
        self._report(arn, "RUNNING")
