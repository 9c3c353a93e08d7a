"""DogStatsD without sockets: the datagram grammar, the aggregator, and the distribution sketch.

Grammar (DataDog/datadog-agent pkg/dogstatsd/parse.go, parse_events.go, parse_service_checks.go;
docs "Datagram Format and Shell Usage"), one message per line of a packet:

    <name>:<value>[:<value>...]|<type>[|@<rate>][|#<tag>,<tag>][|c:<container-id>][|T<unix ts>]
    _e{<title len>,<text len>}:<title>|<text>[|d:<ts>][|h:<host>][|p:<priority>][|t:<alert type>]
                              [|k:<aggregation key>][|s:<source>][|#<tags>][|c:<container-id>]
    _sc|<name>|<status>[|d:<ts>][|h:<host>][|#<tags>][|c:<container-id>][|m:<message>]

A bad line is counted under its reason and skipped; it never stops the rest of the packet.

Aggregation follows pkg/metrics (counter.go, gauge.go, histogram.go, set.go) and
pkg/aggregator (time_sampler.go): per context (name, tags, host) and per bucket,
- `c`  -> one RATE series, value = sum(v / sample_rate) / interval (counter.go: "sent as Rate");
- `g`  -> GAUGE, last value;
- `s`  -> GAUGE, number of distinct values;
- `h`/`ms` -> `.max .median .avg .count .95percentile` (histogram_aggregates + percentiles; `.count`
  is a RATE like a counter, the others GAUGE);
- `d`  -> a sketch (SketchPayload.Dogsketch) - see `Sketch`;
- `c`/`g` with `|T<ts>` skip aggregation and go out at their own timestamp (COUNT / GAUGE), as the
  agent's no-aggregation pipeline does.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

METRIC_TYPES = {
    "c": "counter",
    "g": "gauge",
    "ms": "timing",
    "h": "histogram",
    "s": "set",
    "d": "distribution",
}

# MetricPayload.MetricType values (agent-payload proto/metrics/agent_payload.proto)
TYPE_UNSPECIFIED, TYPE_COUNT, TYPE_RATE, TYPE_GAUGE = 0, 1, 2, 3

SERVICE_CHECK_STATUSES = {0: "ok", 1: "warning", 2: "critical", 3: "unknown"}
EVENT_PRIORITIES = ("normal", "low")
EVENT_ALERT_TYPES = ("error", "warning", "info", "success")


class ParseError(ValueError):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass
class MetricSample:
    name: str
    values: list[float | str]
    mtype: str  # one of METRIC_TYPES keys
    sample_rate: float = 1.0
    tags: list[str] = field(default_factory=list)
    container_id: str = ""
    cgroup_inode: int = 0
    timestamp: float | None = None
    host: str | None = None  # from a `host:` tag, which the agent turns into the hostname


@dataclass
class Event:
    title: str
    text: str
    timestamp: int | None = None
    host: str | None = None
    priority: str = "normal"
    alert_type: str = "info"
    aggregation_key: str = ""
    source_type_name: str = ""
    tags: list[str] = field(default_factory=list)
    container_id: str = ""
    cgroup_inode: int = 0


@dataclass
class ServiceCheck:
    name: str
    status: int
    timestamp: int | None = None
    host: str | None = None
    message: str = ""
    tags: list[str] = field(default_factory=list)
    container_id: str = ""
    cgroup_inode: int = 0


Message = MetricSample | Event | ServiceCheck


def parse_local_data(raw: str) -> tuple[str, int]:
    """The `c:` field ("local data" for origin detection) -> (container id, cgroup inode).

    As the agent's origindetection.ParseLocalData: a comma list of `ci-<container id>` and
    `in-<cgroup v2 inode>` (what datadogpy >= 0.50 and the other current clients send), or one
    item: `ci-<id>`, `in-<inode>`, `cid-<id>` (old APM form) or a bare id (old DogStatsD form).
    A bad inode is ignored, not fatal: the agent keeps what it could parse.
    """
    cid, inode = "", 0

    def read_inode(item: str) -> int:
        try:
            return int(item[3:])
        except ValueError:
            return 0

    if "," in raw:
        for item in raw.split(","):
            if item.startswith("ci-"):
                cid = item[3:]
            elif item.startswith("in-"):
                inode = read_inode(item)
    elif raw.startswith("ci-"):
        cid = raw[3:]
    elif raw.startswith("in-"):
        inode = read_inode(raw)
    elif raw.startswith("cid-"):
        cid = raw[4:]
    else:
        cid = raw
    return cid, inode


def _tags(raw: str) -> list[str]:
    return [t for t in raw.split(",") if t]


def _extract_host(tags: list[str]) -> tuple[list[str], str | None]:
    """A `host:` tag sets the sample's hostname and is removed (pkg/dogstatsd enrich.go)."""
    host = None
    out = []
    for t in tags:
        if t.startswith("host:"):
            host = t[5:]
        else:
            out.append(t)
    return out, host


