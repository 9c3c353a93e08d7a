"""The forwarder: payload encoding per route, and delivery with retries, backoff and bounded queues.

Routes and bodies (docs/agent_contract.md#intake-routes-and-payloads; pkg/serializer, pkg/trace/writer,
pkg/process/runner): `/api/v2/series` MetricPayload protobuf, `/api/beta/sketches` SketchPayload,
`/api/v1/check_run` and `/intake/` JSON, all zstd-compressed like recent agents; `/api/v0.2/traces`
AgentPayload protobuf gzip; `/api/v0.2/stats` msgpack gzip; `/api/v1/collector` and `/api/v1/container` v3
process messages.

Retries (docs/resilience.md#the-agents-retry-queues) follow the two senders of the real agent:
- the trace-agent's writers (pkg/trace/writer/sender.go): 5xx, 408 and connection errors are retried,
  any other status drops the payload; "full jitter" backoff (100 ms base, 10 s cap) on a per-sender
  attempt count that halves on every success; the queue holds `apm_config.trace_writer.queue_size`
  (stats: `stats_writer.queue_size`) payloads and, when full, drops the OLDEST payload to make room;
  there is no attempt limit.
- the core forwarder (comp/forwarder/defaultforwarder, Datadog's "Agent Retry and Buffering Logic"
  guide): every non-2xx answer is retried except 400, 403 and 413, connection errors too; one retry
  queue for all endpoints, bounded by `forwarder_retry_queue_payloads_max_size` bytes (15 MB); when
  a new failed transaction does not fit, the oldest ones are dropped (counted); retried newest
  first; backoff 2 s base, 64 s cap (the fast profile divides both by 8).
Every drop is counted on its endpoint (`dropped`, and `agent status -j` Transactions.Dropped).

A 403 is Datadog's answer to an API key its site does not know: the core forwarder drops the
transaction and logs `API Key invalid, dropping transaction for <url>` at ERROR
(comp/forwarder/defaultforwarder/transaction/transaction.go, `internalProcess`), and the key's
status (`agent status -j` forwarderStats.APIKeyStatus, "API key ending with <last 5>") becomes
"API Key invalid"; a 2xx makes it "API Key valid".

Every URL comes from `AgentConfig.endpoints`; the forwarder never invents a host.
"""

from __future__ import annotations

import asyncio
import bisect
import gzip
import itertools
import json
import logging
import os
import random
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiohttp
import msgpack
import zstandard

from lab.agent.config import AGENT_VERSION, AgentConfig
from lab.agent.dogstatsd import Event, Serie, ServiceCheck, SketchSerie

log = logging.getLogger("lab.agent.forwarder")

USER_AGENT = f"datadog-agent/{AGENT_VERSION}"
TRACE_USER_AGENT = f"Datadog Trace Agent/{AGENT_VERSION}/ecs-lab"
# pkg/trace/writer/sender.go: backoffBase, backoffMaxDuration.
BACKOFF_BASE = 0.1
BACKOFF_MAX = 10.0
# pkg/util/backoff defaults the core forwarder uses (forwarder_backoff_base / forwarder_backoff_max).
FORWARDER_BACKOFF_BASE = 2.0
FORWARDER_BACKOFF_MAX = 64.0
# forwarder_retry_queue_payloads_max_size default: 15 MB.
FORWARDER_RETRY_QUEUE_BYTES = 15 * 1024 * 1024
# apm_config.trace_writer.queue_size / stats_writer.queue_size: max(1, max_memory / payload size),
# "typically 163 payloads" for traces and 174 for stats (Agent Retry and Buffering Logic guide).
TRACE_WRITER_QUEUE_SIZE = 163
STATS_WRITER_QUEUE_SIZE = 174
# Core-forwarder answers that drop the transaction instead of retrying it.
FORWARDER_NO_RETRY = frozenset({400, 403, 413})
TRACE_WRITER_NAMES = frozenset({"traces", "apm_stats"})

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
    dropped_queue_full: int = 0  # of `dropped`: pushed out of a full queue (oldest first)
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
    # Creation order: a full retry queue drops the OLDEST payload, whenever its last attempt was.
    created: int = field(default_factory=lambda: next(_CREATED))


_CREATED = itertools.count(1)


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None
    if value < 1:
        raise ValueError(f"{name}={raw!r} must be at least 1")
    return value


