"""NPM in the emulated agent: the settings that enable it, system-probe's requirements, and the
connections check read from real sockets of this process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from lab.agent import network, tcp_counters
from lab.agent.config import AgentConfig
from lab.fakes.intake.decode import process as process_decoder
from lab.proto import process_codec
from lab.tasks import DOCKER_DEFAULT_CAPABILITIES

KEY = {"DD_API_KEY": "a" * 32}
DOCUMENTED = set(network.REQUIRED_CAPABILITIES)


@pytest.mark.parametrize("env, enabled, deprecated", [
    ({}, False, False),
    ({"DD_SYSTEM_PROBE_NETWORK_ENABLED": "true"}, True, False),
    # The documents' task definition (002): system_probe_config.enabled alone turns NPM on.
    ({"DD_SYSTEM_PROBE_ENABLED": "true"}, True, True),
    ({"DD_SYSTEM_PROBE_ENABLED": "true", "DD_SYSTEM_PROBE_NETWORK_ENABLED": "false"}, False, False),
    ({"DD_SYSTEM_PROBE_ENABLED": "true", "DD_SYSTEM_PROBE_SERVICE_MONITORING_ENABLED": "true"}, False, False),
])
def test_which_settings_enable_the_network_module(env, enabled, deprecated):
    cfg = AgentConfig.from_env({**KEY, **env})
    assert (cfg.network_enabled, cfg.network_enabled_by_deprecated_key) == (enabled, deprecated)


def test_connections_interval_follows_the_profile_and_the_agents_setting():
    assert AgentConfig.from_env(KEY).connections_interval == 1.0
    assert AgentConfig.from_env({**KEY, "LAB_AGENT_PROFILE": "real-timing"}).connections_interval == 30.0
    cfg = AgentConfig.from_env({**KEY, "LAB_AGENT_PROFILE": "real-timing",
                                "DD_PROCESS_CONFIG_INTERVALS_CONNECTIONS": "5"})
    assert cfg.connections_interval == 5.0
    assert AgentConfig.from_env({**KEY, "DD_SYSTEM_PROBE_CONFIG_MAX_CONNS_PER_MESSAGE": "5000"}) \
        .max_conns_per_message == 1000, "adjust_npm.go caps max_conns_per_message at 1000"


def test_the_documents_grant_starts_system_probe():
    granted = set(DOCKER_DEFAULT_CAPABILITIES) | DOCUMENTED
    assert network.system_probe_start_error(granted, {"/sys/kernel/debug", "/host/proc"}) is None


def test_without_sys_resource_the_memlock_rlimit_fails_first_before_linux_5_11():
    lines = network.system_probe_start_error(DOCUMENTED - {"SYS_RESOURCE"}, {"/sys/kernel/debug"},
                                             kernel_release="5.10.220-209.869.amzn2.x86_64")
    assert lines == ["failed to create system probe: error in pre-register hook: rlimit memlock: "
                     "failed to set memlock rlimit: operation not permitted"]
    # From 5.11 eBPF memory is charged to the cgroup: the rlimit is left alone, nothing fails.
    assert network.system_probe_start_error(DOCUMENTED - {"SYS_RESOURCE"}, {"/sys/kernel/debug"},
                                            kernel_release="6.1.0-28-amd64") is None


def test_without_sys_admin_or_debugfs_no_module_can_be_loaded():
    lines = network.system_probe_start_error(DOCUMENTED - {"SYS_ADMIN"}, set())
    assert lines is not None
    assert lines[0].startswith("error creating module network_tracer: ")
    assert "CAP_SYS_ADMIN" in lines[0] and "debugfs is not mounted at /sys/kernel/debug" in lines[0]
    assert lines[-1] == "failed to create system probe: no module could be loaded"
    # Kernels >= 5.8 load eBPF with CAP_BPF + CAP_PERFMON instead of CAP_SYS_ADMIN.
    assert network.system_probe_start_error(DOCUMENTED - {"SYS_ADMIN"} | {"BPF", "PERFMON"},
                                            {"/sys/kernel/debug"}) is None


def test_the_grant_is_read_from_the_runtimes_environment_else_from_the_process():
    assert network.granted_capabilities({"LAB_CONTAINER_CAPABILITIES": "CAP_NET_RAW, sys_admin"}) == \
        {"NET_RAW", "SYS_ADMIN"}
    assert network.mounted_paths({"LAB_CONTAINER_MOUNTS": "/host/proc/,/sys/kernel/debug"}) == \
        {"/host/proc", "/sys/kernel/debug"}
    # Without the runtime's word: this process's own CapEff and mount table.
    assert isinstance(network.granted_capabilities({}), set)
    assert "/" in network.mounted_paths({})


@contextmanager
def peer_process() -> Iterator[tuple[subprocess.Popen, int]]:
    """A process that listens, accepts one connection and echoes until the peer closes."""
    code = ("import socket,sys\n"
            "s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen()\n"
            "print(s.getsockname()[1], flush=True)\n"
            "c,_=s.accept()\n"
            "while (d:=c.recv(4096)): c.sendall(d)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield proc, int(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_connections_of_two_processes_with_pid_direction_and_bytes():
    with peer_process() as (server, port):
        client = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            client.sendall(b"x" * 1000)
            got = b""
            while len(got) < 1000:
                got += client.recv(4096)
            owners = {os.getpid(): "client-container", server.pid: "server-container"}
            records = network.connections_from(network.sockets_of(list(owners)), owners.get,
                                               network.local_addresses())
            mine = client.getsockname()
            out = next(r for r in records if r.pid == os.getpid() and r.laddr == mine)
            inc = next(r for r in records if r.pid == server.pid and r.raddr == mine)
            assert (out.direction, out.raddr, out.type) == ("outgoing", ("127.0.0.1", port), "tcp")
            assert (inc.direction, inc.laddr) == ("incoming", ("127.0.0.1", port))
            assert out.container_id == "client-container" and inc.container_id == "server-container"
            # The local resolver: each side's peer is the other's container.
            assert out.remote_container_id == "server-container"
            assert inc.remote_container_id == "client-container"
            assert out.intra_host and out.ephemeral  # the client port came from ip_local_port_range
            counters = tcp_counters.read()
            if counters:  # the kernel answers sock_diag here; the echo's 1000 bytes each way
                sent, received = counters[(out.laddr, out.raddr)]
                assert sent >= 1000 and received == 1000
        finally:
            client.close()


def test_one_run_is_batched_into_messages_of_max_conns_each():
    records = [network.ConnectionRecord(pid=10 + i, type="tcp", laddr=("127.0.1.5", 8080),
                                        raddr=("127.0.0.1", 40000 + i), direction="incoming", net_ns=1,
                                        container_id="c1" if i % 2 else None, bytes_sent=i)
               for i in range(5)]
    msgs = network.build_payloads(records, "i-0abc", 42, 2, lambda cid: [f"container_id:{cid}", "env:lab"],
                                  ["host:tag"])
    assert [len(m.connections) for m in msgs] == [2, 2, 1]
    assert {(m.groupId, m.groupSize) for m in msgs} == {(42, 3)}
    decoded = [process_decoder.render(process_codec.decode_message(
        process_codec.encode_message(process_codec.TYPE_COLLECTOR_CONNECTIONS, m))) for m in msgs]
    conns = [c for d in decoded for c in d["connections"]]
    assert [c["pid"] for c in conns] == [10, 11, 12, 13, 14]
    assert conns[1]["container_tags"] == ["container_id:c1", "env:lab"] and conns[0]["container_tags"] == []
    assert conns[1]["laddr"]["container_id"] == "c1" and decoded[0]["body"]["containerForPid"] == {11: "c1"}
    assert all(d["host_tags"] == ["host:tag"] for d in decoded)
    assert network.build_payloads([], "i-0abc", 1, 600, lambda cid: [], []) == []


@pytest.mark.parametrize("field, expected", [
    ("0100007F:1F90", ("127.0.0.1", 8080)),
    ("00000000000000000000000001000000:0050", ("::1", 80)),
    # A dual-stack socket's IPv4 peer is reported as the IPv4 address.
    ("0000000000000000FFFF00000100007F:0050", ("127.0.0.1", 80)),
])
def test_proc_net_addresses_are_read_as_the_kernel_writes_them(field, expected):
    assert network._address(field, v6=len(field.split(":")[0]) == 32) == expected
