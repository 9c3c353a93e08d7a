"""The docker backend's host ports, on loopback: its check of a dynamic port (`host_port_free`: what
holds a port for the forwarder's bind is what the check must see), and what the forwarder says."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys

from lab.backends.docker import host_port_free
from lab.world import wait_until


@contextlib.contextmanager
def _reserved_port():
    """A loopback TCP port kept from everyone else meanwhile, and free for the check and the
    forwarder: a socket bound with SO_REUSEADDR but not listening (as the check binds) does not hold
    it against them, and the kernel gives no connection a source port that has a bound socket. A port
    merely closed can be taken by one of this busy machine's own connections at any moment."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_a_listener_holds_its_port():
    with _reserved_port() as port:
        assert host_port_free("127.0.0.1", port, "tcp")
        with socket.create_server(("127.0.0.1", port)):
            assert not host_port_free("127.0.0.1", port, "tcp")
        assert host_port_free("127.0.0.1", port, "tcp")


def test_a_connection_this_host_closed_holds_its_source_port_while_in_time_wait():
    # The CI failure: the backend's own probes to a container leave from the instance IP with an
    # ephemeral source port; after the client side closes, TIME_WAIT holds that port for 60 s even
    # against a bind with SO_REUSEADDR (the forwarder's).
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        source = client.getsockname()[1]
        accepted, _ = server.accept()
        assert not host_port_free("127.0.0.1", source, "tcp")  # connected
        client.close()  # the client closes first: its side goes to TIME_WAIT
        accepted.close()
        wait_until(lambda: _state_of("127.0.0.1", source) == "06", 5, interval=0.05,
                   what=f"127.0.0.1:{source} to be in TIME_WAIT")
        assert not host_port_free("127.0.0.1", source, "tcp")


def test_a_bound_udp_socket_holds_its_port_and_only_for_udp():
    with _reserved_port() as port, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", port))
        assert not host_port_free("127.0.0.1", port, "udp")
        assert host_port_free("127.0.0.1", port, "tcp")


def test_an_address_this_host_cannot_bind_leaves_the_answer_to_the_forwarder():
    # TEST-NET-3 (documentation addresses) is on no interface here: EADDRNOTAVAIL, not "in use".
    assert host_port_free("203.0.113.77", 40000, "tcp")


def _state_of(ip: str, port: int) -> str | None:
    """The kernel's TCP state (hex, as /proc/net/tcp writes it) of the socket whose local address is
    ip:port, if any: 06 is TIME_WAIT."""
    want = f"{int.from_bytes(socket.inet_aton(ip), 'little'):08X}:{port:04X}"
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == want:
                return fields[3]
    return None


def _forwarder(*maps: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "lab.backends.docker_services", "--role", "ports", "--report-bound"]
    for m in maps:
        argv += ["--map", m]
    return subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)


def test_the_forwarder_says_when_every_port_is_bound_and_relays():
    from lab.backends.docker_services import PORTS_BOUND

    with socket.create_server(("127.0.0.1", 0)) as target, _reserved_port() as port:
        proc = _forwarder(f"127.0.0.1:{port}/tcp=127.0.0.1:{target.getsockname()[1]}")
        try:
            lines = []
            wait_until(lambda: lines.append(proc.stderr.readline()) or PORTS_BOUND in lines[-1], 30,
                       interval=0, what="the forwarder's bound line")
            assert lines[-1].split() == [*PORTS_BOUND.split(), "1"]
            with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                accepted, _ = target.accept()
                c.sendall(b"ping")
                assert accepted.recv(4) == b"ping"
                accepted.close()
        finally:
            proc.terminate()
            proc.wait(10)


def test_the_forwarder_exits_3_naming_the_port_another_socket_holds():
    from lab.backends.docker_services import PORT_IN_USE_EXIT

    with _reserved_port() as ok, socket.create_server(("127.0.0.1", 0)) as held:
        taken = held.getsockname()[1]
        proc = _forwarder(f"127.0.0.1:{ok}/tcp=127.0.0.1:1", f"127.0.0.1:{taken}/tcp=127.0.0.1:1")
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == PORT_IN_USE_EXIT, err
        assert err.strip().splitlines()[-1] == f"host port 127.0.0.1:{taken}/tcp is in use"
        assert "Traceback" not in err
        assert host_port_free("127.0.0.1", ok, "tcp")  # the one it had bound is let go
