"""The APM receiver: tracer payloads in (msgpack v0.4 / v0.5, client stats v0.6), AgentPayload out.

Model (socket-free): `decode_v04`, `decode_v05`, `decode_stats`, `TraceBuffer` (chunks grouped per
tracer payload, turned into the `AgentPayload` protobuf the trace-agent sends to
`/api/v0.2/traces`). Wire: `make_app` builds the aiohttp application served on 8126.

Sources: DataDog/datadog-agent pkg/trace/api (endpoints.go, api.go, info.go, version.go: v0.5 is
`[string table, traces]` with 12-element span arrays), pkg/trace/agent (the chunk priority from
`_sampling_priority_v1`, env from the root span's `env` meta, `_dd.origin`), pkg/trace/writer
(payload headers), pkg/trace/api/info.go (the `/info` document).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import msgpack
from aiohttp import web

from lab.agent.config import AGENT_VERSION, AgentConfig

log = logging.getLogger("lab.agent.apm")

U64 = (1 << 64) - 1
SAMPLING_PRIORITY_KEY = "_sampling_priority_v1"
V05_FIELDS = (
    "service",
    "name",
    "resource",
    "trace_id",
    "span_id",
    "parent_id",
    "start",
    "duration",
    "error",
    "meta",
    "metrics",
    "type",
)

# What this receiver really serves (/info lists exactly these).
ENDPOINTS = ("/v0.4/traces", "/v0.5/traces", "/v0.6/stats", "/info")


class DecodeError(ValueError):
    pass


def _s(v) -> str:
    if isinstance(v, bytes):
        return v.decode(errors="replace")
    return "" if v is None else str(v)


def _str_map(m) -> dict:
    return {_s(k): _s(v) for k, v in m.items()} if isinstance(m, dict) else {}


def _float_map(m) -> dict:
    out = {}
    for k, v in m.items() if isinstance(m, dict) else ():
        try:
            out[_s(k)] = float(v)
        except (TypeError, ValueError):
            continue
    return out


def _span_from_map(raw: dict) -> dict:
    if not isinstance(raw, dict):
        raise DecodeError(f"span is a {type(raw).__name__}, not a map")
    get = raw.get
    ms = get("meta_struct")
    return {
        "service": _s(get("service")),
        "name": _s(get("name")),
        "resource": _s(get("resource")),
        "trace_id": int(get("trace_id") or 0) & U64,
        "span_id": int(get("span_id") or 0) & U64,
        "parent_id": int(get("parent_id") or 0) & U64,
        "start": int(get("start") or 0),
        "duration": int(get("duration") or 0),
        "error": int(get("error") or 0),
        # Checked when the span is built into protobuf (in C, see _fill_span); a tracer that sends
        # a non-string tag value gets it stringified there, never loses the span.
        "meta": meta if isinstance(meta := get("meta"), dict) else {},
        "metrics": metrics if isinstance(metrics := get("metrics"), dict) else {},
        "type": _s(get("type")),
        "meta_struct": {_s(k): (v if isinstance(v, bytes) else msgpack.packb(v)) for k, v in ms.items()}
        if ms
        else {},
    }


# The types of a span as ddtrace encodes it (every field present, ids unsigned, no meta_struct).
_WELL_FORMED = (str, str, str, str, dict, dict, int, int, int, int, int, int)


def _span(raw: dict) -> dict:
    """A span map as decoded, when it is already what `_span_from_map` would build (the common
    case: one tuple comparison instead of a new 13-key dict per span); else `_span_from_map`."""
    try:
        if (
            (
                type(raw["service"]),
                type(raw["name"]),
                type(raw["resource"]),
                type(raw["type"]),
                type(raw["meta"]),
                type(raw["metrics"]),
                type(raw["trace_id"]),
                type(raw["span_id"]),
                type(raw["parent_id"]),
                type(raw["start"]),
                type(raw["duration"]),
                type(raw["error"]),
            )
            == _WELL_FORMED
            and "meta_struct" not in raw
            and raw["trace_id"] >= 0
            and raw["span_id"] >= 0
            and raw["parent_id"] >= 0
        ):
            return raw
    except (KeyError, TypeError):
        pass
    return _span_from_map(raw)


def decode_v04(body: bytes) -> list[list[dict]]:
    """`/v0.4/traces`: an array of traces, each an array of span maps."""
    # use_list=False: tuples are cheaper to build, and nothing here changes a decoded array.
    data = _unpack(body, raw=False, use_list=False)
    if not isinstance(data, tuple):
        raise DecodeError("v0.4 payload is not an array of traces")
    return [list(map(_span, trace)) for trace in data if isinstance(trace, tuple)]


def _unpack(body: bytes, **options):
    """msgpack.unpackb with the cyclic GC paused: a 1,000-span body makes ~3,000 dicts that all
    survive (they wait in the TraceBuffer for the next flush), and collecting every 700 of them
    walked them again and again (measured: 6-7 us per span with the GC on, 3-4 us paused). The
    first collection after the GC is back on still sees them, once."""
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        return msgpack.unpackb(body, strict_map_key=False, **options)
    except Exception as exc:  # noqa: BLE001 - msgpack raises several types
        raise DecodeError(f"invalid msgpack: {exc}") from None
    finally:
        if paused:
            gc.enable()


def decode_v05(body: bytes) -> list[list[dict]]:
    """`/v0.5/traces`: `[strings, traces]`; every string in a span is an index into `strings`."""
    data = _unpack(body, raw=True)
    if not isinstance(data, list) or len(data) != 2:
        raise DecodeError("v0.5 payload is not [string table, traces]")
    strings = [_s(x) for x in data[0]]

    def st(i) -> str:
        try:
            return strings[i]
        except (IndexError, TypeError):
            raise DecodeError(f"string index {i!r} out of range ({len(strings)} strings)") from None

    traces = []
    for trace in data[1]:
        spans = []
        for arr in trace:
            if not isinstance(arr, list) or len(arr) != 12:
                raise DecodeError("v0.5 span is not a 12-element array")
            spans.append(
                {
                    "service": st(arr[0]),
                    "name": st(arr[1]),
                    "resource": st(arr[2]),
                    "trace_id": int(arr[3]) & U64,
                    "span_id": int(arr[4]) & U64,
                    "parent_id": int(arr[5]) & U64,
                    "start": int(arr[6]),
                    "duration": int(arr[7]),
                    "error": int(arr[8]),
                    "meta": {st(k): st(v) for k, v in (arr[9] or {}).items()},
                    "metrics": {st(k): float(v) for k, v in (arr[10] or {}).items()},
                    "type": st(arr[11]),
                    "meta_struct": {},
                }
            )
        traces.append(spans)
    return traces


def decode_stats(body: bytes) -> dict:
    """`/v0.6/stats`: one ClientStatsPayload as msgpack with Go field names (Hostname, Env, Stats...)."""
    try:
        data = msgpack.unpackb(body, raw=False, strict_map_key=False)
    except Exception as exc:  # noqa: BLE001
        raise DecodeError(f"invalid msgpack: {exc}") from None
    if not isinstance(data, dict):
        raise DecodeError("stats payload is not a map")
    return data


@dataclass
class TracerInfo:
    """What the tracer says about itself in request headers (pkg/trace/api/internal/header)."""

    lang: str = ""
    lang_version: str = ""
    interpreter: str = ""
    tracer_version: str = ""
    container_id: str = ""

    @classmethod
    def from_headers(cls, headers) -> TracerInfo:
        return cls(
            lang=headers.get("Datadog-Meta-Lang", ""),
            lang_version=headers.get("Datadog-Meta-Lang-Version", ""),
            interpreter=headers.get("Datadog-Meta-Lang-Interpreter", ""),
            tracer_version=headers.get("Datadog-Meta-Tracer-Version", ""),
            container_id=headers.get("Datadog-Container-ID", "")
            or _entity_container(headers.get("Datadog-Entity-ID", "")),
        )


def _entity_container(entity: str) -> str:
    # Datadog-Entity-ID is "ci-<container id>" or "in-<cgroup inode>"; only the first names a container.
    return entity[3:] if entity.startswith("ci-") else ""


def chunk_priority(spans: list[dict]) -> int:
    """The chunk's sampling priority: `_sampling_priority_v1` of the root (else any span); none -> 1."""
    ids = {s["span_id"] for s in spans}
    roots = [s for s in spans if s["parent_id"] == 0 or s["parent_id"] not in ids]
    for s in roots + spans:
        if SAMPLING_PRIORITY_KEY in s["metrics"]:
            return int(s["metrics"][SAMPLING_PRIORITY_KEY])
    return 1


