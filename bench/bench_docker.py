"""Docker backend timings: image build from a warm cache, stack start to ready, teardown.

Goals (issue 4): stack start to ready under 30 s with images built; image build from a warm cache
reported. "Ready" means what `DockerBackend.__enter__` waits for: networks, the services answering
the world, every agent container healthy by the task definition's `agent health` check, the host
ports bound, and the sample apps started. A first request through the whole path (app -> agent ->
intake) is timed separately, since a user's first check is a trace arriving.

Usage: python bench/bench_docker.py [--rounds 3] [--instances 1] [--apps imdsv1]
Writes bench/results/docker.json and prints a table. Needs a Docker engine
(`sudo bash .ci/docker-engine.sh`).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab.backends import images  # noqa: E402
from lab.backends.docker import DockerBackend  # noqa: E402
from lab.stack import Stack  # noqa: E402
from lab.world import wait_until  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "docker.json"


def first_trace(backend: DockerBackend, variant: str) -> float:
    """Seconds from a request to the app until its trace is queryable at the intake."""
    app = backend.app_tasks[variant].containers[0]
    code, out = backend.run_in_instance(1, ["sh", "-c", (
        f"for i in $(seq 100); do curl -sf -m 2 http://{app.ipv4_addresses[0]}:8080/ >/dev/null && exit 0; "
        "sleep 0.1; done; exit 1")])
    if code != 0:
        raise RuntimeError(f"app never answered: {out}")
    t0 = time.monotonic()

    def arrived() -> bool:
        url = f"{backend.intake_url}/fakeintake/payloads?endpoint=/api/v0.2/traces&format=json"
        with urllib.request.urlopen(url, timeout=2) as resp:
            return any(tp.get("container_id") == app.docker_id
                       for p in json.load(resp)["payloads"] for tp in p["data"]["tracerPayloads"])

    wait_until(arrived, 30, what="the app's trace at the intake")
    return time.monotonic() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--apps", default="imdsv1", help="comma list of app variants")
    args = parser.parse_args()
    apps = tuple(a for a in args.apps.split(",") if a)

    client = images.docker_client()
    images.ensure_lab_image(client)  # whatever is stale is rebuilt here, outside the timings
    t0 = time.monotonic()
    base = images.ensure_base_image(client)
    base_check = time.monotonic() - t0
    warm_builds = []
    for _ in range(args.rounds):
        warm_builds.append(images.build_lab_image(client, rebuild=True).seconds)

    starts, stops, traces = [], [], []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="bench-docker-") as tmp:
            stack = Stack(instances=args.instances, apps=apps, run_dir=Path(tmp))
            backend = DockerBackend(stack, client=client)
            t0 = time.monotonic()
            backend.__enter__()
            try:
                starts.append(time.monotonic() - t0)
                if apps:
                    traces.append(first_trace(backend, apps[0]))
            finally:
                t1 = time.monotonic()
                backend.__exit__(None, None, None)
                stops.append(time.monotonic() - t1)

    def stat(xs: list[float]) -> dict:
        return {"median_s": round(statistics.median(xs), 2), "min_s": round(min(xs), 2),
                "max_s": round(max(xs), 2), "runs": len(xs)} if xs else {}

    result = {
        "bench": "docker",
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "docker": client.version().get("Version")},
        "instances": args.instances, "apps": list(apps),
        "base_image_cached_check_s": round(base_check, 3), "base_image_built": base.built,
        "lab_image_warm_build": stat(warm_builds),
        "stack_start_to_ready": stat(starts),
        "first_trace_after_request": stat(traces),
        "stack_teardown": stat(stops),
        "goal_start_to_ready_s": 30,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'measure':34} {'median':>8} {'min':>8} {'max':>8}")
    keys = ("lab_image_warm_build", "stack_start_to_ready", "first_trace_after_request", "stack_teardown")
    for key in keys:
        s = result[key]
        if s:
            print(f"{key:34} {s['median_s']:>7.2f}s {s['min_s']:>7.2f}s {s['max_s']:>7.2f}s")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
