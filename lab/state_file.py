"""The running lab's state file (`.lab/state.json`): where it is, how a lab's stack is written
into it and read back, and whether its owner (the supervisor) is still alive. Read by every command
that talks to a running lab (`status`, `logs`, `down`, `deploy`, the pytest plugin's attach).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, fields
from pathlib import Path

from lab.stack import Ports, Stack


def lab_home() -> Path:
    return Path(os.environ.get("LAB_HOME", ".lab")).resolve()


def state_path() -> Path:
    return Path(os.environ.get("LAB_STATE") or lab_home() / "state.json").resolve()


def stack_to_json(stack: Stack) -> str:
    d = asdict(stack)
    d["features"] = sorted(stack.features)
    d["apps"] = list(stack.apps)
    d["run_dir"] = str(stack.run_dir)
    return json.dumps(d)


def stack_from_json(text: str) -> Stack:
    d = json.loads(text)
    d["ports"] = Ports(**d.get("ports", {}))
    d["features"] = frozenset(d["features"])
    d["apps"] = tuple(d["apps"])
    names = {f.name for f in fields(Stack)}
    return Stack(**{k: v for k, v in d.items() if k in names})


def read_state(path: Path | None = None) -> dict | None:
    """The running lab's state, or None when there is none (or its owner is gone)."""
    path = path or state_path()
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    pid = state.get("pid")
    if not pid or not _alive(pid):
        return None
    return state


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        import psutil

        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except Exception:  # noqa: BLE001
        return True
