"""The exercises that make sense on docker, on one docker lab: the same flow as on the local backend
(exercise_flow.break_then_fix). Here the agent and the apps are containers in bridge mode, host
ports are the instance's forwarder, IMDS and task metadata are the lab's link-local services: the
breaks are the ones a user makes on an EC2 instance."""

from __future__ import annotations

import os

import pytest

from lab.sandbox.exercises import EXERCISES
from lab.sandbox.target import LabTarget

from .exercise_flow import break_then_fix, exercise_lab

pytestmark = pytest.mark.docker

ON_DOCKER = [e.id for e in EXERCISES.values() if "docker" in e.backends]
# The exercises whose break takes a path of its own on docker (host ports, non-local traffic, the
# container's own localhost, the link-local IMDS, the metadata file mount, FIPS in bridge mode) run
# on every run; the ones that differ from local only in task definition settings the agent reads the
# same way on both backends run when LAB_SANDBOX_DOCKER_ALL=1 (13 exercises took 10-18 min on 2
# cores, over what CI's docker lane gives one module; docs/sandbox.md).
SAME_PATH_AS_LOCAL = {"apm-disabled", "dogstatsd-port-mismatch", "wrong-dd-site", "api-key-secret-missing",
                      "process-collection-off"}
RUN_ON_DOCKER = [e for e in ON_DOCKER
                 if os.environ.get("LAB_SANDBOX_DOCKER_ALL") == "1" or e not in SAME_PATH_AS_LOCAL]


@pytest.fixture(scope="module")
def docker_target(tmp_path_factory):
    # The readiness bound is CI's (two lanes start labs at once on 2 cores).
    with exercise_lab("docker", tmp_path_factory.mktemp("sandbox-docker"), ready_timeout=60) as lab:
        yield LabTarget.of_lab(lab)


def test_every_exercise_says_where_it_runs():
    assert ON_DOCKER, "no exercise runs on docker"
    assert SAME_PATH_AS_LOCAL <= set(ON_DOCKER), "the split names an exercise that does not run on docker"
    for ex in EXERCISES.values():
        assert ex.backends and set(ex.backends) <= {"local", "docker"}, ex.id
        assert "local" in ex.backends, f"{ex.id}: every exercise runs on the local backend"


@pytest.mark.parametrize("exercise_id", RUN_ON_DOCKER)
def test_exercise_breaks_then_solution_fixes_on_docker(docker_target, tmp_path, exercise_id):
    break_then_fix(docker_target, tmp_path / "exercise.json", exercise_id)
