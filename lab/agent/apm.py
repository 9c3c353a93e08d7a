"""The APM receiver: tracer payloads in (msgpack v0.4 / v0.5, client stats v0.6), AgentPayload out.

Model (socket-free): `decode_v04` / `decode_v04_raw`, `decode_v05`, `decode_stats`, `TraceBuffer`
(one `TracerPayload` per request, built into protobuf as it arrives; a flush joins them into the
`AgentPayload`s the trace-agent sends to `/api/v0.2/traces`). Wire: `make_app` builds the aiohttp
application served on 8126.

Sources: DataDog/datadog-agent pkg/trace/api (endpoints.go, api.go, info.go, version.go: v0.5 is
`[string table, traces]` with 12-element span arrays), pkg/trace/agent (the chunk priority from
`_sampling_priority_v1`, env from the root span's `env` meta, `_dd.origin`), pkg/trace/writer
(payload headers), pkg/trace/api/info.go (the `/info` document).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import msgpack
from aiohttp import web

from lab.agent import concentrator
from lab.agent.apm_proxies import EVP_ALLOWED_HEADERS
from lab.agent.config import AGENT_VERSION, AgentConfig
from lab.proto.agent_payload_pb2 import AgentPayload
from lab.serving import gc_paused

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

# The receiver's own routes (the relays add theirs: lab.agent.apm_proxies); /info lists exactly
# what is served. Like the agent's (endpoints.go), /info itself is not in the list.
ENDPOINTS = ("/v0.4/traces", "/v0.5/traces", "/v0.6/stats")


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
        # A tracer that sends a non-string tag value gets it stringified, never loses the span.
        "meta": _str_map(get("meta")),
        "metrics": _float_map(get("metrics")),
        "type": _s(get("type")),
        "meta_struct": {_s(k): (v if isinstance(v, bytes) else msgpack.packb(v)) for k, v in ms.items()}
        if ms
        else {},
    }


def decode_v04(body: bytes) -> list[list[dict]]:
    """`/v0.4/traces`: an array of traces, each an array of span maps (normalized: every field
    present, with its type)."""
    return [[_span_from_map(s) for s in trace] for trace in decode_v04_raw(body)]


def decode_v04_raw(body: bytes) -> tuple:
    """`/v0.4/traces` as msgpack decoded it: the span maps as the tracer sent them. What the
    receiver feeds `TraceBuffer.add`, which builds them as they are and normalizes (`_span_from_map`)
    only a trace whose spans do not build: a check per span costs more than the rare odd span."""
    # use_list=False: tuples are cheaper to build, and nothing here changes a decoded array.
    data = _unpack(body, raw=False, use_list=False)
    if not isinstance(data, tuple):
        raise DecodeError("v0.4 payload is not an array of traces")
    return tuple(trace for trace in data if isinstance(trace, tuple))


def _unpack(body: bytes, **options):
    try:
        return msgpack.unpackb(body, strict_map_key=False, **options)
    except Exception as exc:  # noqa: BLE001 - msgpack raises several types
        raise DecodeError(f"invalid msgpack: {exc}") from None


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


# The receiver's decoder per endpoint version: what `decode_and_build` calls.
DECODERS: dict[str, Callable[[bytes], object]] = {"v0.4": decode_v04_raw, "v0.5": decode_v05}


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
    # The tracer computed its own stats (sent on /v0.6/stats): the agent computes none for this request.
    client_computed_stats: bool = False
    # The tracer marked its top-level spans (`_dd.top_level`): the agent does not work them out.
    client_computed_top_level: bool = False

    @classmethod
    def from_headers(cls, headers) -> TracerInfo:
        return cls(
            client_computed_stats=_header_true(headers.get("Datadog-Client-Computed-Stats", "")),
            client_computed_top_level=_header_true(headers.get("Datadog-Client-Computed-Top-Level", "")),
            lang=headers.get("Datadog-Meta-Lang", ""),
            lang_version=headers.get("Datadog-Meta-Lang-Version", ""),
            interpreter=headers.get("Datadog-Meta-Lang-Interpreter", ""),
            tracer_version=headers.get("Datadog-Meta-Tracer-Version", ""),
            container_id=headers.get("Datadog-Container-ID", "")
            or _entity_container(headers.get("Datadog-Entity-ID", "")),
        )


def _header_true(value: str) -> bool:
    # pkg/trace/api/api.go isHeaderTrue: empty or a strconv.ParseBool false is false; any other
    # value, even one that is not a boolean, is true.
    return bool(value) and value.strip() not in ("0", "f", "F", "false", "FALSE", "False")


def _entity_container(entity: str) -> str:
    # Datadog-Entity-ID is "ci-<container id>" or "in-<cgroup inode>"; only the first names a container.
    return entity[3:] if entity.startswith("ci-") else ""


def chunk_priority(spans: list[dict]) -> int:
    """The chunk's sampling priority: `_sampling_priority_v1` of the root (else any span); none -> 1."""
    ids = {s["span_id"] for s in spans}
    roots = [s for s in spans if s["parent_id"] == 0 or s["parent_id"] not in ids]
    for s in (*roots, *spans):
        if SAMPLING_PRIORITY_KEY in s["metrics"]:
            return int(s["metrics"][SAMPLING_PRIORITY_KEY])
    return 1


