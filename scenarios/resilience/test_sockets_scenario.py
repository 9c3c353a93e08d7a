"""security / sockets: every socket of every process the lab started (the agents, the apps, their
children, and this process, where the lab's fakes and control plane run) is bound on loopback.
A listener on 0.0.0.0 or on a real interface would let the lab be reached from outside, and a
client socket bound elsewhere would mean traffic left through a real interface.

On docker, the containers' networks are checked by scenarios/no_egress (every lab container is
attached only to the lab's own networks); this scenario covers the local backend.
"""

from __future__ import annotations

import ipaddress
import os

import psutil
import pytest

from .traffic import SpanSender


def _lab_processes(lab) -> list[psutil.Process]:
    procs = [psutil.Process(os.getpid())]
    for pid in lab.refresh().pids().values():
        try:
            root = psutil.Process(pid)
        except psutil.NoSuchProcess:
            continue
        procs.append(root)
        procs.extend(root.children(recursive=True))
    return procs


def _sockets(proc: psutil.Process) -> list:
    try:
        return proc.net_connections(kind="inet")
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return []


def test_every_socket_of_the_lab_is_on_loopback(lab):
    if lab.state.get("backend") != "local":
        pytest.skip("docker: the containers' networks are checked by scenarios/no_egress")
    agent = lab.agents[0]
    # Traffic first, so client sockets (agent -> intake, app -> agent) exist to be checked too.
    SpanSender(agent.apm_url, "resilience-sockets").send(1)
    procs = _lab_processes(lab)
    assert len(procs) >= 3, f"expected this process, an agent and an app; found {[p.pid for p in procs]}"
    seen, outside = 0, []
    listening: set[str] = set()
    for proc in procs:
        for conn in _sockets(proc):
            if not conn.laddr:
                continue
            seen += 1
            addr = ipaddress.ip_address(conn.laddr.ip)
            if conn.status == psutil.CONN_LISTEN or conn.type == 2:  # SOCK_DGRAM: bound, no status
                listening.add(f"{conn.laddr.ip}:{conn.laddr.port}")
            if not addr.is_loopback:
                outside.append(f"pid {proc.pid} ({proc.name()}): {conn.laddr.ip}:{conn.laddr.port} "
                               f"{conn.status} -> {conn.raddr}")
    assert not outside, "sockets bound outside loopback:\n" + "\n".join(outside)
    # Not a pass on "no data": the agent's receivers are among what was checked.
    host = agent.apm_url.removeprefix("http://")
    assert host in listening, f"the agent's APM listener {host} was not among the sockets seen: {listening}"
    print(f"\nsockets checked: {seen} in {len(procs)} processes, {len(listening)} listening, all on loopback")
