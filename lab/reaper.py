"""Stop what a lab started when the process that owns the lab dies without stopping it.

A lab's owner (a pytest worker, `ecs-lab up`'s supervisor, a user's script) stops every process
group and container it started on any orderly exit, Ctrl-C and SIGTERM included. What it cannot do
is stop them after it is gone: `kill -9`, an out-of-memory kill, or pytest-xdist's worker that calls
`os._exit()` ten seconds into a teardown once its controller went away. The lab's processes live in
sessions of their own (so a Ctrl-C reaches the owner, which stops them in order), so nothing would
take them with it: they would run on under init.

So the first process group or container a process starts also starts one small watcher for that
process, in a session of its own, which reads a pipe whose only writing end the owner holds. The
owner says on the pipe what it starts (`group <pgid>`, `docker <run id>`) and what it has stopped
(`-group <pgid>`, `-docker <run id>`). The kernel closes the pipe when the owner ends, however it
ends; the watcher then reads end-of-file and stops what is still listed: SIGTERM to each group,
SIGKILL to what is left after a grace period, and the docker lab's containers and networks removed
by their run label. An owner that stopped everything itself leaves an empty list; at its orderly
exit (atexit) it closes the pipe and waits for the watcher to end, so not even the watcher outlives
it. See docs/local_backend.md#when-the-owner-dies.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import threading
import time

# How long the groups get between SIGTERM and SIGKILL: a tracer flushes on SIGTERM, as in ECS's
# stopTimeout (shortened: nobody is waiting for their data any more).
GRACE_SECONDS = 5.0


# -- the owner's side -------------------------------------------------------------------------------


class _Link:
    """This process's pipe to its watcher (started on first use; one per process)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.proc: subprocess.Popen | None = None
        self.fd: int | None = None
        self.owner_pid: int | None = None

    def send(self, line: str) -> bool:
        with self.lock:
            if self.fd is None or self.owner_pid != os.getpid():
                self._start()
            if self.fd is None:
                return False
            try:
                os.write(self.fd, (line + "\n").encode())
                return True
            except OSError:  # the watcher is gone (killed by hand): the next send starts another
                self._close()
                return False

    def _start(self) -> None:
        read_end, write_end = os.pipe()  # neither end is inherited by children (PEP 446)
        try:
            # `-I`-like isolation is not wanted: the watcher imports the lab (for the docker sweep).
            self.proc = subprocess.Popen([sys.executable, "-m", "lab.reaper", str(os.getpid())],
                                         stdin=read_end, stdout=subprocess.DEVNULL, stderr=None,
                                         start_new_session=True, close_fds=True)
        except OSError as exc:
            os.close(write_end)
            print(f"ecs-lab: cannot start the watcher that stops a dead owner's processes: {exc}",
                  file=sys.stderr)
            return
        finally:
            os.close(read_end)
        self.fd = write_end
        self.owner_pid = os.getpid()

    def _close(self) -> None:
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
        self.fd = None
        self.proc = None
        self.owner_pid = None

    def shutdown(self) -> None:
        """At an orderly exit (atexit): close the pipe and wait for the watcher, so nothing the lab
        started outlives its owner, the watcher included. Groups still listed are stopped by it now."""
        with self.lock:
            proc = self.proc if self.owner_pid == os.getpid() else None
            self._close()
        if proc is not None:
            try:
                proc.wait(GRACE_SECONDS + 10)
            except subprocess.TimeoutExpired:
                pass

    def forget_after_fork(self) -> None:
        # A forked child must not hold its parent's end: the parent's watcher would wait for it too.
        # The lock may have been held by another thread at the fork: a new one, not a release.
        self.lock = threading.Lock()
        self._close()


_LINK = _Link()
os.register_at_fork(after_in_child=_LINK.forget_after_fork)
atexit.register(_LINK.shutdown)  # not run on kill -9 or os._exit: the cases the watcher is for


