"""What the resilience scenarios share: the agent seen only as the real agent offers it (its CLI by
exec into its container, its receivers, the intake), and traffic whose every item can be counted.

Intervals: the process checks' interval is read from `agent config` (`process_config.intervals.
process`, a real key); the others are the real agent's documented defaults (docs/agent_contract.md),
used as upper bounds of waits on conditions, so a faster agent only ends the waits sooner.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import tempfile
import time
import urllib.request
from dataclasses import dataclass

import msgpack
import yaml

# The real agent's documented defaults (seconds), upper bounds for waits.
METRICS_FLUSH = 15.0  # pkg/aggregator DefaultFlushInterval, 10 s buckets: a point leaves within ~25 s
TRACE_FLUSH = 5.0  # pkg/trace/writer tick
TRACE_BACKOFF_MAX = 10.0  # pkg/trace/writer/sender.go backoffMaxDuration
FORWARDER_BACKOFF_MAX = 64.0  # forwarder_backoff_max
PROCESS_INTERVAL = 10.0  # pkg/process/checks/interval.go
HEALTH_PING = 15.0  # pkg/status/health: components unhealthy until their first ping
HEALTH_START_PERIOD = 15.0  # the docs' task definition healthCheck startPeriod


def own_token_env(name: str) -> dict[str, str]:
    """DD_AUTH_TOKEN_FILE_PATH private to one stack. Without it the emulated agents of every lab on the
    machine share `<tmp>/ecs-lab-agent-<uid>/<cmd_port>/auth_token` (all use cmd port 5001), and the
    first of them to stop deletes the token the others' CLI needs (reported; lab/agent/ipc.py)."""
    directory = os.path.join(tempfile.gettempdir(), f"ecs-lab-resilience-{os.getpid()}-{name}")
    # A SIGKILLed agent leaves its token behind (its successor reuses it): remove it at the end.
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return {"DD_AUTH_TOKEN_FILE_PATH": os.path.join(directory, "auth_token")}


def agent_cli(lab, n: int, *args: str, timeout: float = 30) -> tuple[int, str]:
    """`docker exec <agent> agent <args>` on instance n: (exit code, output)."""
    agent = lab.refresh().instance(n)["agent"]
    assert agent.get("task_arn"), f"instance {n} runs no agent task: {agent}"
    return lab.backend.exec_in_container(agent["task_arn"], agent["container"], ["agent", *args], timeout)


def wait_healthy(lab, n: int = 1, timeout: float = HEALTH_START_PERIOD + 2 * HEALTH_PING) -> None:
    """Until `agent health` passes on instance n, as the task definition's health check waits for
    it; each try asks the instance's current agent task (a killed one is replaced meanwhile)."""
    from lab.agent_probe import AgentProbe

    AgentProbe(lambda argv: agent_cli(lab, n, *argv[1:], timeout=10), None).wait_healthy(timeout)


def agent_status(lab, n: int = 1) -> dict:
    code, out = agent_cli(lab, n, "status", "-j")
    assert code == 0, f"agent status -j exited {code}: {out[-500:]}"
    return json.loads(out[out.index("{"):])


def agent_config(lab, n: int = 1) -> dict:
    code, out = agent_cli(lab, n, "config")
    assert code == 0, f"agent config exited {code}: {out[-500:]}"
    return yaml.safe_load(out) or {}


def process_interval(lab, n: int = 1) -> float:
    intervals = (agent_config(lab, n).get("process_config") or {}).get("intervals") or {}
    return float(intervals.get("process") or PROCESS_INTERVAL)


@dataclass
class SpanSender:
    """A tracer's job done by hand: v0.4 msgpack traces of one span each, ids known, to the agent."""

    apm_url: str
    service: str
    next_id: int = 1_000_001
    sent: int = 0

    def send(self, n: int = 1) -> list[int]:
        ids = list(range(self.next_id, self.next_id + n))
        self.next_id += n
        now = time.time_ns()
        traces = [[{"trace_id": i, "span_id": i, "parent_id": 0, "name": "resilience.op",
                    "service": self.service, "resource": f"op-{i}", "type": "custom", "start": now,
                    "duration": 1_000_000, "error": 0, "meta": {"env": "lab"},
                    "metrics": {"_sampling_priority_v1": 1}}]
                  for i in ids]
        req = urllib.request.Request(f"{self.apm_url}/v0.4/traces", data=msgpack.packb(traces), method="PUT",
                                     headers={"Content-Type": "application/msgpack",
                                              "X-Datadog-Trace-Count": str(len(traces)),
                                              "Datadog-Meta-Lang": "python"})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(req, timeout=10) as resp:
            assert resp.status == 200, f"the agent answered {resp.status} to {len(traces)} traces"
        self.sent += n
        return ids


@dataclass
class CountSender:
    """DogStatsD counter increments, one datagram each, to the agent's 8125/udp."""

    address: tuple[str, int]
    metric: str
    tag: str
    sent: int = 0

    def send(self, n: int = 1) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for _ in range(n):
                sock.sendto(f"{self.metric}:1|c|#{self.tag}".encode(), self.address)
                self.sent += 1


def counted(intake, metric: str, tag: str) -> float:
    """What arrived of a DogStatsD counter: it leaves the agent as a RATE, value * interval each point."""
    return sum(p["value"] * (s.get("interval") or 1) for s in intake.metrics(metric, tags=[tag])
               for p in s["points"])


def span_ids(intake, service: str) -> list[int]:
    return [int(s["trace_id"]) for s in intake.spans(service=service)]


def process_timestamps(intake, host: str) -> list[int]:
    """The header timestamps (ms) of the process-list payloads of one agent, one per check run."""
    return [item["data"]["header"]["timestamp"]
            for item in intake.payloads("/api/v1/collector", host=host, type="12")]
