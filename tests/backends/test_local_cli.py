"""`ecs-lab up / status / down / run` as a user runs them: everything starts, is reported, and is gone
after Ctrl-C or `down`."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys

import psutil
import pytest

from lab.backends.process import tail_file
from lab.pytest_plugin import free_subnet
from lab.world import wait_until

from .cli_process import ecs_lab, gone, listening


@pytest.fixture
def lab_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAB_", "DD_"))}
    env["LAB_HOME"] = str(tmp_path / "home")
    yield env
    # Whatever a failed assertion left running is stopped, as a user's `ecs-lab down` would, ready
    # or still starting.
    if os.path.exists(os.path.join(env["LAB_HOME"], "state.json")):
        subprocess.run([sys.executable, "-m", "lab.cli", "down"], env=env, capture_output=True, timeout=60)


def _stop(proc: subprocess.Popen) -> None:
    """A test that failed before its own Ctrl-C still stops the lab as a user would (Ctrl-C, which the
    supervisor unwinds), and kills only what then will not stop: a SIGKILL'd supervisor orphans the
    lab's processes, which live in their own sessions."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()




def _state(env: dict) -> dict | None:
    try:
        state = json.loads((open(os.path.join(env["LAB_HOME"], "state.json"))).read())
    except (OSError, ValueError):
        return None
    return state if state.get("ready") else None






def test_up_then_ctrl_c_leaves_no_process_and_no_port(lab_env, tmp_path):
    subnet = free_subnet()
    up = subprocess.Popen([sys.executable, "-m", "lab.cli", "up", "--subnet", subnet, "--app", "imdsv1"],
                          env=lab_env, stdout=subprocess.PIPE, stderr=open(tmp_path / "up.err", "w"),
                          text=True)
    try:
        state = wait_until(lambda: _state(lab_env) or up.poll() is not None, timeout=40,
                           what="ecs-lab up to be ready")
        assert up.poll() is None, f"ecs-lab up exited {up.returncode}: {tail_file(tmp_path / 'up.err', 30)}"
        children = [p["pid"] for p in state["processes"].values()]
        assert len(children) == 2, state["processes"]  # agent-1 + web-imdsv1
        descendants = [p.pid for p in psutil.Process(up.pid).children(recursive=True)]
        assert set(children) <= set(descendants)
        assert f"{subnet}.1.1:8126" in listening(subnet)

        status = ecs_lab("status", "--json", env=lab_env)
        assert status.returncode == 0, status.stderr
        shown = json.loads(status.stdout)
        assert shown["intake_url"] == f"http://{subnet}.0.1:8091"
        assert shown["imds_url"] == f"http://{subnet}.1.1:1338"
        assert shown["apm_url"] == f"http://{subnet}.1.1:8126"
        assert shown["dogstatsd"] == f"{subnet}.1.1:8125"
        assert shown["ecs_endpoint"] == f"http://{subnet}.1.1:51678"
        assert shown["instances"][0]["instance_id"].startswith("i-0")

        up.send_signal(signal.SIGINT)
        assert up.wait(30) == 0, tail_file(tmp_path / "up.err", 30)
    finally:
        _stop(up)
    for pid in descendants:
        assert gone(pid), f"pid {pid} ({psutil.Process(pid).cmdline()}) survived Ctrl-C"
    assert listening(subnet) == []
    assert _state(lab_env) is None


