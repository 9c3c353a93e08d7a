"""Owner of one OS process the lab starts: its own process group, its own log file, its readiness.

On the local backend every ECS container is a process. A container's `sh -c` entryPoint forks
children (curl, then `exec` the app, or not), so the whole process *group* is the unit the lab stops,
as `docker stop` stops every process of a container's PID namespace. Readiness is checked with
probes (HTTP GET, TCP connect, UDP bound, file exists), never with a fixed sleep; a process that
dies before it is ready fails with the last lines of its log, so the reader sees why.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lab import reaper
from lab.world import wait_until


class ProcessExited(RuntimeError):
    """A managed process ended while the lab still needed it (before ready, or unexpectedly)."""


# -- readiness probes ---------------------------------------------------------------------------


@dataclass
class Probe:
    """A readiness check: `check()` is true once the component answers. `what` names it in errors."""

    what: str
    check: Callable[[], bool]

    def __call__(self) -> bool:
        return self.check()


def http_probe(url: str, *, expect_status: Sequence[int] = (200,), timeout: float = 0.5) -> Probe:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback only
                return resp.status in expect_status
        except urllib.error.HTTPError as exc:
            return exc.code in expect_status
        except (OSError, ValueError):
            return False

    return Probe(f"HTTP GET {url}", check)


def tcp_probe(host: str, port: int, *, timeout: float = 0.3) -> Probe:
    def check() -> bool:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return True
        except OSError:
            return False

    return Probe(f"TCP connect {host}:{port}", check)


def udp_probe(host: str, port: int) -> Probe:
    """UDP has no handshake: the port is 'ready' once somebody holds it (our bind is refused)."""

    def check() -> bool:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
        finally:
            sock.close()
        return False

    return Probe(f"UDP {host}:{port} bound", check)


def file_probe(path: str | os.PathLike) -> Probe:
    return Probe(f"file {path} exists", lambda: Path(path).exists())


def unix_listening(path: str | os.PathLike, timeout: float = 0.3) -> bool:
    """A unix stream socket at `path` accepts connections. Its file alone says less: the file
    appears at bind(2), and a connect before the listen(2) that follows is refused."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(os.fspath(path))
        return True
    except OSError:
        return False
    finally:
        sock.close()


def unix_probe(path: str | os.PathLike) -> Probe:
    return Probe(f"unix socket {path} accepting", lambda: unix_listening(path))


def all_of(*probes: Probe) -> Probe:
    return Probe(" and ".join(p.what for p in probes), lambda: all(p() for p in probes))


# Every start writes one line beginning with this into the log file (a file may hold several runs).
START_LINE_PREFIX = "--- ecs-lab: starting "


# -- the owner ----------------------------------------------------------------------------------


def tail_file(path: Path, lines: int = 20) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 16384))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


