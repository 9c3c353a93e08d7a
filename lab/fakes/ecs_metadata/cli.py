"""`ecs-lab fake ecs`: the ECS agent's introspection and task metadata endpoints on their own."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import click

from lab.world import Container, PortMapping, Task, World


def _host_port(value: str, option: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise click.BadParameter(f"expected HOST:PORT, got {value!r}", param_hint=option)
    return host, int(port)


def load_tasks(world: World, path: Path) -> list[Task]:
    """Add the tasks described in a JSON file to the world's first instance.

    Format: ``{"tasks": [{"family": "web", "revision": 1, "service": "web",
    "containers": [{"name": "app", "image": "my/app:1", "pid": 1234,
    "ports": [{"containerPort": 8080, "hostPort": 32768}]}]}]}`` (a bare list also works).
    """
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"cannot read tasks file {path}: {exc}", param_hint="--tasks-file") from None
    specs = doc.get("tasks", []) if isinstance(doc, dict) else doc
    tasks = []
    for i, spec in enumerate(specs):
        try:
            containers = [
                Container(
                    name=c["name"], image=c.get("image", "ecs-agent-lab/lab:latest"), pid=c.get("pid"),
                    ports=[PortMapping(p["containerPort"], p.get("hostPort"), p.get("protocol", "tcp"))
                           for p in c.get("ports", [])],
                    ipv4_addresses=list(c.get("ipv4Addresses", [])),
                    known_status="RUNNING",
                )
                for c in spec["containers"]
            ]
            task = Task(family=spec["family"], revision=int(spec.get("revision", 1)), containers=containers,
                        service_name=spec.get("service", ""), known_status="RUNNING",
                        network_mode=spec.get("networkMode", "bridge"))
        except (KeyError, TypeError, ValueError) as exc:
            raise click.BadParameter(f"task #{i} in {path}: missing or bad field {exc}",
                                     param_hint="--tasks-file") from None
        for c in containers:
            c.mark_running()
        tasks.append(world.add_task(world.instance(1), task))
    return tasks


@click.command("ecs")
@click.option("--introspection", "introspection", default="127.0.0.1:51678", show_default=True,
              help="HOST:PORT of the ECS agent introspection API (51678 on EC2).")
@click.option("--task-metadata", "task_metadata", default="127.0.0.1:51679", show_default=True,
              help="HOST:PORT of the task metadata endpoint (169.254.170.2:80 on EC2).")
@click.option("--private-ip", default=None,
              help="The instance's private IP (default: the introspection host).")
@click.option("--cluster", default=None, help="Cluster name.")
@click.option("--tasks-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="JSON file of demo tasks to place on the instance.")
def ecs(introspection: str, task_metadata: str, private_ip: str | None, cluster: str | None,
        tasks_file: Path | None) -> None:
    """Serve ECS introspection and task metadata (v2/v3/v4, credentials) for a one-instance world."""
    from lab.world import Cluster

    from .model import container_env
    from .server import EcsMetadataServer

    ihost, iport = _host_port(introspection, "--introspection")
    thost, tport = _host_port(task_metadata, "--task-metadata")
    world = World(Cluster(name=cluster) if cluster else None)
    instance = world.add_instance(private_ip or ihost)
    tasks = load_tasks(world, tasks_file) if tasks_file else []
    with EcsMetadataServer(world) as server:
        il = server.listen_introspection(ihost, iport, instance)
        tl = server.listen_task_metadata(thost, tport)
        click.echo(f"ECS introspection of {instance.instance_id}: {il.url}  (DD_ECS_AGENT_URL)")
        click.echo(f"task metadata:                          {tl.url}")
        for task in tasks:
            server.model.grant_task_role(task)
            for c in task.containers:
                env = container_env(instance, task, c, base_url=tl.url, relative_credentials=False)
                click.echo(f"\n# {task.family}:{task.revision} container {c.name}")
                for key in ("ECS_CONTAINER_METADATA_URI_V4", "ECS_CONTAINER_METADATA_URI",
                            "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
                    click.echo(f"export {key}={env[key]}")
        click.echo("\nserving; Ctrl-C to stop")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            click.echo("stopping")