def test_detached_lab_is_reused_by_run_and_stopped_by_down(lab_env, tmp_path):
    subnet = free_subnet()
    started = ecs_lab("up", "--detach", "--subnet", subnet, "--app", "none", env=lab_env)
    assert started.returncode == 0, started.stderr
    state = _state(lab_env)
    assert state is not None
    pids = [state["pid"], *(p["pid"] for p in state["processes"].values())]
    again = ecs_lab("up", "--detach", "--subnet", subnet, env=lab_env)
    assert again.returncode != 0 and "already running" in again.stderr

    # `ecs-lab run` (and so the pytest plugin) attaches to the running lab instead of starting one.
    probe = tmp_path / "test_attached.py"
    probe.write_text(
        "import os\n"
        "def test_attached(lab, agent):\n"
        "    assert lab.attached\n"
        "    assert lab.state['pid'] == int(os.environ['EXPECTED_PID'])\n"
        "    assert agent.status()['hostinfo']['hostname'] == agent.instance_id\n")
    ran = ecs_lab("run", str(probe), "-q", "-p", "no:cacheprovider",
                   env={**lab_env, "EXPECTED_PID": str(state["pid"])}, cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr

    # `ecs-lab logs`: the components, one component's tail, a clear error, and -f until Ctrl-C.
    listed = ecs_lab("logs", env=lab_env)
    assert listed.returncode == 0 and {"agent-1", "supervisor"} <= set(listed.stdout.split()), listed.stdout
    tail = ecs_lab("logs", "agent-1", "-n", "3", env=lab_env)
    assert tail.returncode == 0, tail.stderr
    assert len(tail.stdout.splitlines()) <= 3
    full = ecs_lab("logs", "agent-1", "-n", "1000", env=lab_env).stdout
    assert f"hostname: {state['instances'][0]['instance_id']}" in full
    unknown = ecs_lab("logs", "agent-9", env=lab_env)
    assert unknown.returncode != 0
    assert "no log for 'agent-9'" in unknown.stderr and "agent-1" in unknown.stderr
    follow = subprocess.Popen([sys.executable, "-m", "lab.cli", "logs", "supervisor", "-f", "-n", "1"],
                              env=lab_env, stdout=subprocess.PIPE, text=True)
    try:
        assert select.select([follow.stdout], [], [], 10)[0], "logs -f printed nothing in 10 s"
        assert follow.stdout.readline().strip()
        # A line written after it started is printed too (then Ctrl-C finds it following).
        log = os.path.join(state.get("run_dir") or os.path.join(lab_env["LAB_HOME"], "run"), "supervisor.log")
        with open(log, "a") as fh:
            fh.write("appended by the test\n")
        assert select.select([follow.stdout], [], [], 10)[0], "logs -f did not print the new line"
        assert follow.stdout.readline().strip() == "appended by the test"
        follow.send_signal(signal.SIGINT)
        assert follow.wait(10) == 0
    finally:
        if follow.poll() is None:
            follow.kill()

    stopped = ecs_lab("down", env=lab_env)
    assert stopped.returncode == 0, stopped.stderr
    for pid in pids:
        wait_until(lambda pid=pid: gone(pid), timeout=10, what=f"pid {pid} to be gone")
    assert listening(subnet) == []
    status = ecs_lab("status", "--json", env=lab_env)
    assert status.returncode == 1 and json.loads(status.stdout) == {"running": False}


def test_down_right_after_up_stops_the_lab_cleanly(lab_env):
    """`down` the moment `up --detach` returns: the SIGTERM lands while the supervisor settles its
    heap (one GC collection, whose finalizers would swallow the stop if the supervisor relied on
    the signal handler's exception alone). It must stop, not be killed after the timeout."""
    subnet = free_subnet()
    for _ in range(2):
        started = ecs_lab("up", "--detach", "--subnet", subnet, "--app", "none", env=lab_env)
        assert started.returncode == 0, started.stderr
        pid = _state(lab_env)["pid"]
        stopped = ecs_lab("down", "--timeout", "10", env=lab_env)
        assert stopped.returncode == 0, stopped.stderr
        assert "did not stop" not in stopped.stderr, stopped.stderr
        assert gone(pid)
        assert listening(subnet) == []


def test_a_busy_port_names_its_holder(lab_env):
    subnet = free_subnet()
    holder = socket.socket()
    holder.bind((f"{subnet}.0.1", 8091))
    holder.listen()
    try:
        started = ecs_lab("up", "--subnet", subnet, "--app", "none", env=lab_env)
    finally:
        holder.close()
    assert started.returncode != 0
    assert f"{subnet}.0.1:8091/tcp is already in use by pid {os.getpid()}" in started.stderr
    assert listening(subnet) == []