def keep_chunk(spans: list[dict], priority: int) -> bool:
    """Priority sampling as the agent applies it: keep > 0; a rejected trace with an error survives
    through the error sampler (pkg/trace/sampler). The lab keeps every such error chunk."""
    return priority > 0 or any(s["error"] for s in spans)


@dataclass
class _Pending:
    info: TracerInfo
    env: str
    app_version: str
    runtime_id: str
    hostname: str
    container_tags: list[str]
    chunks: list[tuple[int, str, list[dict]]] = field(default_factory=list)


@dataclass
class ReceiverStats:
    requests: int = 0
    traces_received: int = 0
    spans_received: int = 0
    traces_dropped_sampling: int = 0
    decode_errors: int = 0
    stats_payloads: int = 0
    payloads_built: int = 0
    by_lang: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class TraceBuffer:
    """Collects chunks between flushes and builds one AgentPayload per flush."""

    def __init__(
        self,
        hostname: str,
        default_env: str = "",
        agent_version: str = AGENT_VERSION,
        target_tps: float = 10.0,
        error_tps: float = 10.0,
    ) -> None:
        self.hostname = hostname
        self.default_env = default_env
        self.agent_version = agent_version
        self.target_tps = target_tps
        self.error_tps = error_tps
        self.stats = ReceiverStats()
        self._lock = threading.Lock()
        self._pending: dict[tuple, _Pending] = {}
        self._client_stats: list[dict] = []
        self.languages: set[str] = set()

    def add(self, traces: list[list[dict]], info: TracerInfo, container_tags: list[str] | None = None) -> int:
        """Returns the number of traces accepted (before sampling)."""
        container_tags = container_tags or []
        with self._lock:
            self.stats.requests += 1
            if info.lang:
                self.languages.add(info.lang)
                self.stats.by_lang[info.lang] = self.stats.by_lang.get(info.lang, 0) + len(traces)
            for spans in traces:
                if not spans:
                    continue
                self.stats.traces_received += 1
                self.stats.spans_received += len(spans)
                priority = chunk_priority(spans)
                if not keep_chunk(spans, priority):
                    self.stats.traces_dropped_sampling += 1
                    continue
                root = _root(spans)
                env = (
                    _s(root["meta"].get("env"))
                    or next((_s(s["meta"]["env"]) for s in spans if s["meta"].get("env")), "")
                    or self.default_env
                )
                origin = next((_s(s["meta"]["_dd.origin"]) for s in spans if s["meta"].get("_dd.origin")), "")
                key = (
                    info.lang,
                    info.lang_version,
                    info.tracer_version,
                    info.container_id,
                    _s(root["meta"].get("runtime-id")),
                    env,
                    _s(root["meta"].get("version")),
                    tuple(container_tags),
                    _s(root["meta"].get("_dd.hostname")),
                )
                pending = self._pending.get(key)
                if pending is None:
                    pending = self._pending[key] = _Pending(
                        info=info,
                        env=env,
                        app_version=_s(root["meta"].get("version")),
                        runtime_id=_s(root["meta"].get("runtime-id")),
                        hostname=_s(root["meta"].get("_dd.hostname")),
                        container_tags=list(container_tags),
                    )
                pending.chunks.append((priority, origin, spans))
        return len(traces)

    def add_client_stats(self, payload: dict, container_id: str = "") -> None:
        with self._lock:
            self.stats.stats_payloads += 1
            if container_id and not payload.get("ContainerID"):
                payload["ContainerID"] = container_id
            self._client_stats.append(payload)

    def take_agent_payload(self):
        """The AgentPayload protobuf for everything buffered (None when empty)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return None
        from lab.proto import agent_payload_pb2

        payload = agent_payload_pb2.AgentPayload(
            hostName=self.hostname,
            env=self.default_env,
            agentVersion=self.agent_version,
            targetTPS=self.target_tps,
            errorTPS=self.error_tps,
            rareSamplerEnabled=False,
        )
        for p in pending.values():
            # add(): built in place inside the payload (append would copy every span once more).
            tp = payload.tracerPayloads.add(
                containerID=p.info.container_id,
                languageName=p.info.lang,
                languageVersion=p.info.lang_version,
                tracerVersion=p.info.tracer_version,
                runtimeID=p.runtime_id,
                env=p.env,
                hostname=p.hostname,
                appVersion=p.app_version,
            )
            if p.container_tags:
                # pkg/trace/agent: container tags travel as one comma-joined value.
                tp.tags["_dd.tags.container"] = ",".join(p.container_tags)
            for priority, origin, spans in p.chunks:
                chunk = tp.chunks.add(priority=priority, origin=origin)
                add_span = chunk.spans.add
                for s in spans:
                    # add() builds in place (append copies).
                    pb_span = add_span(
                        service=s["service"],
                        name=s["name"],
                        resource=s["resource"],
                        traceID=s["trace_id"],
                        spanID=s["span_id"],
                        parentID=s["parent_id"],
                        start=s["start"],
                        duration=s["duration"],
                        error=s["error"],
                        type=s["type"],
                    )
                    _fill_maps(pb_span, s)
        with self._lock:
            self.stats.payloads_built += 1
        return payload

    def take_stats_payload(self) -> dict | None:
        """StatsPayload (msgpack, Go field names) wrapping the tracers' own stats (ClientComputed)."""
        with self._lock:
            stats, self._client_stats = self._client_stats, []
        if not stats:
            return None
        return {
            "AgentHostname": self.hostname,
            "AgentEnv": self.default_env,
            "Stats": stats,
            "AgentVersion": self.agent_version,
            "ClientComputed": True,
            "SplitPayload": False,
        }


