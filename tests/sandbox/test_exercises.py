"""Every exercise on a live local lab: start breaks it (check fails and names the broken hop, as the
doctor does), the solution goes through the control plane, check passes on data seen at the intake."""

from __future__ import annotations

import pytest

from lab.sandbox.exercises import EXERCISES, ExerciseSession, catalogue
from lab.sandbox.texts import LANGS

# ~30 s each on one lab: under pytest-xdist (CI) three workers share them, each with its own lab.
XDIST_SPLIT = 3
# What the first broken hop's evidence or fix must say where the hop's name alone does not tell the
# cause apart (the same hop breaks in several exercises).
REASONS = {
    "imdsv2-hop-limit": "HttpPutResponseHopLimit",
    "container-metadata-disabled": "ECS_ENABLE_CONTAINER_METADATA",
    "wrong-dd-site": "DD_SITE",
    "imdsv2-required": "IMDSv2",
}


@pytest.mark.parametrize("exercise_id", list(EXERCISES))
def test_exercise_breaks_then_solution_fixes(target, tmp_path, exercise_id):
    ex = EXERCISES[exercise_id]
    session = ExerciseSession(target, tmp_path / "exercise.json")
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


def test_every_exercise_has_texts_in_every_language():
    for ex in EXERCISES.values():
        for lang in LANGS:
            text = ex.text(lang)
            assert text["title"] and text["story"] and text["solution"], (ex.id, lang)
            assert len(text["hints"]) >= 2, (ex.id, lang)
    assert len(EXERCISES) >= 10
    assert {e["id"] for e in catalogue("ko")} == set(EXERCISES)