@dataclass(frozen=True)
class RetryLimits:
    """The bounds of the agent's retry queues, from the real agent's settings (env form)."""

    forwarder_bytes: int = FORWARDER_RETRY_QUEUE_BYTES
    trace_payloads: int = TRACE_WRITER_QUEUE_SIZE
    stats_payloads: int = STATS_WRITER_QUEUE_SIZE

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RetryLimits:
        return cls(
            _env_int(env, "DD_FORWARDER_RETRY_QUEUE_PAYLOADS_MAX_SIZE", FORWARDER_RETRY_QUEUE_BYTES),
            _env_int(env, "DD_APM_TRACE_WRITER_QUEUE_SIZE", TRACE_WRITER_QUEUE_SIZE),
            _env_int(env, "DD_APM_STATS_WRITER_QUEUE_SIZE", STATS_WRITER_QUEUE_SIZE),
        )


class RetryQueue:
    """Failed transactions of one sender waiting for their next attempt, bounded, oldest dropped first.

    `max_payloads` bounds the trace writers (a payload count), `max_bytes` the core forwarder."""

    def __init__(self, name: str, *, max_payloads: int | None = None, max_bytes: int | None = None,
                 backoff_base: float, backoff_max: float, newest_first: bool) -> None:
        self.name = name
        self.max_payloads = max_payloads
        self.max_bytes = max_bytes
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.newest_first = newest_first
        self.items: list[Transaction] = []
        self.bytes = 0
        self.attempt = 0  # the sender's error count: raises the backoff, halved on each success
        self.not_before = 0.0

    def __len__(self) -> int:
        return len(self.items)

    def backoff(self) -> float:
        """Full jitter: uniform(0, min(cap, base * 2**attempt)) (pkg/trace/writer/sender.go)."""
        if self.attempt == 0:
            return 0.0
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** min(self.attempt, 32))
        return random.uniform(0, ceiling)

    def failed(self) -> None:
        self.attempt += 1
        self.not_before = time.monotonic() + self.backoff()

    def succeeded(self) -> None:
        self.attempt //= 2

    def add(self, txn: Transaction) -> list[Transaction]:
        """Queue `txn`; return the transactions dropped to make room (oldest first)."""
        dropped: list[Transaction] = []
        if self.max_bytes is not None and len(txn.body) > self.max_bytes:
            return [txn]  # bigger than the whole queue: it can never be kept
        # Kept in creation order, so what overflows is always the oldest payload.
        bisect.insort(self.items, txn, key=lambda t: t.created)
        self.bytes += len(txn.body)
        while len(self.items) > 1 and (
            (self.max_payloads is not None and len(self.items) > self.max_payloads)
            or (self.max_bytes is not None and self.bytes > self.max_bytes)
        ):
            old = self.items.pop(0)
            self.bytes -= len(old.body)
            dropped.append(old)
        return dropped

    def due(self, now: float) -> list[Transaction]:
        """Everything queued once the backoff has passed (the forwarder retries newest first)."""
        if not self.items or now < self.not_before:
            return []
        out = list(reversed(self.items)) if self.newest_first else list(self.items)
        self.items = []
        self.bytes = 0
        return out


def retriable(name: str, status: int) -> bool:
    """Whether an HTTP answer `status` to transaction `name` is retried (see the module doc)."""
    if name in TRACE_WRITER_NAMES:
        return status >= 500 or status == 408
    return status not in FORWARDER_NO_RETRY