def _fill_maps(pb_span, s: dict) -> None:
    try:
        # Item by item: upb maps' update() goes through the MutableMapping mixin, ~1.6x slower.
        m = pb_span.meta
        for k, v in s["meta"].items():
            m[k] = v
        m = pb_span.metrics
        for k, v in s["metrics"].items():
            m[k] = v
    except (TypeError, ValueError, AttributeError):
        pb_span.meta.clear()
        pb_span.metrics.clear()
        pb_span.meta.update(_str_map(s["meta"]))
        pb_span.metrics.update(_float_map(s["metrics"]))
    if s.get("meta_struct"):
        pb_span.meta_struct.update(s["meta_struct"])


def _root(spans: list[dict]) -> dict:
    ids = {s["span_id"] for s in spans}
    for s in spans:
        if s["parent_id"] == 0 or s["parent_id"] not in ids:
            return s
    return spans[0]


def info_document(config: AgentConfig, statsd_port: int, receiver_port: int) -> dict:
    """`GET /info` (pkg/trace/api/info.go): what ddtrace reads to pick endpoints and features."""
    return {
        "version": AGENT_VERSION,
        "git_commit": "ecs-lab",
        "endpoints": list(ENDPOINTS),
        "feature_flags": [],
        # canDropP0 := !probabilistic sampler && /v0.6/stats served
        "client_drop_p0s": True,
        "span_meta_structs": True,
        "long_running_spans": False,
        "span_events": False,
        "evp_proxy_allowed_headers": [],
        "config": {
            "default_env": config.env or "none",
            "target_tps": 10,
            "max_eps": 200,
            "receiver_port": receiver_port,
            "receiver_socket": "",
            "connection_limit": 0,
            "receiver_timeout": 0,
            "max_request_bytes": 26214400,
            "statsd_port": statsd_port,
            "max_memory": 0,
            "max_cpu": 0,
            "analyzed_spans_by_service": {},
            "obfuscation": {},
        },
        "peer_tags": [],
        "span_kinds_stats_computed": [],
        "obfuscation_version": 1,
    }


