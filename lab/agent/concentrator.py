"""The trace-agent's concentrator: APM stats the agent computes itself, for every request whose
tracer did not (`Datadog-Client-Computed-Stats` absent or false), sent to `/api/v0.2/stats`.

Two halves, so that the work happens where a request is built (maybe in a decoder process):
`aggregate_chunk` folds one trace chunk's spans into a request's `RequestStats` (plain, picklable
data: what `apm.Built` carries back from a worker), and `Concentrator.add` merges that into time
buckets kept by the agent process, which `Concentrator.flush` turns into a `StatsPayload`
(msgpack with Go field names, `ClientComputed: false`).

Sources: DataDog/datadog-agent pkg/trace/stats (concentrator.go: buckets aligned on the span's
END, `end - end % bsize`; stats older than the oldest open bucket counted in it; a bucket is
flushed once `bufferLen` = 2 bucket widths have passed since its start, everything on stop;
statsraw.go: hits, errors, topLevelHits and duration weighted by 1/`_sample_rate` of the chunk
root, ok/error durations in DDSketches of relative accuracy 0.01 and 2048 bins, durations kept
to 10 bits of mantissa; aggregation.go: the grouping key; span_concentrator.go: which spans
count), pkg/trace/traceutil (span.go, trace.go: `_top_level` / `_dd.top_level`, `_dd.measured`,
`_dd.partial_version`, `ComputeTopLevel`), pkg/trace/agent/agent.go (stats are computed before
sampling: a chunk the sampler drops still counts).
Not reproduced: peer-tag aggregation (`apm_config.peer_tags_aggregation`), the container-ID
dimension (Fargate only), the gRPC status code and HTTP method/endpoint dimensions of newer agents,
and the writer's split of payloads over 4,000 entries.
"""

from __future__ import annotations

import random
import struct
import threading
import time

from ddsketch import LogCollapsingLowestDenseDDSketch
from ddsketch.pb.proto import DDSketchProto

# statsraw.go `relativeAccuracy`, `maxNumBins`; concentrator.go `defaultBufferLen`.
RELATIVE_ACCURACY = 0.01
MAX_NUM_BINS = 2048
BUFFER_LEN = 2
# span_concentrator.go `KindsComputed` (apm_config.compute_stats_by_span_kind: true by default).
KINDS_COMPUTED = frozenset({"server", "consumer", "client", "producer"})
# pb.TraceRootFlag
TRACE_ROOT_TRUE, TRACE_ROOT_FALSE = 1, 2

# (env, hostname, version, service, name, resource, type, span_kind, http_status_code, synthetics,
#  is_trace_root): the PayloadAggregationKey then the BucketsAggregationKey of aggregation.go.
StatsKey = tuple
# (bucket start ns, StatsKey) -> [hits, top_level_hits, errors, duration, ok sketch, error sketch]
# (a sketch is None until a duration goes in). The sketches are filled where the request is built,
# maybe in a decoder process, so the agent process only merges them.
RequestStats = dict


def _trunc_duration(ns: int) -> float:
    # statsraw.go nsTimestampToFloat: keep sign, exponent and the top 9 mantissa bits.
    (bits,) = struct.unpack("<Q", struct.pack("<d", float(ns)))
    return struct.unpack("<d", struct.pack("<Q", bits & 0xFFFFF80000000000))[0]


def _status_code(meta, metrics) -> int:
    code = metrics.get("http.status_code")
    if code is not None:
        return int(code) & 0xFFFFFFFF
    raw = meta.get("http.status_code")
    if not raw:
        return 0
    try:
        code = int(raw)
    except ValueError:
        return 0
    return code if 0 <= code <= 0xFFFFFFFF else 0


def _weight(root) -> float:
    # weight.go: the inverse of the root's `_sample_rate`, when that is in (0, 1].
    rate = root["metrics"].get("_sample_rate")
    return 1.0 / rate if rate is not None and 0.0 < rate <= 1.0 else 1.0


def aggregate_chunk(
    into: RequestStats,
    spans,
    root,
    payload_key: tuple[str, str, str],
    origin: str,
    bucket_ns: int,
    client_top_level: bool,
) -> None:
    """Fold the spans of one chunk that count into `into`. `payload_key` is (env, hostname, app
    version) of the tracer payload so far (empty env or hostname: the agent's, filled in by
`Concentrator.add`, which knows them). Raises on a span
    that is not well formed (a missing field, a wrong type) before changing `into`."""
    services = None if client_top_level else {s["span_id"]: s["service"] for s in spans}
    synthetics = origin.startswith("synthetics")
    rows = []
    for s in spans:
        metrics = s["metrics"]
        # traceutil.HasTopLevelMetrics; without Datadog-Client-Computed-Top-Level the agent also
        # marks roots, orphans and children of another service (ComputeTopLevel).
        top = metrics.get("_top_level") == 1 or metrics.get("_dd.top_level") == 1
        if not top and services is not None:
            parent = s["parent_id"]
            top = parent == 0 or services.get(parent) != s["service"]
        meta = s["meta"]
        kind = meta.get("span.kind", "")
        if not (top or metrics.get("_dd.measured") == 1 or (kind and kind.lower() in KINDS_COMPUTED)):
            continue
        partial = metrics.get("_dd.partial_version")
        if partial is not None and partial >= 0:
            continue  # a snapshot of a long-running span, not the span
        end = s["start"] + s["duration"]
        key = (
            *payload_key,
            s["service"],
            s["name"],
            s["resource"],
            s["type"],
            kind,
            _status_code(meta, metrics),
            synthetics,
            TRACE_ROOT_TRUE if s["parent_id"] == 0 else TRACE_ROOT_FALSE,
        )
        rows.append((end - end % bucket_ns, key, top, s["error"] != 0, s["duration"]))
    if not rows:
        return
    weight = _weight(root)
    for bucket, key, top, error, duration in rows:
        group = into.get((bucket, key))
        if group is None:
            group = into[(bucket, key)] = [0.0, 0.0, 0.0, 0.0, None, None]
        group[0] += weight
        if top:
            group[1] += weight
        group[3] += duration * weight
        if error:
            group[2] += weight
        slot = 5 if error else 4
        if group[slot] is None:
            group[slot] = _sketch()
        group[slot].add(_trunc_duration(duration))