@dataclass
class Forwarder:
    """Sends transactions from the agent's event loop; failed ones wait in bounded retry queues."""

    config: AgentConfig
    max_queue: int = 1000
    timeout: float = 10.0
    limits: RetryLimits = field(default_factory=lambda: RetryLimits.from_env(os.environ))
    counters: dict[str, EndpointCounters] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.api_key_status = ""  # "", "API Key valid" or "API Key invalid" (module docstring)
        self._session: aiohttp.ClientSession | None = None
        self._queue: deque[Transaction] = deque()
        self._ready: asyncio.Event | None = None
        self._workers: list[asyncio.Task] = []
        self._inflight = 0
        scale = 8.0 if self.config.profile == "fast" else 1.0
        self.retry_queues = {
            "traces": RetryQueue("trace_writer", max_payloads=self.limits.trace_payloads,
                                 backoff_base=BACKOFF_BASE, backoff_max=BACKOFF_MAX, newest_first=False),
            "apm_stats": RetryQueue("stats_writer", max_payloads=self.limits.stats_payloads,
                                    backoff_base=BACKOFF_BASE, backoff_max=BACKOFF_MAX, newest_first=False),
            "forwarder": RetryQueue("forwarder", max_bytes=self.limits.forwarder_bytes,
                                    backoff_base=FORWARDER_BACKOFF_BASE / scale,
                                    backoff_max=FORWARDER_BACKOFF_MAX / scale, newest_first=True),
        }

    def retry_queue(self, name: str) -> RetryQueue:
        return self.retry_queues[name if name in TRACE_WRITER_NAMES else "forwarder"]

    async def start(self, workers: int = 4) -> None:
        # trust_env=False: only DD_PROXY_* decide on proxies, never the machine's HTTP(S)_PROXY.
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout), trust_env=False
        )
        self._ready = asyncio.Event()
        self._workers = [asyncio.create_task(self._worker()) for _ in range(workers)]
        self._workers.append(asyncio.create_task(self._retry_loop()))

    async def stop(self, drain_timeout: float = 3.0) -> None:
        # As the real agent on shutdown: in-flight and queued sends get a moment, retry queues are lost.
        deadline = time.monotonic() + drain_timeout
        while (self._queue or self._inflight) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for w in self._workers:
            w.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        if self._session:
            await self._session.close()

    def counter(self, name: str) -> EndpointCounters:
        return self.counters.setdefault(name, EndpointCounters())

    def _drop(self, txn: Transaction, reason: str, queue_full: bool = False) -> None:
        c = self.counter(txn.name)
        c.dropped += 1
        if queue_full:
            c.dropped_queue_full += 1
        c.last_error = reason
        log.warning("dropping %s payload to %s after %d attempt(s): %s",
                    txn.name, txn.url, txn.attempts, reason)

    def submit(self, txn: Transaction) -> None:
        """Queue a transaction (call on the forwarder's loop)."""
        assert self._ready is not None, "forwarder not started"
        self.counter(txn.name)
        self._queue.append(txn)
        while len(self._queue) > self.max_queue:
            # pkg/trace/writer/sender.go Push: "drop the oldest item in the queue to make room";
            # memory stays bounded when the intake hangs.
            self._drop(self._queue.popleft(), "queue full", queue_full=True)
        self._ready.set()

    @property
    def pending(self) -> int:
        return len(self._queue) + sum(len(q) for q in self.retry_queues.values()) + self._inflight

    async def _worker(self) -> None:
        assert self._ready is not None
        while True:
            if not self._queue:
                self._ready.clear()
                await self._ready.wait()
                continue
            txn = self._queue.popleft()
            self._inflight += 1
            try:
                await self._send(txn)
            finally:
                self._inflight -= 1

    async def _send(self, txn: Transaction) -> None:
        c = self.counter(txn.name)
        queue = self.retry_queue(txn.name)
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
                if txn.name not in TRACE_WRITER_NAMES:
                    if resp.status == 403:
                        log.error("API Key invalid, dropping transaction for %s", txn.url)
                        self.api_key_status = "API Key invalid"
                    elif 200 <= resp.status < 300:
                        self.api_key_status = "API Key valid"
                if 200 <= resp.status < 300:
                    c.sent += 1
                    c.bytes += len(txn.body)
                    queue.succeeded()
                    if txn.on_response:
                        try:
                            txn.on_response(resp.status, reply)  # type: ignore[operator]
                        except Exception as exc:  # noqa: BLE001
                            c.last_error = f"bad reply: {exc!r}"
                    return
                again = retriable(txn.name, resp.status)
                c.last_error = f"HTTP {resp.status}"
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            again = True  # timeouts, refused connections, resets: retried by both senders
            c.last_error = repr(exc)
        c.errors += 1
        if not again:
            self._drop(txn, c.last_error)
            return
        c.retries += 1
        queue.failed()
        for old in queue.add(txn):
            self._drop(old, f"{queue.name} retry queue full", queue_full=True)

    async def relay(self, name: str, method: str, url: str, body: bytes,
                    headers: dict[str, str]) -> tuple[int, bytes, str]:
        """One request the trace-agent proxies for a tracer (telemetry, EVP, profiles): sent once,
        as its reverse proxies do, with the agent's API key; returns (status, body, content type).
        Counted on `name` like every other transaction; connection errors raise."""
        c = self.counter(name)
        send_headers = {**headers, "DD-API-KEY": self.config.api_key}
        assert self._session is not None, "forwarder not started"
        try:
            async with self._session.request(method, url, data=body, headers=send_headers,
                                             proxy=self.config.proxy_for(url)) as resp:
                reply = await resp.read()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            c.errors += 1
            c.last_error = repr(exc)
            raise
        c.last_status = resp.status
        if 200 <= resp.status < 300:
            c.sent += 1
            c.bytes += len(body)
        else:
            c.errors += 1
            c.http_errors[resp.status] = c.http_errors.get(resp.status, 0) + 1
            c.last_error = f"HTTP {resp.status}"
        return resp.status, reply, resp.headers.get("Content-Type", "")

    async def _retry_loop(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            now = time.monotonic()
            for queue in self.retry_queues.values():
                due = queue.due(now)
                if due:
                    self._queue.extend(due)
                    assert self._ready is not None
                    self._ready.set()

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
