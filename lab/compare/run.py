"""Running the scenarios once per agent: a pytest subprocess with the capture plugin."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lab.compare.agents import AgentSpec
from lab.compare.surface import TESTS_FILE

# pytest's exit codes 0 (all passed) and 1 (some failed) mean the scenarios ran; others mean they did not.
RAN = (0, 1)


@dataclass
class AgentRun:
    label: str
    agent: AgentSpec
    directory: Path
    exit_code: int
    seconds: float

    @property
    def ran(self) -> bool:
        return self.exit_code in RAN

    def as_dict(self) -> dict[str, object]:
        return {"exit_code": self.exit_code, "seconds": round(self.seconds, 1), "dir": str(self.directory),
                "log": str(self.directory / "pytest.log")}


def pytest_command(scenarios: Sequence[str], backend: str, directory: Path,
                   extra_args: Sequence[str] = ()) -> list[str]:
    return [sys.executable, "-m", "pytest", *scenarios, "--backend", backend,
            f"--junitxml={directory / 'junit.xml'}", "-p", "lab.compare.capture",
            "--capture-dir", str(directory), "-p", "no:cacheprovider", "-q", "-rfE", *extra_args]


def prepare_dir(directory: Path) -> None:
    """An empty directory for one agent's run; only a previous capture is ever deleted."""
    if directory.exists() and any(directory.iterdir()):
        if not (directory / TESTS_FILE).exists() and not (directory / "pytest.log").exists():
            raise FileExistsError(f"{directory} exists and is not an ecs-lab compare capture: "
                                  "choose another --out")
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)


def run_agent(label: str, agent: AgentSpec, scenarios: Sequence[str], backend: str, out_dir: Path,
              extra_args: Sequence[str] = (), echo: Callable[[str], None] = print) -> AgentRun:
    directory = out_dir / label
    prepare_dir(directory)
    cmd = pytest_command(scenarios, backend, directory, extra_args)
    env = agent.run_env(os.environ)
    started = time.monotonic()
    echo(f"[{label}] {agent.spec}: {' '.join(cmd[1:])}  (log: {directory / 'pytest.log'})")
    with (directory / "pytest.log").open("w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            code = proc.wait()
        except BaseException:
            # Ctrl-C reaches the child too (same process group); give it time to stop its lab.
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
    run = AgentRun(label, agent, directory, code, time.monotonic() - started)
    echo(f"[{label}] pytest exit code {code} in {run.seconds:.1f} s")
    return run
