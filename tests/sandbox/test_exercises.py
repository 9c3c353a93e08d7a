"""Every exercise on a live local lab: start breaks it (check fails and names the broken hop, as the
doctor does), the solution goes through the control plane, check passes on data seen at the intake."""

from __future__ import annotations

import pytest

from lab.sandbox.exercises import EXERCISES, catalogue
from lab.sandbox.texts import LANGS

from .exercise_flow import break_then_fix


@pytest.mark.parametrize("exercise_id", list(EXERCISES))
def test_exercise_breaks_then_solution_fixes(target, tmp_path, exercise_id):
    break_then_fix(target, tmp_path / "exercise.json", exercise_id)


def test_every_exercise_has_texts_in_every_language():
    for ex in EXERCISES.values():
        for lang in LANGS:
            text = ex.text(lang)
            assert text["title"] and text["story"] and text["solution"], (ex.id, lang)
            assert len(text["hints"]) >= 2, (ex.id, lang)
    assert len(EXERCISES) >= 10
    assert {e["id"] for e in catalogue("ko")} == set(EXERCISES)


def test_start_refuses_an_exercise_on_a_backend_it_does_not_run_on(tmp_path, monkeypatch):
    from lab.sandbox import exercises
    from lab.sandbox.target import LabTarget, TargetError

    def never(_target):
        raise AssertionError("the lab must not be touched")

    only_local = exercises.Exercise("only-local", "imds", "svc", never, never, backends=("local",),
                                    not_on="the docker backend has no such thing")
    monkeypatch.setitem(exercises.EXERCISES, "only-local", only_local)
    target = LabTarget({"backend": "docker", "cluster": "c", "control_plane": "http://127.0.0.1:1",
                        "intake_url": "http://127.0.0.1:1"})
    session = exercises.ExerciseSession(target, tmp_path / "exercise.json")
    with pytest.raises(TargetError, match="runs on the local backend.*this lab is on docker: the docker"):
        session.start("only-local")
    assert session.active() is None
