"""serverless-compat as a local process: the launcher the local backend runs for its image tag.

A tracer's v0.4 trace and a DogStatsD metric go to the instance's address (through the launcher's
relays, as apps on the local backend reach their agent); the trace must reach the lab's intake, and
the metric flush (which the binary sends only to https://api.<DD_SITE>, no override) must end at the
recording egress proxy, refused. Nothing else may be attempted.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import pytest

from lab.agent_images import (
    SERVERLESS_COMPAT,
    local_command,
    serverless_compat_image,
    serverless_compat_version,
)
from lab.fakes.intake.client import IntakeClient
from lab.world import wait_until

from .traffic import METRICS_HOST, SITE, free_loopback_address, free_port, send_metric, send_trace

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _clean_env() -> dict[str, str]:
    """The machine's env without anything that would change what the agent does or where it sends."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("DD_", "LAB_", "ECS_", "AWS_"))
            and k.lower() not in ("http_proxy", "https_proxy")}


class LocalAgent:
    """The process `local_command` describes, started as the local backend would; stopped by pid."""

    def __init__(self, env: dict[str, str]) -> None:
        command = local_command(serverless_compat_image(), env)
        assert command is not None and command.kind == SERVERLESS_COMPAT
        self.command = command
        self.dir = Path(tempfile.mkdtemp(prefix="sc-local-"))
        self.log = self.dir / "agent.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> dict:
        out = open(self.log, "wb")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(self.command.argv, env=self.command.env, stdout=out,
                                     stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[2])
        out.close()

        def ready() -> dict | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"agent exited {self.proc.returncode}:\n{self.log.read_text()}")
            for line in self.log.read_text().splitlines():
                if line.startswith('{"event": "ready"'):
                    return json.loads(line)
            return None

        return wait_until(ready, 30, what="the serverless-compat launcher's ready line")

    def agent(self, *args: str) -> subprocess.CompletedProcess:
        """`agent ARGS` through the shim the local backend puts on the container's PATH."""
        shim = self.dir / "agent"
        shim.write_text("#!/bin/sh\n" + self.command.agent_shim)
        shim.chmod(0o755)
        return subprocess.run([str(shim), *args], env=self.command.env, capture_output=True, text=True,
                              timeout=30, cwd=Path(__file__).resolve().parents[2])

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def instance_env(intake, egress):
    host = free_loopback_address()
    env = _clean_env()
    env.update({
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "DD_API_KEY": "lab00000000000000000000000000000",
        "DD_SITE": SITE,
        "DD_DD_URL": intake.url,
        "DD_APM_DD_URL": intake.url,
        "DD_APM_PROFILING_DD_URL": intake.url + "/api/v2/profile",  # the agent's form, as the lab sets it
        "DD_APM_RECEIVER_PORT": str(free_port(host)),
        "DD_DOGSTATSD_PORT": str(free_port(host, socket.SOCK_DGRAM)),
        "DD_APM_NON_LOCAL_TRAFFIC": "true",
        "DD_DOGSTATSD_NON_LOCAL_TRAFFIC": "true",
        "DD_LOG_LEVEL": "warning",  # the agent's spelling; the launcher maps it for the binary
        "LAB_AGENT_HOST_ADDRESSES": host,
        **egress.agent_env(),
    })
    return env


@pytest.fixture
def agent(instance_env):
    a = LocalAgent(instance_env)
    yield a
    a.stop()
    a.remove()


def test_trace_reaches_the_intake_and_the_metric_flush_only_the_egress_proxy(agent, instance_env, intake,
                                                                             egress):
    ready = agent.start()
    host = instance_env["LAB_AGENT_HOST_ADDRESSES"]
    apm, statsd = int(instance_env["DD_APM_RECEIVER_PORT"]), int(instance_env["DD_DOGSTATSD_PORT"])
    assert ready["ports"] == {"apm": apm, "dogstatsd": statsd} and ready["relayed_on"] == [host]
    assert ready["version"] == serverless_compat_version()

    with NO_PROXY.open(f"http://{host}:{apm}/info", timeout=5) as resp:
        info = json.load(resp)
    assert "/v0.4/traces" in info["endpoints"]

    trace_id = send_trace(host, apm, "sc-local-web")
    client = IntakeClient(intake.url)
    spans = wait_until(lambda: [s for s in client.spans(service="sc-local-web") if s["trace_id"] == trace_id],
                       30, what="the trace's spans at the intake")
    assert {s["name"] for s in spans} == {"web.request", "db.query"}
    # No metric was sent yet, so the binary's metric flusher has had nothing to send anywhere.
    assert egress.attempts == []

    send_metric(host, statsd, b"sc.local.requests:3|c|#env:lab")
    attempts = wait_until(lambda: egress.attempts, 40, what="the metric flush to reach the egress proxy")
    assert {(a.method, a.host, a.port) for a in attempts} == {("CONNECT", METRICS_HOST, 443)}
    # The metric could not reach the intake: it has no route for it, and the intake got only traces.
    assert set(client.routestats()) <= {"/api/v0.2/traces", "/api/v0.2/stats"}
    assert agent.stop() == 0


def test_a_profile_reaches_the_profiling_intake(agent, instance_env, intake):
    """The profiling relay /info lists: a profiler's upload reaches the intake's /api/v2/profile."""
    agent.start()
    host, apm = instance_env["LAB_AGENT_HOST_ADDRESSES"], int(instance_env["DD_APM_RECEIVER_PORT"])
    boundary = "labboundary"
    event = json.dumps({"attachments": ["cpu.pprof"], "family": "python", "version": "4",
                        "tags_profiler": "service:sc-profile"}).encode()
    body = b"".join(
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\n"
        f"Content-Type: {ctype}\r\n\r\n".encode() + content + b"\r\n"
        for name, ctype, content in (("event", "application/json", event),
                                     ("cpu.pprof", "application/octet-stream", b"pprof"))
    ) + f"--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"http://{host}:{apm}/profiling/v1/input", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with NO_PROXY.open(request, timeout=10) as resp:
        assert 200 <= resp.status < 300
    client = IntakeClient(intake.url)
    rows = wait_until(lambda: client.payloads("/api/v2/profile", fmt="json"), 30,
                      what="the profile at the intake's /api/v2/profile")
    assert (rows[0]["data"].get("event") or {}).get("tags_profiler") == "service:sc-profile"


def test_agent_health_and_status_are_not_offered(agent):
    agent.start()
    for args in (("health",), ("status", "-j"), ("config",)):
        result = agent.agent(*args)
        assert result.returncode == 127, result
        assert "not offered by this agent (datadog-serverless-compat " in result.stderr
        assert "/v0.4/traces" in result.stderr  # the endpoints its /info lists
        assert "PASS" not in result.stdout + result.stderr
    version = agent.agent("version")
    assert version.returncode == 0
    assert version.stdout.strip() == f"datadog-serverless-compat {serverless_compat_version()}"


def test_missing_api_key_is_a_clear_error(instance_env):
    del instance_env["DD_API_KEY"]
    command = local_command(serverless_compat_image(), instance_env)
    proc = subprocess.run(command.argv, env=command.env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1 and "DD_API_KEY is not set" in proc.stderr


def test_another_version_tag_is_refused_on_the_local_backend():
    with pytest.raises(RuntimeError, match="runs the installed datadog-serverless-compat"):
        local_command("ecs-agent-lab/agent-serverless-compat:0.0.1", {})
    assert local_command("public.ecr.aws/datadog/agent:7", {}) is None
    assert sys.executable in local_command(serverless_compat_image(), {}).argv
