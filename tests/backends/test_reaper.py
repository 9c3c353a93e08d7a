"""A lab whose owner dies without a teardown still stops its process groups (lab/reaper.py).

The owner here is a real separate process that starts a `ManagedProcess` as the local backend does
(an `sh -c` that forks), then dies as owners die: SIGKILL, or pytest-xdist's worker cut short by
`os._exit()` in its teardown once its controller got a SIGTERM alone.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from lab import reaper
from lab.backends.process import group_alive
from lab.world import wait_until

REPO = Path(__file__).resolve().parents[2]

OWNER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from lab import reaper
    from lab.backends.process import ManagedProcess, file_probe

    out = Path(sys.argv[1])
    marker = out.with_suffix(".ready")
    proc = ManagedProcess("task", ["sh", "-c", f"sleep 300 & sleep 301 & touch {marker}; wait"],
                          log_dir=out.parent, ready=file_probe(marker)).start().wait_ready(10)
    if sys.argv[2] == "hand-on":
        reaper.release_group(proc.pid)   # someone else owns it now: the watcher must leave it
    out.write_text(f"{proc.pid} {reaper.watcher_pid() or 0}")
    if sys.argv[2] == "hand-on":
        raise SystemExit(0)
    time.sleep(600)  # until the test kills this owner
""")


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _start_owner(tmp_path: Path, mode: str) -> tuple[subprocess.Popen, int, int]:
    out = tmp_path / "owner.out"
    script = tmp_path / "owner.py"
    script.write_text(OWNER)
    owner = subprocess.Popen([sys.executable, str(script), str(out), mode], env=_env(), cwd=tmp_path)
    wait_until(lambda: out.exists() and out.read_text().strip(), timeout=30, what="the owner's process group")
    pgid, watcher = (int(x) for x in out.read_text().split())
    return owner, pgid, watcher


def _members(pgid: int) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(p.pid) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(p)
        except (ProcessLookupError, psutil.Error):
            continue
    return found


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_an_owner_killed_with_sigkill_leaves_no_process_of_its_group(tmp_path):
    owner, pgid, watcher = _start_owner(tmp_path, "die")
    try:
        assert len(_members(pgid)) >= 3, "sh and its two sleeps run before the owner dies"
        owner.kill()
        owner.wait(10)
        # The watcher's grace period (5 s) is for processes that ignore SIGTERM; sleep does not.
        wait_until(lambda: not group_alive(pgid), timeout=15, what=f"group {pgid} stopped by the watcher")
        assert watcher, "the owner had a watcher"
        wait_until(lambda: not psutil.pid_exists(watcher) or psutil.Process(watcher).status() == "zombie",
                   timeout=10, what="the watcher to exit after its work")
    finally:
        owner.kill()
        _kill_group(pgid)


def test_the_watcher_leaves_a_released_group_alone_and_ends_before_its_owner(tmp_path):
    owner, pgid, watcher = _start_owner(tmp_path, "hand-on")
    try:
        assert owner.wait(20) == 0
        assert watcher, "the owner had a watcher"
        # An orderly exit waits for its watcher: gone when the owner is, not a moment later (a
        # Ctrl-C'd `ecs-lab up` is checked for survivors right after it exits).
        assert not psutil.pid_exists(watcher) or psutil.Process(watcher).status() == "zombie"
        assert len(_members(pgid)) >= 3, "a group the owner released must outlive the owner"
    finally:
        _kill_group(pgid)


def test_watch_stops_only_what_is_still_listed_at_end_of_file(tmp_path):
    kept = subprocess.Popen(["sleep", "300"], start_new_session=True)
    stopped = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        lines = (f"group {kept.pid}\ngroup {stopped.pid}\n-group {kept.pid}\n"
                 "group 0\ngroup 1\ngroup -5\nnonsense line here\ngroup\n\n").encode()
        summary = reaper.watch(io.BytesIO(lines), owner="test")
        assert summary["groups"] == [stopped.pid]
        assert stopped.wait(10) == -signal.SIGTERM
        assert kept.poll() is None, "a released group is not the watcher's to stop"
    finally:
        kept.kill()
        stopped.kill()
        kept.wait()
        stopped.wait()


def test_a_group_that_ignores_sigterm_gets_sigkill_after_the_grace(tmp_path):
    stubborn = subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 300 & wait"], start_new_session=True)
    try:
        wait_until(lambda: len(_members(stubborn.pid)) >= 2, timeout=10, what="sh and sleep")
        assert reaper.stop_groups([stubborn.pid], grace=0.5) == [stubborn.pid]
        wait_until(lambda: not group_alive(stubborn.pid), timeout=10, what="the stubborn group killed")
    finally:
        _kill_group(stubborn.pid)
        stubborn.wait()


def test_run_ids_with_spaces_are_refused():
    with pytest.raises(ValueError):
        reaper.watch_docker_run("a b")


XDIST_SUITE = textwrap.dedent("""
    import threading
    from pathlib import Path
    import pytest
    from lab.backends.process import ManagedProcess, file_probe

    OUT = Path(__file__).parent / "pgid"

    @pytest.fixture
    def lab_process(tmp_path):
        marker = tmp_path / "ready"
        proc = ManagedProcess("task", ["sh", "-c", f"sleep 300 & sleep 301 & touch {marker}; wait"],
                              log_dir=tmp_path, ready=file_probe(marker)).start().wait_ready(10)
        yield proc
        # A teardown longer than the 10 s execnet gives a worker whose controller is gone, as a
        # docker lab's or a slow tracer's can be: os._exit() cuts it before proc.stop().
        threading.Event().wait(60)
        proc.stop()

    def test_runs_until_interrupted(lab_process):
        OUT.write_text(str(lab_process.pid))
        threading.Event().wait(120)
""")


def test_sigterm_to_the_xdist_controller_alone_leaves_no_process_of_its_workers(tmp_path):
    """The defect seen in a flake series: `kill <pytest -n 2>` left the workers' app processes under
    init. execnet's worker, its controller gone, SIGINTs itself after 5 s and `os._exit(1)`s 10 s
    later, in the middle of the lab's teardown; its watcher stops what the teardown did not reach."""
    pytest.importorskip("xdist")
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_slow_teardown.py").write_text(XDIST_SUITE)
    out = suite / "pgid"
    controller = subprocess.Popen([sys.executable, "-m", "pytest", "-n", "1", "-p", "no:cacheprovider", "-q",
                                   str(suite)], env=_env(), cwd=suite, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
    pgid = None
    try:
        wait_until(lambda: out.exists() and out.read_text().strip(), timeout=60, what="the worker's group")
        pgid = int(out.read_text())
        assert len(_members(pgid)) >= 3
        controller.send_signal(signal.SIGTERM)  # the controller alone, as `kill PID` does
        controller.wait(30)
        # 5 s + 10 s of execnet, then the watcher's SIGTERM.
        wait_until(lambda: not group_alive(pgid), timeout=45, what=f"the worker's group {pgid} stopped")
    finally:
        try:  # the controller and its worker (one session), should the test fail
            os.killpg(controller.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        controller.wait(10)
        if pgid:
            _kill_group(pgid)