ContainerResolver = Callable[[web.Request, TracerInfo], list[str]]


def make_app(
    buffer: TraceBuffer, info: Callable[[], dict], container_tags: ContainerResolver | None = None
) -> web.Application:
    """The 8126 listener. `container_tags(request, tracer_info)` returns the sender's ECS tags."""
    app = web.Application(client_max_size=26214400)

    def resolve(request: web.Request, tinfo: TracerInfo) -> list[str]:
        if container_tags is None:
            return []
        try:
            return container_tags(request, tinfo)
        except Exception as exc:  # noqa: BLE001 - tagging must never lose a trace
            log.debug("container tag lookup failed: %r", exc)
            return []

    async def traces(request: web.Request, decoder) -> web.Response:
        body = await request.read()
        try:
            decoded = decoder(body)
        except (DecodeError, ValueError, TypeError) as exc:
            buffer.stats.decode_errors += 1
            return web.Response(status=400, text=f"cannot decode traces: {exc}\n")
        tinfo = TracerInfo.from_headers(request.headers)
        # Off the event loop: a sender never seen before (ddtrace opens a new connection per flush)
        # costs a look-up of its socket in /proc, tens of ms on a host with thousands of sockets.
        tags = (
            await asyncio.get_running_loop().run_in_executor(None, resolve, request, tinfo)
            if container_tags
            else []
        )
        buffer.add(decoded, tinfo, tags)
        # The agent answers every trace request with its per-service sampling rates.
        return web.json_response({"rate_by_service": {"service:,env:": 1}})

    async def v04(request: web.Request) -> web.Response:
        return await traces(request, decode_v04)

    async def v05(request: web.Request) -> web.Response:
        return await traces(request, decode_v05)

    async def stats(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            payload = decode_stats(body)
        except DecodeError as exc:
            buffer.stats.decode_errors += 1
            return web.Response(status=400, text=f"cannot decode stats: {exc}\n")
        buffer.add_client_stats(payload, TracerInfo.from_headers(request.headers).container_id)
        return web.Response(text="OK")

    async def info_handler(request: web.Request) -> web.Response:
        return web.json_response(info())

    app.router.add_route("*", "/v0.4/traces", v04)
    app.router.add_route("*", "/v0.5/traces", v05)
    app.router.add_post("/v0.6/stats", stats)
    app.router.add_get("/info", info_handler)
    return app


def now_ns() -> int:
    return time.time_ns()
