"""`ecs-lab compare` end to end on the local backend: real scenario runs, real emulated agents, a
real intake. The candidate is the emulated agent with DogStatsD turned off (--candidate-env), so
the scenario that proves custom metrics arrive must newly fail, and the app's metrics must be
reported removed: exit 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ("scenarios/dogstatsd/test_dogstatsd_scenario.py"
            "::test_custom_metrics_arrive_with_service_and_ecs_tags")


def test_dogstatsd_off_on_the_candidate_is_breaking(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "LAB_HOME": str(tmp_path / "lab-home")}
    proc = subprocess.run(
        [sys.executable, "-m", "lab.cli", "compare", "--baseline", "emulated", "--candidate", "emulated",
         "--candidate-env", "DD_USE_DOGSTATSD=false", "--out", str(out), SCENARIO],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 1, proc.stdout + proc.stderr[-3000:]
    doc = json.loads((out / "report.json").read_text())
    breaking = {d["id"] for d in doc["breaking"]}
    assert f"scenario.newly_failing:{SCENARIO}" in breaking
    assert "metric.removed:ecs_lab.app.work.done" in breaking
    # The baseline did receive it, with ECS tags: the removal is not an empty capture on both sides.
    base = doc["surfaces"]["baseline"]
    assert {"task_family", "ecs_cluster_name"} <= set(base["metrics"]["ecs_lab.app.work.done"]["tag_keys"])
    assert doc["agents"]["candidate"]["env"] == "DD_USE_DOGSTATSD=false"
    assert (out / "baseline" / "junit.xml").exists() and (out / "candidate" / "junit.html").exists()
