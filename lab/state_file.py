"""The running lab's state file (`.lab/state.json`): where it is, how a lab's stack is written
into it and read back, and whether its owner (the supervisor) is still alive. Read by every command
that talks to a running lab (`status`, `logs`, `down`, `deploy`, `exercise`, the pytest plugin's
attach).

A named lab (`ecs-lab up --name NAME`, or `LAB_NAME`) has a home of its own, `.lab/labs/NAME/`:
its state file, run directory (logs) and exercise state, so labs side by side never share one.
The unnamed lab keeps `.lab/` itself.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, fields
from pathlib import Path
from typing import TypeVar

import click

from lab.stack import Ports, Stack
from lab.subnet_claims import pid_alive

_Command = TypeVar("_Command")

# A name is part of paths and of the cluster name (`ecs-lab-NAME`): lower-case letters, digits, dashes.
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise ValueError(f"a lab name is 1-40 lower-case letters, digits and dashes, starting with a "
                         f"letter or digit; not {name!r}")
    return name


def lab_name() -> str | None:
    """The lab the commands of this process talk to: `$LAB_NAME` (set by `--name`), else the unnamed one."""
    name = os.environ.get("LAB_NAME") or None
    return check_name(name) if name is not None else None


def _select_name(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    # Every path the commands use (state file, run dir, exercise state) follows LAB_NAME, and a
    # detached supervisor inherits it.
    if value:
        try:
            os.environ["LAB_NAME"] = check_name(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


def name_option(command: _Command) -> _Command:
    """`--name NAME` (env LAB_NAME): the named lab the command is about; without it, the unnamed lab."""
    return click.option("--name", envvar="LAB_NAME", default=None, expose_value=False, is_eager=True,
                        callback=_select_name,
                        help="The named lab (env LAB_NAME); default: the unnamed lab.")(command)


def labs_root() -> Path:
    """`$LAB_HOME` (default `.lab`): the unnamed lab's home, holding the named ones under `labs/`."""
    return Path(os.environ.get("LAB_HOME", ".lab")).resolve()


def lab_home() -> Path:
    name = lab_name()
    return labs_root() if name is None else labs_root() / "labs" / name


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
    if not pid or not pid_alive(pid):
        return None
    return state