def _sketch() -> LogCollapsingLowestDenseDDSketch:
    return LogCollapsingLowestDenseDDSketch(RELATIVE_ACCURACY, MAX_NUM_BINS)


def _round(f: float) -> int:
    # statsraw.go round: a weighted count rounds up with the probability of its fraction.
    i = int(f)
    return i + 1 if random.random() < f - i else i


class _Group:
    __slots__ = ("hits", "top_level_hits", "errors", "duration", "ok", "err")

    def __init__(self) -> None:
        self.hits = self.top_level_hits = self.errors = self.duration = 0.0
        self.ok = _sketch()
        self.err = _sketch()


class Concentrator:
    """Time buckets of `bucket_ns` in the agent process, fed by `RequestStats`."""

    def __init__(
        self, bucket_ns: int, hostname: str, env: str, agent_version: str, now_ns: int | None = None
    ) -> None:
        self.bucket_ns = bucket_ns
        self.hostname = hostname
        self.env = env
        self.agent_version = agent_version
        self._lock = threading.Lock()
        self._buckets: dict[int, dict[StatsKey, _Group]] = {}
        # At start only the current bucket is open: one sent before a restart is not reopened.
        now = time.time_ns() if now_ns is None else now_ns
        self._oldest = now - now % bucket_ns

    def add(self, stats: RequestStats) -> None:
        with self._lock:
            for (start, key), (hits, top, errors, duration, ok, err) in stats.items():
                if not key[0] or not key[1]:
                    # concentrator.go addNow: the tracer's env and hostname, else the agent's.
                    key = (key[0] or self.env, key[1] or self.hostname, *key[2:])
                # Too late for its own bucket (already sent): counted in the oldest open one.
                bucket = self._buckets.setdefault(max(start, self._oldest), {})
                group = bucket.get(key)
                if group is None:
                    group = bucket[key] = _Group()
                group.hits += hits
                group.top_level_hits += top
                group.errors += errors
                group.duration += duration
                if ok is not None:
                    group.ok.merge(ok)
                if err is not None:
                    group.err.merge(err)

    def flush(self, now_ns: int | None = None, force: bool = False) -> dict | None:
        """The buckets old enough (started `BUFFER_LEN` widths ago or more; all of them when
        `force`, as on agent stop) as one StatsPayload, or None."""
        now = time.time_ns() if now_ns is None else now_ns
        with self._lock:
            ready = sorted(
                t for t in self._buckets if force or t <= now - BUFFER_LEN * self.bucket_ns
            )
            taken = [(t, self._buckets.pop(t)) for t in ready]
            self._oldest = max(self._oldest, now - now % self.bucket_ns - (BUFFER_LEN - 1) * self.bucket_ns)
        if not taken:
            return None
        clients: dict[tuple[str, str, str], list[dict]] = {}
        for start, groups in taken:
            per_client: dict[tuple[str, str, str], list[dict]] = {}
            for key, g in groups.items():
                per_client.setdefault(key[:3], []).append(_grouped_stats(key, g))
            for client, grouped in per_client.items():
                clients.setdefault(client, []).append(
                    {"Start": start, "Duration": self.bucket_ns, "Stats": grouped, "AgentTimeShift": 0}
                )
        return {
            "AgentHostname": self.hostname,
            "AgentEnv": self.env,
            "Stats": [_client_payload(client, buckets) for client, buckets in clients.items()],
            "AgentVersion": self.agent_version,
            "ClientComputed": False,
            "SplitPayload": False,
        }


def _grouped_stats(key: StatsKey, g: _Group) -> dict:
    _, _, _, service, name, resource, typ, kind, status, synthetics, is_root = key
    return {
        "Service": service,
        "Name": name,
        "Resource": resource,
        "HTTPStatusCode": status,
        "Type": typ,
        "DBType": "",
        "Hits": _round(g.hits),
        "Errors": _round(g.errors),
        "Duration": _round(g.duration),
        "OkSummary": DDSketchProto.to_proto(g.ok).SerializeToString(),
        "ErrorSummary": DDSketchProto.to_proto(g.err).SerializeToString(),
        "Synthetics": synthetics,
        "TopLevelHits": _round(g.top_level_hits),
        "SpanKind": kind,
        "PeerTags": [],
        "IsTraceRoot": is_root,
    }


def _client_payload(client: tuple[str, str, str], buckets: list[dict]) -> dict:
    env, hostname, version = client
    return {
        "Hostname": hostname,
        "Env": env,
        "Version": version,
        "Stats": buckets,
        "Lang": "",
        "TracerVersion": "",
        "RuntimeID": "",
        "Sequence": 0,
        "AgentAggregation": "",
        "Service": "",
        "ContainerID": "",
        "Tags": [],
        "GitCommitSha": "",
        "ImageTag": "",
    }
