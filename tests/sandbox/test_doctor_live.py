"""`ecs-lab doctor` on a running lab, through the real CLI in its own process: for each hop it walks,
break that hop on the live lab, and the output names that hop as the first broken one, with the
reason, and exits 1; on the healthy lab it says every hop is OK and exits 0.

One lab for the module; each case breaks and puts back in turn (exercise breaks go back with
`reset`, which rolls the service to the revision recorded at start). The CLI finds the lab through
a state file this module writes, as `ecs-lab up` does for its supervisor.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab.sandbox.exercises import ExerciseSession
from lab.sandbox.target import LabTarget, http_get
from lab.state_file import stack_to_json

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Ctx:
    lab: object
    target: LabTarget
    session: ExerciseSession


@dataclass(frozen=True)
class Broken:
    hop: str  # the hop the doctor must name first
    reason: str  # what its FAIL line must say (the evidence or the fix)
    breaks: Callable[[Ctx], None]
    fixes: Callable[[Ctx], None]


def _exercise(exercise_id: str) -> tuple[Callable[[Ctx], None], Callable[[Ctx], None]]:
    return (lambda c: c.session.start(exercise_id)), (lambda c: c.session.reset())


def _outage(route: str) -> tuple[Callable[[Ctx], None], Callable[[Ctx], None]]:
    # Datadog's side refusing one data type: every send on that route is answered 503, none kept.
    return (
        lambda c: c.target.intake.start_outage("status", route, status_code=503),
        lambda c: c.target.intake.end_outages(),
    )


def _imds(enabled: bool) -> Callable[[Ctx], None]:
    def change(c: Ctx) -> None:
        for inst in c.target.instances():
            code, body = http_get(
                inst["imds_url"] + "/ecs-lab/policy",
                method="POST",
                headers={"Content-Type": "application/json"},
                data=json.dumps({"enabled": enabled}).encode(),
            )
            assert code == 200, body

    return change


def _ecs_agent(up: bool) -> Callable[[Ctx], None]:
    def change(c: Ctx) -> None:
        metadata = c.lab.backend.ecs_metadata
        for index in list(metadata.introspection_listeners):
            (metadata.resume_introspection if up else metadata.stop_introspection)(index)

    return change


CASES = {
    "traces: agent without hostPort 8126": Broken(
        "app-apm:", "Connection refused", *_exercise("agent-host-ports")
    ),
    "traces: APM non-local traffic off": Broken(
        "app-apm:", "DD_APM_NON_LOCAL_TRAFFIC", *_exercise("apm-non-local-traffic")
    ),
    "dogstatsd: non-local traffic off": Broken(
        "app-dogstatsd:", "DD_DOGSTATSD_NON_LOCAL_TRAFFIC", *_exercise("dogstatsd-non-local-traffic")
    ),
    "intake refuses check runs": Broken("agent-intake:check-runs", "answered", *_outage("/api/v1/check_run")),
    "intake refuses series": Broken("agent-intake:series", "answered", *_outage("/api/v2/series")),
    "intake refuses processes": Broken("agent-intake:processes", "answered", *_outage("/api/v1/collector")),
    "IMDS turned off": Broken("imds", "403", _imds(False), _imds(True)),
    "ECS agent down": Broken("ecs-metadata", "/v1/metadata", _ecs_agent(False), _ecs_agent(True)),
    "app's DD_AGENT_HOST is localhost": Broken(
        "app-agent-host:web-imdsv1", "localhost", *_exercise("app-agent-host-localhost")
    ),
    "FIPS on without the proxy": Broken("fips", "no FIPS proxy container", *_exercise("fips-without-proxy")),
    "API key secret missing": Broken("agent-task", "secret", *_exercise("api-key-secret-missing")),
    "agent health check wrong": Broken("agent-health", "UNHEALTHY", *_exercise("agent-health-check")),
}


@pytest.fixture(scope="module")
def ctx(sandbox_lab, target, tmp_path_factory) -> Ctx:
    home = tmp_path_factory.mktemp("doctor-home")
    return Ctx(sandbox_lab, target, ExerciseSession(target, home / "exercise.json"))


def run_doctor(lab, tmp_path: Path) -> tuple[int, str]:
    """`ecs-lab doctor` in its own process against `lab`, found through a fresh state file."""
    state = tmp_path / "state.json"
    status = lab.status()
    status.update(pid=os.getpid(), state_file=str(state), stack=json.loads(stack_to_json(lab.stack)))
    state.write_text(json.dumps(status))
    env = {**os.environ, "LAB_STATE": str(state), "LAB_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", "from lab.cli import main; main()", "doctor"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_healthy_lab_is_all_clear(ctx, tmp_path):
    code, out = run_doctor(ctx.lab, tmp_path)
    assert code == 0, out
    assert out.rstrip().endswith("every hop is OK"), out
    assert "FAIL" not in out
    # Every hop was walked, not skipped: the agent's data types, metadata and each app's three hops.
    for hop in (
        "agent-task",
        "agent-health",
        "agent-intake:series",
        "agent-intake:check-runs",
        "imds",
        "ecs-metadata",
        "app-agent-host:web-imdsv1",
        "app-apm:web-imdsv1",
        "app-dogstatsd:web-imdsv1",
    ):
        assert f"  OK  {hop}" in out, f"{hop} not reported OK:\n{out}"


@pytest.mark.parametrize("case", list(CASES))
def test_broken_hop_is_named_with_its_reason(ctx, tmp_path, case):
    broken = CASES[case]
    try:
        broken.breaks(ctx)
        code, out = run_doctor(ctx.lab, tmp_path)
    finally:
        broken.fixes(ctx)
        ctx.target.refresh()
    assert code == 1, out
    first = [line for line in out.splitlines() if line.startswith("first broken hop: ")]
    assert first and first[0].removeprefix("first broken hop: ").startswith(broken.hop), out
    # The FAIL line of that hop (and its fix line) carries the reason.
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(f"FAIL  {broken.hop}"))
    block = "\n".join(lines[at : at + 2])
    assert broken.reason.lower() in block.lower(), f"{case}: {broken.reason!r} not in\n{block}"
