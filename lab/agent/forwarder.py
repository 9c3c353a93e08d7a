"""The forwarder: payload encoding per route, and delivery with retries, backoff and a bounded queue.

Routes and bodies (docs/agent_contract.md#intake-routes-and-payloads; pkg/serializer, pkg/trace/writer,
pkg/process/runner): `/api/v2/series` MetricPayload protobuf, `/api/beta/sketches` SketchPayload,
`/api/v1/check_run` and `/intake/` JSON, all zstd-compressed like recent agents; `/api/v0.2/traces`
AgentPayload protobuf gzip; `/api/v0.2/stats` msgpack gzip; `/api/v1/collector` and `/api/v1/container` v3
process messages. Retry policy as pkg/trace/writer/sender.go: 5xx, 408 and connection errors are retried
with "full jitter" exponential backoff (100 ms base, 10 s cap), other statuses drop the payload;
when the retry queue is full the oldest payload is dropped and counted.

Every URL comes from `AgentConfig.endpoints`; the forwarder never invents a host.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import random
import time
from collections import deque
from dataclasses import dataclass, field

import aiohttp
import msgpack
import zstandard

from lab.agent.config import AGENT_VERSION, AgentConfig
from lab.agent.dogstatsd import Event, Serie, ServiceCheck, SketchSerie

log = logging.getLogger("lab.agent.forwarder")

USER_AGENT = f"datadog-agent/{AGENT_VERSION}"
TRACE_USER_AGENT = f"Datadog Trace Agent/{AGENT_VERSION}/ecs-lab"
BACKOFF_BASE = 0.1
BACKOFF_MAX = 10.0

# Metadata.Origin for DogStatsD series (pkg/metrics: origin product agent=10, category dogstatsd=10)
ORIGIN_PRODUCT_AGENT = 10
ORIGIN_CATEGORY_DOGSTATSD = 10


def zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=1).compress(data)


# -- encoders (socket-free) ------------------------------------------------------------------------
def encode_series(series: list[Serie], dogstatsd: bool = True) -> bytes:
    from lab.proto import metrics_payload_pb2 as mp

    payload = mp.MetricPayload()
    for s in series:
        out = payload.series.add(
            metric=s.name, type=s.mtype, interval=s.interval, unit=s.unit, source_type_name=s.source_type_name
        )
        out.tags.extend(s.tags)
        if s.host:
            out.resources.add(type="host", name=s.host)
        for ts, v in s.points:
            out.points.add(value=v, timestamp=ts)
        if dogstatsd:
            out.metadata.origin.origin_product = ORIGIN_PRODUCT_AGENT
            out.metadata.origin.origin_category = ORIGIN_CATEGORY_DOGSTATSD
    return payload.SerializeToString()


def encode_sketches(sketches: list[SketchSerie]) -> bytes:
    from lab.proto import metrics_payload_pb2 as mp

    payload = mp.SketchPayload()
    for s in sketches:
        out = payload.sketches.add(metric=s.name, host=s.host)
        out.tags.extend(s.tags)
        keys, counts = s.sketch.keys_counts()
        out.dogsketches.add(
            ts=s.timestamp,
            cnt=s.sketch.count,
            min=s.sketch.min,
            max=s.sketch.max,
            avg=s.sketch.avg,
            sum=s.sketch.sum,
            k=keys,
            n=counts,
        )
        out.metadata.origin.origin_product = ORIGIN_PRODUCT_AGENT
        out.metadata.origin.origin_category = ORIGIN_CATEGORY_DOGSTATSD
    return payload.SerializeToString()


def encode_check_runs(checks: list[ServiceCheck], hostname: str) -> bytes:
    now = int(time.time())
    return json.dumps(
        [
            {
                "check": c.name,
                "host_name": c.host if c.host is not None else hostname,
                "timestamp": c.timestamp or now,
                "status": c.status,
                "message": c.message,
                "tags": c.tags,
            }
            for c in checks
        ]
    ).encode()


def encode_events(events: list[Event], hostname: str, api_key: str) -> bytes:
    """The v1 intake body (`/intake/`): events grouped by source type name."""
    now = int(time.time())
    grouped: dict[str, list[dict]] = {}
    for e in events:
        grouped.setdefault(e.source_type_name or "api", []).append(
            {
                "msg_title": e.title,
                "msg_text": e.text,
                "timestamp": e.timestamp or now,
                "priority": e.priority,
                "host": e.host if e.host is not None else hostname,
                "tags": e.tags,
                "alert_type": e.alert_type,
                "aggregation_key": e.aggregation_key,
                "source_type_name": e.source_type_name,
            }
        )
    return json.dumps({"apiKey": api_key, "events": grouped, "internalHostname": hostname}).encode()


def encode_host_metadata(hostname: str, host_tags: list[str], api_key: str) -> bytes:
    return json.dumps(
        {
            "apiKey": api_key,
            "internalHostname": hostname,
            "agentVersion": AGENT_VERSION,
            "host-tags": {"system": host_tags},
            "meta": {"hostname": hostname},
        }
    ).encode()


def encode_stats_payload(stats: dict) -> bytes:
    return gzip.compress(msgpack.packb(stats), compresslevel=1)


# -- delivery --------------------------------------------------------------------------------------
@dataclass
class EndpointCounters:
    sent: int = 0
    errors: int = 0
    retries: int = 0
    dropped: int = 0
    bytes: int = 0
    last_status: int | None = None
    last_error: str = ""
    http_errors: dict[int, int] = field(default_factory=dict)  # status >= 400 -> count

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Transaction:
    name: str  # e.g. "series", "traces"
    url: str
    body: bytes
    headers: dict[str, str]
    attempts: int = 0
    not_before: float = 0.0
    on_response: object = None  # callable(status, body) for replies the agent reads (ResCollector)


@dataclass
class Forwarder:
    """Sends transactions from the agent's event loop; retries in a bounded queue."""

    config: AgentConfig
    max_retry_queue: int = 100
    max_queue: int = 1000
    max_attempts: int = 10
    timeout: float = 10.0
    counters: dict[str, EndpointCounters] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._queue: asyncio.Queue[Transaction] | None = None
        self._retry: deque[Transaction] = deque()
        self._workers: list[asyncio.Task] = []
        self._inflight = 0

    async def start(self, workers: int = 4) -> None:
        # trust_env=False: only DD_PROXY_* decide on proxies, never the machine's HTTP(S)_PROXY.
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout), trust_env=False
        )
        self._queue = asyncio.Queue()
        self._workers = [asyncio.create_task(self._worker()) for _ in range(workers)]
        self._workers.append(asyncio.create_task(self._retry_loop()))

    async def stop(self, drain_timeout: float = 3.0) -> None:
        deadline = time.monotonic() + drain_timeout
        while (
            self._queue is not None
            and (not self._queue.empty() or self._inflight)
            and time.monotonic() < deadline
        ):
            await asyncio.sleep(0.02)
        for w in self._workers:
            w.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        if self._session:
            await self._session.close()

    def counter(self, name: str) -> EndpointCounters:
        return self.counters.setdefault(name, EndpointCounters())

    def submit(self, txn: Transaction) -> None:
        """Queue a transaction (call on the forwarder's loop)."""
        assert self._queue is not None, "forwarder not started"
        c = self.counter(txn.name)
        if self._queue.qsize() >= self.max_queue:
            # pkg/trace/writer: "queue full. Payload dropped" - memory stays bounded when the
            # intake hangs.
            c.dropped += 1
            c.last_error = "queue full"
            return
        self._queue.put_nowait(txn)

    @property
    def pending(self) -> int:
        return (self._queue.qsize() if self._queue else 0) + len(self._retry) + self._inflight

    async def _worker(self) -> None:
        assert self._queue is not None
        while True:
            txn = await self._queue.get()
            self._inflight += 1
            try:
                await self._send(txn)
            finally:
                self._inflight -= 1

    async def _send(self, txn: Transaction) -> None:
        c = self.counter(txn.name)
        txn.attempts += 1
        headers = {"DD-Api-Key": self.config.api_key, **txn.headers}
        proxy = self.config.proxy_for(txn.url)
        try:
            assert self._session is not None
            async with self._session.post(txn.url, data=txn.body, headers=headers, proxy=proxy) as resp:
                reply = await resp.read()
                c.last_status = resp.status
                if resp.status >= 400:
                    c.http_errors[resp.status] = c.http_errors.get(resp.status, 0) + 1
                if 200 <= resp.status < 300:
                    c.sent += 1
                    c.bytes += len(txn.body)
                    if txn.on_response:
                        try:
                            txn.on_response(resp.status, reply)  # type: ignore[operator]
                        except Exception as exc:  # noqa: BLE001
                            c.last_error = f"bad reply: {exc!r}"
                    return
                retriable = resp.status >= 500 or resp.status == 408
                c.last_error = f"HTTP {resp.status}"
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            retriable = True
            c.last_error = repr(exc)
        c.errors += 1
        if not retriable or txn.attempts >= self.max_attempts:
            c.dropped += 1
            log.warning(
                "dropping %s payload to %s after %d attempt(s): %s",
                txn.name,
                txn.url,
                txn.attempts,
                c.last_error,
            )
            return
        c.retries += 1
        if len(self._retry) >= self.max_retry_queue:
            oldest = self._retry.popleft()
            self.counter(oldest.name).dropped += 1
        pow_ = min(2**txn.attempts, BACKOFF_MAX / BACKOFF_BASE)
        txn.not_before = time.monotonic() + random.uniform(0, BACKOFF_BASE * pow_)
        self._retry.append(txn)

    async def _retry_loop(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            now = time.monotonic()
            for _ in range(len(self._retry)):
                txn = self._retry.popleft()
                if txn.not_before <= now:
                    assert self._queue is not None
                    self._queue.put_nowait(txn)
                else:
                    self._retry.append(txn)

    def snapshot(self) -> dict:
        return {name: c.as_dict() for name, c in sorted(self.counters.items())}


# -- transaction builders --------------------------------------------------------------------------
def metrics_headers(content_type: str) -> dict[str, str]:
    return {
        "Content-Type": content_type,
        "Content-Encoding": "zstd",
        "DD-Agent-Version": AGENT_VERSION,
        "User-Agent": USER_AGENT,
    }


def series_transaction(config: AgentConfig, series: list[Serie]) -> Transaction:
    return Transaction(
        "series",
        config.endpoints.metrics + "/api/v2/series",
        zstd(encode_series(series)),
        metrics_headers("application/x-protobuf"),
    )


def sketches_transaction(config: AgentConfig, sketches: list[SketchSerie]) -> Transaction:
    return Transaction(
        "sketches",
        config.endpoints.metrics + "/api/beta/sketches",
        zstd(encode_sketches(sketches)),
        metrics_headers("application/x-protobuf"),
    )


def check_runs_transaction(config: AgentConfig, checks: list[ServiceCheck], hostname: str) -> Transaction:
    return Transaction(
        "check_run",
        config.endpoints.metrics + "/api/v1/check_run",
        zstd(encode_check_runs(checks, hostname)),
        metrics_headers("application/json"),
    )


def events_transaction(config: AgentConfig, events: list[Event], hostname: str) -> Transaction:
    return Transaction(
        "events",
        config.endpoints.metrics + "/intake/",
        zstd(encode_events(events, hostname, config.api_key)),
        metrics_headers("application/json"),
    )


def host_metadata_transaction(config: AgentConfig, hostname: str, host_tags: list[str]) -> Transaction:
    return Transaction(
        "host_metadata",
        config.endpoints.metrics + "/intake/",
        zstd(encode_host_metadata(hostname, host_tags, config.api_key)),
        metrics_headers("application/json"),
    )


def traces_transaction(config: AgentConfig, payload: bytes, languages: set[str]) -> Transaction:
    """pkg/trace/writer/trace.go: a serialized AgentPayload, gzip, X-Datadog-Reported-Languages."""
    body = gzip.compress(payload, compresslevel=1)
    return Transaction(
        "traces",
        config.endpoints.traces + "/api/v0.2/traces",
        body,
        {
            "Content-Type": "application/x-protobuf",
            "Content-Encoding": "gzip",
            "X-Datadog-Reported-Languages": "|".join(sorted(languages)),
            "User-Agent": TRACE_USER_AGENT,
        },
    )


def stats_transaction(config: AgentConfig, stats: dict) -> Transaction:
    return Transaction(
        "apm_stats",
        config.endpoints.traces + "/api/v0.2/stats",
        encode_stats_payload(stats),
        {"Content-Type": "application/msgpack", "Content-Encoding": "gzip", "User-Agent": TRACE_USER_AGENT},
    )
