"""The dashboard's update latency and CPU cost on a local lab.

- latency: an exercise breaks the traces hop of the apps (`apm-non-local-traffic`: a new agent
  revision through the control plane); timed from the moment the new agent tasks run (the break is
  in force) until the dashboard's snapshot shows `app-apm:web-imdsv1` dark, and from the fix's
  rollout until it is lit again. Median and worst over the rounds.
- CPU: the sampler thread's CPU seconds per wall second while the lab runs (the HTTP thread and the
  traffic it sends the apps are small next to it), from `time.thread_time`.

Usage: python bench/bench_dashboard.py [--rounds 3]
Writes bench/results/dashboard.json and prints it.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lab.pytest_plugin import start_lab  # noqa: E402
from lab.sandbox.dashboard import Dashboard  # noqa: E402
from lab.sandbox.exercises import ExerciseSession  # noqa: E402
from lab.sandbox.target import LabTarget  # noqa: E402

EDGE = "app-apm:web-imdsv1"


def _edge_ok(dash: Dashboard) -> bool | None:
    return next((e["ok"] for e in dash.snapshot().get("edges", []) if e["id"] == EDGE), None)


def _wait_edge(dash: Dashboard, want: bool, timeout: float = 60.0) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if _edge_ok(dash) is want:
            return time.monotonic() - t0
        time.sleep(0.05)
    raise TimeoutError(f"{EDGE} did not turn {'lit' if want else 'dark'} in {timeout}s")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    lab = start_lab("local", run_dir=tmp / "run")
    dark, lit = [], []
    try:
        with Dashboard(lab.ecs_lab, exercise_state=tmp / "exercise.json") as dash:
            _wait_edge(dash, True)
            cpu0, wall0 = dash.sample_cpu_s, time.monotonic()
            session = ExerciseSession(LabTarget.of_lab(lab.ecs_lab), tmp / "exercise.json")
            for _ in range(args.rounds):
                session.start("apm-non-local-traffic")  # returns once the broken agent runs
                dark.append(_wait_edge(dash, False))
                session.solve()  # returns once the fixed agent runs
                lit.append(_wait_edge(dash, True))
                session.reset()
            cpu = (dash.sample_cpu_s - cpu0) / (time.monotonic() - wall0)
    finally:
        lab.ecs_lab.stop()
    result = {"rounds": args.rounds, "window_s": 3.0, "interval_s": 0.5,
              "break_to_dark_s": {"median": round(statistics.median(dark), 2), "worst": round(max(dark), 2),
                                  "all": [round(x, 2) for x in dark]},
              "fix_to_lit_s": {"median": round(statistics.median(lit), 2), "worst": round(max(lit), 2),
                               "all": [round(x, 2) for x in lit]},
              "sampler_cpu_fraction": round(cpu, 4), "machine": platform.machine(),
              "cpus": __import__("os").cpu_count()}
    out = REPO / "bench" / "results" / "dashboard.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
