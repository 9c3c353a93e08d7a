"""User data that fails or hangs (issue item 3): the instance's boot reports the script's exit
code (or its bound) and output the same way on both backends, and a docker lab leaves no boot
container behind. A module of its own: a docker lab runs per engine, so this one must not start
while test_user_data.py's module lab runs."""

from __future__ import annotations

import pytest

from lab.instance_boot import UserDataError, boot_requirements
from lab.pytest_plugin import start_lab
from lab.subnet_claims import reserve_subnet


@pytest.fixture(params=["local", pytest.param("docker", marks=pytest.mark.docker)])
def backend(request) -> str:
    """Each backend that boots instances: local when this machine can, docker alone on its engine."""
    if request.param == "local" and boot_requirements():
        pytest.skip(f"this machine cannot boot an instance with user data: missing {boot_requirements()}")
    if request.param == "docker":
        request.getfixturevalue("exclusive_docker_engine")
    return request.param


def _assert_no_boot_container_left(backend: str) -> None:
    """Everything the lab started is gone with it, the boot container included."""
    if backend != "docker":
        return
    from lab.backends import images
    from lab.docker_engine import ROLE_LABEL

    left = images.docker_client().containers.list(all=True, filters={"label": f"{ROLE_LABEL}=boot"})
    assert left == [], [c.name for c in left]


def test_a_failing_script_fails_the_start_with_its_exit_code_and_output(backend, tmp_path):
    script = "#!/bin/bash\necho ECS_CLUSTER=x >> /etc/ecs/ecs.config\necho 'no agent today' >&2\nexit 3\n"
    with pytest.raises(UserDataError, match=r"user data exited 3") as failed:
        start_lab(backend, instances=1, apps=(), subnet=reserve_subnet(), user_data=script, run_dir=tmp_path)
    assert "no agent today" in str(failed.value)
    log = tmp_path / "instances" / "1" / "cloud-init-output.log"
    assert log.read_text() == "no agent today\n"
    _assert_no_boot_container_left(backend)


def test_a_script_that_hangs_is_stopped_at_the_boots_bound_with_its_output(backend, tmp_path):
    # The boot's bound is 6x the lab's readiness bound: 18 s here.
    script = "#!/bin/bash\necho 'waiting for a network that never comes'\nsleep 600\n"
    with pytest.raises(UserDataError, match=r"user data still running after 18s"):
        start_lab(backend, instances=1, apps=(), subnet=reserve_subnet(), user_data=script, run_dir=tmp_path,
                  ready_timeout=3)
    log = tmp_path / "instances" / "1" / "cloud-init-output.log"
    assert log.read_text() == "waiting for a network that never comes\n"
    _assert_no_boot_container_left(backend)