def keep_chunk(spans: list[dict], priority: int) -> bool:
    """Priority sampling as the agent applies it: keep > 0; a rejected trace with an error survives
    through the error sampler (pkg/trace/sampler). The lab keeps every such error chunk."""
    return priority > 0 or any(s["error"] for s in spans)


# pkg/trace/writer/trace.go `payloadFlushThreshold`: "3.2MB is the maximum allowed by the Datadog
# API"; the trace writer sends what it holds as soon as it reaches that size.
PAYLOAD_FLUSH_THRESHOLD = 3_200_000

# What a span that is not as ddtrace encodes it raises while it is built into protobuf.
_BUILD_ERRORS = (KeyError, TypeError, ValueError, AttributeError, OverflowError)


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
    # pkg/trace/info TagStats: counts per (lang, lang version, interpreter, tracer version, endpoint).
    by_tags: dict[tuple[str, str, str, str, str], dict[str, int]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "by_tags"}

    def receiver(self) -> list[dict]:
        """The trace-agent's `receiver` expvar: one entry per tracer tag set (flattened Tags and Stats)."""
        out = []
        for (lang, lang_version, interpreter, tracer_version, endpoint), c in sorted(self.by_tags.items()):
            out.append(
                {
                    "Lang": lang, "LangVersion": lang_version, "LangVendor": "", "Interpreter": interpreter,
                    "TracerVersion": tracer_version, "EndpointVersion": endpoint, "Service": "",
                    "TracesReceived": c["traces"], "TracesFiltered": 0, "TracesPriorityNone": 0,
                    "TracesPriorityNeg": 0, "TracesPriority0": 0, "TracesPriority1": 0, "TracesPriority2": 0,
                    "TracesBytes": c["bytes"], "SpansReceived": c["spans"], "SpansDropped": 0,
                    "SpansFiltered": 0, "ServicesReceived": 0, "ServicesBytes": 0, "EventsExtracted": 0,
                    "EventsSampled": 0, "PayloadAccepted": c["payloads"],
                    "TracesDropped": {"DecodingError": c["decode_errors"], "EmptyTrace": 0, "TraceIDZero": 0,
                                      "SpanIDZero": 0, "ForeignSpan": 0},
                    "SpansMalformed": {},
                }
            )
        return out

    def count_request(self, info: TracerInfo, endpoint: str, traces: int, spans: int, size: int,
                      decode_error: bool = False) -> None:
        key = (info.lang, info.lang_version, info.interpreter, info.tracer_version, endpoint)
        c = self.by_tags.setdefault(
            key, {"traces": 0, "spans": 0, "bytes": 0, "payloads": 0, "decode_errors": 0}
        )
        c["bytes"] += size
        if decode_error:
            c["decode_errors"] += 1
        else:
            c["traces"] += traces
            c["spans"] += spans
            c["payloads"] += 1


