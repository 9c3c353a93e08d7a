"""no_egress: nothing the lab started contacted anything but the lab.

docs/agent_contract.md#intake-urls and docs/environment.md: the agent's forwarders are all redirected (to
the intake listener of the user's Datadog site, docs/intake.md#sites-and-api-keys), DD_SITE is either
that documented site or a reserved `.invalid` name, and DD_PROXY_HTTPS points at a recording proxy that
refuses everything and remembers the host; every process gets its metadata endpoint from the lab
(AWS_EC2_METADATA_SERVICE_ENDPOINT),
and none ever opens a socket to the host's real link-local metadata addresses (169.254.x).

On docker 169.254.169.254 is legitimately the IMDS *inside the lab's own link-local network* (the
ECS way, docs/environment.md): there the scenario proves that every lab container is attached only
to the lab's internal networks, that the address answering as 169.254.169.254 there is the lab's
IMDS container, and that processes in the docker host's own netns (the host-port forwarders) never
touch 169.254.x.
"""

from __future__ import annotations

import ipaddress
import os
import time
from pathlib import Path

import psutil
import pytest

from lab.world import wait_until


def _lab_processes(lab) -> list[psutil.Process]:
    procs = []
    pids = list(lab.refresh().pids().values())
    if _is_docker(lab):
        # Plus the lab's containers in the docker host's netns (the host-port forwarders).
        from lab.backends import images
        from lab.backends.docker_topology import RUN_LABEL

        api = images.docker_client().api
        for c in api.containers(filters={"label": [f"{RUN_LABEL}={lab.state['run_id']}"]}):
            info = api.inspect_container(c["Id"])
            if info["HostConfig"]["NetworkMode"] == "host" and info["State"]["Pid"]:
                pids.append(info["State"]["Pid"])
    for pid in pids:
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


def _is_docker(lab) -> bool:
    return lab.state.get("backend") == "docker"


def _in_host_netns(proc: psutil.Process) -> bool:
    """A process in the docker host's own network namespace (where 169.254.x is someone else's);
    one in a lab container's netns reaches the lab's link-local network instead."""
    try:
        return os.readlink(f"/proc/{proc.pid}/ns/net") == os.readlink("/proc/self/ns/net")
    except OSError:
        return False


def _watched(lab, procs: list[psutil.Process]) -> list[psutil.Process]:
    return [p for p in procs if _in_host_netns(p)] if _is_docker(lab) else procs


