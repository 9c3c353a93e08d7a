"""What the CLI tests check of `ecs-lab` as a user runs it: the command, what listens on a lab's
subnet, and whether a process is gone (a zombie counts: its parent has not reaped it yet)."""

from __future__ import annotations

import socket
import subprocess
import sys

import psutil


def ecs_lab(*args: str, env: dict, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """`python -m lab.cli ARGS` with `env`, its output captured."""
    return subprocess.run([sys.executable, "-m", "lab.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def listening(subnet: str) -> list[str]:
    """Every TCP listener and UDP socket bound on `subnet` (127.X), as `ip:port`."""
    return [f"{c.laddr.ip}:{c.laddr.port}" for c in psutil.net_connections("inet4")
            if c.laddr and c.laddr.ip.startswith(subnet + ".")
            and (c.status == psutil.CONN_LISTEN or c.type == socket.SOCK_DGRAM)]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
