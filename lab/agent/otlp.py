"""The agent's OTLP receiver: OTLP/HTTP (protobuf and JSON) and OTLP/gRPC, traces and metrics.

Enabled only by `otlp_config.receiver.protocols.http.endpoint` / `.grpc.endpoint`
(DD_OTLP_CONFIG_RECEIVER_PROTOCOLS_HTTP_ENDPOINT / _GRPC_ENDPOINT, e.g. `0.0.0.0:4318` /
`0.0.0.0:4317`); without them nothing listens. Mapping (docs/otlp.md, with sources):

Traces (DataDog/datadog-agent pkg/trace/api/otlp.go, pkg/trace/traceutil/otel_util.go, the "v2"
operation and resource name logic, on unless DD_APM_FEATURES has
`disable_operation_and_resource_name_logic_v2`):
- service: `service.name` (span, then resource attributes), else `otlpresourcenoservicename`;
- name: `operation.name`, else by semantic conventions (`http.server.request`, `http.client.request`,
  `<db.system>.query`, `<messaging.system>.<operation>`, `<rpc.system>.server.request`, ...,
  `server.request` / `client.request`, else the span kind); v1: `<scope name>.<kind>`;
- resource: `resource.name`, else `<method> <route>` (HTTP server), the messaging operation and
  destination, the RPC method and service, the DB statement, else the OTel span name;
- type: `span.type`, else `web` (server), `http` / `db` / `cache` (client, by `db.system`), `custom`;
- ids: the low 64 bits of the trace id, the span ids; `otel.trace_id` keeps the 128-bit id in hex;
- meta: resource and span attributes (numbers go to metrics), `span.kind`, `otel.status_code`,
  `otel.library.name/version`, `env` (`deployment.environment.name` / `deployment.environment`),
  `version` (`service.version`); error when the status is ERROR.
  One TracerPayload per ResourceSpans: language `telemetry.sdk.language`, tracer version
  `otlp-<telemetry.sdk.version>`, hostname `host.name` when set; chunks kept (priority 1) and their
  APM stats computed by the agent.

Metrics (DataDog/opentelemetry-mapping-go pkg/otlp/metrics, the agent's defaults): a gauge or a
non-monotonic sum -> gauge; a monotonic sum -> count (delta: the difference between cumulative
points; a cumulative series' first point counts only when it started after the agent did, the
`initial_cumulative_monotonic_value: auto` rule); a histogram -> a distribution (sketch), each
bucket's count at its midpoint. Tags are the data point's attributes; the host is `host.name`
(else the agent's). Summaries and exponential histograms are not mapped by the lab (docs/otlp.md).
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import math
import threading
import time
import zlib
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field

from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as msvc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as tsvc
from opentelemetry.proto.trace.v1 import trace_pb2

from lab.agent import apm
from lab.agent.dogstatsd import TYPE_GAUGE, Serie, Sketch, SketchSerie

log = logging.getLogger("lab.agent.otlp")

DEFAULT_SERVICE = "otlpresourcenoservicename"
TYPE_COUNT = 1
Kind = trace_pb2.Span.SpanKind
KIND_NAMES = {Kind.SPAN_KIND_UNSPECIFIED: "unspecified", Kind.SPAN_KIND_INTERNAL: "internal",
              Kind.SPAN_KIND_SERVER: "server", Kind.SPAN_KIND_CLIENT: "client",
              Kind.SPAN_KIND_PRODUCER: "producer", Kind.SPAN_KIND_CONSUMER: "consumer"}
STATUS_NAMES = {0: "Unset", 1: "Ok", 2: "Error"}
CACHE_DBS = ("redis", "memcached")


class OtlpDecodeError(ValueError):
    pass


# -- attributes ------------------------------------------------------------------------------------
def any_value(v):
    """An OTLP AnyValue as a Python value (arrays and maps as JSON text, as the agent stringifies them)."""
    which = v.WhichOneof("value")
    if which is None:
        return ""
    if which == "array_value":
        return json.dumps([any_value(x) for x in v.array_value.values])
    if which == "kvlist_value":
        return json.dumps({kv.key: any_value(kv.value) for kv in v.kvlist_value.values})
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return getattr(v, which)


def attributes(kvs) -> dict:
    return {kv.key: any_value(kv.value) for kv in kvs}


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _first(sattr: dict, rattr: dict, *keys: str) -> str:
    """GetOTelAttrFromEitherMap: the first key found, span attributes before resource attributes."""
    for attrs in (sattr, rattr):
        for key in keys:
            if key in attrs and attrs[key] != "":
                return _text(attrs[key])
    return ""


# -- span mapping ----------------------------------------------------------------------------------
def operation_name_v2(kind: int, sattr: dict, rattr: dict) -> str:
    if name := _first(sattr, rattr, "operation.name"):
        return name.lower()
    server, client = kind == Kind.SPAN_KIND_SERVER, kind == Kind.SPAN_KIND_CLIENT
    if _first(sattr, rattr, "http.request.method", "http.method"):
        if server:
            return "http.server.request"
        if client:
            return "http.client.request"
    if (db := _first(sattr, rattr, "db.system")) and client:
        return f"{db.lower()}.query"
    system, op = _first(sattr, rattr, "messaging.system"), _first(sattr, rattr, "messaging.operation")
    if system and op and kind in (Kind.SPAN_KIND_CLIENT, Kind.SPAN_KIND_SERVER, Kind.SPAN_KIND_CONSUMER,
                                  Kind.SPAN_KIND_PRODUCER):
        return f"{system.lower()}.{op.lower()}"
    rpc = _first(sattr, rattr, "rpc.system").lower()
    if rpc == "aws-api" and client:
        service = _first(sattr, rattr, "rpc.service").lower()
        return f"aws.{service}.request" if service else "aws.client.request"
    if rpc and client:
        return f"{rpc}.client.request"
    if rpc and server:
        return f"{rpc}.server.request"
    provider = _first(sattr, rattr, "faas.invoked_provider")
    invoked = _first(sattr, rattr, "faas.invoked_name")
    if provider and invoked and client:
        return f"{provider.lower()}.{invoked.lower()}.invoke"
    if (trigger := _first(sattr, rattr, "faas.trigger")) and server:
        return f"{trigger.lower()}.invoke"
    if _first(sattr, rattr, "graphql.operation.type"):
        return "graphql.server.request"
    protocol = _first(sattr, rattr, "network.protocol.name").lower()
    if server:
        return f"{protocol}.server.request" if protocol else "server.request"
    if client:
        return f"{protocol}.client.request" if protocol else "client.request"
    return KIND_NAMES.get(kind, "internal") if kind != Kind.SPAN_KIND_UNSPECIFIED else "internal"


def operation_name_v1(kind: int, sattr: dict, rattr: dict, scope_name: str) -> str:
    if name := _first(rattr, sattr, "operation.name"):
        return name
    return f"{scope_name or 'opentelemetry'}.{KIND_NAMES.get(kind, 'unspecified')}"


def resource_name_v2(span, sattr: dict, rattr: dict) -> str:
    if name := _first(sattr, rattr, "resource.name"):
        return name
    if method := _first(sattr, rattr, "http.request.method", "http.method"):
        method = "HTTP" if method == "_OTHER" else method
        route = _first(sattr, rattr, "http.route") if span.kind == Kind.SPAN_KIND_SERVER else ""
        return f"{method} {route}" if route else method
    if op := _first(sattr, rattr, "messaging.operation"):
        dest = _first(sattr, rattr, "messaging.destination", "messaging.destination.name")
        return f"{op} {dest}" if dest else op
    if method := _first(sattr, rattr, "rpc.method"):
        service = _first(sattr, rattr, "rpc.service")
        return f"{method} {service}" if service else method
    if op := _first(sattr, rattr, "graphql.operation.type"):
        name = _first(sattr, rattr, "graphql.operation.name")
        return f"{op} {name}" if name else op
    if _first(sattr, rattr, "db.system") and (stmt := _first(sattr, rattr, "db.statement", "db.query.text")):
        return stmt
    return span.name


def span_type(kind: int, sattr: dict, rattr: dict) -> str:
    if typ := _first(sattr, rattr, "span.type"):
        return typ
    if kind == Kind.SPAN_KIND_SERVER:
        return "web"
    if kind == Kind.SPAN_KIND_CLIENT:
        db = _first(sattr, rattr, "db.system").lower()
        if not db:
            return "http"
        return "cache" if db in CACHE_DBS else "db"
    return "custom"


@dataclass
class ResourceTraces:
    """One ResourceSpans as the receiver turns it into a TracerPayload."""

    traces: list[list[dict]]
    language: str
    tracer_version: str
    hostname: str
    container_id: str
    spans: int


def map_resource_spans(rs, v2: bool = True) -> ResourceTraces:
    rattr = attributes(rs.resource.attributes)
    env = _text(rattr.get("deployment.environment.name") or rattr.get("deployment.environment") or "")
    version = _text(rattr.get("service.version", ""))
    by_trace: dict[int, list[dict]] = {}
    n = 0
    for ss in rs.scope_spans:
        scope = ss.scope
        for span in ss.spans:
            if len(span.trace_id) != 16 or len(span.span_id) != 8 or not any(span.trace_id):
                continue  # the agent skips spans with empty ids
            sattr = attributes(span.attributes)
            meta: dict[str, str] = {}
            metrics: dict[str, float] = {}
            for attrs in (rattr, sattr):  # span attributes win over the resource's
                for k, v in attrs.items():
                    if isinstance(v, (int, float)) and not isinstance(v, bool):
                        metrics[k] = float(v)
                        meta.pop(k, None)
                    else:
                        meta[k] = _text(v)
                        metrics.pop(k, None)
            meta["otel.trace_id"] = span.trace_id.hex()
            meta["span.kind"] = KIND_NAMES.get(span.kind, "unspecified")
            meta["otel.status_code"] = STATUS_NAMES.get(span.status.code, "Unset")
            if span.status.message:
                meta["otel.status_description"] = span.status.message
            if scope.name:
                meta["otel.library.name"] = scope.name
            if scope.version:
                meta["otel.library.version"] = scope.version
            if env:
                meta["env"] = env
            if version:
                meta["version"] = version
            error = 1 if span.status.code == trace_pb2.Status.STATUS_CODE_ERROR else 0
            if error and span.status.message:
                meta.setdefault("error.msg", span.status.message)
            service = _first(sattr, rattr, "service.name") or DEFAULT_SERVICE
            start, end = span.start_time_unix_nano, span.end_time_unix_nano
            dd = {
                "service": service,
                "name": operation_name_v2(span.kind, sattr, rattr) if v2
                else operation_name_v1(span.kind, sattr, rattr, scope.name),
                "resource": resource_name_v2(span, sattr, rattr),
                "trace_id": int.from_bytes(span.trace_id[8:], "big"),
                "span_id": int.from_bytes(span.span_id, "big"),
                "parent_id": int.from_bytes(span.parent_span_id, "big")
                if len(span.parent_span_id) == 8 else 0,
                "start": int(start),
                "duration": int(end - start) if end >= start else 0,
                "error": error,
                "meta": meta,
                "metrics": metrics,
                "type": span_type(span.kind, sattr, rattr),
                "meta_struct": {},
            }
            by_trace.setdefault(dd["trace_id"], []).append(dd)
            n += 1
    return ResourceTraces(
        traces=list(by_trace.values()),
        language=_text(rattr.get("telemetry.sdk.language", "")),
        tracer_version=f"otlp-{_text(rattr.get('telemetry.sdk.version', ''))}",
        hostname=_text(rattr.get("datadog.host.name") or rattr.get("host.name") or ""),
        container_id=_text(rattr.get("container.id") or rattr.get("k8s.pod.uid") or ""),
        spans=n,
    )


# -- metric mapping --------------------------------------------------------------------------------
def _tags(point_attrs) -> list[str]:
    return sorted(f"{k}:{_text(v)}" for k, v in attributes(point_attrs).items())


def _number(point) -> float:
    return float(point.as_double if point.WhichOneof("value") == "as_double" else point.as_int)


@dataclass
class MetricsTranslator:
    """OTLP metrics -> series and sketches; keeps the last cumulative value per series for deltas.
    `process_start_ns`: when the agent started (the first-point rule of cumulative counts)."""

    hostname: str
    process_start_ns: int = field(default_factory=time.time_ns)
    _previous: dict[tuple, tuple[int, float | tuple]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def translate(self, request: msvc.ExportMetricsServiceRequest) -> tuple[list[Serie], list[SketchSerie]]:
        series: list[Serie] = []
        sketches: list[SketchSerie] = []
        for rm in request.resource_metrics:
            rattr = attributes(rm.resource.attributes)
            host = _text(rattr.get("datadog.host.name") or rattr.get("host.name") or self.hostname)
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    which = metric.WhichOneof("data")
                    if which == "gauge":
                        for p in metric.gauge.data_points:
                            series.append(Serie(metric.name, [(p.time_unix_nano // 10**9, _number(p))],
                                                _tags(p.attributes), host, TYPE_GAUGE, unit=metric.unit))
                    elif which == "sum":
                        self._sum(metric, host, series)
                    elif which == "histogram":
                        self._histogram(metric, host, sketches)
        return series, sketches

    def _sum(self, metric, host: str, series: list[Serie]) -> None:
        s = metric.sum
        cumulative = s.aggregation_temporality == 2  # AGGREGATION_TEMPORALITY_CUMULATIVE
        for p in s.data_points:
            ts, value, tags = p.time_unix_nano // 10**9, _number(p), _tags(p.attributes)
            if not s.is_monotonic:
                series.append(Serie(metric.name, [(ts, value)], tags, host, TYPE_GAUGE, unit=metric.unit))
                continue
            if cumulative:
                delta = self._delta((metric.name, tuple(tags), host), p.start_time_unix_nano, value)
                if delta is None:
                    continue
                value = delta
            series.append(Serie(metric.name, [(ts, value)], tags, host, TYPE_COUNT, unit=metric.unit))

    def _delta(self, key: tuple, start_ns: int, value: float) -> float | None:
        with self._lock:
            prev = self._previous.get(key)
            self._previous[key] = (start_ns, value)
        if prev is None or prev[0] != start_ns or value < prev[1]:  # new series, or a reset
            return value if start_ns >= self.process_start_ns else None
        return value - prev[1]

    def _histogram(self, metric, host: str, sketches: list[SketchSerie]) -> None:
        h = metric.histogram
        cumulative = h.aggregation_temporality == 2
        for p in h.data_points:
            tags = _tags(p.attributes)
            counts = list(p.bucket_counts)
            if cumulative:
                key = (metric.name, tuple(tags), host, "histogram")
                with self._lock:
                    prev = self._previous.get(key)
                    self._previous[key] = (p.start_time_unix_nano, tuple(counts))
                if prev is not None and prev[0] == p.start_time_unix_nano and len(prev[1]) == len(counts) \
                        and all(a >= b for a, b in zip(counts, prev[1], strict=True)):
                    counts = [a - b for a, b in zip(counts, prev[1], strict=True)]
                elif p.start_time_unix_nano < self.process_start_ns:
                    continue
            if not sum(counts):
                continue
            sketch = Sketch()
            bounds = list(p.explicit_bounds)
            for i, n in enumerate(counts):
                if n:
                    sketch.insert(_bucket_value(bounds, i, p), int(n))
            sketches.append(SketchSerie(metric.name, tags, host, p.time_unix_nano // 10**9, sketch))


def _bucket_value(bounds: list[float], i: int, p) -> float:
    """Where a bucket's points are put: its midpoint; the open-ended edge buckets use the data
    point's min / max when known, else their one finite bound."""
    lower = bounds[i - 1] if i > 0 else (p.min if p.HasField("min") else -math.inf)
    upper = bounds[i] if i < len(bounds) else (p.max if p.HasField("max") else math.inf)
    if math.isinf(lower):
        return upper if not math.isinf(upper) else 0.0
    if math.isinf(upper):
        return lower
    return (lower + upper) / 2