class ManagedProcess:
    """One process (and its group): started, probed, stopped; stdout+stderr go to `log_path`.

    Usage::

        with ManagedProcess("agent-1", ["python", "-m", "lab.agent", "run"], env=env,
                            log_dir=run_dir, ready=tcp_probe("127.0.1.1", 8126)) as agent:
            ...   # agent.pid, agent.log_path, agent.tail()
    """

    def __init__(self, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                 log_dir: str | os.PathLike = ".lab/run", cwd: str | os.PathLike | None = None,
                 ready: Probe | None = None, ready_timeout: float = 15.0,
                 stop_timeout: float = 5.0, note: str = "") -> None:
        self.name = name
        self.note = note  # said in the start line (the local backend: which container this is)
        self.argv = list(argv)
        self.env = dict(env) if env is not None else dict(os.environ)
        self.log_path = Path(log_dir) / f"{name}.log"
        self.cwd = cwd
        self.ready_probe = ready
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.popen: subprocess.Popen | None = None
        self.started_at: float | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> ManagedProcess:
        if self.popen is not None:
            return self
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab", buffering=0)  # noqa: SIM115 - the child owns it after fork
        try:
            note = f" ({self.note})" if self.note else ""
            log.write(f"{START_LINE_PREFIX}{self.name}{note}: {' '.join(self.argv)}\n".encode())
            # A new session makes the child the leader of its own process group, so stop() reaches
            # every process an `sh -c` entryPoint forked, and a Ctrl-C in the terminal reaches the
            # lab (which then stops the group) instead of racing it.
            self.popen = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
                                          stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            raise ProcessExited(f"{self.name}: cannot start {self.argv[0]!r}: {exc}") from exc
        finally:
            log.close()
        # Should this process die without stopping the group (kill -9, xdist's os._exit), its
        # watcher stops it (lab/reaper.py).
        reaper.watch_group(self.popen.pid)
        self.started_at = time.monotonic()
        return self

    def wait_ready(self, timeout: float | None = None) -> ManagedProcess:
        """Wait for the readiness probe; fail fast with the log tail if the process exits first."""
        if self.ready_probe is None:
            self.check_alive()
            return self
        timeout = self.ready_timeout if timeout is None else timeout

        probe = self.ready_probe

        def ready_or_exited() -> bool:
            # wait_until swallows probe exceptions, so an exit must end the wait by returning true.
            return self.returncode is not None or probe()

        try:
            wait_until(ready_or_exited, timeout=timeout, interval=0.02, what=f"{self.name}: {probe.what}")
        except TimeoutError as exc:
            raise ProcessExited(f"{exc}\n{self._log_excerpt()}") from None
        self.check_alive()
        return self

    def check_alive(self) -> None:
        code = self.returncode
        if code is not None:
            raise ProcessExited(f"{self.name} exited with code {code} ({self._describe_code(code)})\n"
                                f"{self._log_excerpt()}")

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM the group, then SIGKILL what is left after `timeout`; returns the exit code."""
        if self.popen is None:
            return None
        timeout = self.stop_timeout if timeout is None else timeout
        pgid = self.popen.pid  # leader of its own session/group (start_new_session)
        if self.popen.poll() is None:
            signal_group(pgid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                signal_group(pgid, signal.SIGKILL)
                self.popen.wait(5)
        # Children of the group may outlive a leader that exited on its own (`sh -c 'a & b'`).
        signal_group(pgid, signal.SIGTERM)
        if not _wait_group_gone(pgid, timeout):
            signal_group(pgid, signal.SIGKILL)
            _wait_group_gone(pgid, 2.0)
        reaper.release_group(pgid)
        return self.popen.returncode

    def __enter__(self) -> ManagedProcess:
        self.start()
        try:
            return self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- reading ----------------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll() if self.popen else None

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def tail(self, lines: int = 20) -> str:
        return tail_file(self.log_path, lines)

    def _log_excerpt(self, lines: int = 20) -> str:
        text = self.tail(lines)
        return f"last lines of {self.log_path}:\n{text}" if text else f"(nothing in {self.log_path})"

    @staticmethod
    def _describe_code(code: int) -> str:
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return "exit status"

    def __repr__(self) -> str:
        return f"ManagedProcess({self.name!r}, pid={self.pid}, returncode={self.returncode})"


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def group_members(pgid: int) -> list[int]:
    """The live (non-zombie) processes of process group `pgid`."""
    import psutil

    members = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def group_alive(pgid: int, thorough: bool = True) -> bool:
    """Is any live (non-zombie) process left in the group? `thorough=False` trusts killpg alone,
    which also counts zombies not yet reaped: cheap enough to poll."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not thorough:
        return True
    return bool(group_members(pgid))


def _wait_group_gone(pgid: int, timeout: float) -> bool:
    # Orphans are reaped by init within moments; only a group still there after that gets the
    # (costly) scan that tells live members from zombies.
    try:
        wait_until(lambda: not group_alive(pgid, thorough=False), timeout=min(0.5, timeout), interval=0.02,
                   what=f"group {pgid} gone")
        return True
    except TimeoutError:
        pass
    try:
        wait_until(lambda: not group_alive(pgid), timeout=timeout, interval=0.1, what=f"group {pgid} gone")
        return True
    except TimeoutError:
        return False
