"""The running agent: DogStatsD over UDP with the real client, bindings, FIPS routes, processes, health."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request

import pytest
from datadog.dogstatsd import DogStatsd

from lab.agent.config import AgentConfig
from lab.agent.main import Agent
from lab.serving import ServerThread
from lab.world import wait_until

from .conftest import CaptureIntake, _app, agent_env, run_traced_app


def series_of(cap) -> list:
    from lab.proto import metrics_payload_pb2

    p = metrics_payload_pb2.MetricPayload()
    p.ParseFromString(cap.body)
    return list(p.series)


def test_datadog_client_metrics_reach_the_intake(start_agent, intake):
    agent = start_agent()
    client = DogStatsd(host="127.0.0.1", port=agent.ports.dogstatsd, disable_telemetry=True)
    client.increment("lab.requests", 4, tags=["route:/hello"])
    client.gauge("lab.queue", 12)
    client.histogram("lab.latency", 30)
    client.distribution("lab.size", 512)
    client.event("deployed", "v2 is out", tags=["team:web"])
    client.service_check("lab.check", DogStatsd.WARNING, message="slow")
    client.flush()

    def has(name):
        return lambda c: any(s.metric == name for s in series_of(c))

    cap = intake.wait_for("/api/v2/series", has("lab.requests"), timeout=10)
    assert cap.headers["Content-Encoding"] == "zstd"
    assert cap.headers["Content-Type"] == "application/x-protobuf"
    s = {x.metric: x for x in series_of(cap)}
    assert s["lab.requests"].type == 2 and s["lab.requests"].points[0].value == pytest.approx(4 / 1)
    assert list(s["lab.requests"].tags) == ["route:/hello"]
    assert s["lab.requests"].resources[0].name == "i-0labtest"
    assert s["lab.queue"].points[0].value == 12
    assert "lab.latency.95percentile" in s
    intake.wait_for("/api/beta/sketches", timeout=10)
    checks = json.loads(
        intake.wait_for("/api/v1/check_run", lambda c: b"lab.check" in c.body, timeout=10).body
    )
    assert {c["check"]: c["status"] for c in checks}["lab.check"] == 1
    assert any(c["check"] == "datadog.agent.up" for c in checks)
    events = json.loads(intake.wait_for("/intake/", lambda c: b"deployed" in c.body, timeout=10).body)
    assert events["events"]["api"][0]["msg_title"] == "deployed"
    intake.wait_for("/api/v2/series", has("datadog.agent.running"), timeout=5)


def test_malformed_datagrams_are_counted_and_the_server_keeps_going(start_agent, intake):
    agent = start_agent()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.sendto(b"broken\n:1|c\nx:y|g\nok.metric:1|c", ("127.0.0.1", agent.ports.dogstatsd))
    wait_until(lambda: agent.dogstatsd.stats.errors.total() >= 3, 5, what="3 errors counted")
    assert agent.status()["dogstatsd"]["errors_by_reason"] == {
        "no_type": 1,
        "empty_name": 1,
        "invalid_value": 1,
    }
    intake.wait_for(
        "/api/v2/series", lambda c: any(s.metric == "ok.metric" for s in series_of(c)), timeout=10
    )


def test_dogstatsd_non_local_traffic_off_binds_localhost_only(start_agent):
    agent = start_agent(
        LAB_AGENT_LOCALHOST="127.0.0.1",
        LAB_AGENT_HOST_ADDRESSES="127.0.0.3",
        DD_DOGSTATSD_NON_LOCAL_TRAFFIC="false",
        DD_APM_NON_LOCAL_TRAFFIC="true",
    )
    assert agent.status()["dogstatsd"]["listening"] == [f"127.0.0.1:{agent.ports.dogstatsd}/udp"]
    assert agent.apm_listening == [f"127.0.0.1:{agent.ports.apm}", f"127.0.0.3:{agent.ports.apm}"]
    # A datagram to the "instance address" finds no listener.
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.sendto(b"lost:1|c", ("127.0.0.3", agent.ports.dogstatsd))
    sock.sendto(b"kept:1|c", ("127.0.0.1", agent.ports.dogstatsd))
    wait_until(lambda: agent.dogstatsd.stats.packets >= 1, 5, what="the local packet")
    assert agent.dogstatsd.stats.packets == 1


def test_dd_tags_are_the_host_tags_of_the_host_metadata(start_agent, intake):
    """DD_TAGS (space or comma separated) and DD_ENV become the host's tags, sent once in the host
    metadata payload (`host-tags.system`), as the agent does; the backend applies them."""
    agent = start_agent(DD_TAGS="team:platform,owner:sre cost-center:42", DD_ENV="lab")
    meta = json.loads(intake.wait_for("/intake/", lambda c: b"host-tags" in c.body, timeout=10).body)
    assert meta["internalHostname"] == agent.hostname.hostname
    assert meta["host-tags"]["system"] == ["team:platform", "owner:sre", "cost-center:42", "env:lab"]


def test_apm_non_local_traffic_off_refuses_the_instance_address(start_agent):
    """DD_APM_NON_LOCAL_TRAFFIC=false: the receiver binds the agent's localhost only, so an app
    that reaches it through the instance address (bridge mode) is refused; locally it is served."""
    agent = start_agent(
        LAB_AGENT_LOCALHOST="127.0.0.1",
        LAB_AGENT_HOST_ADDRESSES="127.0.0.3",
        DD_APM_NON_LOCAL_TRAFFIC="false",
    )
    assert agent.apm_listening == [f"127.0.0.1:{agent.ports.apm}"]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.3", agent.ports.apm), timeout=5).close()
    with urllib.request.urlopen(f"http://127.0.0.1:{agent.ports.apm}/info", timeout=5) as resp:
        assert "/v0.4/traces" in json.loads(resp.read())["endpoints"]


def test_dogstatsd_non_local_traffic_on_listens_on_instance_addresses(start_agent):
    agent = start_agent(
        LAB_AGENT_LOCALHOST="127.0.0.1",
        LAB_AGENT_HOST_ADDRESSES="127.0.0.3",
        DD_DOGSTATSD_NON_LOCAL_TRAFFIC="true",
    )
    client = DogStatsd(host="127.0.0.3", port=agent.ports.dogstatsd, disable_telemetry=True)
    client.gauge("remote.gauge", 1)
    client.flush()
    wait_until(lambda: agent.dogstatsd.stats.metric_samples >= 1, 5, what="a sample via 127.0.0.3")


def _free_port_run(count: int) -> int:
    for base in range(31000, 60000, 37):
        socks = []
        try:
            for off in range(count):
                s = socket.socket()
                s.bind(("127.0.0.1", base + off))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


def test_fips_sends_each_data_type_to_its_proxy_port(tmp_path):
    start = _free_port_run(16)
    caps: dict[int, CaptureIntake] = {}
    with ServerThread("fips-capture") as srv:
        for offset in (1, 2, 4):
            cap = CaptureIntake()
            cap.url = srv.add_app(_app(cap), "127.0.0.1", start + offset).url
            caps[offset] = cap
        direct = CaptureIntake()
        direct.url = srv.add_app(_app(direct), "127.0.0.1", 0).url
        env = agent_env(
            direct.url,
            DD_FIPS_ENABLED="true",
            DD_FIPS_LOCAL_ADDRESS="127.0.0.1",
            DD_FIPS_PORT_RANGE_START=str(start),
            DD_FIPS_HTTPS="false",
            DD_PROCESS_AGENT_ENABLED="true",
        )
        with Agent(AgentConfig.from_env(env), env) as agent:
            client = DogStatsd(host="127.0.0.1", port=agent.ports.dogstatsd, disable_telemetry=True)
            client.gauge("fips.gauge", 1)
            client.flush()
            run_traced_app(agent.ports.apm, "v0.4")
            caps[1].wait_for("/api/v2/series")
            caps[2].wait_for("/api/v0.2/traces", timeout=15)
            caps[4].wait_for("/api/v1/collector")
        assert direct.requests == [], "nothing may bypass the FIPS proxy"
        assert {r.path for r in caps[1].requests} <= {
            "/api/v2/series",
            "/api/v1/check_run",
            "/intake/",
            "/api/beta/sketches",
        }
        assert {r.path for r in caps[2].requests} <= {"/api/v0.2/traces", "/api/v0.2/stats"}


def test_process_payload_contains_a_child_process(start_agent, intake):
    from lab.proto import process_codec

    marker = f"lab-marker-{os.getpid()}"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker])
    try:
        start_agent(DD_PROCESS_AGENT_ENABLED="true")

        def has_child(c):
            msg = process_codec.decode_message(c.raw)
            return any(p.pid == child.pid and marker in p.command.args for p in msg.body.processes)

        cap = intake.wait_for("/api/v1/collector", has_child, timeout=15)
        msg = process_codec.decode_message(cap.raw)
        assert msg.header.type == process_codec.TYPE_COLLECTOR_PROC
        assert msg.body.hostName == "i-0labtest"
        assert cap.headers["X-Dd-Hostname"] == "i-0labtest"
    finally:
        child.kill()
        child.wait()


def test_process_collection_off_sends_nothing(start_agent, intake):
    agent = start_agent()
    intake.wait_for("/api/v2/series", timeout=10)
    assert not intake.payloads("/api/v1/collector") and agent.status()["processes"]["enabled"] is False


def test_forwarder_retries_5xx_and_counts(start_agent, intake):
    intake.status = 503
    agent = start_agent()
    wait_until(
        lambda: agent.forwarder.counters.get("series") and agent.forwarder.counters["series"].retries >= 1,
        10,
        what="a retried series payload",
    )
    intake.status = 200
    wait_until(
        lambda: agent.forwarder.counters["series"].sent >= 1, 15, what="series delivered after retries"
    )


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lab.agent", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_agent_health_passes_when_running_and_fails_when_unreachable(start_agent):
    agent = start_agent()
    wait_until(lambda: agent.health_catalog.pings >= 1, 5, what="the health catalog's first ping")
    ok = run_cli("health", env={"DD_CMD_PORT": str(agent.ports.cmd), "LAB_AGENT_LOCALHOST": "127.0.0.1"})
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("Agent health: PASS")
    port = agent.ports.cmd
    agent.stop()
    down = run_cli(
        "health", "--timeout", "1", env={"DD_CMD_PORT": str(port), "LAB_AGENT_LOCALHOST": "127.0.0.1"}
    )
    assert down.returncode == 1 and "could not reach agent" in down.stderr


def test_agent_health_fails_when_a_component_died(start_agent):
    agent = start_agent()
    agent.dogstatsd.stop()  # the DogStatsD reader threads are gone: the agent is not healthy
    pings = agent.health_catalog.pings
    wait_until(lambda: agent.health_catalog.pings > pings, 5, what="a health ping after the stop")
    out = run_cli("health", env={"DD_CMD_PORT": str(agent.ports.cmd), "LAB_AGENT_LOCALHOST": "127.0.0.1"})
    assert out.returncode == 1
    assert out.stdout.startswith("Agent health: FAIL") and "dogstatsd-main" in out.stdout


def test_busy_port_names_its_holder_and_leaves_nothing_running(intake):
    from lab.serving import PortInUseError

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        env = agent_env(intake.url, DD_APM_RECEIVER_PORT=str(port))
        agent = Agent(AgentConfig.from_env(env), env)
        with pytest.raises(
            PortInUseError, match=f"127.0.0.1:{port}/tcp is already in use by pid {os.getpid()}"
        ):
            agent.start()
        assert agent.server is None  # the failed start stopped what it had started
    finally:
        holder.close()


def test_run_without_api_key_exits_with_error():
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD_")}
    out = subprocess.run(
        [sys.executable, "-m", "lab.agent", "run"], env=env, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 1 and "API key" in out.stderr


def test_site_traffic_goes_through_dd_proxy_https_and_nowhere_else():
    """DD_SITE on .invalid plus DD_PROXY_HTTPS at a recorder: every https request is a CONNECT to
    the recorder naming the site-derived host (docs/agent_contract.md#intake-urls, the no-egress check)."""
    import threading

    seen: list[str] = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    seen.append(conn.recv(4096).split(b"\r\n", 1)[0].decode())
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    env = {
        "DD_API_KEY": "k",
        "DD_SITE": "lab.invalid",
        "DD_HOSTNAME": "h",
        "DD_APM_RECEIVER_PORT": "0",
        "DD_DOGSTATSD_PORT": "0",
        "DD_CMD_PORT": "0",
        "DD_EXPVAR_PORT": "0",
        "DD_ECS_AGENT_URL": "http://127.0.0.1:9",
        "LAB_AGENT_HOST_ADDRESSES": "127.0.0.1",
        "LAB_AGENT_FLUSH_INTERVAL": "1",
        "DD_PROXY_HTTPS": f"http://127.0.0.1:{server.getsockname()[1]}",
    }
    try:
        with Agent(AgentConfig.from_env(env), env):
            wait_until(lambda: any("/api" in s or "CONNECT" in s for s in seen), 10, what="a proxied request")
    finally:
        stop.set()
        t.join(5)
        server.close()
    version = AgentConfig.from_env(env).endpoints.metrics
    assert seen and all(s.startswith("CONNECT ") for s in seen), seen
    assert {s.split()[1] for s in seen} <= {"app.lab.invalid:443", version.split("//")[1] + ":443"}
