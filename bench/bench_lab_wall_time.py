"""Wall time of the lab's two user-facing waits: `ecs-lab up` to ready, and every default scenario.

- up: `ecs-lab up --detach` on a loopback subnet nobody uses (so it never meets another lab's
  ports), timed until it returns (it returns once the lab is ready), confirmed by one
  `ecs-lab status --json` saying `ready`; then `ecs-lab down`. Goal: under 5 s.
- scenarios: `python -m pytest scenarios -q` on the local backend (the embedded default), in a
  private LAB_HOME so it starts its own lab instead of attaching to one already running. Goal:
  under 60 s on 2 cores.

Usage: python bench/bench_lab_wall_time.py [--up-rounds 3] [--skip-scenarios]
Writes bench/results/lab_wall_time.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
# The `ecs-lab` installed with this interpreter's lab, not whichever one PATH finds first.
ECS_LAB = str(Path(sys.executable).parent / "ecs-lab")


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy")}
    env.update({"LAB_HOME": str(home), "LAB_STATE": str(home / "state.json"),
                "NO_PROXY": "127.0.0.1,localhost", "LAB_BACKEND": "local"})
    return env


def _status(env: dict[str, str]) -> dict:
    out = subprocess.run([ECS_LAB, "status", "--json"], env=env, cwd=REPO, capture_output=True, text=True,
                         timeout=30)
    try:
        return json.loads(out.stdout or "{}")
    except ValueError:
        return {}


def time_up(rounds: int) -> list[dict]:
    from lab.pytest_plugin import free_subnet

    rows = []
    for i in range(rounds):
        home = Path(tempfile.mkdtemp(prefix="bench-lab-up-"))
        env = _env(home)
        subnet = free_subnet()
        began = time.perf_counter()
        # `up --detach` itself returns once the lab is ready. Polling `ecs-lab status --json` in a
        # loop meanwhile would start a Python interpreter every few ms on the same 2 cores and
        # slow the start it measures, so status is asked once, right after.
        up = subprocess.Popen([ECS_LAB, "up", "--detach", "--subnet", subnet], env=env, cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        ready_at = None
        try:
            up_output, _ = up.communicate(timeout=120)
            detach_returned = time.perf_counter() - began
            if _status(env).get("ready"):
                ready_at = detach_returned
        finally:
            down_began = time.perf_counter()
            down = subprocess.run([ECS_LAB, "down"], env=env, cwd=REPO, capture_output=True, text=True,
                                  timeout=120)
            down_s = time.perf_counter() - down_began
            if down.returncode != 0:
                subprocess.run([ECS_LAB, "down", "--all"], env=env, cwd=REPO, capture_output=True,
                               timeout=120)
        shown = re.search(r"ready in ([\d.]+)s", up_output or "")
        rows.append({
            "round": i + 1,
            "subnet": subnet,
            "exit_code": up.returncode,
            "status_ready_s": round(ready_at, 2) if ready_at is not None else None,
            "detach_returned_s": round(detach_returned, 2),
            "up_says_ready_in_s": float(shown.group(1)) if shown else None,
            "down_s": round(down_s, 2),
            "down_exit_code": down.returncode,
            "output_tail": (up_output or "")[-600:] if up.returncode else "",
        })
        print(f"up round {i + 1}: ready per status after {rows[-1]['status_ready_s']} s "
              f"(up --detach returned after {rows[-1]['detach_returned_s']} s), down {rows[-1]['down_s']} s",
              flush=True)
        shutil.rmtree(home, ignore_errors=True)
    return rows


def time_scenarios(extra: list[str]) -> dict:
    home = Path(tempfile.mkdtemp(prefix="bench-lab-scenarios-"))
    env = _env(home)
    began = time.perf_counter()
    argv = [sys.executable, "-m", "pytest", "scenarios", "-q", "-p", "no:cacheprovider", "--durations=12",
            *extra]
    proc = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - began
    shutil.rmtree(home, ignore_errors=True)
    summary = next((line for line in reversed(proc.stdout.splitlines()) if " in " in line and "=" in line
                    or re.search(r"\d+ (passed|failed)", line)), "")
    print(f"scenarios: {wall:.1f} s, exit {proc.returncode}: {summary}", flush=True)
    # pytest's "slowest durations" lines: where the time goes, per test phase.
    slowest = re.findall(r"^([\d.]+)s (setup|call|teardown)\s+(\S+)$", proc.stdout, re.M)
    by_folder: dict[str, float] = {}
    for seconds, _phase, test in slowest:
        folder = test.split("/")[1] if test.startswith("scenarios/") else test
        by_folder[folder] = round(by_folder.get(folder, 0.0) + float(seconds), 1)
    return {"wall_s": round(wall, 1), "exit_code": proc.returncode, "summary": summary.strip("= "),
            "slowest": [{"seconds": float(s), "phase": p, "test": t} for s, p, t in slowest],
            "slowest_by_folder": by_folder,
            "output_tail": proc.stdout[-3000:] if proc.returncode else ""}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--up-rounds", type=int, default=3)
    ap.add_argument("--skip-up", action="store_true")
    ap.add_argument("--skip-scenarios", action="store_true")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "lab_wall_time.json"))
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments for the scenarios run")
    args = ap.parse_args()

    load_before = os.getloadavg()
    out = Path(args.out)
    previous = json.loads(out.read_text()) if out.exists() else {}
    up_rows = previous.get("up", []) if args.skip_up else time_up(args.up_rounds)
    # A partial run keeps the other half of the last results file.
    scenarios = previous.get("scenarios") if args.skip_scenarios else time_scenarios(args.pytest_args)
    ready = [r["status_ready_s"] for r in up_rows if r["status_ready_s"] is not None]
    doc = {
        "benchmark": "lab_wall_time",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform(), "loadavg_before": load_before,
                    "loadavg_after": os.getloadavg()},
        "goals": {"up_to_ready_s": 5, "scenarios_s": 60},
        "up": up_rows,
        "up_to_ready_best_s": min(ready) if ready else None,
        "up_to_ready_median_s": sorted(ready)[len(ready) // 2] if ready else None,
        "scenarios": scenarios,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"ecs-lab wall time ({os.cpu_count()} CPUs, load {load_before[0]:.1f})")
    for c in ("measure", "seconds", "goal", "detail"):
        table.add_column(c)
    for r in up_rows:
        table.add_row(f"up --detach -> status ready (round {r['round']})", str(r["status_ready_s"]), "< 5",
                      f"exit {r['exit_code']}, down {r['down_s']} s")
    if scenarios:
        table.add_row("pytest scenarios -q", str(scenarios["wall_s"]), "< 60",
                      f"exit {scenarios['exit_code']}: {scenarios['summary']}")
        for folder, seconds in scenarios.get("slowest_by_folder", {}).items():
            table.add_row(f"  of which {folder} (slowest phases)", str(seconds), "", "")
    Console(width=150).print(table)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