def parse_metric(line: str) -> MetricSample:
    name_value, sep, rest = line.partition("|")
    if not sep:
        raise ParseError("no_type", line)
    name, sep, raw_values = name_value.partition(":")
    if not sep or not raw_values:
        raise ParseError("no_value", line)
    if not name:
        raise ParseError("empty_name", line)
    fields = rest.split("|")
    mtype = fields[0]
    if mtype not in METRIC_TYPES:
        raise ParseError("unknown_type", mtype)
    values: list[float | str] = []
    for raw in raw_values.split(":"):
        if mtype == "s":
            values.append(raw)
            continue
        try:
            v = float(raw)
        except ValueError:
            raise ParseError("invalid_value", raw) from None
        if math.isnan(v) or math.isinf(v):
            raise ParseError("invalid_value", raw)
        values.append(v)
    sample = MetricSample(name=name, values=values, mtype=mtype)
    for f in fields[1:]:
        if not f:
            continue
        if f[0] == "@":
            try:
                rate = float(f[1:])
            except ValueError:
                raise ParseError("invalid_sample_rate", f) from None
            if not 0 < rate <= 1:
                raise ParseError("invalid_sample_rate", f)
            sample.sample_rate = rate
        elif f[0] == "#":
            sample.tags = _tags(f[1:])
        elif f.startswith("c:"):
            sample.container_id, sample.cgroup_inode = parse_local_data(f[2:])
        elif f[0] == "T":
            try:
                sample.timestamp = float(int(f[1:]))
            except ValueError:
                raise ParseError("invalid_timestamp", f) from None
        # Unknown fields (e:external data, card:...) are ignored, as newer agents ignore what they
        # do not know rather than dropping the metric.
    if sample.tags and any(t.startswith("host:") for t in sample.tags):
        sample.tags, sample.host = _extract_host(sample.tags)
    return sample


def parse_event(line: str) -> Event:
    # _e{title_len,text_len}:title|text|...
    try:
        header, rest = line[3:].split("}:", 1)
        tlen_s, xlen_s = header.split(",", 1)
        tlen, xlen = int(tlen_s), int(xlen_s)
    except ValueError:
        raise ParseError("invalid_event_header", line) from None
    raw = rest.encode()
    if tlen < 0 or xlen < 0 or len(raw) < tlen + 1 + xlen or raw[tlen : tlen + 1] != b"|":
        raise ParseError("invalid_event_lengths", line)
    title = raw[:tlen].decode(errors="replace")
    text = raw[tlen + 1 : tlen + 1 + xlen].decode(errors="replace").replace("\\n", "\n")
    if not title:
        raise ParseError("empty_event_title", line)
    ev = Event(title=title, text=text)
    tail = raw[tlen + 1 + xlen :].decode(errors="replace")
    for f in tail.split("|"):
        if not f:
            continue
        if f.startswith("d:"):
            try:
                ev.timestamp = int(f[2:])
            except ValueError:
                raise ParseError("invalid_event_timestamp", f) from None
        elif f.startswith("h:"):
            ev.host = f[2:]
        elif f.startswith("p:"):
            ev.priority = f[2:] if f[2:] in EVENT_PRIORITIES else "normal"
        elif f.startswith("t:"):
            ev.alert_type = f[2:] if f[2:] in EVENT_ALERT_TYPES else "info"
        elif f.startswith("k:"):
            ev.aggregation_key = f[2:]
        elif f.startswith("s:"):
            ev.source_type_name = f[2:]
        elif f.startswith("c:"):
            ev.container_id, ev.cgroup_inode = parse_local_data(f[2:])
        elif f[0] == "#":
            ev.tags = _tags(f[1:])
    ev.tags, host = _extract_host(ev.tags)
    ev.host = ev.host or host
    return ev


