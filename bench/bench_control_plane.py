"""Registration-to-running for the DAEMON agent service, on 1 and 4 instances.

Measures what a user waits for after `aws ecs register-task-definition` + `create-service
--scheduling-strategy DAEMON`: the time until `describe-tasks` shows one RUNNING agent task per
instance. The clock starts before the registration call and stops at the first describe that shows
them all, so it covers the service scheduler, the instance agents' polling, translation and the
backend start.

    python bench/bench_control_plane.py [--runner fake|local] [--repeat 3]

`fake` marks containers running at once (the control plane + scheduling cost alone); `local` runs
the docs' agent definition as the emulated agent process on each instance (the local backend).
Results: a table on stdout and bench/results/control_plane.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab.ecs.cluster import EcsCluster  # noqa: E402
from lab.ecs.control_plane import ControlPlane  # noqa: E402
from lab.world import Cluster, World, wait_until  # noqa: E402

TASKDEF = json.loads((ROOT / "lab" / "ecs" / "taskdefs" / "datadog-agent-ecs-apm.json").read_text())


class FakeRunner:
    name = "fake"

    def __init__(self, world: World) -> None:
        self.world = world

    def start_task(self, instance, task, specs) -> None:
        for c in task.containers:
            c.mark_running()
        self.world.touch()

    def stop_task(self, task_arn: str) -> None:
        found = self.world.find_task(task_arn)
        if found:
            for c in found[1].containers:
                c.mark_stopped(0)


def one_run(cp: ControlPlane, n: int, runner_kind: str, subnet_octet: int) -> float:
    world = World(Cluster(name=f"bench-{uuid.uuid4().hex[:8]}"))
    with ExitStack() as stack:
        if runner_kind == "local":
            from lab.backends.local import LocalBackend
            from lab.stack import Ports, Stack

            st = Stack(instances=0, apps=(), subnet=f"127.{subnet_octet}", ports=Ports.ephemeral(),
                       cluster=world.cluster.name, run_dir=ROOT / ".lab" / "bench-run")
            runner = stack.enter_context(LocalBackend(st, world=world))
            cluster = stack.enter_context(EcsCluster(world, runner, control_plane=cp, agent_interval=0.1))
            for i in range(1, n + 1):
                cluster.add_instance(st.private_ip(i))
        else:
            runner = FakeRunner(world)
            cluster = stack.enter_context(EcsCluster(world, runner, control_plane=cp, agent_interval=0.1))
            for i in range(1, n + 1):
                cluster.add_instance(f"127.{subnet_octet}.1.{i}")
        ecs = cp.clients.ecs
        t0 = time.perf_counter()
        ecs.register_task_definition(**TASKDEF)
        ecs.create_service(cluster=world.cluster.name, serviceName="datadog-agent",
                           taskDefinition=TASKDEF["family"], schedulingStrategy="DAEMON")

        def all_running() -> bool:
            arns = ecs.list_tasks(cluster=world.cluster.name, serviceName="datadog-agent")["taskArns"]
            if len(arns) < n:
                return False
            tasks = ecs.describe_tasks(cluster=world.cluster.name, tasks=arns)["tasks"]
            return sum(t["lastStatus"] == "RUNNING" for t in tasks) >= n

        wait_until(all_running, timeout=120, interval=0.02, what=f"{n} RUNNING daemon tasks")
        elapsed = time.perf_counter() - t0
        ecs.update_service(cluster=world.cluster.name, service="datadog-agent", desiredCount=0)
        ecs.delete_service(cluster=world.cluster.name, service="datadog-agent", force=True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runner", choices=("fake", "local"), default="fake")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with ControlPlane(port=0) as cp:
        for n in (1, 4):
            times = [one_run(cp, n, args.runner, 90 + k) for k in range(args.repeat)]
            rows.append({"instances": n, "runner": args.runner, "runs": args.repeat,
                         "median_s": round(statistics.median(times), 3), "max_s": round(max(times), 3),
                         "min_s": round(min(times), 3)})
    print(f"{'instances':>9} {'runner':>6} {'median s':>9} {'min s':>7} {'max s':>7}")
    for r in rows:
        print(f"{r['instances']:>9} {r['runner']:>6} {r['median_s']:>9.3f} {r['min_s']:>7.3f} "
              f"{r['max_s']:>7.3f}")
    suffix = "" if args.runner == "fake" else "_" + args.runner
    out = ROOT / "bench" / "results" / f"control_plane{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "daemon service registration-to-running", "rows": rows,
                               "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=2))
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