def _assert_docker_truth(lab) -> None:
    from lab.backends import images
    from lab.backends.docker_topology import IMDS_IP, ROLE_LABEL, RUN_LABEL

    api = images.docker_client().api
    run = {"label": [f"{RUN_LABEL}={lab.state['run_id']}"]}
    nets = {n["Name"]: api.inspect_network(n["Id"]) for n in api.networks(filters=run)}
    containers = {c["Id"]: api.inspect_container(c["Id"]) for c in api.containers(filters=run)}
    linklocal = nets.get("ecs-lab-linklocal")
    assert linklocal is not None, f"no lab link-local network among {sorted(nets)}"
    assert all(n["Internal"] for n in nets.values()), [k for k, n in nets.items() if not n["Internal"]]

    # Who holds 169.254.169.254 in the lab's link-local network: the lab's IMDS container, nobody else.
    holders = [cid for cid, ep in linklocal["Containers"].items()
               if ep["IPv4Address"].split("/")[0] == IMDS_IP]
    assert len(holders) == 1, f"{IMDS_IP} in ecs-lab-linklocal is held by {holders}"
    imds = containers[holders[0]]
    assert imds["Config"]["Labels"].get(ROLE_LABEL) == "imds", (
        f"{IMDS_IP} in the lab network is {imds['Name']} ({imds['Config']['Labels']}), not the lab's IMDS")

    tasks = [c for c in containers.values() if c["Config"]["Labels"].get(ROLE_LABEL) == "task"]
    assert len(tasks) >= 1 + len(lab.apps), [c["Name"] for c in tasks]
    for c in containers.values():
        name, role = c["Name"], c["Config"]["Labels"].get(ROLE_LABEL)
        mode = c["HostConfig"]["NetworkMode"]
        if mode == "host":
            # docker-proxy's stand-in: the only lab containers in the host's netns (watched below).
            assert role == "host-ports", f"{name} ({role}) runs in the docker host's network namespace"
            continue
        if mode.startswith("container:"):
            owner = mode.split(":", 1)[1]
            assert owner in containers, f"{name} shares the netns of {owner}, which is not this lab's"
            continue
        attached = set(c["NetworkSettings"]["Networks"])
        assert attached <= set(nets), f"{name} is on non-lab networks {sorted(attached - set(nets))}"
        assert "ecs-lab-linklocal" in attached, (
            f"{name} ({role}) is not on the lab's link-local network: its 169.254.169.254 is not the lab's")
        env = dict(e.split("=", 1) for e in c["Config"]["Env"] or [] if "=" in e)
        endpoint = env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT")
        assert endpoint in (None, f"http://{IMDS_IP}"), f"{name} was given {endpoint}"
        for leak in ("HTTPS_PROXY", "https_proxy", "AWS_ACCESS_KEY_ID"):
            assert leak not in env, f"{name} inherited {leak} from the host"
    for c in tasks:
        env = dict(e.split("=", 1) for e in c["Config"]["Env"] or [] if "=" in e)
        assert env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") == f"http://{IMDS_IP}", c["Name"]


def test_every_lab_process_got_the_lab_imds_endpoint(lab):
    if _is_docker(lab):
        _assert_docker_truth(lab)
        return
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
        for proc in _watched(lab, _lab_processes(lab)):
            try:
                conns = proc.net_connections(kind="inet")
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            offenders += [(proc.pid, " ".join(proc.cmdline())[:100], c.raddr) for c in conns
                          if c.raddr and ipaddress.ip_address(c.raddr.ip).is_link_local]
    if _is_docker(lab):
        assert _watched(lab, _lab_processes(lab)), "no lab process in the docker host's netns was watched"
    assert offenders == [], f"lab processes connected to link-local (cloud metadata) addresses: {offenders}"


def _egress_records(lab) -> tuple[list[str], int] | None:
    """(attempted host:port list, malformed count) of the recording egress proxy, or None."""
    if _is_docker(lab):
        import json
        import urllib.request

        from lab.backends.docker_services import CONTROL_PORT, EGRESS_ATTEMPTS_PATH
        from lab.backends.docker_topology import SERVICES_LAB_IP

        if not lab.egress_proxy_url:
            return None
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        url = f"http://{SERVICES_LAB_IP}:{CONTROL_PORT}{EGRESS_ATTEMPTS_PATH}"
        with opener.open(url, timeout=5) as r:
            doc = json.load(r)
        return [f"{a['host']}:{a['port']}" for a in doc["attempts"]], doc["malformed"]
    backend = lab.backend
    if backend is None or getattr(backend, "egress_proxy", None) is None:
        return None
    return [f"{a.host}:{a.port}" for a in backend.egress_proxy.attempts], backend.egress_proxy.malformed


def test_the_egress_proxy_recorded_no_attempt(lab):
    records = _egress_records(lab)
    if records is None:
        pytest.skip("the egress proxy's records are read in-process (local backend with egress_proxy)")
    from lab.agent_probe import AgentStatus

    agent = lab.agents[0]
    offer = agent.probe.offers("forwarder_stats")
    if not offer:
        pytest.skip(offer.reason)
    delivered = AgentStatus(agent.status()).transactions_succeeded()
    assert delivered, "the agent forwarded nothing: the check below would prove nothing"
    attempts, malformed = records
    assert attempts == [], f"something tried to leave the lab through DD_PROXY_HTTPS: {attempts[:10]}"
    assert malformed == 0
