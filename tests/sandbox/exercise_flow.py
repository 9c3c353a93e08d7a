"""One exercise on a live lab, the way a trainer runs it: start breaks it (check fails and names the
broken hop and its reason, as the doctor does), a hint is given, the solution goes through the
control plane, check passes on data seen at the intake; reset puts the lab back. Shared by the
local (test_exercises.py) and docker (test_exercises_docker.py) modules."""

from __future__ import annotations

import contextlib
from pathlib import Path

from lab.sandbox.exercises import EXERCISES, ExerciseSession
from lab.sandbox.target import LabTarget

# What the first broken hop's evidence or fix must say where the hop's name alone does not tell the
# cause apart (the same hop breaks in several exercises).
REASONS = {
    "imdsv2-hop-limit": "HttpPutResponseHopLimit",
    "container-metadata-disabled": "ECS_ENABLE_CONTAINER_METADATA",
    "wrong-dd-site": "DD_SITE",
    "imdsv2-required": "IMDSv2",
}


def break_then_fix(target: LabTarget, state_file: Path, exercise_id: str) -> None:
    ex = EXERCISES[exercise_id]
    session = ExerciseSession(target, state_file)
    try:
        session.start(exercise_id)
        broken = session.check()
        assert not broken.ok, f"{exercise_id} did not break anything:\n{broken.text()}"
        assert broken.first_broken.hop.startswith(ex.hop), (
            f"{exercise_id}: the first broken hop should be {ex.hop}\n{broken.text()}"
        )
        assert broken.first_broken.evidence and broken.first_broken.fix
        said = f"{broken.first_broken.evidence}\n{broken.first_broken.fix}"
        assert REASONS.get(exercise_id, "") in said, f"{exercise_id}: the reason is not named:\n{said}"
        assert session.hint().startswith("hint 1/")
        session.solve()
        fixed = session.check()
        assert fixed.ok, f"{exercise_id}: still broken after the solution:\n{fixed.text()}"
    finally:
        session.reset()


# The apps the exercises use (in_code has none): one app process less to start on a loaded machine.
EXERCISE_APPS = ("imdsv1", "imdsv2", "metadata_file")


@contextlib.contextmanager
def exercise_lab(backend: str, run_dir, ready_timeout: float):
    """A private lab on `backend` with the exercises' apps; its EcsLab, stopped on exit."""
    from lab.pytest_plugin import start_lab

    lab = start_lab(backend, apps=EXERCISE_APPS, run_dir=run_dir, ready_timeout=ready_timeout)
    try:
        yield lab.ecs_lab
    finally:
        lab.ecs_lab.stop()