class TraceBuffer:
    """Tracer payloads between two flushes, already protobuf.

    As in pkg/trace/agent, each request becomes one `TracerPayload` (the tracer's headers, its
    container tags, and hostname / env / app version from the first chunk root that has them),
    built and serialized when it arrives: only bytes wait for the flush. A flush joins them into
    `AgentPayload`s of at most `PAYLOAD_FLUSH_THRESHOLD` bytes (protobuf merges concatenated
    messages: repeated fields append); `on_full` is called when that much is waiting.
    """

    def __init__(
        self,
        hostname: str,
        default_env: str = "",
        agent_version: str = AGENT_VERSION,
        target_tps: float = 10.0,
        error_tps: float = 10.0,
        stats_bucket: float = 10.0,
        now_ns: int | None = None,
    ) -> None:
        self.hostname = hostname
        self.default_env = default_env
        self.agent_version = agent_version
        self.target_tps = target_tps
        self.error_tps = error_tps
        self.stats = ReceiverStats()
        self.on_full: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._fragments: list[bytes] = []
        self._size = 0
        self._client_stats: list[dict] = []
        self.languages: set[str] = set()
        # `stats_bucket` seconds: the agent's 10 s, shorter in the lab (LAB_AGENT_STATS_BUCKET_INTERVAL);
        # `now_ns`: when the concentrator opens (tests set the clock).
        self.concentrator = concentrator.Concentrator(
            int(stats_bucket * 1e9), hostname, default_env, agent_version, now_ns
        )

    @property
    def pending_bytes(self) -> int:
        return self._size

    def add(self, traces, info: TracerInfo, container_tags: list[str] | None = None) -> int:
        """One request's traces (span maps as decoded, or normalized). Returns how many traces
        it carried (before sampling). Raises DecodeError, keeping nothing of the request, when a
        span cannot be built even normalized."""
        built = build_tracer_payload(
            traces, info, container_tags, self.default_env, self.concentrator.bucket_ns
        )
        return self.add_built(built, info)

    def add_built(self, built: Built, info: TracerInfo, endpoint: str = "", size: int = 0) -> int:
        """A request already built (`build_tracer_payload`, maybe in a decoder process)."""
        with self._lock:
            st = self.stats
            st.count_request(info, endpoint, built.traces, built.spans, size)
            st.requests += 1
            st.traces_received += built.traces
            st.spans_received += built.spans
            st.traces_dropped_sampling += built.dropped
            if info.lang:
                self.languages.add(info.lang)
                st.by_lang[info.lang] = st.by_lang.get(info.lang, 0) + built.received
            if built.body:
                self._fragments.append(built.body)
                self._size += len(built.body)
            full = self._size >= PAYLOAD_FLUSH_THRESHOLD
        if built.stats:
            self.concentrator.add(built.stats)
        if full and self.on_full is not None:
            self.on_full()
        return built.received

    def add_client_stats(self, payload: dict, container_id: str = "") -> None:
        with self._lock:
            self.stats.stats_payloads += 1
            if container_id and not payload.get("ContainerID"):
                payload["ContainerID"] = container_id
            self._client_stats.append(payload)

    def take_payload_bodies(self) -> list[bytes]:
        """Everything buffered, as serialized AgentPayloads of at most PAYLOAD_FLUSH_THRESHOLD
        bytes each (one tracer payload larger than that goes alone)."""
        with self._lock:
            fragments, self._fragments, self._size = self._fragments, [], 0
        if not fragments:
            return []
        header = AgentPayload(
            hostName=self.hostname,
            env=self.default_env,
            agentVersion=self.agent_version,
            targetTPS=self.target_tps,
            errorTPS=self.error_tps,
            rareSamplerEnabled=False,
        ).SerializeToString()
        bodies: list[bytes] = []
        batch: list[bytes] = [header]
        size = 0
        for frag in fragments:
            if size and size + len(frag) > PAYLOAD_FLUSH_THRESHOLD:
                bodies.append(b"".join(batch))
                batch, size = [header], 0
            batch.append(frag)
            size += len(frag)
        bodies.append(b"".join(batch))
        with self._lock:
            self.stats.payloads_built += len(bodies)
        return bodies

    def take_agent_payload(self):
        """Everything buffered as one AgentPayload message (None when empty): for tests and tools;
        the agent sends `take_payload_bodies()`."""
        bodies = self.take_payload_bodies()
        if not bodies:
            return None
        payload = AgentPayload()
        for body in bodies:
            payload.MergeFromString(body)
        return payload

    def take_stats_payloads(self, force: bool = False, now_ns: int | None = None) -> list[dict]:
        """StatsPayloads (msgpack, Go field names), as the agent sends them apart: the tracers' own
        stats (ClientComputed) and the concentrator's buckets that have closed (all when `force`,
        as on agent stop)."""
        with self._lock:
            stats, self._client_stats = self._client_stats, []
        payloads = []
        if stats:
            payloads.append(
                {
                    "AgentHostname": self.hostname,
                    "AgentEnv": self.default_env,
                    "Stats": stats,
                    "AgentVersion": self.agent_version,
                    "ClientComputed": True,
                    "SplitPayload": False,
                }
            )
        computed = self.concentrator.flush(now_ns, force)
        if computed is not None:
            payloads.append(computed)
        return payloads


@dataclass(frozen=True)
class Built:
    """One request as a TracerPayload: `body` is a serialized AgentPayload holding only it (empty
    when sampling kept no chunk); the counts feed the receiver's stats; `stats` is the request's
    share of the APM stats the agent computes (`concentrator.RequestStats`; empty when the tracer
    computed its own)."""

    body: bytes
    received: int  # traces in the request, empty ones included
    traces: int
    spans: int
    dropped: int
    stats: dict = field(default_factory=dict)


