"""moto's own ECS test suite, in moto's server mode, against the lab's control plane.

Users point their aws CLI, boto3 scripts and Terraform at :4566 and expect ECS's answers; moto's
suite is the widest check of those answers there is. The lab's legitimate differences are listed,
with their reasons, in `moto_ecs_suite/conftest.py` as strict expected failures: any other failure,
or a listed difference that starts passing, fails this test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

HERE = Path(__file__).parent
SUITE = HERE / "moto_ecs_suite"
REPO = HERE.parent.parent


def _installed_moto() -> str:
    from importlib.metadata import version

    return version("moto")


@pytest.fixture
def control_plane_endpoint():
    """A control plane in a process of its own: moto's suite resets moto before every test, which
    must not wipe the state other tests of this pytest process share."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(HERE / "serve_control_plane.py")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    first: list[str] = []
    reader = threading.Thread(target=lambda: first.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout=60)
    try:
        if not first or not first[0].startswith("http://"):
            proc.kill()
            raise AssertionError(f"control plane did not start: {proc.stderr.read()[-2000:]}")
        yield first[0].strip()
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.timeout(900)
def test_moto_ecs_suite_passes_against_the_lab(control_plane_endpoint: str) -> None:
    vendored = (SUITE / "MOTO_VERSION").read_text().strip()
    installed = _installed_moto()
    assert installed.split(".")[:2] == vendored.split(".")[:2], (
        f"moto {installed} is installed but its ECS suite is vendored from {vendored}: vendor the "
        f"installed version's tests (see {SUITE / 'README.md'})")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"TEST_SERVER_MODE": "true", "TEST_SERVER_MODE_ENDPOINT": control_plane_endpoint,
                "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
                "PYTHONPATH": str(SUITE)})
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/test_ecs", "-q", "-p", "no:cacheprovider", "-p", "no:ecs_lab",
         "--rootdir", str(SUITE), "-o", "addopts=", "-o", "timeout=120", "--tb=short", "-rfEX"],
        cwd=SUITE, env=env, capture_output=True, text=True, timeout=840)
    tail = run.stdout[-6000:] + run.stderr[-2000:]
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|xfailed|xpassed|error|skipped)",
                                                  summary)}
    from_list = len(re.findall(r'^    "tests/test_ecs/', (SUITE / "conftest.py").read_text(), re.M))
    assert run.returncode == 0, f"moto's ECS suite against the lab: {summary}\n{tail}"
    # Not a pass on "no data": the suite ran, and every listed difference was seen failing.
    assert counts.get("passed", 0) >= 100, summary
    assert counts.get("xfailed", 0) == from_list, summary
