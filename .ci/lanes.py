"""Run `tox -e ci`'s pytest phases in two lanes: one on loopback, one on the Docker engine.

    python .ci/lanes.py REPORT_DIR [pytest args...]

Where CI's wall time went when the phases ran one after another (2026-12-05, 2-core machine): the
four phases took 1652 s while the machine's CPUs were busy for about 930 s of it (user + sys). Most
of a lab test is waiting: on an agent's flush, on a DAEMON deployment, on an outage to end. So:

- the `local` lane runs the unit tests and then the local scenarios, each spread over pytest-xdist
  workers (every worker's labs claim their own loopback subnet and ephemeral ports);
- the `docker` lane runs the docker tests and then the docker scenarios, one after the other (one
  docker lab per engine: 169.254.169.254 lives in one network). The docker scenarios run with the
  emulated agent in its real-timing profile (15 s metric flush in 10 s buckets, 5 s traces, process
  checks that skip their first run, IPC over HTTPS only): the proof, without the real image, that
  the scenarios depend only on what the real agent offers and wait on its own intervals. Every
  scenario thus runs once per backend: on loopback with the default 1 s profile, on docker with the
  real agent's timing (`LAB_CI_DOCKER_PROFILE=` runs the default profile there too);
- both lanes start at once, so the docker tests overlap the unit tests (once the images `.ci/run`
  makes in the background are done: `LAB_CI_IMAGES_LOG`); the sandbox's exercises on
  docker and then the docker scenarios wait for the local lane to end and run alone. The scenarios
  are timed by the real agent's intervals and backoffs (an outage's retries, a 15 s flush): run
  beside the local lane's labs, at a load of 8-12 on 2 cores, their agents fell behind those
  intervals (a DogStatsD sender at two thirds of its rate, `agent status` over its 30 s exec
  timeout) and the runs failed for the machine, not the lab (LAB_CI_DOCKER_SCENARIOS_ALONE=0
  overlaps them again).

Each phase writes a JUnit report `REPORT_DIR/<phase>.xml` (read by `.ci/phases.py`) and its whole
output to `REPORT_DIR/<phase>.log`; a phase's lines are printed as they come, prefixed with its
name. A failing phase does not stop the next one in its lane (as tox's `ignore_errors`). Ctrl-C or
SIGTERM reaches every pytest, which tears its labs down before this exits. Standard library only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

# Workers per xdist phase: lab tests mostly wait, so more workers than cores pays on 2 cores; the
# environment can say otherwise (LAB_CI_WORKERS_UNIT=0 runs the unit tests in one process).
UNIT_WORKERS = os.environ.get("LAB_CI_WORKERS_UNIT", "3")
SCENARIO_WORKERS = os.environ.get("LAB_CI_WORKERS_SCENARIOS", "2")
DOCKER_PROFILE = os.environ.get("LAB_CI_DOCKER_PROFILE", "real-timing")
# Both lanes start labs at once on 2 cores: a traced app's start-up alone can then outlast the 20 s
# default readiness bound. It is a bound, not a wait: a lab that is ready goes on at once.
READY_TIMEOUT = os.environ.get("LAB_READY_TIMEOUT", "60")
DOCKER_SCENARIOS_ALONE = os.environ.get("LAB_CI_DOCKER_SCENARIOS_ALONE", "1") != "0"
SANDBOX_DOCKER = "tests/sandbox/test_exercises_docker.py"
# `.ci/run` makes the docker images in the background and names its log here; the job's last line
# is `images-finished-at <epoch>`. The docker lane waits for that line before its first phase, so
# the build's time is not counted against a test's pytest-timeout (on a fresh machine the images
# took 12 min; the first docker tests, waiting on the images' lock inside their 300 s, failed).
IMAGES_LOG = os.environ.get("LAB_CI_IMAGES_LOG", "")
IMAGES_WAIT = float(os.environ.get("LAB_CI_IMAGES_WAIT", "3600"))


@dataclass
class Phase:
    name: str
    args: list[str]
    env: dict[str, str] | None = None
    after_lane: str | None = None  # starts only once that lane has run all its phases
    needs_images: bool = False  # starts only once the background image build has ended


def images_finished(log_path: str) -> bool:
    """Whether the background image build named by `log_path` has ended (no log named: yes)."""
    if not log_path:
        return True
    try:
        with open(log_path, errors="replace") as f:
            return any(line.startswith("images-finished-at ") for line in f)
    except FileNotFoundError:
        return False


def wait_for_images(phase: str, stopping: threading.Event) -> None:
    if images_finished(IMAGES_LOG):
        return
    with _print_lock:
        print(f"[{phase}] waiting for the docker images being made in the background ({IMAGES_LOG})",
              flush=True)
    began = time.monotonic()
    while not images_finished(IMAGES_LOG) and not stopping.is_set():
        if time.monotonic() - began > IMAGES_WAIT:
            with _print_lock:
                print(f"[{phase}] the image build has not ended after {IMAGES_WAIT:.0f} s; going on "
                      "(tests that need an image will wait for its lock or say it is missing)", flush=True)
            return
        stopping.wait(1.0)
    with _print_lock:
        print(f"[{phase}] images ready after {time.monotonic() - began:.0f} s of waiting", flush=True)


def xdist(workers: str) -> list[str]:
    # loadfile: a module's tests on one worker, so a module's labs start once, not once per worker.
    # (Not loadgroup: with pytest 9 and pytest-xdist 3.8 its groups are never formed, because xdist
    # renames items through `_nodeid`, which pytest 9 no longer reads, and every test then went to
    # any worker: the modules' labs started on each worker, twice the load, and a module's own
    # named labs met their copies on the other worker.)
    return [] if workers in ("", "0") else ["-n", workers, "--dist", "loadfile"]


def lanes(extra: list[str]) -> dict[str, list[Phase]]:
    return {
        "local": [
            Phase("unit", ["tests", "-m", "not docker", *xdist(UNIT_WORKERS), *extra]),
            Phase("scenarios", ["scenarios", "-m", "not docker", *xdist(SCENARIO_WORKERS), *extra]),
        ],
        "docker": [
            Phase("docker-tests", ["tests", "-m", "docker", "--ignore", SANDBOX_DOCKER, *extra],
                  needs_images=True),
            # The exercises on docker break and heal a live agent through its health check and
            # DAEMON rolls: beside the unit tests' labs an agent failed its health check under load
            # and was replaced, masking the exercise's break. They run alone, as the scenarios do.
            Phase("docker-sandbox", [SANDBOX_DOCKER, "-m", "docker", *extra],
                  after_lane="local" if DOCKER_SCENARIOS_ALONE else None),
            Phase("docker-scenarios", ["scenarios", "--backend", "docker", *extra],
                  env={"LAB_AGENT_PROFILE": DOCKER_PROFILE}),
        ],
    }


_running: set[subprocess.Popen] = set()
_lock = threading.Lock()
_print_lock = threading.Lock()


def run_phase(phase: Phase, report_dir: Path) -> int:
    cmd = [sys.executable, "-m", "pytest", *phase.args, f"--junitxml={report_dir / (phase.name + '.xml')}"]
    # Unbuffered: a phase's lines reach the CI log as they come, not in blocks at its end.
    env = {**os.environ, "LAB_READY_TIMEOUT": READY_TIMEOUT, "PYTHONUNBUFFERED": "1", **(phase.env or {})}
    started = time.monotonic()
    with _print_lock:
        print(f"[{phase.name}] $ {' '.join(cmd[1:])}", flush=True)
    with open(report_dir / f"{phase.name}.log", "w") as log:
        # Its own process group, so a signal for the run reaches pytest's own children only through
        # pytest (which stops its labs), not all at once.
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                bufsize=1, start_new_session=True)
        with _lock:
            _running.add(proc)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                with _print_lock:
                    sys.stdout.write(f"[{phase.name}] {line}")
                    sys.stdout.flush()
            rc = proc.wait()
        finally:
            with _lock:
                _running.discard(proc)
    with _print_lock:
        print(f"[{phase.name}] exit {rc} after {time.monotonic() - started:.0f} s", flush=True)
    return rc


def run_lane(name: str, phases: list[Phase], report_dir: Path, results: dict[str, int],
             stopping: threading.Event, done: dict[str, threading.Event]) -> None:
    try:
        for phase in phases:
            if phase.after_lane and not done[phase.after_lane].is_set():
                with _print_lock:
                    print(f"[{phase.name}] waiting for the {phase.after_lane} lane to end", flush=True)
                while not (done[phase.after_lane].wait(0.5) or stopping.is_set()):
                    pass
            if phase.needs_images and not stopping.is_set():
                wait_for_images(phase.name, stopping)
            if stopping.is_set():
                results[phase.name] = 130
                continue
            results[phase.name] = run_phase(phase, report_dir)
    finally:
        done[name].set()


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    report_dir = Path(argv[0])
    report_dir.mkdir(parents=True, exist_ok=True)
    stopping = threading.Event()

    def forward(signum, frame):
        # pytest turns SIGINT into KeyboardInterrupt and unwinds its fixtures (the labs' teardown).
        stopping.set()
        with _lock:
            for proc in _running:
                try:
                    os.killpg(proc.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    results: dict[str, int] = {}
    started = time.monotonic()
    plan = lanes(argv[1:])
    done = {lane: threading.Event() for lane in plan}
    threads = [threading.Thread(target=run_lane, args=(lane, phases, report_dir, results, stopping, done),
                                name=lane)
               for lane, phases in plan.items()]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        for thread in threads:
            thread.join(timeout=0.5)
    print(f"lanes: {time.monotonic() - started:.0f} s; " +
          ", ".join(f"{name} exit {rc}" for name, rc in results.items()), flush=True)
    return 0 if results and all(rc == 0 for rc in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