def build_tracer_payload(
    traces,
    info: TracerInfo,
    container_tags: list[str] | None,
    default_env: str,
    stats_bucket_ns: int = 10_000_000_000,
) -> Built:
    """pkg/trace/agent Process for one request: its chunks, priority-sampled, in one TracerPayload,
    and (unless the tracer computed them) their APM stats in buckets of `stats_bucket_ns`, every
    chunk counted, sampled out or not. Spans are built as decoded; a trace that does not build (a
    missing field, a negative id, a number as a tag value...) is normalized (`_span_from_map`) and
    built again. Raises DecodeError when even that fails."""
    frag = AgentPayload()
    tp = frag.tracerPayloads.add(
        containerID=info.container_id,
        languageName=info.lang,
        languageVersion=info.lang_version,
        tracerVersion=info.tracer_version,
    )
    if container_tags:
        # pkg/trace/agent: container tags travel as one comma-joined value.
        tp.tags["_dd.tags.container"] = ",".join(container_tags)
    n_traces = n_spans = dropped = 0
    stats = None if info.client_computed_stats else {}
    for spans in traces:
        if not spans:
            continue
        n_traces += 1
        n_spans += len(spans)
        built = len(tp.chunks)
        try:
            kept = _add_chunk(tp, spans, stats, stats_bucket_ns, info.client_computed_top_level)
        except _BUILD_ERRORS:
            del tp.chunks[built:]  # what was built of this chunk
            try:
                kept = _add_chunk(
                    tp,
                    [_span_from_map(s) for s in spans],
                    stats,
                    stats_bucket_ns,
                    info.client_computed_top_level,
                )
            except DecodeError:
                raise
            except _BUILD_ERRORS as exc:
                raise DecodeError(f"span cannot be represented: {exc!r}") from None
        dropped += not kept
    if not tp.env:
        tp.env = default_env
    body = frag.SerializeToString() if len(tp.chunks) else b""
    return Built(body, len(traces), n_traces, n_spans, dropped, stats or {})


def decode_and_build(
    version: str,
    body: bytes,
    info: TracerInfo,
    container_tags: list[str] | None,
    default_env: str,
    stats_bucket_ns: int = 10_000_000_000,
) -> Built:
    """Decode a `/v0.4/traces` or `/v0.5/traces` body and build it (what a decoder process runs)."""
    with gc_paused():
        return build_tracer_payload(
            DECODERS[version](body), info, container_tags, default_env, stats_bucket_ns
        )


def _add_chunk(tp, spans, stats=None, bucket_ns: int = 0, given_top_level: bool = False) -> bool:
    """Build one trace chunk into tracer payload `tp` (pkg/trace/agent Process: the payload's
    hostname, env and app version come from the first chunk root that has them; then priority
    sampling; its stats go into `stats` when not None, kept or not). Returns whether the chunk was kept.
    Raises one of _BUILD_ERRORS on a span that is not well formed; the caller drops the partial
    chunk, and `stats` is then as it was."""
    root = _root(spans)
    meta = root["meta"]
    if not tp.hostname:
        tp.hostname = _s(meta.get("_dd.hostname"))
    if not tp.env:
        # traceutil.GetEnv: the root's env, else the first span's that has one.
        tp.env = _s(meta.get("env")) or _first_env(spans)
    if not tp.appVersion:
        tp.appVersion = _s(meta.get("version"))
    if not tp.runtimeID:
        tp.runtimeID = _s(meta.get("runtime-id"))
    origin = next((_s(s["meta"]["_dd.origin"]) for s in spans if s["meta"].get("_dd.origin")), "")
    priority = chunk_priority(spans)
    kept = keep_chunk(spans, priority)
    if kept:
        _build_chunk(tp, spans, priority, origin)
    if stats is not None:
        # Last: a span that does not build has raised before anything was counted.
        payload_key = (tp.env, tp.hostname, tp.appVersion)
        concentrator.aggregate_chunk(stats, spans, root, payload_key, origin, bucket_ns, given_top_level)
    return kept


def _build_chunk(tp, spans, priority: int, origin: str) -> None:
    add_span = tp.chunks.add(priority=priority, origin=origin).spans.add
    for s in spans:
        # add() builds in place (append copies); the maps item by item: upb maps' update() goes
        # through the MutableMapping mixin, ~1.6x slower. A wrong type raises here.
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
        m = pb_span.meta
        for k, v in s["meta"].items():
            m[k] = v
        m = pb_span.metrics
        for k, v in s["metrics"].items():
            m[k] = v
        if "meta_struct" in s and s["meta_struct"]:
            pb_span.meta_struct.update(s["meta_struct"])