# -- wire ------------------------------------------------------------------------------------------
def _hex_ids_to_base64(obj) -> None:
    """OTLP/JSON writes trace and span ids as hex; protobuf's JSON mapping wants bytes as base64."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id") \
                    and isinstance(value, str):
                try:
                    obj[key] = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError:
                    raise OtlpDecodeError(f"{key} {value!r} is not hex") from None
            else:
                _hex_ids_to_base64(value)
    elif isinstance(obj, list):
        for item in obj:
            _hex_ids_to_base64(item)


def decode_request(body: bytes, content_type: str, encoding: str, message_cls):
    """An OTLP/HTTP body (protobuf or JSON, maybe gzip/deflate) as `message_cls`."""
    try:
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
    except (OSError, zlib.error) as exc:
        raise OtlpDecodeError(f"cannot decompress {encoding} body: {exc}") from None
    message = message_cls()
    if content_type == "application/json":
        try:
            obj = json.loads(body or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise OtlpDecodeError(f"invalid JSON: {exc}") from None
        _hex_ids_to_base64(obj)
        try:
            json_format.ParseDict(obj, message, ignore_unknown_fields=True)
        except json_format.ParseError as exc:
            raise OtlpDecodeError(f"invalid OTLP JSON: {exc}") from None
        return message
    if content_type != "application/x-protobuf":
        raise OtlpDecodeError(f"unsupported content type {content_type!r}")
    try:
        message.ParseFromString(body)
    except DecodeError as exc:
        raise OtlpDecodeError(f"invalid protobuf: {exc}") from None
    return message


@dataclass
class OtlpCounts:
    spans: int = 0
    metric_points: int = 0
    requests: dict[str, int] = field(default_factory=dict)  # "http" / "grpc" -> requests
    errors: int = 0


class OtlpReceiver:
    """Turns OTLP requests into the agent's data: `on_traces(ResourceTraces)` per ResourceSpans and
    `on_metrics(series, sketches)` per request (both thread-safe: gRPC calls them from its threads)."""

    def __init__(self, on_traces: Callable[[ResourceTraces], None],
                 on_metrics: Callable[[list[Serie], list[SketchSerie]], None],
                 translator: MetricsTranslator, v2_names: bool = True) -> None:
        self.on_traces = on_traces
        self.on_metrics = on_metrics
        self.translator = translator
        self.v2_names = v2_names
        self.counts = OtlpCounts()
        self._grpc_server = None
        self.grpc_ports: list[int] = []

    def traces(self, request: tsvc.ExportTraceServiceRequest, transport: str) -> None:
        self.counts.requests[transport] = self.counts.requests.get(transport, 0) + 1
        for rs in request.resource_spans:
            mapped = map_resource_spans(rs, self.v2_names)
            self.counts.spans += mapped.spans
            if mapped.traces:
                self.on_traces(mapped)

    def metrics(self, request: msvc.ExportMetricsServiceRequest, transport: str) -> None:
        self.counts.requests[transport] = self.counts.requests.get(transport, 0) + 1
        series, sketches = self.translator.translate(request)
        self.counts.metric_points += len(series) + len(sketches)
        if series or sketches:
            self.on_metrics(series, sketches)

    # -- OTLP/HTTP --------------------------------------------------------------------------------
    def http_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)

        def route(message_cls, response_cls, handle):
            async def handler(request: web.Request) -> web.Response:
                ctype = (request.content_type or "").lower()
                body = await request.read()
                try:
                    message = decode_request(body, ctype, request.headers.get("Content-Encoding", "").lower(),
                                             message_cls)
                    handle(message, "http")
                except OtlpDecodeError as exc:
                    self.counts.errors += 1
                    return web.Response(status=400, text=str(exc))
                reply = response_cls()
                if ctype == "application/json":
                    return web.Response(text=json_format.MessageToJson(reply),
                                        content_type="application/json")
                return web.Response(body=reply.SerializeToString(), content_type="application/x-protobuf")
            return handler

        app.router.add_post("/v1/traces", route(tsvc.ExportTraceServiceRequest,
                                                tsvc.ExportTraceServiceResponse, self.traces))
        app.router.add_post("/v1/metrics", route(msvc.ExportMetricsServiceRequest,
                                                 msvc.ExportMetricsServiceResponse, self.metrics))
        return app

    # -- OTLP/gRPC --------------------------------------------------------------------------------
    def start_grpc(self, addresses: list[str], port: int) -> list[int]:
        """Serve the trace and metrics services on each address; returns the bound ports."""
        import grpc
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc as mgrpc
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as tgrpc

        receiver = self

        class Traces(tgrpc.TraceServiceServicer):
            def Export(self, request, context):  # noqa: N802 - the gRPC method's name
                receiver.traces(request, "grpc")
                return tsvc.ExportTraceServiceResponse()

        class Metrics(mgrpc.MetricsServiceServicer):
            def Export(self, request, context):  # noqa: N802
                receiver.metrics(request, "grpc")
                return msvc.ExportMetricsServiceResponse()

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="otlp-grpc"))
        tgrpc.add_TraceServiceServicer_to_server(Traces(), server)
        mgrpc.add_MetricsServiceServicer_to_server(Metrics(), server)
        ports = []
        for address in addresses:
            bound = server.add_insecure_port(f"{address}:{port}")
            if not bound:
                server.stop(0)
                raise OSError(f"OTLP gRPC receiver cannot listen on {address}:{port}")
            ports.append(bound)
            port = bound  # port 0: every address shares the first port picked
        server.start()
        self._grpc_server = server
        self.grpc_ports = ports
        return ports

    def stop(self) -> None:
        if self._grpc_server is not None:
            self._grpc_server.stop(grace=1).wait(3)
            self._grpc_server = None


def parse_endpoint(value: str) -> tuple[str, int]:
    """`host:port` of an OTLP receiver setting; a clear error otherwise."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"OTLP receiver endpoint {value!r} is not host:port (e.g. 0.0.0.0:4318)")
    return host.strip("[]") or "0.0.0.0", int(port)


def resource_traces_payload(mapped: ResourceTraces, default_env: str, bucket_ns: int,
                            container_tags: list[str] | None = None) -> tuple[apm.Built, apm.TracerInfo]:
    """One ResourceSpans built like a tracer request: a TracerPayload, its chunks, their APM stats."""
    info = apm.TracerInfo(lang=mapped.language, tracer_version=mapped.tracer_version,
                          container_id=mapped.container_id)
    built = apm.build_tracer_payload(mapped.traces, info, container_tags, default_env, bucket_ns)
    if mapped.hostname and built.body:
        from lab.proto.agent_payload_pb2 import AgentPayload

        payload = AgentPayload.FromString(built.body)
        payload.tracerPayloads[0].hostname = mapped.hostname
        built = apm.Built(payload.SerializeToString(), built.received, built.traces, built.spans,
                          built.dropped, built.stats)
    return built, info
