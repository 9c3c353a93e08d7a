"""The emulated agent as a scenario sees the real one: its CLI over the HTTPS IPC API (`agent status
-j`, `agent health`, `agent config`), the trace-agent's /info, and the real-timing profile's
intervals measured at the intake."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import yaml
from datadog.dogstatsd import DogStatsd

from lab.agent import apm
from lab.agent.config import AgentConfig
from lab.agent.main import Agent
from lab.world import wait_until

from .conftest import agent_env, run_traced_app


def cli(agent: Agent, *args: str) -> subprocess.CompletedProcess:
    """`agent <args>` as `docker exec <agent> agent ...` runs it: only the agent's environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD_")}
    env.update({k: v for k, v in agent.env.items() if k.startswith(("DD_", "LAB_"))})
    env["DD_CMD_PORT"] = str(agent.ports.cmd)
    return subprocess.run(
        [sys.executable, "-m", "lab.agent", *args], env=env, capture_output=True, text=True, timeout=60
    )


def token_env(tmp_path) -> dict[str, str]:
    return {"DD_AUTH_TOKEN_FILE_PATH": str(tmp_path / "auth_token")}


def raw_get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # the token is what is under test
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx)
    )
    req = urllib.request.Request(f"https://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with opener.open(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_status_json_has_the_real_keys_and_counts_what_the_agent_did(start_agent, intake, tmp_path):
    agent = start_agent(**token_env(tmp_path))
    client = DogStatsd(host="127.0.0.1", port=agent.ports.dogstatsd, disable_telemetry=True)
    client.increment("lab.ipc.requests", 3)
    client.flush()
    run_traced_app(agent.ports.apm, "v0.4")
    intake.wait_for("/api/v0.2/traces", timeout=15)
    counters = agent.forwarder.counters
    wait_until(lambda: "series" in counters and counters["series"].sent >= 2, 10, what="two series flushes")
    out = cli(agent, "status", "-j")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    for key in ("version", "flavor", "conf_file", "pid", "go_version", "agent_start_nano", "build_arch",
                "time_nano", "config", "fips_status", "python_version", "forwarderStats", "aggregatorStats",
                "dogstatsdStats", "apmStats", "processAgentStatus", "runnerStats", "endpointsInfos",
                "logsStats", "errors"):
        assert key in doc, key
    assert doc["version"] == "7.60.0" and doc["flavor"] == "agent" and doc["pid"] == os.getpid()
    assert doc["agent_start_nano"] < doc["time_nano"]
    assert doc["config"]["fips_enabled"] == "false" and doc["fips_status"] == "not available"
    tx = doc["forwarderStats"]["Transactions"]
    assert set(tx) >= {"Success", "Errors", "SuccessByEndpoint", "HTTPErrors", "HTTPErrorsByCode", "Dropped"}
    assert tx["SuccessByEndpoint"]["series_v2"] >= 2 and tx["SuccessByEndpoint"]["check_run_v1"] >= 1
    assert tx["Success"] >= tx["SuccessByEndpoint"]["series_v2"] and tx["HTTPErrorsByCode"] == {}
    assert doc["dogstatsdStats"]["MetricPackets"] >= 1 and doc["dogstatsdStats"]["UdpPackets"] >= 1
    agg = doc["aggregatorStats"]
    assert agg["NumberOfFlush"] >= 2 and agg["DogstatsdMetricSample"] >= 1
    receiver = doc["apmStats"]["receiver"]
    py = [r for r in receiver if r["Lang"] == "python"]
    assert py and py[0]["EndpointVersion"] == "v0.4" and py[0]["TracesReceived"] >= 1
    assert py[0]["SpansReceived"] >= 2 and py[0]["TracerVersion"]
    assert doc["apmStats"]["trace_writer"]["Payloads"] >= 1
    assert doc["endpointsInfos"] == {intake.url: ["i-key"]}  # the last five characters of lab-api-key
    assert doc["logsStats"]["is_running"] is False and doc["errors"] == []

    text = cli(agent, "status")
    assert text.returncode == 0 and "Agent (v7.60.0)" in text.stdout and "series_v2:" in text.stdout


def test_forwarder_http_errors_are_counted_by_code(start_agent, intake, tmp_path):
    intake.status = 503
    agent = start_agent(**token_env(tmp_path))
    wait_until(lambda: agent.forwarder.counters.get("series") and agent.forwarder.counters["series"].errors,
               10, what="a refused series payload")
    tx = json.loads(cli(agent, "status", "-j").stdout)["forwarderStats"]["Transactions"]
    assert tx["HTTPErrors"] >= 1 and tx["HTTPErrorsByCode"]["503"] >= 1 and tx["Errors"] >= 1


def test_health_pass_then_fail_when_a_component_dies(start_agent, tmp_path):
    agent = start_agent(**token_env(tmp_path))
    wait_until(lambda: agent.health_catalog.pings >= 1, 5, what="the first health ping")
    ok = cli(agent, "health")
    assert ok.returncode == 0, ok.stderr
    lines = ok.stdout.splitlines()
    assert lines[0] == "Agent health: PASS"
    assert lines[1] == "=== 5 healthy components ==="
    assert lines[2] == "aggregator, collector-queue, dogstatsd-main, forwarder, healthcheck"
    agent.dogstatsd.stop()
    pings = agent.health_catalog.pings
    wait_until(lambda: agent.health_catalog.pings > pings, 5, what="a ping after the stop")
    bad = cli(agent, "health")
    assert bad.returncode == 1
    assert bad.stdout.splitlines() == [
        "Agent health: FAIL",
        "=== 4 healthy components ===",
        "aggregator, collector-queue, forwarder, healthcheck",
        "=== 1 unhealthy components ===",
        "dogstatsd-main",
    ]


def test_config_prints_the_runtime_settings_as_yaml(start_agent, intake, tmp_path):
    agent = start_agent(**token_env(tmp_path), DD_ENV="lab", DD_DOGSTATSD_NON_LOCAL_TRAFFIC="true")
    out = cli(agent, "config")
    assert out.returncode == 0, out.stderr
    conf = yaml.safe_load(out.stdout)
    assert conf["dd_url"] == intake.url and conf["apm_config"]["apm_dd_url"] == intake.url
    assert conf["process_config"]["process_dd_url"] == intake.url
    assert conf["api_key"] == "******i-key" and "lab-api-key" not in out.stdout
    assert conf["env"] == "lab" and conf["dogstatsd_non_local_traffic"] is True
    assert conf["apm_config"]["receiver_port"] == 0 and conf["dogstatsd_port"] == 0  # as configured
    assert conf["lab"]["profile"] == "fast" and conf["lab"]["flush_interval"] == 1.0
    # LAB_AGENT_PROCESS_INTERVAL of the fixture wins over the profile's
    assert conf["process_config"]["intervals"]["process"] == 1.0


def test_ipc_api_wants_the_token_and_tls(start_agent, tmp_path):
    agent = start_agent(**token_env(tmp_path))
    token = (tmp_path / "auth_token").read_text().strip()
    assert len(token) == 64 and (tmp_path / "auth_token").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "ipc_cert.pem").is_file()
    port = agent.ports.cmd
    code, body = raw_get(port, "/agent/status/health")
    assert code == 401 and body.strip() == "no session token provided"
    assert raw_get(port, "/agent/status/health", {"Authorization": "Basic abc"})[0] == 401
    code, body = raw_get(port, "/agent/status/health", {"Authorization": "Bearer wrong"})
    assert code == 403 and body.strip() == "invalid session token"
    code, body = raw_get(port, "/agent/status?format=json", {"Authorization": f"Bearer {token}"})
    assert code == 200 and json.loads(body)["version"] == "7.60.0"
    # The CLI trusts the agent's own certificate only: another certificate fails the handshake.
    other = tmp_path / "other"
    other.mkdir()
    from lab.agent.ipc import _self_signed_pem

    (other / "ipc_cert.pem").write_bytes(_self_signed_pem(["127.0.0.1"]))
    (other / "auth_token").write_text(token)
    env = {**agent.env, "DD_CMD_PORT": str(port), "DD_AUTH_TOKEN_FILE_PATH": str(other / "auth_token")}
    out = subprocess.run([sys.executable, "-m", "lab.agent", "health"], env={**os.environ, **env},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in out.stderr
    agent.stop()
    assert not (tmp_path / "auth_token").exists()  # what the agent created, it removes


def test_info_lists_exactly_the_routes_served(start_agent, tmp_path):
    agent = start_agent(**token_env(tmp_path), DD_ENV="lab-env")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{agent.ports.apm}/info", timeout=5) as r:
        info = json.loads(r.read())
    for key in ("version", "git_commit", "endpoints", "feature_flags", "client_drop_p0s", "span_meta_structs",
                "long_running_spans", "span_events", "evp_proxy_allowed_headers", "config", "peer_tags",
                "span_kinds_stats_computed", "obfuscation_version"):
        assert key in info, key
    assert set(info["config"]) == {
        "default_env", "target_tps", "max_eps", "receiver_port", "receiver_socket", "connection_limit",
        "receiver_timeout", "max_request_bytes", "statsd_port", "max_memory", "max_cpu",
        "analyzed_spans_by_service", "obfuscation",
    }
    assert info["config"]["default_env"] == "lab-env"
    assert info["config"]["receiver_port"] == agent.ports.apm
    assert info["config"]["statsd_port"] == agent.ports.dogstatsd
    app = apm.make_app(agent.traces, agent._info, proxies=agent.proxies)
    # A relay route serves everything under its prefix ("/evp_proxy/v2/{tail}" -> "/evp_proxy/v2/");
    # like the agent's, the list leaves out /info itself.
    served = {r.resource.canonical.replace("{tail}", "") for r in app.router.routes()} - {"/info"}
    assert set(info["endpoints"]) == served


def test_real_timing_first_run_health_process_and_no_private_endpoint(intake, tmp_path):
    """real-timing: unhealthy until the first 15 s ping; the process check's first run (at start)
    sends nothing, the second (10 s later) does; plain HTTP on the IPC port gets Go's 400."""
    env = {k: v for k, v in agent_env(intake.url).items() if not k.startswith("LAB_AGENT_") or k in (
        "LAB_AGENT_LOCALHOST", "LAB_AGENT_HOST_ADDRESSES")}
    env.update(token_env(tmp_path), LAB_AGENT_PROFILE="real-timing", DD_PROCESS_AGENT_ENABLED="true")
    started = time.monotonic()
    with Agent(AgentConfig.from_env(env), env) as agent:
        # The process check's first run is at start, its second 10 s later; how long the start
        # itself took (seconds on a loaded CI host) is not what the bounds below are about.
        up = time.monotonic()
        early = cli(agent, "health")
        assert time.monotonic() - started < 14, "the check must run before the first ping"
        assert early.returncode == 1 and early.stdout.startswith("Agent health: FAIL")
        assert "=== 5 unhealthy components ===" in early.stdout
        conf = yaml.safe_load(cli(agent, "config").stdout)
        assert conf["lab"]["profile"] == "real-timing" and conf["lab"]["flush_interval"] == 15.0
        assert conf["lab"]["bucket_interval"] == 10.0
        assert conf["process_config"]["intervals"]["process"] == 10.0
        assert conf["apm_config"]["trace_writer"]["flush_period_seconds"] == 5.0
        with socket.create_connection(("127.0.0.1", agent.ports.cmd), timeout=5) as s:
            s.sendall(b"GET /agent/status HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(200).startswith(b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request")
        intake.wait_for("/api/v1/collector", timeout=20)
        arrived = time.monotonic()
        # Not the first run (at start: it sends nothing), not the third (20 s after the first).
        assert arrived - started >= 9.0 and arrived - up <= 16.0, (
            f"first process payload {arrived - started:.1f} s after the agent was asked to start, "
            f"{arrived - up:.1f} s after it was up")
        assert len(intake.payloads("/api/v1/collector")) == 1
        wait_until(lambda: agent.health_catalog.pings >= 1, 10, what="the first health ping")
        assert 14.0 <= time.monotonic() - started
        assert cli(agent, "health").returncode == 0


def test_real_timing_metrics_wait_for_a_closed_bucket_and_a_15s_flush(intake, tmp_path):
    """The first series payload leaves 15 s after start; a DogStatsD point sent at start is in the
    first flush after its 10 s bucket closed, with the bucket's start as timestamp and the count as
    a rate over 10 s."""
    from lab.proto import metrics_payload_pb2

    env = {k: v for k, v in agent_env(intake.url).items() if not k.startswith("LAB_AGENT_") or k in (
        "LAB_AGENT_LOCALHOST", "LAB_AGENT_HOST_ADDRESSES")}
    env.update(token_env(tmp_path), LAB_AGENT_PROFILE="real-timing")

    def series(c) -> dict:
        p = metrics_payload_pb2.MetricPayload()
        p.ParseFromString(c.body)
        return {s.metric: s for s in p.series}

    with Agent(AgentConfig.from_env(env), env) as agent:
        started, started_at = time.monotonic(), time.time()
        # A point's bucket is the one the agent receives it in: sent in the first half of a bucket,
        # it is received in that bucket even on a loaded machine (sent at x9.8 s, it was not once).
        wait_until(lambda: time.time() % 10 < 5, 10, interval=0.02, what="the first half of a 10 s bucket")
        sent_at = time.time()
        client = DogStatsd(host="127.0.0.1", port=agent.ports.dogstatsd, disable_telemetry=True)
        client.increment("lab.timing.hits", 20)
        client.flush()
        first = intake.wait_for("/api/v2/series", timeout=20)
        first_at = time.monotonic() - started
        assert 14.0 <= first_at <= 17.0, first_at
        bucket = int(sent_at) - int(sent_at) % 10
        hit = intake.wait_for("/api/v2/series", lambda c: "lab.timing.hits" in series(c), timeout=20)
        s = series(hit)["lab.timing.hits"]
        assert s.points[0].timestamp == bucket and s.points[0].value == 2.0 and s.interval == 10
        # Flushed only once its bucket had closed, at one of the 15 s ticks.
        seen = [c for c in intake.payloads("/api/v2/series")]
        assert seen.index(hit) in (0, 1)
        # The first flush happened at or before the test saw it (first_at): only a bucket still open
        # then was surely open at the flush (seen: closed 0.5 s before it was seen, and flushed in it).
        if bucket + 10 > started_at + first_at:
            assert "lab.timing.hits" not in series(first)
        elif bucket + 10 < started_at + (first_at - 1.5):
            assert "lab.timing.hits" in series(first)
        assert len(seen) <= 2


def test_fast_profile_keeps_the_private_plain_status_on_the_same_port(start_agent, tmp_path):
    """The lab's own readiness checks (not scenarios) still read plain HTTP /agent/status."""
    agent = start_agent(**token_env(tmp_path))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{agent.ports.cmd}/agent/status", timeout=5) as r:
        assert json.loads(r.read())["pid"] == os.getpid()
    assert cli(agent, "status", "-j").returncode == 0  # and TLS on that port at the same time


def test_agents_of_labs_side_by_side_keep_their_own_token(start_agent):
    """Every lab's agents use cmd port 5001, each on its own loopback address: one agent stopping
    must not take the token the other's CLI reads (the default token path is keyed by address)."""
    from lab.agent import ipc
    from lab.subnet_claims import claim_subnet

    with claim_subnet(holder="pytest") as claim:
        agents = []
        for n in (1, 2):
            address = f"{claim.subnet}.2.{n}"
            agents.append(start_agent(DD_CMD_PORT="5001", LAB_AGENT_LOCALHOST=address,
                                      LAB_AGENT_HOST_ADDRESSES=address))
        if ipc.CONF_DIR.is_dir():
            pytest.fail(f"{ipc.CONF_DIR} exists on this machine: the agents would both use it")
        for a in agents:  # components are unhealthy until their first ping (0.5 s on this profile)
            wait_until(lambda a=a: cli(a, "health").returncode == 0, 15, what="agent health: PASS")
        agents[0].stop()
        after = cli(agents[1], "health")
        assert after.returncode == 0, after.stdout + after.stderr


def test_the_cli_imports_no_server_library():
    """`agent health` is docker's health check, with the documents' 5 s timeout: on a loaded 2-core
    machine aiohttp's import alone took 0.4-0.6 s of it (the real agent's CLI is one Go binary). The
    CLI path (ecs-lab's entry point, the agent commands, the IPC client) must not import it."""
    code = ("import sys; import lab.cli, lab.agent.cli, lab.agent.ipc, lab.agent.status; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'moto', 'docker')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout


def test_the_ipc_port_refuses_until_its_credentials_exist_and_then_serves_only_tls(tmp_path):
    """As the real agent starts its API server: the port is bound first (its number names the token
    path), and a client is refused until the auth token and IPC certificate exist; never accepted and
    then reset (that reset failed the first `agent status` after an agent restart)."""
    from aiohttp import web

    from lab.agent import ipc
    from lab.serving import ServerThread

    creds: list[ipc.IpcCredentials] = []

    async def version(request):
        return web.json_response({"Major": 7})

    app = web.Application(middlewares=[ipc.auth_middleware(lambda: creds[0].token if creds else "")])
    app.router.add_get("/agent/version", version)
    server = ServerThread("ipc-test").start()
    ipc_server = ipc.IpcServer(app, "127.0.0.1", 0)
    try:
        server.call(ipc_server.start)
        port = ipc_server.bound_port
        assert port
        env = {"DD_CMD_PORT": str(port), "DD_AUTH_TOKEN_FILE_PATH": str(tmp_path / "auth_token")}
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), 5).close()
        creds.append(ipc.IpcCredentials.fetch_or_create(
            tmp_path / "auth_token", tmp_path / "ipc_cert.pem", ["127.0.0.1"]))
        tls = creds[0].server_context()
        server.call(lambda: ipc_server.serve(tls))
        assert ipc.ipc_get_json(env, "/agent/version") == {"Major": 7}
        # A plain-HTTP client gets Go's answer, not the app (no plain app on this port).
        with socket.create_connection(("127.0.0.1", port), 5) as plain:
            plain.sendall(b"GET /agent/version HTTP/1.1\r\nHost: x\r\n\r\n")
            assert plain.recv(200).startswith(b"HTTP/1.0 400 Bad Request")
    finally:
        server.call(ipc_server.stop)
        server.stop()