def _first_env(spans) -> str:
    return next((_s(x["meta"]["env"]) for x in spans if x["meta"].get("env")), "")


def _root(spans) -> dict:
    ids = {s["span_id"] for s in spans}
    for s in spans:
        if s["parent_id"] == 0 or s["parent_id"] not in ids:
            return s
    return spans[0]


def info_document(
    config: AgentConfig, statsd_port: int, receiver_port: int, relays: list[str] | tuple[str, ...] = ()
) -> dict:
    """`GET /info` (pkg/trace/api/info.go): what ddtrace reads to pick endpoints and features.
    `relays`: the relay routes served (`TracerProxies.endpoints`)."""
    return {
        "version": AGENT_VERSION,
        "git_commit": "ecs-lab",
        "endpoints": [*ENDPOINTS, *relays],
        "feature_flags": [],
        # canDropP0 := !probabilistic sampler && /v0.6/stats served
        "client_drop_p0s": True,
        "span_meta_structs": True,
        "long_running_spans": False,
        "span_events": False,
        "evp_proxy_allowed_headers": list(EVP_ALLOWED_HEADERS) if relays else [],
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
        # info.go: the kinds the agent computes stats for (compute_stats_by_span_kind, on by default).
        "span_kinds_stats_computed": sorted(concentrator.KINDS_COMPUTED),
        "obfuscation_version": 1,
    }


ContainerResolver = Callable[[web.Request, TracerInfo], list[str]]


def make_app(
    buffer: TraceBuffer,
    info: Callable[[], dict],
    container_tags: ContainerResolver | None = None,
    cached_tags: Callable[[web.Request, TracerInfo], list[str] | None] | None = None,
    decoders=None,
    proxies=None,
) -> web.Application:
    """The 8126 listener; `proxies` (an `apm_proxies.TracerProxies`) adds the relay routes.
    `container_tags(request, tracer_info)` returns the sender's ECS tags (run
    in a thread: it may read /proc); `cached_tags` answers at once when it already knows them, and
    None when `container_tags` must look. `decoders` (a `decoders.DecoderPool`) takes the large
    requests to other processes."""
    app = web.Application(client_max_size=26214400)

    def resolve(request: web.Request, tinfo: TracerInfo) -> list[str]:
        if container_tags is None:
            return []
        try:
            return container_tags(request, tinfo)
        except Exception as exc:  # noqa: BLE001 - tagging must never lose a trace
            log.debug("container tag lookup failed: %r", exc)
            return []

    async def traces(request: web.Request, version: str) -> web.Response:
        body = await request.read()
        tinfo = TracerInfo.from_headers(request.headers)
        tags = cached_tags(request, tinfo) if cached_tags is not None else None
        if tags is None:
            # Off the event loop: a sender never seen before (ddtrace opens a new connection per
            # flush) costs a look-up of its socket in /proc, tens of ms on a host with thousands of
            # sockets.
            tags = (
                await asyncio.get_running_loop().run_in_executor(None, resolve, request, tinfo)
                if container_tags
                else []
            )
        try:
            if decoders is not None and decoders.wants(body):
                built = await decoders.decode_and_build(
                    version, body, tinfo, tags, buffer.default_env, buffer.concentrator.bucket_ns
                )
            else:
                # Decoded and built in one go, nothing awaited: the request's dicts are gone after.
                built = decode_and_build(
                    version, body, tinfo, tags, buffer.default_env, buffer.concentrator.bucket_ns
                )
        except (DecodeError, ValueError, TypeError) as exc:
            buffer.stats.decode_errors += 1
            buffer.stats.count_request(tinfo, version, 0, 0, len(body), decode_error=True)
            return web.Response(status=400, text=f"cannot decode traces: {exc}\n")
        buffer.add_built(built, tinfo, version, len(body))
        # The agent answers every trace request with its per-service sampling rates.
        return web.json_response({"rate_by_service": {"service:,env:": 1}})

    async def v04(request: web.Request) -> web.Response:
        return await traces(request, "v0.4")

    async def v05(request: web.Request) -> web.Response:
        return await traces(request, "v0.5")

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
    # handleStats takes any method: dd-trace-js PUTs its stats, others POST.
    app.router.add_route("*", "/v0.6/stats", stats)
    app.router.add_get("/info", info_handler)
    if proxies is not None:
        proxies.add_routes(app)
    return app


def now_ns() -> int:
    return time.time_ns()
