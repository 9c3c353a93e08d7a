"""Fake IMDS throughput and latency under concurrent load, against the Datadog agent's 300 ms timeout.

The server runs as its own process (`ecs-lab fake imds`), the load comes from an aiohttp client in
this one, so client and server do not share an interpreter lock. Three shapes of traffic:

- v1:     tokenless `GET /latest/meta-data/local-ipv4` on kept-alive connections (the docs' curl).
- v2:     the same GET with a token fetched once per worker (botocore / SDK style).
- agent:  a new connection per call, `PUT /latest/api/token` then `GET .../instance-id`, each with
          the agent's 300 ms timeout (`ec2_metadata_timeout`), counted as a timeout when exceeded.

Usage: python bench/bench_imds.py [--requests 5000] [--concurrency 32] [--seconds 15]
Writes bench/results/imds.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import queue
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp

AGENT_TIMEOUT_S = 0.300
TTL = {"X-aws-ec2-metadata-token-ttl-seconds": "21600"}


def start_server() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "lab.cli", "fake", "imds", "--listen", "127.0.0.1:0",
                             "--log-level", "warning"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        if line.startswith("export AWS_EC2_METADATA_SERVICE_ENDPOINT="):
            return proc, line.strip().split("=", 1)[1]
    proc.kill()
    raise SystemExit("the IMDS server did not print its URL within 20 s")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[idx]


async def run_mode(mode: str, url: str, total: int, concurrency: int, max_seconds: float) -> dict:
    latencies: list[float] = []
    errors = 0
    timeouts = 0
    issued = 0
    deadline = time.monotonic() + max_seconds
    keepalive = mode != "agent"
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=not keepalive)
    timeout = aiohttp.ClientTimeout(total=AGENT_TIMEOUT_S if mode == "agent" else 10)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            nonlocal errors, timeouts, issued
            token = None
            if mode == "v2":
                async with session.put(url + "/latest/api/token", headers=TTL) as resp:
                    token = await resp.text()
            while issued < total and time.monotonic() < deadline:
                issued += 1
                start = time.perf_counter()
                try:
                    if mode == "agent":
                        async with session.put(url + "/latest/api/token", headers=TTL) as resp:
                            token = await resp.text()
                        async with session.get(url + "/latest/meta-data/instance-id",
                                               headers={"X-aws-ec2-metadata-token": token}) as resp:
                            await resp.read()
                            ok = resp.status == 200
                    else:
                        headers = {"X-aws-ec2-metadata-token": token} if token else {}
                        async with session.get(url + "/latest/meta-data/local-ipv4", headers=headers) as resp:
                            await resp.read()
                            ok = resp.status == 200
                    if not ok:
                        errors += 1
                except TimeoutError:
                    timeouts += 1
                    continue
                except aiohttp.ClientError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - start)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began

    calls_per_op = 2 if mode == "agent" else 1
    return {
        "mode": mode,
        "concurrency": concurrency,
        "operations": len(latencies),
        "http_requests_per_op": calls_per_op,
        "errors": errors,
        "timeouts_over_300ms": timeouts,
        "seconds": round(elapsed, 3),
        "ops_per_s": round(len(latencies) / elapsed, 1) if elapsed else 0.0,
        "requests_per_s": round(len(latencies) * calls_per_op / elapsed, 1) if elapsed else 0.0,
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "max_ms": round(max(latencies) * 1000, 2) if latencies else None,
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2) if latencies else None,
        "over_agent_timeout": sum(1 for x in latencies if x > AGENT_TIMEOUT_S) + timeouts,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=5000, help="operations per mode")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=15.0, help="time cap per mode")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "imds.json"))
    args = ap.parse_args()

    proc, url = start_server()
    try:
        # agent@1 is the realistic agent: one per instance, calling serially.
        plan = [("v1", args.concurrency), ("v2", args.concurrency), ("agent", args.concurrency), ("agent", 1)]
        results = [asyncio.run(run_mode(m, url, min(args.requests, 1000) if c == 1 else args.requests, c,
                                        args.seconds)) for m, c in plan]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()

    doc = {
        "benchmark": "imds",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform()},
        "settings": {"requests_per_mode": args.requests, "concurrency": args.concurrency,
                     "seconds_cap": args.seconds, "agent_timeout_ms": AGENT_TIMEOUT_S * 1000},
        "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")

    cols = ("mode", "concurrency", "operations", "requests_per_s", "p50_ms", "p99_ms", "max_ms", "errors",
            "over_agent_timeout")
    print(f"fake IMDS, server in its own process ({os.cpu_count()} CPUs shared with the client)")
    print("  ".join(f"{c:>14}" for c in cols))
    for r in results:
        print("  ".join(f"{r[c]!s:>14}" for c in cols))
    worst = max(r["p99_ms"] for r in results)
    verdict = "within" if worst < AGENT_TIMEOUT_S * 1000 else "OVER"
    print(f"worst p99 {worst} ms: {verdict} the agent's {AGENT_TIMEOUT_S * 1000:.0f} ms IMDS timeout")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
