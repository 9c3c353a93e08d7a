"""A DAEMON redeploy while the old revision's tasks are still starting (PENDING, as an agent task is
until its health check passes): the new revision's tasks are placed, and when the old ones' starts
settle (reported RUNNING, on their way out) the service scheduler stops only the old ones.

Before the fix, the old task reported RUNNING counted again as one of the service's tasks on its
instance, and the surplus rule (one task per instance, the first ARN kept) stopped the new task half
the time: on the docker backend its replacement then started beside the new task's still running
container and failed on the host port it held (CI, tests/docker/test_stack.py, host-mode agents)."""

from __future__ import annotations

from lab.world import wait_until

INSTANCES = 6  # the old rule stopped the new task on each instance with a chance of 1/2


def _taskdef(ecs, revision_env: str) -> str:
    return ecs.register_task_definition(family="daemon-redeploy", containerDefinitions=[{
        "name": "agent", "image": "ecs-agent-lab/lab:latest", "memory": 64, "essential": True,
        "environment": [{"name": "REVISION", "value": revision_env}]}])["taskDefinition"]["taskDefinitionArn"]


def test_old_tasks_settling_late_never_stop_the_new_revisions(control_plane, world):
    ecs = control_plane.clients.ecs
    cluster = world.cluster.name
    control_plane.ensure_cluster(cluster)
    for i in range(INSTANCES):
        control_plane.add_instance(world, f"10.77.0.{10 + i}")
    first = _taskdef(ecs, "1")
    ecs.create_service(cluster=cluster, serviceName="agent", taskDefinition=first,
                       schedulingStrategy="DAEMON")

    def tasks(desired: str = "RUNNING") -> list[dict]:
        arns = ecs.list_tasks(cluster=cluster, serviceName="agent", desiredStatus=desired)["taskArns"]
        return ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"] if arns else []

    old = wait_until(lambda: (lambda ts: ts if len(ts) == INSTANCES else None)(tasks()), 20,
                     what=f"{INSTANCES} tasks of the first revision")
    assert {t["lastStatus"] for t in old} <= {"PENDING", "PROVISIONING"}, "nobody started them yet"

    second = _taskdef(ecs, "2")
    ecs.update_service(cluster=cluster, service="agent", taskDefinition=second)
    new = wait_until(lambda: (lambda ts: ts if len(ts) == INSTANCES and all(
        t["taskDefinitionArn"] == second for t in ts) else None)(tasks()), 20,
        what=f"{INSTANCES} tasks of the second revision placed while the first are still PENDING")
    per_instance = {t["containerInstanceArn"] for t in new}
    assert len(per_instance) == INSTANCES, "one task of the new revision per instance"

    # The old tasks' starts settle now: their instance agents report them RUNNING (they stop them on
    # their next pass, as the lab's instance agent does with a task asked to stop mid-start).
    for t in old:
        ecs.submit_task_state_change(cluster=cluster, task=t["taskArn"], status="RUNNING")
    scheduler = control_plane.service_scheduler
    for _ in range(3):
        scheduler.reconcile()
    still = {t["taskArn"] for t in tasks()}
    stopped_new = [t["taskArn"] for t in new if t["taskArn"] not in still]
    assert not stopped_new, (f"the scheduler stopped {len(stopped_new)} of the new revision's tasks when "
                             "the old ones' starts settled; only the old ones are leaving")
    assert {t["taskArn"] for t in tasks("STOPPED")} >= {t["taskArn"] for t in old}
    ecs.delete_service(cluster=cluster, service="agent", force=True)
