"""Container health from the health check's real runs, as ECS reports it through botocore:
describe-tasks' container and task `healthStatus`, and describe-services' events when the service
scheduler starts tasks, reaches a steady state, and replaces a task that failed its health checks."""

from __future__ import annotations

import pytest

from lab.assembly import EcsLab
from lab.ecs.service_scheduler import HEALTH_CHECK_STOPPED_REASON
from lab.pytest_plugin import free_subnet
from lab.stack import Ports, Stack
from lab.tasks import LAB_IMAGE
from lab.world import wait_until


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    subnet = free_subnet()
    stack = Stack(subnet=subnet, services_host=f"{subnet}.0.1", ports=Ports.ephemeral(), apps=(),
                  features=frozenset({"apm", "dogstatsd", "apm_non_local", "dogstatsd_non_local"}),
                  run_dir=tmp_path_factory.mktemp("run"))
    with EcsLab(stack, backend="local") as lab:
        yield lab


def _events(ecs, cluster: str, service: str) -> list[str]:
    return [e["message"] for e in ecs.describe_services(cluster=cluster, services=[service])
            ["services"][0].get("events", [])]


def test_a_failing_health_check_makes_the_task_unhealthy_and_the_service_replaces_it(lab, tmp_path):
    ecs = lab.control_plane.clients.ecs
    cluster = lab.stack.cluster
    flag = tmp_path / "healthy"
    flag.touch()
    ecs.register_task_definition(family="hc-web", containerDefinitions=[{
        "name": "web", "image": LAB_IMAGE, "memory": 64, "entryPoint": ["sh", "-c", "exec sleep 300"],
        # The check's outcome is the flag file's existence; retries 2 at a 1 s interval.
        "healthCheck": {"command": ["CMD-SHELL", f"test -e {flag}"], "interval": 1, "timeout": 2,
                        "retries": 2, "startPeriod": 0}}])
    ecs.create_service(cluster=cluster, serviceName="hc", taskDefinition="hc-web", desiredCount=1)
    try:
        def described(arn: str) -> dict:
            return ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]

        def listed() -> str | None:
            return (ecs.list_tasks(cluster=cluster, serviceName="hc")["taskArns"] or [None])[0]

        def when(arn: str, **want: str) -> dict | None:
            t = described(arn)
            return t if all(t.get(k) == v for k, v in want.items()) else None

        first = wait_until(listed, 20, what="the service's task")
        first_id = first.rsplit("/", 1)[-1]
        t = wait_until(lambda: when(first, healthStatus="HEALTHY"), 20,
                       what="task healthStatus HEALTHY after the first passing check")
        assert t["containers"][0]["healthStatus"] == "HEALTHY"
        wait_until(lambda: "(service hc) has reached a steady state." in _events(ecs, cluster, "hc"), 20,
                   what="the steady-state event")
        assert f"(service hc) has started 1 tasks: (task {first_id})." in _events(ecs, cluster, "hc")

        flag.unlink()  # from now on every check fails: UNHEALTHY after 2 of them
        stopped = wait_until(lambda: when(first, lastStatus="STOPPED"), 30,
                             what="the unhealthy task to be stopped")
        assert stopped["healthStatus"] == "UNHEALTHY"
        assert stopped["containers"][0]["healthStatus"] == "UNHEALTHY"
        assert stopped["stoppedReason"] == HEALTH_CHECK_STOPPED_REASON
        assert HEALTH_CHECK_STOPPED_REASON == "Task failed container health checks"
        events = _events(ecs, cluster, "hc")
        assert f"(service hc) (task {first_id}) failed container health checks." in events
        assert f"(service hc) has stopped 1 running tasks: (task {first_id})." in events

        flag.touch()  # the replacement passes again

        def replacement() -> dict | None:
            for arn in ecs.list_tasks(cluster=cluster, serviceName="hc")["taskArns"]:
                t = described(arn)
                if arn != first and t["lastStatus"] == "RUNNING" and t.get("healthStatus") == "HEALTHY":
                    return t
            return None
        second = wait_until(replacement, 30, what="a HEALTHY replacement task")
        second_id = second["taskArn"].rsplit("/", 1)[-1]
        events = _events(ecs, cluster, "hc")
        assert f"(service hc) has started 1 tasks: (task {second_id})." in events
        # Newest first, as describe-services lists them: the replacement came after the failure.
        assert events.index(f"(service hc) has started 1 tasks: (task {second_id}).") < \
            events.index(f"(service hc) (task {first_id}) failed container health checks.")
    finally:
        ecs.update_service(cluster=cluster, service="hc", desiredCount=0)
        ecs.delete_service(cluster=cluster, service="hc", force=True)
        wait_until(lambda: not ecs.list_tasks(cluster=cluster, serviceName="hc")["taskArns"], 30,
                   what="the service's tasks to stop")


def test_a_task_without_a_health_check_stays_unknown(lab):
    ecs = lab.control_plane.clients.ecs
    cluster = lab.stack.cluster
    ecs.register_task_definition(family="no-hc", containerDefinitions=[{
        "name": "web", "image": LAB_IMAGE, "memory": 64, "entryPoint": ["sh", "-c", "exec sleep 300"]}])
    arn = ecs.run_task(cluster=cluster, taskDefinition="no-hc")["tasks"][0]["taskArn"]
    try:
        t = wait_until(lambda: (lambda d: d if d["lastStatus"] == "RUNNING" else None)(
            ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]), 20, what="the task RUNNING")
        assert t.get("healthStatus", "UNKNOWN") == "UNKNOWN"
        assert t["containers"][0].get("healthStatus", "UNKNOWN") == "UNKNOWN"
    finally:
        ecs.stop_task(cluster=cluster, task=arn)