def parse_service_check(line: str) -> ServiceCheck:
    fields = line.split("|")
    if len(fields) < 3 or not fields[1]:
        raise ParseError("invalid_service_check", line)
    try:
        status = int(fields[2])
    except ValueError:
        raise ParseError("invalid_service_check_status", fields[2]) from None
    if status not in SERVICE_CHECK_STATUSES:
        raise ParseError("invalid_service_check_status", fields[2])
    sc = ServiceCheck(name=fields[1], status=status)
    i = 3
    while i < len(fields):
        f = fields[i]
        if f.startswith("m:"):
            # The message is last and may itself contain '|'.
            sc.message = "|".join(fields[i:])[2:].replace("\\n", "\n")
            break
        if f.startswith("d:"):
            try:
                sc.timestamp = int(f[2:])
            except ValueError:
                raise ParseError("invalid_service_check_timestamp", f) from None
        elif f.startswith("h:"):
            sc.host = f[2:]
        elif f.startswith("c:"):
            sc.container_id, sc.cgroup_inode = parse_local_data(f[2:])
        elif f.startswith("#"):
            sc.tags = _tags(f[1:])
        i += 1
    sc.tags, host = _extract_host(sc.tags)
    sc.host = sc.host or host
    return sc


def parse_line(line: str) -> Message:
    if line.startswith("_e{"):
        return parse_event(line)
    if line.startswith("_sc|"):
        return parse_service_check(line)
    return parse_metric(line)


@dataclass
class ParseStats:
    packets: int = 0
    bytes: int = 0
    metric_samples: int = 0
    events: int = 0
    service_checks: int = 0
    errors: Counter = field(default_factory=Counter)  # reason -> count

    def as_dict(self) -> dict:
        return {
            "packets": self.packets,
            "bytes": self.bytes,
            "metric_samples": self.metric_samples,
            "events": self.events,
            "service_checks": self.service_checks,
            "errors": sum(self.errors.values()),
            "errors_by_reason": dict(self.errors),
        }

    def add(self, other: ParseStats, times: int = 1) -> None:
        """Count `other` `times` over (the same datagram received `times` times in a row)."""
        self.packets += other.packets * times
        self.bytes += other.bytes * times
        self.metric_samples += other.metric_samples * times
        self.events += other.events * times
        self.service_checks += other.service_checks * times
        for reason, n in other.errors.items():
            self.errors[reason] += n * times


def parse_packet(data: bytes, stats: ParseStats | None = None) -> list[Message]:
    """Parse one datagram (several messages separated by newlines); count what fails."""
    stats = stats if stats is not None else ParseStats()
    stats.packets += 1
    stats.bytes += len(data)
    out: list[Message] = []
    try:
        text = data.decode()
    except UnicodeDecodeError:
        stats.errors["invalid_utf8"] += 1
        text = data.decode(errors="replace")
    for line in text.split("\n"):
        line = line.rstrip("\r")
        if not line:
            continue
        try:
            msg = parse_line(line)
        except ParseError as exc:
            stats.errors[exc.reason] += 1
            continue
        if isinstance(msg, MetricSample):
            stats.metric_samples += len(msg.values)
        elif isinstance(msg, Event):
            stats.events += 1
        else:
            stats.service_checks += 1
        out.append(msg)
    return out


