"""The bench harnesses start each receiver, get one payload through it, and stop it cleanly.

Not a timed test: the figures live in bench/ (bench_apm_receiver.py, bench_dogstatsd.py). This only
proves the owners in bench/peers.py work, so a bench run never measures a receiver that silently
failed to start, or a counter that never moves.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import shutil
import socket
import sys
from pathlib import Path

import msgpack
import psutil
import pytest
import requests

from lab.world import wait_until

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


peers = _load("peers")

ONE_TRACE = msgpack.packb([[{
    "trace_id": 12345, "span_id": 678, "parent_id": 0, "service": "smoke", "name": "smoke.op",
    "resource": "GET /", "type": "web", "start": 1_700_000_000_000_000_000, "duration": 1000, "error": 0,
    "meta": {"env": "smoke"}, "metrics": {"_sampling_priority_v1": 1.0},
}]])
HEADERS = {"Content-Type": "application/msgpack", "X-Datadog-Trace-Count": "1", "Datadog-Meta-Lang": "python"}


def _post_trace(url: str) -> None:
    session = requests.Session()
    session.trust_env = False  # loopback only, never through a proxy from the environment
    resp = session.put(url, data=ONE_TRACE, headers=HEADERS, timeout=10)
    assert resp.status_code == 200, f"{url} answered {resp.status_code}: {resp.text[:300]}"


def _send_datagram(port: int, payload: bytes = b"bench.smoke:1|c|#smoke:yes") -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(payload, (peers.LOOPBACK, port))


def _assert_stopped(owner, exit_code: int | None = None) -> None:
    code = owner.stop()
    assert not owner.alive(), f"{owner.name} (pid {owner.pid}) still running after stop()"
    if exit_code is not None:
        assert code == exit_code, f"{owner.name} exited with {code}:\n{owner.log_text()[-2000:]}"
    owner.cleanup()


def test_lab_agent_forwards_one_trace_to_the_intake_and_counts_one_datagram() -> None:
    with peers.FakeIntake() as intake:
        agent = peers.LabAgent(intake.url).start()
        try:
            _post_trace(agent.traces_url)
            assert wait_until(lambda: agent.spans_received() == 1, 10, what="the lab agent to count 1 span")
            wait_until(lambda: intake.trace_spans() == 1, 15, what="1 span at the intake")
            _send_datagram(agent.dogstatsd_port)
            wait_until(lambda: agent.dogstatsd_counts()["packets"] == 1, 10, what="1 datagram parsed")
        finally:
            # The agent handles SIGINT as the real one does: a clean stop, exit code 0.
            _assert_stopped(agent, exit_code=0)


def _is_loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    mapped = getattr(addr, "ipv4_mapped", None)  # gRPC binds ::ffff:127.0.0.1
    return addr.is_loopback or bool(mapped and mapped.is_loopback)


def test_ddapm_test_agent_stores_one_trace() -> None:
    pytest.importorskip("ddapm_test_agent")
    agent = peers.TestAgent().start()
    try:
        _post_trace(agent.traces_url)
        assert agent.spans_received() == 1
        # Bound to loopback only, as every bench receiver is: no listening socket elsewhere.
        listening = [c.laddr for c in psutil.Process(agent.pid).net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN]
        assert listening and all(_is_loopback(addr.ip) for addr in listening), listening
    finally:
        _assert_stopped(agent)


def test_serverless_compat_logs_one_parsed_metric_and_accepts_one_trace() -> None:
    pytest.importorskip("datadog_serverless_compat")
    if not peers.serverless_compat_binary().exists():
        pytest.skip("datadog-serverless-compat ships no linux-amd64 binary here")
    agent = peers.ServerlessCompat().start()
    try:
        _send_datagram(agent.dogstatsd_port, b"bench.smoke:1|c\nbench.smoke2:2|c")
        wait_until(lambda: agent.metrics_parsed() == 2, 10, what="serverless-compat to log 2 parsed metrics")
        _post_trace(agent.traces_url)
    finally:
        _assert_stopped(agent)
    assert shutil.which(str(agent.binary)) is None  # its temp copy went with cleanup()
