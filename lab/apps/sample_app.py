"""`SampleApp`: one run of the sample app as a real process, started by its variant's own line.

The process is what a container of the task definition would run: `sh -c '<docs line>; exec
ddtrace-run python -m lab.apps web'` for the entryPoint variants, `python -m lab.apps web
--agent-host-from imds` for `in_code`. Its environment is only what the caller hands it (plus PATH
and HOME), as a container's is only what its task definition says: nothing leaks in from the
process that started it (a stray DD_AGENT_HOST or metadata endpoint would hide a broken variant).
PATH starts with this interpreter's own bin directory, as the lab image's PATH starts with its venv:
the line's `ddtrace-run` and `python` are the ones installed with the lab, never whatever another
Python on the caller's PATH (a pyenv shim, a system package) happens to offer.
Leaving the `with` block stops the whole process group.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from lab import reaper
from lab.apps import entrypoints
from lab.world import wait_until

# What a container would inherit from its image rather than from the task definition.
_IMAGE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "PYENV_VERSION", "VIRTUAL_ENV", "PYTHONPATH")


class AppExited(RuntimeError):
    """The app stopped before it listened; the message carries its exit status and output."""


class SampleApp:
    """Owner of one sample app process.

    Usage::

        with SampleApp("imdsv2", env={"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds_url, ...}) as app:
            urllib.request.urlopen(app.url + "/work?ms=5")
    """

    def __init__(self, variant: str, *, env: Mapping[str, str], bind: str = "127.0.0.1", port: int = 0,
                 wrapper: Sequence[str] = (), workdir: str | os.PathLike | None = None) -> None:
        if variant not in entrypoints.VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; known: {', '.join(entrypoints.VARIANTS)}")
        self.variant = variant
        self._own_dir = None if workdir else tempfile.TemporaryDirectory(prefix=f"ecs-lab-app-{variant}-")
        self.workdir = Path(workdir or self._own_dir.name)  # type: ignore[union-attr]
        self.port_file = self.workdir / "port"
        self.log_file = self.workdir / "output.log"
        self.env = {k: os.environ[k] for k in _IMAGE_ENV if k in os.environ}
        self.env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable),
                                            os.environ.get("PATH", "/usr/bin:/bin")])
        # The app's temp dir is its own, as a container's /tmp is (ddtrace leaves a file per process
        # in it and never removes it): it goes with the work dir.
        self.env.update({"LAB_APP_BIND": bind, "LAB_APP_PORT": str(port),
                         "LAB_APP_PORT_FILE": str(self.port_file), "PYTHONUNBUFFERED": "1",
                         "TMPDIR": str(self.workdir / "tmp")})
        self.env.update(env)
        self.bind = bind
        self.argv = [*wrapper, *self.command(variant)]
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None

    @staticmethod
    def command(variant: str) -> list[str]:
        """The process a container of this variant runs: its entryPoint, else its command."""
        return entrypoints.entry_point(variant) or entrypoints.container_command(variant) or []

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the app is not listening yet")
        return f"http://{self.bind}:{self.port}"

    def output(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def launch(self) -> SampleApp:
        """Start the process without waiting for it to listen (for runs expected to fail)."""
        self.port_file.unlink(missing_ok=True)
        Path(self.env["TMPDIR"]).mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "wb") as log:
            self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.workdir, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        reaper.watch_group(self.proc.pid)  # stopped even if this process dies first (lab/reaper.py)
        return self

    def start(self, timeout: float = 20.0) -> SampleApp:
        """Start and wait until the app wrote its port; raise `AppExited` if it died first."""
        self.launch()

        def listening() -> bool:
            if self.port_file.exists():
                return True
            if self.proc is not None and self.proc.poll() is not None:
                raise AppExited(f"{self.variant} app exited with {self.proc.returncode} before "
                                f"listening:\n{self.output()}")
            return False

        try:
            wait_until(listening, timeout, what=f"the {self.variant} app to listen")
        except AppExited:
            self.stop()
            raise
        except TimeoutError as exc:
            self.stop()
            raise TimeoutError(f"{exc}; output so far:\n{self.output()}") from None
        self.port = int(self.port_file.read_text().strip())
        return self

    def wait_exit(self, timeout: float = 20.0) -> int:
        assert self.proc is not None, "not launched"
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the process group (the app flushes its tracer), SIGKILL if it lingers."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        reaper.release_group(self.proc.pid)
        return self.proc.returncode

    def __enter__(self) -> SampleApp:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        if self._own_dir is not None:
            self._own_dir.cleanup()