# -- sketches --------------------------------------------------------------------------------------
class Sketch:
    """A log-bucket sketch shaped like pkg/quantile's `Sketch` (SketchPayload.Dogsketch k/n).

    pkg/quantile/config.go: eps = 1/128, gamma = 1 + 2*eps, min value 1e-9, keys
    `round(log(v) / ln(gamma)) + bias` with bias = -floor(log(1e-9)/ln(gamma)) + 1, key 0 for |v| <
    1e-9 and negative keys for negative values, at most 4096 bins. The lab keeps exact keys
    (no bin collapsing below the limit) and exact cnt/min/max/sum/avg.
    """

    EPS = 1.0 / 128.0
    GAMMA = 1 + 2 * EPS
    LN_GAMMA = math.log1p(2 * EPS)
    MIN_VALUE = 1e-9
    BIAS = -int(math.floor(math.log(MIN_VALUE) / LN_GAMMA)) + 1
    BIN_LIMIT = 4096

    def __init__(self) -> None:
        self.bins: Counter = Counter()
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf

    @classmethod
    def key(cls, v: float) -> int:
        if v < 0:
            return -cls.key(-v)
        if v < cls.MIN_VALUE:
            return 0
        return int(round(math.log(v) / cls.LN_GAMMA)) + cls.BIAS

    @classmethod
    def value_of(cls, k: int) -> float:
        if k == 0:
            return 0.0
        if k < 0:
            return -cls.value_of(-k)
        return cls.GAMMA ** (k - cls.BIAS)

    def insert(self, v: float, n: int = 1) -> None:
        self.bins[self.key(v)] += n
        self.count += n
        self.sum += v * n
        self.min = min(self.min, v)
        self.max = max(self.max, v)

    def quantile(self, q: float) -> float:
        if not self.count:
            return math.nan
        rank = q * (self.count - 1)
        seen = 0
        for k in sorted(self.bins):
            seen += self.bins[k]
            if seen > rank:
                return max(self.min, min(self.max, self.value_of(k)))
        return self.max

    @property
    def avg(self) -> float:
        return self.sum / self.count if self.count else 0.0

    def keys_counts(self) -> tuple[list[int], list[int]]:
        """Dogsketch k/n: a bin holds at most 65535 (uint16 `bin.n`), more spills into another bin
        with the same key, as pkg/quantile does."""
        keys: list[int] = []
        counts: list[int] = []
        for k in sorted(self.bins):
            n = self.bins[k]
            while n > 0:
                keys.append(k)
                counts.append(min(n, 0xFFFF))
                n -= 0xFFFF
        return keys, counts


# -- aggregation -----------------------------------------------------------------------------------
@dataclass
class Serie:
    """One flushed series (the serializer turns it into MetricPayload.MetricSeries)."""

    name: str
    points: list[tuple[int, float]]
    tags: list[str]
    host: str
    mtype: int
    interval: int = 0
    unit: str = ""
    source_type_name: str = ""


@dataclass
class SketchSerie:
    name: str
    tags: list[str]
    host: str
    timestamp: int
    sketch: Sketch


ContextKey = tuple[str, tuple[str, ...], str]


class _HistogramValues:
    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values: list[tuple[float, float]] = []  # (value, weight)


def _percentile_name(p: float) -> str:
    return f"{int(round(p * 100))}percentile"


