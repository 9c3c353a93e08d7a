"""The process that owns a running lab: `ecs-lab up` runs it in the foreground, `up --detach` in the
background (`python -m lab.supervisor STACK_JSON`).

It enters the lab (`lab.assembly.EcsLab`, an owner object), writes the state file
(`.lab/state.json`: its pid, the endpoints, every child pid and log) once the lab is ready, and waits
for SIGINT/SIGTERM/SIGHUP. Whatever ends it (signal, failure, interpreter exit) leaves through the
lab's `__exit__`, which
stops every task, server and the control plane; the state file goes with it.
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from lab.assembly import EcsLab
from lab.stack import Stack
from lab.state_file import stack_from_json, stack_to_json, state_path
from lab.subnet_claims import SubnetClaim


class _Stop(BaseException):
    """Raised in the main thread by a termination signal so `with` blocks unwind."""


def _write_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def serve(stack: Stack, state: Path | None = None, progress: Callable[[str], None] | None = None,
          on_ready: Callable[[dict], None] | None = None, backend_name: str = "local",
          on_error: Callable[[str], None] | None = None, ui: bool | None = None,
          subnet_claim: SubnetClaim | None = None) -> int:
    """Run the lab until a signal arrives. Returns the exit code. `ui` (default: LAB_UI=1) also serves
    the live dashboard (`lab.sandbox.dashboard`) on loopback; its URL is `dashboard_url` in the state.
    `subnet_claim` is the claim on the stack's subnet `ecs-lab up` took (the lab takes it otherwise);
    the lab holds it until it stops."""
    if ui is None:
        ui = os.environ.get("LAB_UI", "") == "1"
    state = state or state_path()
    progress = progress or (lambda msg: print(msg, file=sys.stderr, flush=True))

    stop_signal: list[int] = []
    settling = False

    def on_signal(signum, _frame):
        # Only the first signal unwinds the stack: a second Ctrl-C must not interrupt the owner
        # objects half-way through stopping their children. An exception raised while a finalizer
        # runs (the GC calls them) is printed and dropped by Python: during the collection below
        # the signal is only recorded, and the loop stops on a recorded one in any case.
        if stop_signal:
            return
        stop_signal.append(signum)
        if not settling:
            raise _Stop(signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    # No cyclic GC until the lab is ready: start-up allocates what lives as long as the lab
    # (lab.serving.gc_paused). Then one collection, and what is left is frozen, so later collections
    # do not walk moto's models and the imports again.
    gc.disable()
    lab = EcsLab(stack, backend=backend_name, progress=progress, subnet_claim=subnet_claim)
    atexit.register(lab.stop)
    dashboard = None
    try:
        with lab:
            extra = {"pid": os.getpid(), "state_file": str(state), "name": stack.name,
                     "subnet": stack.subnet if lab.subnet_claim is not None else None,
                     "stack": json.loads(stack_to_json(stack))}
            if lab.subnet_claim is not None:
                # Who holds the subnet, for `ecs-lab list` and a second claimant's error.
                lab.subnet_claim.record(name=stack.name, cluster=stack.cluster, state_file=str(state))
            if ui:
                from lab.sandbox.dashboard import Dashboard

                # A named lab's dashboard is on its own subnet, on a free port; the unnamed one on
                # 127.0.0.1 as before.
                dashboard = Dashboard(lab, host=stack.services_host if stack.name else "127.0.0.1").start()
                extra["dashboard_url"] = dashboard.url
                progress(f"dashboard on {dashboard.url}")
            status = lab.status()
            status.update(extra)
            _write_atomic(state, status)
            if on_ready:
                on_ready(status)
            settling = True
            gc.collect()
            gc.freeze()
            gc.enable()
            settling = False
            last = 0.0
            while True:
                if stop_signal:
                    raise _Stop(stop_signal[0])
                # Keep the recorded statuses fresh for `ecs-lab status` (health, exits, services).
                time.sleep(0.5)
                if time.monotonic() - last > 2:
                    last = time.monotonic()
                    refreshed = lab.status()
                    refreshed.update(extra)
                    _write_atomic(state, refreshed)
    except _Stop:
        progress("stopping the lab")
        return 0
    except Exception as exc:  # noqa: BLE001 - report why the lab could not start, then clean up
        (on_error or progress)(f"lab failed: {exc}")
        _write_atomic(state, {"pid": os.getpid(), "ready": False, "error": str(exc)})
        return 1
    finally:
        # Ignore further signals while the owner objects stop their children.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        if dashboard is not None:
            dashboard.stop()  # it reads the lab: stopped first
        lab.stop()
        try:
            current = json.loads(state.read_text())
            if current.get("pid") == os.getpid() and "error" not in current:
                state.unlink()
        except (OSError, ValueError):
            pass


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    stack = stack_from_json(argv[0]) if argv else Stack()
    backend_name = argv[1] if len(argv) > 1 else "local"
    claim = None
    handed = os.environ.pop("LAB_SUBNET_CLAIM_FD", "")
    if handed:
        # `ecs-lab up --detach` claimed the subnet and handed the locked descriptor down.
        claim = SubnetClaim.adopt(int(handed), stack.subnet)
        claim.record(name=stack.name, cluster=stack.cluster, state_file=str(state_path()))
    return serve(stack, backend_name=backend_name, subnet_claim=claim)


if __name__ == "__main__":
    sys.exit(main())
