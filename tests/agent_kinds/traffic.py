"""What a tracer and a DogStatsD client send to an agent, for the agent-kind tests (local and docker)."""

from __future__ import annotations

import random
import socket
import time

import msgpack
import urllib3

SITE = "ecs-lab.invalid"
METRICS_HOST = f"api.{SITE}"  # where the binary's metric flush goes: https://api.<DD_SITE>


def v04_trace(service: str) -> tuple[bytes, int]:
    """One two-span trace in the v0.4 msgpack format a tracer PUTs to /v0.4/traces: (body, trace id)."""
    trace_id = random.getrandbits(62)
    now = time.time_ns()
    spans = [
        {"trace_id": trace_id, "span_id": trace_id, "parent_id": 0, "name": "web.request",
         "resource": "GET /", "service": service, "type": "web", "start": now - 2_000_000,
         "duration": 2_000_000, "error": 0, "meta": {"http.method": "GET"},
         "metrics": {"_sampling_priority_v1": 1.0, "_dd.top_level": 1.0}},
        {"trace_id": trace_id, "span_id": trace_id + 1, "parent_id": trace_id, "name": "db.query",
         "resource": "SELECT 1", "service": service, "type": "sql", "start": now - 1_000_000,
         "duration": 500_000, "error": 0, "meta": {}, "metrics": {}},
    ]
    return msgpack.packb([spans]), trace_id


def send_trace(host: str, port: int, service: str) -> int:
    body, trace_id = v04_trace(service)
    http = urllib3.PoolManager()
    resp = http.request("PUT", f"http://{host}:{port}/v0.4/traces", body=body, timeout=5,
                        headers={"Content-Type": "application/msgpack", "X-Datadog-Trace-Count": "1",
                                 "Datadog-Meta-Lang": "python", "Datadog-Meta-Tracer-Version": "lab"})
    assert resp.status == 200, (resp.status, resp.data)
    return trace_id


def send_metric(host: str, port: int, line: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(line, (host, port))


def free_loopback_address() -> str:
    """A 127/8 address nobody else's test uses (the lab's local backend gives each instance one)."""
    return f"127.{random.randint(100, 250)}.{random.randint(0, 255)}.{random.randint(2, 250)}"


def free_port(host: str, kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