def watch_group(pgid: int) -> None:
    """Stop process group `pgid` if this process dies before `release_group(pgid)`."""
    _LINK.send(f"group {int(pgid)}")


def release_group(pgid: int) -> None:
    """The group is stopped (or handed on): the watcher forgets it."""
    if _LINK.fd is not None:
        _LINK.send(f"-group {int(pgid)}")


def watch_docker_run(run_id: str) -> None:
    """Remove docker lab run `run_id`'s containers and networks if this process dies first."""
    _check_token(run_id)
    _LINK.send(f"docker {run_id}")


def release_docker_run(run_id: str) -> None:
    _check_token(run_id)
    if _LINK.fd is not None:
        _LINK.send(f"-docker {run_id}")


def watcher_pid() -> int | None:
    """The watcher's pid, while this process has one (tests, `ecs-lab status`)."""
    proc = _LINK.proc
    return proc.pid if proc is not None and _LINK.owner_pid == os.getpid() else None


def _check_token(value: str) -> None:
    if not value or any(ch.isspace() for ch in value):
        raise ValueError(f"not a run id: {value!r}")


# -- the watcher's side -----------------------------------------------------------------------------


def stop_groups(pgids: list[int], grace: float = GRACE_SECONDS) -> list[int]:
    """SIGTERM every group, SIGKILL the ones still alive after `grace`; returns the groups that were alive."""
    # Imported here: the owner's side imports this module from lab.backends.process.
    from lab.backends.process import group_alive, signal_group

    alive = [g for g in pgids if group_alive(g)]
    for g in alive:
        signal_group(g, signal.SIGTERM)
    deadline = time.monotonic() + grace
    left = list(alive)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [g for g in left if group_alive(g)]
    for g in left:
        signal_group(g, signal.SIGKILL)
    return alive


def _remove_docker_runs(run_ids: list[str]) -> int:
    try:
        from lab.backends import images
        from lab.backends.docker import sweep

        client = images.docker_client(timeout=30)
    except Exception as exc:  # noqa: BLE001 - no engine left to ask: say so, nothing else to do
        _say(f"cannot reach the docker engine to remove runs {', '.join(run_ids)}: {exc}")
        return 0
    removed = 0
    for run_id in run_ids:
        try:
            removed += sweep(client, run_id=run_id)  # its containers, networks and image tag
        except Exception as exc:  # noqa: BLE001 - one run's failure must not keep the others
            _say(f"docker run {run_id}: {exc}")
    return removed


def _say(text: str) -> None:
    try:
        print(f"ecs-lab watcher: {text}", file=sys.stderr, flush=True)
    except (OSError, ValueError):  # the owner's terminal or pipe may be gone with it
        pass


def watch(stream, owner: str = "?") -> dict:
    """Read the owner's lines until end-of-file, then stop what is still listed. Returns a summary."""
    groups: dict[int, None] = {}
    runs: dict[str, None] = {}
    for raw in stream:
        parts = raw.decode("utf-8", "replace").split()
        if len(parts) != 2:
            continue
        verb, arg = parts
        if verb in ("group", "-group"):
            if not arg.isdigit() or int(arg) <= 1:
                continue  # never killpg(0) (our own group) or init's
            if verb == "group":
                groups[int(arg)] = None
            else:
                groups.pop(int(arg), None)
        elif verb == "docker":
            runs[arg] = None
        elif verb == "-docker":
            runs.pop(arg, None)
    stopped = stop_groups(list(groups)) if groups else []
    removed = _remove_docker_runs(list(runs)) if runs else 0
    if stopped or runs:
        _say(f"owner pid {owner} ended without stopping its lab: stopped {len(stopped)} process groups"
             + (f", removed {removed} docker containers, networks and image tags" if runs else ""))
    return {"groups": stopped, "docker_runs": list(runs), "docker_removed": removed}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    # In its own session already; a hangup or Ctrl-C of the owner's terminal must not end it either.
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    watch(sys.stdin.buffer, owner=args[0] if args else "?")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
