"""Load mode sends real ddtrace spans and DogStatsD metrics at the asked rates and reports counts
that match what a receiver got, so benchmarks can compare sent with received."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from lab.world import wait_until


def test_load_report_matches_what_the_receiver_got(instance):
    capture = instance.capture
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DD_", "AWS_EC2_METADATA"))}
    run = subprocess.run(
        [sys.executable, "-m", "lab.apps", "load", "--agent-host", instance.private_ip,
         "--apm-port", str(capture.apm_port), "--dogstatsd-port", str(capture.dogstatsd_port),
         "--spans-per-sec", "600", "--metrics-per-sec", "800", "--duration", "2", "--run-id", "t1"],
        env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["run_id"] == "t1" and report["tracer_flushed"]
    # The rates held (within 10%: the pacing loop is at most one tick late).
    assert 1080 <= report["spans_sent"] <= 1200, report
    assert 1440 <= report["metrics_sent"] <= 1600, report
    assert report["spans_sent"] == 3 * report["traces_sent"]
    assert sum(report["metrics_by_kind"].values()) == report["metrics_sent"]

    def spans_of_run():
        with capture._lock:
            return [s for s in capture.spans if s.meta.get("lab.run_id") == "t1"]

    def metrics_of_run():
        with capture._lock:
            return [d for d in capture.datagrams if d.startswith("ecs_lab.load.") and "run_id:t1" in d]

    wait_until(lambda: len(spans_of_run()) >= report["spans_sent"], 15,
               what=f"{report['spans_sent']} spans at the capture ({capture.describe()})")
    wait_until(lambda: len(metrics_of_run()) >= report["metrics_sent"], 10,
               what=f"{report['metrics_sent']} metric lines ({len(metrics_of_run())} so far)")
    assert len(spans_of_run()) == report["spans_sent"]
    assert len(metrics_of_run()) == report["metrics_sent"]
    counts = [d for d in metrics_of_run() if d.startswith("ecs_lab.load.count:")]
    assert sum(int(d.split(":")[1].split("|")[0]) for d in counts) == report["count_total"]
    assert {s.service for s in spans_of_run()} == {"ecs-lab-load"}
    assert all(s.agent_address == instance.private_ip for s in spans_of_run())


def test_load_refuses_a_tracer_already_pointing_elsewhere():
    # ddtrace reads its agent URL once: a second run in the same process must not send astray.
    code = (
        "import os; os.environ['DD_TRACE_AGENT_URL']='http://127.0.0.1:9'; import ddtrace.trace\n"
        "from lab.apps.load import run_load, LoadConfigError\n"
        "try:\n run_load(agent_host='127.0.0.2', duration=0.1)\n"
        "except LoadConfigError as e: print('refused:', e)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false"})
    assert "refused: ddtrace already started" in run.stdout, run.stdout + run.stderr