class MetricAggregator:
    """Buckets DogStatsD samples per context and turns closed buckets into series and sketches.

    Thread-safe: the receiver thread calls `add_*`, the flush loop calls `flush`.
    """

    def __init__(
        self,
        hostname: str = "",
        interval: float = 10.0,
        histogram_aggregates: tuple[str, ...] = ("max", "median", "avg", "count"),
        histogram_percentiles: tuple[float, ...] = (0.95,),
        extra_tags: tuple[str, ...] = (),
    ) -> None:
        self.hostname = hostname
        self.interval = max(1, int(round(interval)))
        self.histogram_aggregates = histogram_aggregates
        self.histogram_percentiles = histogram_percentiles
        self.extra_tags = list(extra_tags)
        self._lock = threading.Lock()
        # bucket start -> context -> state
        self._buckets: dict[int, dict[ContextKey, object]] = {}
        self._types: dict[tuple[int, ContextKey], str] = {}
        self._timestamped: list[Serie] = []
        self._events: list[Event] = []
        self._service_checks: list[ServiceCheck] = []
        self.contexts_seen = 0
        self._tag_sets: dict[tuple, tuple[str, ...]] = {}

    def _bucket(self, now: float) -> int:
        return int(now) - int(now) % self.interval

    def add(
        self, msg: Message, origin_tags: list[str] | tuple[str, ...] = (), now: float | None = None
    ) -> None:
        now = time.time() if now is None else now
        if isinstance(msg, MetricSample):
            self.add_sample(msg, origin_tags, now)
        elif isinstance(msg, Event):
            msg.tags = msg.tags + self.extra_tags + list(origin_tags)
            with self._lock:
                self._events.append(msg)
        else:
            msg.tags = msg.tags + self.extra_tags + list(origin_tags)
            with self._lock:
                self._service_checks.append(msg)

    def context(self, s: MetricSample, origin_tags: list[str] | tuple[str, ...] = ()) -> ContextKey:
        """The sample's context: (name, sorted de-duplicated tags with the agent's and the origin's,
        host), as pkg/aggregator's context key (name + tags + host)."""
        tag_key = (tuple(s.tags), tuple(origin_tags))
        tags = self._tag_sets.get(tag_key)
        if tags is None:
            # The context's tag set: sorted and de-duplicated once per distinct combination.
            tags = tuple(sorted(set(s.tags + self.extra_tags + list(origin_tags))))
            if len(self._tag_sets) > 100_000:
                self._tag_sets.clear()
            self._tag_sets[tag_key] = tags
        return (s.name, tags, s.host if s.host is not None else self.hostname)

    def add_sample(
        self, s: MetricSample, origin_tags: list[str] | tuple[str, ...] = (), now: float | None = None,
        times: int = 1,
    ) -> None:
        """Aggregate a sample; `times` > 1: the same sample received that many times in a row, with
        the result of adding it `times` times, one at a time."""
        now = time.time() if now is None else now
        ctx = self.context(s, origin_tags)
        name, tags, host = ctx
        if s.timestamp is not None and s.mtype in ("c", "g"):
            mtype = TYPE_COUNT if s.mtype == "c" else TYPE_GAUGE
            with self._lock:
                for _ in range(times):
                    for v in s.values:
                        value = float(v) / s.sample_rate if s.mtype == "c" else float(v)
                        self._timestamped.append(
                            Serie(s.name, [(int(s.timestamp), value)], list(tags), host, mtype)
                        )
            return
        bucket = self._bucket(now)
        with self._lock:
            self._add_in_bucket(self._buckets.setdefault(bucket, {}), bucket, ctx, s.mtype, s.values,
                                s.sample_rate, times)

    def add_in_contexts(self, items: list[tuple[ContextKey, str, list, float, int]],
                        now: float | None = None) -> None:
        """Aggregate (context, type, values, sample rate, times) tuples whose context the caller
        already resolved with `context()` (not timestamped): what `add_sample` does for each of them
        in order, with one clock read and one lock for the lot."""
        bucket = self._bucket(time.time() if now is None else now)
        add = self._add_in_bucket
        types = self._types
        with self._lock:
            contexts = self._buckets.setdefault(bucket, {})
            for ctx, mtype, values, rate, times in items:
                if mtype == "c" and times == 1 and len(values) == 1:
                    # The common case inline: _add_in_bucket's counter with one value, same sum.
                    state = contexts.get(ctx)
                    if state is None:
                        self.contexts_seen += 1
                        state = 0.0
                    elif type(state) is not float:
                        add(contexts, bucket, ctx, mtype, values, rate, times)
                        continue
                    contexts[ctx] = state + values[0] / rate
                    types[(bucket, ctx)] = "c"
                else:
                    add(contexts, bucket, ctx, mtype, values, rate, times)

    def _add_in_bucket(self, contexts: dict, bucket: int, ctx: ContextKey, mtype: str, values: list,
                       sample_rate: float, times: int) -> None:
        """One sample (`times` times in a row) into its context's state; the caller holds the lock."""
        state = contexts.get(ctx)
        if state is None:
            self.contexts_seen += 1
        if mtype == "c":
            total = sum(float(v) for v in values) / sample_rate
            acc = (state or 0.0) + total
            for _ in range(times - 1):  # one addition per datagram: the same float sum
                acc += total
            contexts[ctx] = acc
            self._types[(bucket, ctx)] = "c"
        elif mtype == "g":
            contexts[ctx] = float(values[-1])
            self._types[(bucket, ctx)] = "g"
        elif mtype == "s":
            st = state if isinstance(state, set) else set()
            st.update(str(v) for v in values)
            contexts[ctx] = st
            self._types[(bucket, ctx)] = "s"
        elif mtype in ("h", "ms"):
            hv = state if isinstance(state, _HistogramValues) else _HistogramValues()
            weight = 1.0 / sample_rate
            hv.values.extend([(float(v), weight) for v in values] * times)
            contexts[ctx] = hv
            self._types[(bucket, ctx)] = "h"
        elif mtype == "d":
            sk = state if isinstance(state, Sketch) else Sketch()
            n = max(1, int(round(1.0 / sample_rate)))
            for _ in range(times):
                for v in values:
                    sk.insert(float(v), n)
            contexts[ctx] = sk
            self._types[(bucket, ctx)] = "d"

    def flush(
        self, now: float | None = None, force: bool = False
    ) -> tuple[list[Serie], list[SketchSerie], list[Event], list[ServiceCheck]]:
        """Close every bucket that ended before `now` (all of them when `force`)."""
        now = time.time() if now is None else now
        current = self._bucket(now)
        with self._lock:
            closed = sorted(b for b in self._buckets if force or b < current)
            taken = {b: self._buckets.pop(b) for b in closed}
            types = {k: self._types.pop(k) for k in [k for k in self._types if k[0] in taken]}
            series = self._timestamped
            self._timestamped = []
            events, self._events = self._events, []
            checks, self._service_checks = self._service_checks, []
        sketches: list[SketchSerie] = []
        for bucket, contexts in taken.items():
            for ctx, state in contexts.items():
                kind = types[(bucket, ctx)]
                name, tags, host = ctx
                tag_list = list(tags)
                if kind == "c":
                    series.append(
                        Serie(
                            name, [(bucket, state / self.interval)], tag_list, host, TYPE_RATE, self.interval
                        )
                    )
                elif kind == "g":
                    series.append(Serie(name, [(bucket, state)], tag_list, host, TYPE_GAUGE))
                elif kind == "s":
                    series.append(Serie(name, [(bucket, float(len(state)))], tag_list, host, TYPE_GAUGE))
                elif kind == "h":
                    series.extend(self._histogram_series(name, tag_list, host, bucket, state.values))
                elif kind == "d":
                    sketches.append(SketchSerie(name, tag_list, host, bucket, state))
        return series, sketches, events, checks

    def _histogram_series(
        self, name: str, tags: list[str], host: str, ts: int, values: list[tuple[float, float]]
    ) -> list[Serie]:
        """pkg/metrics/histogram.go: aggregates from the weighted samples of one bucket.

        Weights are int(1 / sample_rate); the median is the first sample whose cumulative weight
        passes (count-1)/2, the p-th percentile the first past (p*count - 1)/100 (integer maths).
        """
        ordered = sorted(values)
        weights = [int(w) for _, w in ordered]
        total_weight = sum(weights)
        out: list[Serie] = []

        def first_past(target: int) -> float:
            seen = 0
            for (v, _), w in zip(ordered, weights, strict=True):
                seen += w
                if seen > target:
                    return v
            return ordered[-1][0]

        def pct(q: float) -> float:
            if q == 0.5:
                return first_past((total_weight - 1) // 2)
            return first_past((int(round(q * 100)) * total_weight - 1) // 100)

        for agg in self.histogram_aggregates:
            if agg == "max":
                out.append(Serie(f"{name}.max", [(ts, ordered[-1][0])], tags, host, TYPE_GAUGE))
            elif agg == "min":
                out.append(Serie(f"{name}.min", [(ts, ordered[0][0])], tags, host, TYPE_GAUGE))
            elif agg == "median":
                out.append(Serie(f"{name}.median", [(ts, pct(0.5))], tags, host, TYPE_GAUGE))
            elif agg == "avg":
                avg = sum(v * w for v, w in ordered) / total_weight  # histogram.go: sum / count
                out.append(Serie(f"{name}.avg", [(ts, avg)], tags, host, TYPE_GAUGE))
            elif agg == "sum":
                out.append(
                    Serie(f"{name}.sum", [(ts, sum(v * w for v, w in ordered))], tags, host, TYPE_GAUGE)
                )
            elif agg == "count":
                out.append(
                    Serie(
                        f"{name}.count",
                        [(ts, total_weight / self.interval)],
                        tags,
                        host,
                        TYPE_RATE,
                        self.interval,
                    )
                )
        for p in self.histogram_percentiles:
            out.append(Serie(f"{name}.{_percentile_name(p)}", [(ts, pct(p))], tags, host, TYPE_GAUGE))
        return out
