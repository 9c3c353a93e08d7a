"""Benchmark: requests/s and latency of the fake ECS metadata endpoints the Datadog agent polls.

The server runs as `ecs-lab fake ecs` in its own process (as in the lab), with a tasks file of
N tasks; an aiohttp client hammers `/v4/<token>/task` and `/v1/tasks` for a few seconds at
concurrency 1 (an agent's polling) and 16 (many agents / a busy node).

    python bench/bench_ecs_metadata.py [--seconds 5] [--tasks 20]

Writes bench/results/ecs_metadata.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

RESULTS = Path(__file__).parent / "results" / "ecs_metadata.json"


def start_server(tasks: int) -> tuple[subprocess.Popen, str, str]:
    spec = {"tasks": [{"family": f"svc{i}", "revision": 1, "service": f"svc{i}",
                       "containers": [{"name": n, "image": f"my/{n}:1", "ports": [{"containerPort": 8080}]}
                                      for n in ("app", "sidecar", "log-router")]} for i in range(tasks)]}
    fh = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump(spec, fh)
    fh.close()
    proc = subprocess.Popen([sys.executable, "-m", "lab.cli", "fake", "ecs", "--introspection", "127.0.0.1:0",
                             "--task-metadata", "127.0.0.1:0", "--tasks-file", fh.name],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = ""
    deadline = time.monotonic() + 30
    while "serving" not in out:
        line = proc.stdout.readline()
        if not line or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("server did not start:\n" + out)
        out += line
    intro = re.search(r"ECS introspection of \S+: (http://\S+)", out).group(1)
    v4 = re.search(r"ECS_CONTAINER_METADATA_URI_V4=(\S+)", out).group(1)
    return proc, intro, v4


async def hammer(url: str, seconds: float, concurrency: int) -> dict:
    latencies: list[float] = []
    errors = 0
    stop_at = time.monotonic() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            async with session.get(url) as r:
                await r.read()
                if r.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - t0)

    started = time.monotonic()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    elapsed = time.monotonic() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 3),
        "max_ms": round(latencies[-1] * 1000, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--tasks", type=int, default=20)
    args = ap.parse_args()
    proc, intro, v4 = start_server(args.tasks)
    rows = []
    try:
        for name, url in (("/v4/<token>/task", v4 + "/task"), ("/v1/tasks", intro + "/v1/tasks")):
            for conc in (1, 16):
                r = asyncio.run(hammer(url, args.seconds, conc))
                rows.append({"endpoint": name, "concurrency": conc, "tasks": args.tasks, **r})
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)
    print(f"{'endpoint':<20}{'conc':>6}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for r in rows:
        print(f"{r['endpoint']:<20}{r['concurrency']:>6}{r['rps']:>10}{r['p50_ms']:>10}{r['p99_ms']:>10}"
              f"{r['errors']:>8}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "bench": "ecs_metadata", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(), "machine": platform.machine(), "seconds": args.seconds,
        "results": rows,
    }, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
