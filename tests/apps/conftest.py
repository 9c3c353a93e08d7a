"""Fixtures for the sample app tests: the fake IMDS, and a capture standing where the agent would.

The capture is deliberately dumb (the emulated agent is tested elsewhere): it accepts `/v0.4/traces`
and `/v0.5/traces` (msgpack), answers `/info` with exactly what it accepts (tracers change what they
send by what `/info` advertises), answers anything else 200, and keeps every DogStatsD datagram. It
binds the address IMDS reports as the instance's private IP, so traffic that arrives there proves the
app resolved DD_AGENT_HOST; an app that fell back to localhost would find nobody.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from dataclasses import dataclass, field

import msgpack
import pytest
from aiohttp import web

from lab.fakes.imds.server import ImdsServer
from lab.serving import ServerThread
from lab.world import World

_subnets = itertools.count(1)


@dataclass
class Span:
    service: str
    name: str
    resource: str
    trace_id: int
    span_id: int
    parent_id: int
    error: int
    meta: dict
    metrics: dict
    endpoint: str
    agent_address: str  # the local address the tracer connected to


def decode_v05(body: bytes) -> list[list[dict]]:
    """v0.5: [string table, traces]; a span is a 12-item array of string-table indexes and numbers."""
    strings, traces = msgpack.unpackb(body, strict_map_key=False)
    s = strings.__getitem__
    out = []
    for trace in traces:
        spans = []
        for (service, name, resource, trace_id, span_id, parent_id, _start, _dur, error, meta, metrics,
             _type) in trace:
            spans.append({"service": s(service), "name": s(name), "resource": s(resource),
                          "trace_id": trace_id, "span_id": span_id, "parent_id": parent_id,
                          "error": error, "meta": {s(k): s(v) for k, v in meta.items()},
                          "metrics": {s(k): v for k, v in metrics.items()}})
        out.append(spans)
    return out


def decode_v04(body: bytes) -> list[list[dict]]:
    return msgpack.unpackb(body, strict_map_key=False)


class AgentCapture:
    """Owner of an APM listener and a DogStatsD socket on one address (port 0 for both)."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.spans: list[Span] = []
        self.trace_requests: list[str] = []
        self.datagrams: list[str] = []
        self.bad_payloads: list[str] = []
        self._lock = threading.Lock()
        self._thread = ServerThread(f"capture-{host}")
        self.apm_port = 0
        self.dogstatsd_port = 0

    def start(self) -> AgentCapture:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/info", self._info)
        app.router.add_route("*", "/v0.4/traces", self._traces)
        app.router.add_route("*", "/v0.5/traces", self._traces)
        app.router.add_route("*", "/{tail:.*}", self._other)
        self.apm_port = self._thread.add_app(app, self.host, 0).bound_port
        capture = self

        class _Statsd(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr) -> None:
                with capture._lock:
                    capture.datagrams.extend(data.decode(errors="replace").splitlines())

        _, self.dogstatsd_port = self._thread.add_udp(_Statsd, self.host, 0, rcvbuf=8 * 1024 * 1024)
        return self

    async def _info(self, request: web.Request) -> web.Response:
        return web.json_response({"version": "7.99.0-capture", "endpoints": ["/v0.4/traces", "/v0.5/traces"],
                                  "client_drop_p0s": False, "span_meta_structs": False})

    async def _traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        endpoint = request.path
        local = request.transport.get_extra_info("sockname")[0] if request.transport else "?"
        try:
            traces = decode_v05(body) if endpoint == "/v0.5/traces" else decode_v04(body)
        except Exception as exc:  # noqa: BLE001 - a bad payload is recorded, never fatal
            with self._lock:
                self.bad_payloads.append(f"{endpoint}: {exc!r}")
            return web.json_response({"error": str(exc)}, status=400)
        with self._lock:
            self.trace_requests.append(endpoint)
            for trace in traces:
                for sp in trace:
                    self.spans.append(Span(
                        service=sp.get("service", ""), name=sp.get("name", ""),
                        resource=sp.get("resource", ""), trace_id=sp.get("trace_id", 0),
                        span_id=sp.get("span_id", 0), parent_id=sp.get("parent_id", 0),
                        error=sp.get("error", 0), meta=sp.get("meta") or {},
                        metrics=sp.get("metrics") or {}, endpoint=endpoint, agent_address=local))
        return web.json_response({"rate_by_service": {}})

    async def _other(self, request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({})

    def spans_named(self, name: str) -> list[Span]:
        with self._lock:
            return [s for s in self.spans if s.name == name]

    def metric_lines(self, prefix: str) -> list[str]:
        with self._lock:
            return [d for d in self.datagrams if d.startswith(prefix)]

    def describe(self) -> str:
        with self._lock:
            names = sorted({s.name for s in self.spans})
            return (f"capture on {self.host}: {len(self.spans)} spans {names} from {self.trace_requests}, "
                    f"{len(self.datagrams)} datagram lines, bad payloads {self.bad_payloads}")

    def stop(self) -> None:
        self._thread.stop()

    def __enter__(self) -> AgentCapture:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@dataclass
class Instance:
    """An emulated EC2 instance for one test: its private IP, its IMDS URL, the capture on that IP."""

    private_ip: str
    imds_url: str
    imds: ImdsServer
    capture: AgentCapture
    world: World
    env: dict = field(default_factory=dict)


@pytest.fixture
def instance():
    """A fresh private IP in 127.0.0.0/8 per test (other suites run concurrently: port 0 everywhere)."""
    n = next(_subnets)
    private_ip = f"127.0.{200 + n % 50}.{10 + (n * 7) % 200}"
    world = World()
    inst = world.add_instance(private_ip)
    with ImdsServer(world) as imds, AgentCapture(private_ip) as capture:
        imds_url = imds.listen("127.0.0.1", 0, instance=inst).url
        env = {
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds_url,
            "DD_SERVICE": "ecs-lab-web-test",
            "DD_ENV": "apps-test",
            "DD_VERSION": "9.8.7",
            "DD_TRACE_AGENT_PORT": str(capture.apm_port),
            "DD_DOGSTATSD_PORT": str(capture.dogstatsd_port),
        }
        yield Instance(private_ip, imds_url, imds, capture, world, env)
