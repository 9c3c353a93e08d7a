"""Benchmark: container log lines/s to the intake, through the FireLens log router and through the
agent's container log collection, end to end in a local lab, with a no-loss check.

One local lab (its own loopback subnet, ephemeral ports; agent with DD_LOGS_ENABLED and
container_collect_all off, so it collects only the labelled container). Each round runs two tasks
through the lab's control plane, each of whose app container prints --lines lines of ~100 bytes
(`<marker> <i> xxxx...`) as fast as Python writes them, then sleeps:

- router: the app logs with `awsfirelens` (the FireLens document's options, `compress gzip`); its
  output is shipped over the forward protocol to the task's log router (the lab's stand-in,
  `python -m lab.log_router`), whose datadog output posts to the intake;
- agent: the app has a `com.datadoghq.ad.logs` label; the agent tails its output and posts zstd
  batches (1000 entries at most, every batch_wait) to the intake.

Measured per path: the seconds from the first line at the intake to the last (the app writes its
lines in well under a second, so the pipeline drains a backlog: lines/s = lines / that), the time
from run-task to the last line, and the CPU seconds the router process or the agent process used
(lines per CPU second is what one core of that component sustains, which a busy machine distorts
less than wall-clock rates). No loss: every index 0..N-1 exactly once at the intake.

    python bench/bench_logs.py [--lines 50000] [--rounds 2]

Writes bench/results/logs.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import boto3
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.peers import lab_tree  # noqa: E402
from lab.fakes.intake.client import IntakeClient  # noqa: E402
from lab.pytest_plugin import start_lab, stop_lab  # noqa: E402
from lab.tasks import LAB_IMAGE  # noqa: E402

LOGS = "/api/v2/logs"
LINE_PAD = "x" * 80


def _app(marker: str, lines: int) -> dict:
    script = (f"import sys\nw = sys.stdout.write\n"
              f"for i in range({lines}):\n    w('{marker} %d {LINE_PAD}\\n' % i)\n"
              "sys.stdout.flush()\nimport time\ntime.sleep(600)\n")
    return {"name": "app", "image": LAB_IMAGE, "memory": 128, "essential": True,
            "entryPoint": ["python", "-c"], "command": [script]}


def router_taskdef(marker: str, lines: int) -> dict:
    app = _app(marker, lines)
    app["logConfiguration"] = {"logDriver": "awsfirelens", "options": {
        "Name": "datadog", "dd_message_key": "log", "apikey": "0" * 32, "dd_service": "bench-router",
        "dd_source": "bench", "dd_tags": "env:bench", "provider": "ecs",
        "Host": "http-intake.logs.datadoghq.com", "TLS": "on", "compress": "gzip"}}
    router = {"name": "log-router", "image": "amazon/aws-for-fluent-bit:latest", "essential": True,
              "memory": 128, "firelensConfiguration": {"type": "fluentbit",
                                                       "options": {"enable-ecs-log-metadata": "true"}}}
    return {"family": "bench-logs-router", "containerDefinitions": [app, router]}


def agent_taskdef(marker: str, lines: int) -> dict:
    app = _app(marker, lines)
    app["dockerLabels"] = {"com.datadoghq.ad.logs": '[{"source": "bench", "service": "bench-agent"}]'}
    return {"family": "bench-logs-agent", "containerDefinitions": [app]}


def _process_pid(lab, name_part: str) -> int | None:
    for name, p in lab.refresh().state.get("processes", {}).items():
        if name_part in name and p.get("running"):
            return p["pid"]
    return None


def _cpu(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        proc = psutil.Process(pid)
        total = proc.cpu_times().user + proc.cpu_times().system
        for child in proc.children(recursive=True):
            t = child.cpu_times()
            total += t.user + t.system
        return total
    except psutil.Error:
        return 0.0


def _received_at(item: dict) -> float:
    """When the intake stored a payload (its Go-style RFC 3339 `timestamp`), as a Unix time."""
    return datetime.strptime(item["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def measure(lab, path: str, lines: int, timeout: float) -> dict:
    marker = uuid.uuid4().hex[:10]
    # A session sees only what arrives from now on; arrival times are the intake's own, so this
    # process polls seldom (it shares its interpreter with the lab's intake).
    intake = IntakeClient(lab.intake_url).open_session(f"bench-{path}")
    ecs = boto3.client("ecs", endpoint_url=lab.state["control_plane"], region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    td = router_taskdef(marker, lines) if path == "router" else agent_taskdef(marker, lines)
    ecs.register_task_definition(**td)
    agent_pid = lab.agents[0].pid
    cpu_agent0 = _cpu(agent_pid)
    t0 = time.time()
    arn = ecs.run_task(cluster=lab.cluster_name, taskDefinition=td["family"])["tasks"][0]["taskArn"]
    seen: dict[int, int] = {}
    arrivals: list[float] = []
    router_pid = None
    cpu_router0 = 0.0
    cursor = None
    try:
        while time.time() - t0 < timeout and len(seen) < lines:
            if path == "router" and router_pid is None:
                router_pid = _process_pid(lab, "log-router")
                cpu_router0 = _cpu(router_pid)
            page = intake.payloads_page(LOGS, since=cursor)
            cursor = page.get("next_since", cursor)
            for item in page["payloads"]:
                got = [e for e in item["data"] if str(e.get("message", "")).startswith(marker)]
                if got:
                    arrivals.append(_received_at(item))
                for e in got:
                    i = int(e["message"].split()[1])
                    seen[i] = seen.get(i, 0) + 1
            if len(seen) < lines:
                time.sleep(1.0)
        cpu = _cpu(router_pid) - cpu_router0 if path == "router" else _cpu(agent_pid) - cpu_agent0
    finally:
        ecs.stop_task(cluster=lab.cluster_name, task=arn)
    received = sum(seen.values())
    first, last = (min(arrivals), max(arrivals)) if arrivals else (None, None)
    drain = (last - first) if arrivals else None
    return {
        "path": path, "lines": lines, "received": received, "distinct": len(seen),
        "lost": lines - len(seen), "duplicated": received - len(seen), "payloads": len(arrivals),
        "run_task_to_last_s": round(last - t0, 2) if last else None,
        "first_to_last_s": round(drain, 2) if drain is not None else None,
        "lines_per_s": round(lines / drain, 0) if drain else None,
        "cpu_s": round(cpu, 2), "lines_per_cpu_s": round(lines / cpu, 0) if cpu > 0 else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args()
    lab = start_lab(apps=(), agent_env={"DD_LOGS_ENABLED": "true"})
    rows = []
    try:
        for r in range(args.rounds):
            for path in ("router", "agent") if r % 2 == 0 else ("agent", "router"):
                row = {"round": r + 1, **measure(lab, path, args.lines, args.timeout)}
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        stop_lab(lab)
    result = {
        "bench": "logs", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "loadavg_at_end": os.getloadavg()},
        "lab": lab_tree(), "args": vars(args), "rows": rows,
    }
    out = ROOT / "bench" / "results" / "logs.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'path':8} {'round':>5} {'lines/s':>9} {'lines/cpu-s':>12} {'lost':>5} {'dup':>4} {'e2e s':>7}")
    for row in rows:
        print(f"{row['path']:8} {row['round']:>5} {row['lines_per_s'] or '-':>9} "
              f"{row['lines_per_cpu_s'] or '-':>12} {row['lost']:>5} {row['duplicated']:>4} "
              f"{row['run_task_to_last_s'] or '-':>7}")
    print(f"wrote {out}; load average {os.getloadavg()}")
    return 0 if all(r["lost"] == 0 and r["duplicated"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
