"""no_egress: nothing the lab started contacted anything but the lab.

FACTS.md sections 2 and 8: the agent's forwarders are all redirected, DD_SITE is a reserved
`.invalid` name and DD_PROXY_HTTPS points at a recording proxy that refuses everything and remembers
the host; every process gets its metadata endpoint from the lab (AWS_EC2_METADATA_SERVICE_ENDPOINT),
and none ever opens a socket to the host's real link-local metadata addresses (169.254.x).
"""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path

import psutil
import pytest

from lab.world import wait_until


def _lab_processes(lab) -> list[psutil.Process]:
    procs = []
    for pid in lab.refresh().pids().values():
        try:
            root = psutil.Process(pid)
        except psutil.NoSuchProcess:
            continue
        procs.append(root)
        procs.extend(root.children(recursive=True))
    return procs


def _environ(proc: psutil.Process) -> dict[str, str]:
    raw = Path(f"/proc/{proc.pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def test_every_lab_process_got_the_lab_imds_endpoint(lab):
    procs = _lab_processes(lab)
    assert len(procs) >= 1 + len(lab.apps), [p.pid for p in procs]
    for proc in procs:
        try:
            env = _environ(proc)
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited meanwhile (a health check's shell)
        endpoint = env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT", "")
        cmd = " ".join(proc.cmdline())[:120]
        assert endpoint, f"pid {proc.pid} ({cmd}) has no AWS_EC2_METADATA_SERVICE_ENDPOINT"
        host = endpoint.split("//", 1)[-1].split(":", 1)[0]
        assert ipaddress.ip_address(host).is_loopback, f"pid {proc.pid} was given {endpoint}"
        for leak in ("HTTPS_PROXY", "https_proxy", "AWS_ACCESS_KEY_ID"):
            assert leak not in env, f"pid {proc.pid} inherited {leak} from the host"


def test_no_lab_process_had_a_socket_to_link_local_addresses_during_the_session(lab):
    watch = lab.link_local_watch
    if watch is None:
        pytest.skip("the session-wide socket watch runs only on the session lab")
    wait_until(lambda: watch.samples >= 2, timeout=10, what="two samples of the lab's sockets")
    assert watch.offenders == [], (
        f"lab processes had sockets to link-local (cloud metadata) addresses during the run "
        f"({watch.samples} samples): {watch.offenders[:10]}")


def test_no_lab_process_opens_a_socket_to_link_local_addresses(lab, apps):
    # Drive traffic through every app while watching every socket of every lab process.
    offenders = []
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        for app in apps.values():
            app.get("/work?ms=1&depth=1")
        for proc in _lab_processes(lab):
            try:
                conns = proc.net_connections(kind="inet")
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            offenders += [(proc.pid, " ".join(proc.cmdline())[:100], c.raddr) for c in conns
                          if c.raddr and ipaddress.ip_address(c.raddr.ip).is_link_local]
    assert offenders == [], f"lab processes connected to link-local (cloud metadata) addresses: {offenders}"


def test_the_egress_proxy_recorded_no_attempt(lab):
    backend = lab.backend
    if backend is None or getattr(backend, "egress_proxy", None) is None:
        pytest.skip("the egress proxy's records are read in-process (local backend with egress_proxy)")
    status = lab.agents[0].status()
    assert status["forwarder"], "the agent forwarded nothing: the check below would prove nothing"
    attempts = backend.egress_proxy.attempts
    assert attempts == [], (
        "something tried to leave the lab through DD_PROXY_HTTPS: "
        + ", ".join(f"{a.host}:{a.port}" for a in attempts[:10]))
    assert backend.egress_proxy.malformed == 0
