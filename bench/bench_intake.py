"""Benchmark: the fake intake under agent-sized load, with a zero-loss check and memory per payload.

The intake runs as `ecs-lab fake intake` in its own process pinned to ONE core (the goal is
per core); the load generator runs here on the other core(s): concurrent loopback aiohttp
clients posting pre-encoded, agent-sized payloads:

- series: a ~20 KB zstd `/api/v2/series` MetricPayload (several hundred series, ECS tags),
- traces: a ~5 KB gzip `/api/v0.2/traces` AgentPayload (40 traces x 5 spans).

Each phase runs once per ingest mode: `full` (every body decoded on arrival, the default) and
`fast` (`--fast-ingest`: compression + top-level framing checked on arrival, decoded on query).

Phases:
1. sustained: an open-loop schedule at --rate payloads/s for --seconds (half series, half
   traces); latency is measured from each request's scheduled send time, so a server that
   falls behind shows it in p99 instead of hiding it (no coordinated omission).
2. max: closed loop, as fast as the intake answers, for --seconds.
   Both phases also record the intake's CPU time per payload: 1 / that is what one core can
   sustain, a figure a busy shared machine cannot distort the way it distorts wall-clock rates.
3. zero loss: every 2xx must appear in routestats (accepted == posted) and be queryable
   (paging `/fakeintake/payloads` with `since`/`limit` finds every sequence number).
4. decode: rendering stored payloads on query (`format=json`), payloads/s.
5. memory: intake RSS growth per 10k stored payloads of each kind (psutil).

    python bench/bench_intake.py [--rate 1000] [--seconds 10] [--concurrency 32]

Writes bench/results/intake.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab.fakes.intake.samples import series_body, traces_body  # noqa: E402

SERIES = "/api/v2/series"
TRACES = "/api/v0.2/traces"


def build_payloads() -> dict[str, list[tuple[bytes, dict]]]:
    # A few distinct bodies per kind so nothing benefits from identical-input caching.
    series = [series_body(n_series=800, encoding="zstd", frames=1 + i % 2, seed=i) for i in range(8)]
    traces = [traces_body(n_traces=40, spans_per_trace=5, encoding="gzip", seed=i) for i in range(8)]
    return {SERIES: series, TRACES: traces}


def start_intake(max_payloads: int, cpu: int | None, fast: bool = False) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "lab.cli", "fake", "intake", "--listen", "127.0.0.1:0",
           "--max-payloads", str(max_payloads), "--max-mb", "8192"] + (["--fast-ingest"] if fast else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    line = proc.stdout.readline()
    if not line.startswith("intake: "):
        proc.kill()
        raise SystemExit(f"intake did not start: {line!r}")
    if cpu is not None:
        os.sched_setaffinity(proc.pid, {cpu})
    return proc, line.split(" ", 1)[1].strip()


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def sustained(url: str, payloads, rate: float, seconds: float, concurrency: int) -> dict:
    """Open loop: request i is due at start + i/rate; workers take the next due request."""
    total = int(rate * seconds)
    schedule = [(i, SERIES if i % 2 == 0 else TRACES) for i in range(total)]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    next_index = 0
    start = time.perf_counter() + 0.2

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal next_index, errors
        while True:
            if next_index >= total:
                return
            i, route = schedule[next_index]
            next_index += 1
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            body, headers = payloads[route][i % len(payloads[route])]
            try:
                async with session.post(url + route, data=body, headers=headers) as resp:
                    await resp.read()
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1
            except aiohttp.ClientError:
                errors += 1
                continue
            latencies.append(time.perf_counter() - due)

    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, auto_decompress=False) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    ok = sum(v for k, v in statuses.items() if 200 <= k < 300)
    return {
        "target_rate": rate, "sent": total, "accepted_2xx": ok, "statuses": statuses, "errors": errors,
        "elapsed_s": round(elapsed, 2), "achieved_rate": round(ok / elapsed, 1),
        "latency_ms": {"p50": round(pct(latencies, 50) * 1000, 2), "p99": round(pct(latencies, 99) * 1000, 2),
                       "max": round(max(latencies) * 1000, 2) if latencies else None},
    }


async def closed_loop(url: str, payloads, seconds: float, concurrency: int) -> dict:
    counts = {SERIES: 0, TRACES: 0}
    latencies: list[float] = []
    bad = 0
    deadline = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession, n: int) -> None:
        nonlocal bad
        i = n
        while time.perf_counter() < deadline:
            route = SERIES if i % 2 == 0 else TRACES
            body, headers = payloads[route][i % len(payloads[route])]
            t0 = time.perf_counter()
            async with session.post(url + route, data=body, headers=headers) as resp:
                await resp.read()
                if 200 <= resp.status < 300:
                    counts[route] += 1
                else:
                    bad += 1
            latencies.append(time.perf_counter() - t0)
            i += 1

    start = time.perf_counter()
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, auto_decompress=False) as session:
        await asyncio.gather(*(worker(session, n) for n in range(concurrency)))
    elapsed = time.perf_counter() - start
    total = sum(counts.values())
    return {"accepted": total, "by_route": counts, "rejected_or_error": bad, "elapsed_s": round(elapsed, 2),
            "payloads_per_s": round(total / elapsed, 1),
            "latency_ms": {"p50": round(pct(latencies, 50) * 1000, 2),
                           "p99": round(pct(latencies, 99) * 1000, 2)}}


async def zero_loss(url: str, posted: dict[str, int]) -> dict:
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/fakeintake/routestats") as resp:
            routes = (await resp.json())["routes"]
        found: dict[str, int] = {}
        for route in (SERIES, TRACES):
            cursor, seqs = 0, set()
            while True:
                params = {"endpoint": route, "since": str(cursor), "limit": "2000"}
                async with session.get(url + "/fakeintake/payloads", params=params) as resp:
                    page = await resp.json()
                if not page["payloads"]:
                    break
                seqs.update(p["seq"] for p in page["payloads"])
                cursor = page["next_since"]
            found[route] = len(seqs)
    checks = {}
    for route in (SERIES, TRACES):
        st = routes.get(route, {})
        checks[route] = {"posted_2xx": posted[route], "accepted": st.get("accepted", 0),
                         "stored": st.get("count", 0), "evicted": st.get("evicted", 0),
                         "rejected": st.get("rejected", 0), "queryable": found[route]}
    ok = all(c["posted_2xx"] == c["accepted"] == c["stored"] + c["evicted"] and c["queryable"] == c["stored"]
             and c["rejected"] == 0 for c in checks.values())
    return {"ok": ok, "routes": checks}


async def decode_rate(url: str, route: str, count: int) -> dict:
    """Render `count` stored payloads as JSON through the query API (the lazy decode path)."""
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/fakeintake/routestats") as resp:
            last = (await resp.json())["last_seq"]
        since = max(0, last - 10 * count)
        t0 = time.perf_counter()
        params = {"endpoint": route, "format": "json", "since": str(since), "limit": str(count)}
        async with session.get(url + "/fakeintake/payloads", params=params) as resp:
            page = await resp.json()
        elapsed = time.perf_counter() - t0
    n = len(page["payloads"])
    return {"payloads": n, "seconds": round(elapsed, 3), "payloads_per_s": round(n / elapsed, 1)}


async def post_many(session: aiohttp.ClientSession, url: str, route: str, bodies, n: int) -> None:
    sem = asyncio.Semaphore(16)

    async def one(i: int) -> None:
        body, headers = bodies[i % len(bodies)]
        async with sem, session.post(url + route, data=body, headers=headers) as resp:
            await resp.read()

    await asyncio.gather(*(one(i) for i in range(n)))


async def memory(payloads, n: int, cpu: int | None) -> dict:
    out = {}
    for route in (SERIES, TRACES):
        proc, url = start_intake(max(n, 10), cpu)
        try:
            ps = psutil.Process(proc.pid)
            async with aiohttp.ClientSession(auto_decompress=False) as session:
                # Warm up (imports, first decoder use) before the baseline.
                body, headers = payloads[route][0]
                for _ in range(20):
                    async with session.post(url + route, data=body, headers=headers) as resp:
                        await resp.read()
                async with session.get(url + "/fakeintake/flushPayloads") as resp:
                    await resp.read()
                base = ps.memory_info().rss
                await post_many(session, url, route, payloads[route], n)
                grown = ps.memory_info().rss - base
            body_size = sum(len(b) for b, _ in payloads[route]) / len(payloads[route])
            out[route] = {"stored": n, "avg_body_bytes": round(body_size),
                          "rss_growth_mb": round(grown / 2**20, 1),
                          "mb_per_10k_payloads": round(grown / n * 10_000 / 2**20, 1),
                          "overhead_per_payload_bytes": round(grown / n - body_size)}
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    return out


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


async def run_mode(mode: str, payloads, args, server_cpu: int | None) -> dict:
    """All load phases against one intake process in ingest mode `mode` (full or fast)."""
    proc, url = start_intake(10_000_000, server_cpu, fast=(mode == "fast"))
    try:
        c0 = cpu_seconds(proc.pid)
        sus = await sustained(url, payloads, args.rate, args.seconds, args.concurrency)
        c1 = cpu_seconds(proc.pid)
        mx = await closed_loop(url, payloads, args.seconds, args.concurrency)
        c2 = cpu_seconds(proc.pid)
        # CPU time the intake spent per payload: what one core can sustain, whatever else the
        # machine runs (a shared machine starves the wall-clock figures, not this one).
        for phase, cpu, n in ((sus, c1 - c0, sus["accepted_2xx"]), (mx, c2 - c1, mx["accepted"])):
            phase["server_cpu_s"] = round(cpu, 2)
            phase["server_cpu_ms_per_payload"] = round(cpu / max(n, 1) * 1000, 3)
            phase["one_core_capacity_per_s"] = round(n / cpu, 1) if cpu else None
            phase["server_core_utilisation"] = round(cpu / phase["elapsed_s"], 2)
        posted = None
        if sus["accepted_2xx"] == sus["sent"]:
            posted = {SERIES: (sus["sent"] + 1) // 2 + mx["by_route"][SERIES],
                      TRACES: sus["sent"] // 2 + mx["by_route"][TRACES]}
        if posted:
            loss = await zero_loss(url, posted)
        else:
            loss = {"ok": False, "reason": "sustained phase had errors"}
        dec = {route: await decode_rate(url, route, 200) for route in (SERIES, TRACES)}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    return {"ingest": mode, "sustained": sus, "max_throughput": mx, "zero_loss": loss, "query_decode": dec}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--memory-payloads", type=int, default=10_000)
    parser.add_argument("--modes", default="full,fast", help="ingest modes to measure")
    args = parser.parse_args()

    cpus = sorted(os.sched_getaffinity(0))
    server_cpu = cpus[0] if len(cpus) > 1 else None
    if server_cpu is not None:
        os.sched_setaffinity(0, set(cpus[1:]))
    payloads = build_payloads()
    sizes = {r: round(sum(len(b) for b, _ in v) / len(v)) for r, v in payloads.items()}
    load_before = os.getloadavg()
    modes = {mode: await run_mode(mode, payloads, args, server_cpu) for mode in args.modes.split(",")}
    mem = await memory(payloads, args.memory_payloads, server_cpu)

    def met(r: dict) -> bool:
        capacity = r["max_throughput"]["one_core_capacity_per_s"] or 0
        return bool(capacity >= args.rate and r["zero_loss"].get("ok"))

    results = {
        "bench": "intake",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "server_pinned_to_cpu": server_cpu, "loadavg_before": [round(x, 2) for x in load_before],
                    "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
        "payload_bytes": sizes,
        "modes": modes,
        "memory": mem,
        "goal": {"payloads_per_s_one_core": args.rate, "zero_loss": True,
                 "met_by_mode": {m: met(r) for m, r in modes.items()}},
    }
    out = ROOT / "bench" / "results" / "intake.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")

    print(f"payload sizes: series {sizes[SERIES]} B (zstd), traces {sizes[TRACES]} B (gzip); "
          f"load average before: {load_before[0]:.1f} on {os.cpu_count()} cpus")
    print(f"{'ingest':<7}{'phase':<22}{'payloads/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'cpu ms/payload':>16}"
          f"{'1-core cap/s':>14}")
    for mode, r in modes.items():
        for label, ph, rate in ((f"sustained @ {int(args.rate)}/s", r["sustained"], "achieved_rate"),
                                ("max (closed loop)", r["max_throughput"], "payloads_per_s")):
            print(f"{mode:<7}{label:<22}{ph[rate]:>11}{ph['latency_ms']['p50']:>9}{ph['latency_ms']['p99']:>9}"
                  f"{ph['server_cpu_ms_per_payload']:>16}{ph['one_core_capacity_per_s'] or 0:>14}")
        for route, d in r["query_decode"].items():
            print(f"{mode:<7}{'query decode ' + route.split('/')[-1]:<22}{d['payloads_per_s']:>11}")
        print(f"{mode:<7}zero loss: {r['zero_loss'].get('ok')}  {json.dumps(r['zero_loss'].get('routes'))}")
    for route, m in mem.items():
        print(f"memory {route}: {m['mb_per_10k_payloads']} MB per 10k payloads "
              f"(body {m['avg_body_bytes']} B, overhead {m['overhead_per_payload_bytes']} B/payload)")
    print(f"goal (>= {int(args.rate)}/s on one core, zero loss) met: {results['goal']['met_by_mode']}"
          f"  -> {out.relative_to(ROOT)}")


if __name__ == "__main__":
    asyncio.run(main())
