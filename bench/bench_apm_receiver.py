"""APM receiver throughput: the lab's emulated agent against ddapm-test-agent (and the serverless-compat
trace mini-agent), fed the same pre-encoded msgpack `/v0.4/traces` payloads by one aiohttp client.

Each receiver runs alone in its own process on 127.0.0.1 while the client (this process) sends a
bounded number of requests (`--requests`, capped by `--seconds`) from `--concurrency` concurrent
senders over kept-alive connections. Every request carries `--traces` traces of `--spans` spans,
encoded once before any timing starts. Measured per receiver: accepted spans/s (2xx answers),
request latency p50/p99, errors; then what the receiver says it got (the lab's `/agent/status`,
the test agent's `/test/traces`) and, for the lab, the spans that reached the fake intake as
`AgentPayload`s on `/api/v0.2/traces` (proof it is not measuring a black hole).

Usage: python bench/bench_apm_receiver.py [--requests 300] [--concurrency 8] [--rounds 2]
Writes bench/results/apm_receiver.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import aiohttp
import msgpack

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402

from lab.world import wait_until  # noqa: E402

HEADERS = {
    "Content-Type": "application/msgpack",
    "Datadog-Meta-Lang": "python",
    "Datadog-Meta-Lang-Version": platform.python_version(),
    "Datadog-Meta-Lang-Interpreter": "CPython",
    "Datadog-Meta-Tracer-Version": "4.0.0",
}


def make_payloads(count: int, traces: int, spans: int, seed: int = 7) -> list[bytes]:
    """`count` distinct v0.4 bodies: `traces` traces of `spans` spans, shaped like a web request
    traced by ddtrace (a root `flask.request` span and children, the tags ddtrace sets)."""
    rnd = random.Random(seed)
    bodies = []
    now = time.time_ns()
    for _ in range(count):
        batch = []
        for _ in range(traces):
            trace_id = rnd.getrandbits(63) or 1
            root_id = rnd.getrandbits(63) or 1
            trace = []
            for i in range(spans):
                span_id = root_id if i == 0 else rnd.getrandbits(63) or 1
                span = {
                    "trace_id": trace_id,
                    "span_id": span_id,
                    "parent_id": 0 if i == 0 else root_id,
                    "service": "bench-web",
                    "name": "flask.request" if i == 0 else "postgres.query",
                    "resource": "GET /orders" if i == 0 else "SELECT * FROM orders WHERE id = ?",
                    "type": "web" if i == 0 else "sql",
                    "start": now + i * 1000,
                    "duration": 1_500_000 - i * 1000,
                    "error": 0,
                    "meta": {
                        "env": "bench",
                        "version": "1.0.0",
                        "runtime-id": "4f8e0b3c2a1d4e5f9a8b7c6d5e4f3a2b",
                        "_dd.p.dm": "-0",
                        "component": "flask" if i == 0 else "psycopg",
                        "span.kind": "server" if i == 0 else "client",
                    },
                    "metrics": {"_sampling_priority_v1": 1.0, "_dd.top_level": 1.0 if i == 0 else 0.0},
                }
                trace.append(span)
            batch.append(trace)
        bodies.append(msgpack.packb(batch))
    return bodies


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


async def send_load(url: str, bodies: list[bytes], traces_per_body: int, total: int, concurrency: int,
                    max_seconds: float) -> dict:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    issued = 0
    accepted_requests = 0
    deadline = time.monotonic() + max_seconds
    headers = {**HEADERS, "X-Datadog-Trace-Count": str(traces_per_body)}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30),
                                     trust_env=False) as session:

        async def sender(k: int) -> None:
            nonlocal issued, accepted_requests
            while issued < total and time.monotonic() < deadline:
                body = bodies[issued % len(bodies)]
                issued += 1
                start = time.perf_counter()
                try:
                    async with session.put(url, data=body, headers=headers) as resp:
                        await resp.read()
                        status = resp.status
                except (aiohttp.ClientError, TimeoutError) as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    continue
                latencies.append(time.perf_counter() - start)
                if 200 <= status < 300:
                    accepted_requests += 1
                else:
                    errors[f"HTTP {status}"] = errors.get(f"HTTP {status}", 0) + 1

        began = time.perf_counter()
        await asyncio.gather(*(sender(k) for k in range(concurrency)))
        elapsed = time.perf_counter() - began
    return {"requests": issued, "accepted_requests": accepted_requests, "seconds": elapsed,
            "latencies": latencies, "errors": errors}


def warm_up(kind: str, receiver, intake, args: argparse.Namespace, bodies: list[bytes]) -> tuple[int, int]:
    """The same untimed requests to every receiver before its timed run: connections, caches and
    the lab agent's decoder processes (started by its first large request) are up, as on an agent
    that has been running. Returns what the receiver and the intake hold by then (subtracted)."""
    if args.warmup <= 0:
        return 0, 0
    warm = asyncio.run(send_load(receiver.traces_url, bodies, args.traces, args.warmup, args.concurrency,
                                 args.seconds))
    spans = warm["accepted_requests"] * args.traces * args.spans
    if kind.startswith("lab"):
        wait_until(lambda: ((receiver.status().get("apm") or {}).get("decoders") or {}).get("ready")
                   or not ((receiver.status().get("apm") or {}).get("decoders") or {}).get("processes"),
                   30, interval=0.2, what="the lab agent's decoder processes")
    if intake is not None:
        try:
            wait_until(lambda: intake.trace_spans() >= spans, 30 if kind.startswith("lab") else 5,
                       interval=0.3, what="the warm-up spans at the intake")
        except TimeoutError:
            pass
    counted = receiver.spans_received() if kind.startswith("lab") or kind == "ddapm-test-agent" else 0
    return counted, (intake.trace_spans() if intake is not None else 0)


def run_one(kind: str, args: argparse.Namespace, bodies: list[bytes]) -> dict:
    spans_per_request = args.traces * args.spans
    intake = peers.FakeIntake().start() if kind.startswith("lab") or kind == "serverless-compat" else None
    try:
        if kind == "lab":
            receiver = peers.LabAgent(intake.url)
        elif kind == "lab-in-process":
            # The same agent decoding every request in its own process (no decoder processes).
            receiver = peers.LabAgent(intake.url, {"LAB_AGENT_APM_DECODER_PROCESSES": "0"})
        elif kind == "ddapm-test-agent":
            receiver = peers.TestAgent()
        else:
            receiver = peers.ServerlessCompat(apm_intake_url=intake.url)
        with receiver:
            counted0, intake0 = warm_up(kind, receiver, intake, args, bodies)
            cpu_before = receiver.cpu_seconds()
            load = asyncio.run(send_load(receiver.traces_url, bodies, args.traces, args.requests,
                                         args.concurrency, args.seconds))
            accepted_spans = load["accepted_requests"] * spans_per_request
            if kind.startswith("lab"):
                # The lab's work per span includes building and sending the AgentPayload.
                try:
                    wait_until(lambda: intake.trace_spans() - intake0 >= accepted_spans, 60, interval=0.5,
                               what="the lab agent's spans at the intake")
                except TimeoutError:
                    pass
            cpu = receiver.cpu_seconds() - cpu_before
            row = {
                "receiver": kind,
                "requests": load["requests"],
                "accepted_spans": accepted_spans,
                "seconds": round(load["seconds"], 3),
                "spans_per_s": round(accepted_spans / load["seconds"]) if load["seconds"] else 0,
                "requests_per_s": round(load["accepted_requests"] / load["seconds"], 1),
                "p50_ms": round(percentile(load["latencies"], 50) * 1000, 1),
                "p99_ms": round(percentile(load["latencies"], 99) * 1000, 1),
                "max_ms": round(max(load["latencies"]) * 1000, 1) if load["latencies"] else None,
                "mean_ms": round(statistics.fmean(load["latencies"]) * 1000, 1)
                if load["latencies"] else None,
                "receiver_cpu_s": round(cpu, 2),
                "cpu_us_per_span": round(cpu * 1e6 / accepted_spans, 1) if accepted_spans else None,
                "errors": sum(load["errors"].values()),
                "errors_by_kind": load["errors"],
            }
            # What the receiver itself counted, and (lab) what it forwarded to the intake.
            if kind.startswith("lab"):
                row["receiver_counted_spans"] = receiver.spans_received() - counted0
                try:
                    wait_until(lambda: intake.trace_spans() - intake0 >= row["receiver_counted_spans"], 60,
                               interval=0.5, what="the lab agent's spans at the intake")
                except TimeoutError:
                    pass
                row["forwarded_spans_at_intake"] = intake.trace_spans() - intake0
                row["decoders"] = (receiver.status().get("apm") or {}).get("decoders")
                row["forwarder"] = receiver.forwarded("traces")
            elif kind == "ddapm-test-agent":
                row["receiver_counted_spans"] = receiver.spans_received() - counted0
            else:
                row["receiver_counted_spans"] = None
                try:
                    wait_until(lambda: intake.trace_spans() - intake0 >= accepted_spans, 30, interval=0.5,
                               what="serverless-compat spans at the intake")
                except TimeoutError:
                    pass
                row["forwarded_spans_at_intake"] = intake.trace_spans() - intake0
        return row
    finally:
        if intake is not None:
            intake.__exit__(None, None, None)


COLUMNS = ["round", "receiver", "spans_per_s", "cpu_us_per_span", "p50_ms", "p99_ms", "errors",
            "accepted_spans", "receiver_counted_spans", "forwarded_spans_at_intake"]


def print_table(results: list[dict], title: str) -> None:
    peers.print_rounds(results, title, COLUMNS, width=170)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=300, help="requests per receiver (bounded)")
    ap.add_argument("--seconds", type=float, default=20.0, help="time cap per receiver")
    ap.add_argument("--concurrency", type=int, default=8, help="concurrent senders")
    ap.add_argument("--traces", type=int, default=100, help="traces per request")
    ap.add_argument("--spans", type=int, default=10, help="spans per trace")
    ap.add_argument("--rounds", type=int, default=1, help="repeat the whole comparison (noise)")
    ap.add_argument("--warmup", type=int, default=30, help="untimed requests to each receiver first")
    ap.add_argument("--receivers", default="lab,ddapm-test-agent,serverless-compat",
                    help="comma list: lab, lab-in-process, ddapm-test-agent, serverless-compat")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "apm_receiver.json"))
    args = ap.parse_args()

    bodies = make_payloads(16, args.traces, args.spans)
    receivers = [r.strip() for r in args.receivers.split(",") if r.strip()]
    load_before = os.getloadavg()
    results = []
    for rnd in range(1, args.rounds + 1):
        for kind in receivers:
            row = run_one(kind, args, bodies)
            row["round"] = rnd
            results.append(row)
            print(f"round {rnd} {kind}: {row['spans_per_s']} spans/s, p99 {row['p99_ms']} ms", flush=True)

    best: dict[str, int] = {}
    median: dict[str, float] = {}
    for kind in receivers:
        rates = [r["spans_per_s"] for r in results if r["receiver"] == kind and r["errors"] == 0]
        if rates:
            best[kind] = max(rates)
            median[kind] = statistics.median(rates)
    doc = {
        "benchmark": "apm_receiver",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform(), "loadavg_before": load_before, "lab": peers.lab_tree(),
                    "loadavg_after": os.getloadavg()},
        "settings": {"requests": args.requests, "seconds_cap": args.seconds, "concurrency": args.concurrency,
                     "traces_per_request": args.traces, "spans_per_trace": args.spans,
                     "body_bytes": [len(b) for b in bodies[:1]][0], "rounds": args.rounds},
        "best_spans_per_s": best,
        "median_spans_per_s": median,
        "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print_table(results, f"APM /v0.4/traces, {args.traces}x{args.spans} spans per request, "
                         f"{args.concurrency} senders, {os.cpu_count()} CPUs, load {load_before[0]:.1f}")
    print("best spans/s (error-free rounds):", json.dumps(best))
    print("median spans/s (error-free rounds):", json.dumps(median))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
