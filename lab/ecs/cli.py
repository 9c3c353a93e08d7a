"""`ecs-lab deploy FILE [--daemon] [--count N] [--endpoint URL]`: the short path to what users do
with the aws CLI: register the task definition, then create a DAEMON service or run tasks, against
the running lab's control plane, and show where each task landed and how it ended up.
"""

from __future__ import annotations

import os
import sys
import time

import click

from lab.ecs import taskdef
from lab.state_file import name_option
from lab.world import DEFAULT_CLUSTER, DEFAULT_REGION


def _running_lab() -> dict:
    try:
        from lab.state_file import read_state
    except ImportError:
        return {}
    return read_state() or {}


def resolve_endpoint(endpoint: str | None, state: dict) -> str:
    """--endpoint, else the running lab's state file, else $AWS_ENDPOINT_URL, else :4566."""
    return (endpoint or state.get("control_plane") or os.environ.get("AWS_ENDPOINT_URL")
            or "http://127.0.0.1:4566")


def resolve_cluster(cluster: str | None, state: dict) -> str:
    return cluster or state.get("cluster") or (state.get("stack") or {}).get("cluster") or DEFAULT_CLUSTER


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--daemon", is_flag=True, help="Create (or update) a DAEMON service: one task per instance.")
@click.option("--count", type=click.IntRange(1, 100), default=1, show_default=True,
              help="Tasks to run (without --daemon).")
@click.option("--endpoint", default=None, help="Control plane URL (default: the running lab's, else :4566).")
@click.option("--cluster", default=None, help="Cluster name (default: the running lab's).")
@click.option("--service-name", default=None, help="Service name for --daemon (default: the family).")
@click.option("--region", default=DEFAULT_REGION, show_default=True)
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait until every task is RUNNING or STOPPED, then show them.")
@click.option("--timeout", type=float, default=60.0, show_default=True)
@name_option
def deploy(file: str, daemon: bool, count: int, endpoint: str | None, cluster: str | None,
           service_name: str | None, region: str, wait: bool, timeout: float) -> None:
    """Register FILE (a task definition, as for `aws ecs register-task-definition --cli-input-json`)
    and run it on the lab's cluster."""
    try:
        td = taskdef.load(file)
    except taskdef.TaskDefinitionError as exc:
        click.echo(str(exc), err=True)
        sys.exit(255)  # the aws CLI's exit status for a parameter error
    from lab.ecs.client import ControlPlaneClients
    from lab.ecs.diagnose import agent_findings

    # Said before anything runs; the lab still runs the file as written, as ECS would.
    for finding in agent_findings(td):
        click.echo(f"warning: {finding}", err=True)

    state = _running_lab()
    url = resolve_endpoint(endpoint, state)
    cluster = resolve_cluster(cluster, state)
    ecs = ControlPlaneClients(url, region).ecs
    try:
        registered = ecs.register_task_definition(**td)["taskDefinition"]
    except Exception as exc:  # noqa: BLE001 - botocore's text names the problem (connection or ClientException)
        raise click.ClickException(
            f"register-task-definition against {url} failed: {exc}\n(is a lab running with its control "
            "plane? `ecs-lab up`, or pass --endpoint)") from None
    td_arn = registered["taskDefinitionArn"]
    click.echo(f"registered {td_arn}")
    failures: list[dict] = []
    if daemon:
        name = service_name or registered["family"]
        existing = ecs.describe_services(cluster=cluster, services=[name]).get("services", [])
        if existing and existing[0]["status"] == "ACTIVE":
            ecs.update_service(cluster=cluster, service=name, taskDefinition=td_arn)
            click.echo(f"updated DAEMON service {name} to {td_arn}")
        else:
            ecs.create_service(cluster=cluster, serviceName=name, taskDefinition=td_arn,
                               schedulingStrategy="DAEMON", launchType="EC2")
            click.echo(f"created DAEMON service {name} on cluster {cluster}")

        def want() -> list[str]:
            arns = []
            for desired in ("RUNNING", "STOPPED"):
                arns += ecs.list_tasks(cluster=cluster, serviceName=name, desiredStatus=desired)["taskArns"]
            return arns[:100]
    else:
        out = ecs.run_task(cluster=cluster, taskDefinition=td_arn, count=count, launchType="EC2")
        failures = out.get("failures", [])
        arns = [t["taskArn"] for t in out.get("tasks", [])]

        def want() -> list[str]:
            return arns
        for f in failures:
            click.echo(f"placement failure: {f.get('reason')} on {f.get('arn')} {f.get('detail', '')}",
                       err=True)
    if not wait:
        sys.exit(1 if failures else 0)
    tasks = _wait_settled(ecs, cluster, want, timeout, daemon)
    stopped = [t for t in tasks if t["lastStatus"] == "STOPPED"]
    for t in tasks:
        where = t.get("containerInstanceArn", "-").rsplit("/", 1)[-1]
        line = f"{t['lastStatus']:<8} {t['taskArn']}  on {where}"
        if t.get("stoppedReason"):
            line += f"\n         stopped: {t['stoppedReason']}"
        click.echo(line)
    if daemon:
        svc = ecs.describe_services(cluster=cluster, services=[service_name or registered["family"]])
        for event in svc["services"][0].get("events", [])[:3]:
            click.echo(f"service event: {event['message']}", err=True)
    sys.exit(1 if failures or stopped or not tasks else 0)


def _wait_settled(ecs, cluster: str, want, timeout: float, daemon: bool) -> list[dict]:
    deadline = time.monotonic() + timeout
    tasks: list[dict] = []
    while time.monotonic() < deadline:
        arns = want()
        if arns:
            tasks = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"]
            if all(t["lastStatus"] in ("RUNNING", "STOPPED") for t in tasks):
                if not daemon:
                    return tasks
                instances = ecs.list_container_instances(cluster=cluster)["containerInstanceArns"]
                if len([t for t in tasks if t["lastStatus"] == "RUNNING"]) >= len(instances):
                    return tasks
        time.sleep(0.2)
    return tasks
