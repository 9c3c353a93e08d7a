"""A small subset of Datadog's public API, answered from what the intake captured, so code written
with `datadog-api-client` (metrics query, span search, key validation) runs unchanged against the
lab and against a real org.

- `GET /api/v1/query?from=&to=&query=` (MetricsApi.query_metrics): `agg:metric{scope} [by {tags}]`
  with agg avg|sum|min|max (default avg), scope `*` or `tag:value,!tag:value,...`; trailing
  `.as_count()`, `.as_rate()`, `.rollup(...)` are accepted and ignored. Points come from the
  series payloads (v2 protobuf and v1 JSON); the response has the v1 `MetricsQueryResponse` shape
  with `pointlist` timestamps in milliseconds.
- `POST /api/v2/spans/events/search` (SpansApi.list_spans) and `GET /api/v2/spans/events`
  (list_spans_get): `filter.query` of space-separated `key:value` terms (`service:`, `env:`,
  `resource_name:`, `operation_name:`, `host:`, `trace_id:`, `@meta.key:`, any span or container
  tag, `-` to negate, `*` wildcards), `filter.from`/`to` (`now-15m`, ISO 8601, epoch ms),
  `page.limit`/`page.cursor`, `sort` (`timestamp` or `-timestamp`).
- `POST /api/v2/logs/events/search` (LogsApi.list_logs) and `GET /api/v2/logs/events`
  (list_logs_get): `filter.query` of space-separated terms: `service:`, `source:`, `host:`,
  `status:`, `@attribute:`, any `key:value` tag, a bare word or a "quoted phrase" searched in the
  message, `-` to negate, `*` wildcards; `filter.from`/`to`, `page.limit`/`page.cursor`, `sort`.
  Entries come from `/api/v2/logs` payloads (the agent's and fluent-bit's).
- `GET /api/v1/validate`: `{"valid": true}`.
"""

from __future__ import annotations

import fnmatch
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from lab.fakes.intake.decode import logs as logs_decoder
from lab.fakes.intake.decode import traces as traces_decoder
from lab.fakes.intake.decode.series import host_of
from lab.fakes.intake.store import IntakeStore


class QueryError(ValueError):
    pass


# --- metrics query -------------------------------------------------------------------------------

_QUERY_RE = re.compile(
    r"^\s*(?:(?P<aggr>avg|sum|min|max):)?(?P<metric>[A-Za-z0-9_.\-]+)"
    r"\{(?P<scope>[^}]*)\}"
    r"(?:\s*by\s*\{(?P<by>[^}]*)\})?"
    r"(?P<fns>(?:\.(?:as_count|as_rate)\(\)|\.rollup\([^)]*\))*)\s*$"
)
_AGGREGATORS = {
    "avg": lambda vals: sum(vals) / len(vals),
    "sum": sum,
    "min": min,
    "max": max,
}


@dataclass(frozen=True)
class MetricQuery:
    aggr: str
    metric: str
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    by: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> MetricQuery:
        m = _QUERY_RE.match(text or "")
        if not m:
            raise QueryError(f"cannot parse metric query {text!r}: expected agg:metric{{scope}} [by {{tag}}]")
        scope = [t.strip() for t in m["scope"].split(",") if t.strip() and t.strip() != "*"]
        include = tuple(t for t in scope if not t.startswith("!"))
        exclude = tuple(t[1:] for t in scope if t.startswith("!"))
        by = tuple(t.strip() for t in (m["by"] or "").split(",") if t.strip())
        return cls(m["aggr"] or "avg", m["metric"], include, exclude, by)

    def scope_text(self) -> str:
        parts = list(self.include) + [f"!{t}" for t in self.exclude]
        return ",".join(parts) or "*"


def _series_tags(series: dict[str, Any]) -> list[str]:
    tags = list(series.get("tags", []))
    host = host_of(series) if "resources" in series else series.get("host", "")
    if host:
        tags.append(f"host:{host}")
    return tags


def _tag_in(tag: str, tags: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(t, tag) for t in tags) if "*" in tag else tag in tags


def query_metrics(store: IntakeStore, query: str, start: int, end: int) -> dict[str, Any]:
    q = MetricQuery.parse(query)
    # group key -> timestamp -> values
    groups: dict[tuple[str, ...], dict[int, list[float]]] = {}
    intervals: dict[tuple[str, ...], int] = {}
    for route in ("/api/v2/series", "/api/v1/series"):
        for _record, data in store.select(route, filters={"metric": q.metric}).items:
            for series in data:
                tags = _series_tags(series)
                if not all(_tag_in(t, tags) for t in q.include):
                    continue
                if any(_tag_in(t, tags) for t in q.exclude):
                    continue
                key = tuple(next((t for t in tags if t.startswith(f"{b}:")), f"{b}:N/A") for b in q.by)
                bucket = groups.setdefault(key, {})
                intervals[key] = int(series.get("interval") or intervals.get(key) or 0)
                for ts, value in _points(series):
                    if start <= ts <= end:
                        bucket.setdefault(ts, []).append(value)
    out_series = []
    agg = _AGGREGATORS[q.aggr]
    for key in sorted(groups):
        points = sorted(groups[key].items())
        if not points:
            continue
        pointlist = [[float(ts * 1000), float(agg(vals))] for ts, vals in points]
        scope = ",".join(list(key) + list(q.include) + [f"!{t}" for t in q.exclude]) or "*"
        out_series.append({
            "metric": q.metric,
            "display_name": q.metric,
            "expression": f"{q.aggr}:{q.metric}{{{scope}}}",
            "scope": scope,
            "tag_set": list(key),
            "aggr": q.aggr,
            "pointlist": pointlist,
            "length": len(pointlist),
            "start": points[0][0] * 1000,
            "end": points[-1][0] * 1000,
            "interval": intervals.get(key) or 1,
            "query_index": 0,
            "unit": None,
        })
    return {
        "status": "ok",
        "res_type": "time_series",
        "resp_version": 1,
        "query": query,
        "from_date": start * 1000,
        "to_date": end * 1000,
        "series": out_series,
        "group_by": list(q.by),
        "message": "",
    }


def _points(series: dict[str, Any]):
    for p in series.get("points", []):
        if isinstance(p, dict):
            yield int(p["timestamp"]), float(p["value"])
        else:  # v1: [timestamp, value]
            yield int(p[0]), float(p[1])


# --- span search ---------------------------------------------------------------------------------

_SPAN_FIELDS = {
    "service": "service",
    "resource_name": "resource",
    "resource": "resource",
    "operation_name": "name",
    "name": "name",
    "type": "type",
}


def parse_time(value: str | int | None, now: float, default: float) -> float:
    """Datadog's time forms: `now`, `now-15m` (s, m, h, d, w), ISO 8601, epoch milliseconds."""
    if value in (None, ""):
        return default
    text = str(value).strip()
    if text == "now":
        return now
    m = re.fullmatch(r"now\s*-\s*(\d+)\s*([smhdw])", text)
    if m:
        unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m[2]]
        return now - int(m[1]) * unit
    if re.fullmatch(r"\d+", text):
        n = int(text)
        return n / 1000 if n > 10**11 else float(n)
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise QueryError(f"cannot parse time {text!r}") from None


def _term_matches(term: str, span: dict, tp: dict, payload: dict, tags: list[str]) -> bool:
    if ":" not in term:
        # A bare word: match the resource or operation name, as the UI's free-text search does.
        return any(fnmatch.fnmatchcase(span[f], f"*{term}*") for f in ("resource", "name"))
    key, _, pattern = term.partition(":")
    pattern = pattern.strip('"')

    def match(value: Any) -> bool:
        return value is not None and fnmatch.fnmatchcase(str(value), pattern)

    if key in _SPAN_FIELDS:
        return match(span[_SPAN_FIELDS[key]])
    if key == "env":
        return match(span["meta"].get("env") or tp.get("env") or payload.get("env"))
    if key == "host":
        return match(tp.get("hostname") or payload.get("hostName"))
    if key in ("trace_id", "span_id", "parent_id"):
        return match(span[key])
    if key.startswith("@"):
        attr = key[1:]
        return match(span["meta"].get(attr, span["metrics"].get(attr)))
    return any(fnmatch.fnmatchcase(t, f"{key}:{pattern}") for t in tags)


def span_matches_query(query: str, span: dict, tp: dict, payload: dict) -> bool:
    tags = traces_decoder.span_tags(payload, tp, span)
    for term in query.split():
        negate = term.startswith("-")
        if negate:
            term = term[1:]
        if term in ("*", ""):
            continue
        if _term_matches(term, span, tp, payload, tags) == negate:
            return False
    return True


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _span_resource(span: dict, tp: dict, payload: dict) -> dict[str, Any]:
    tags = traces_decoder.span_tags(payload, tp, span)
    attributes: dict[str, Any] = {**span["meta"], **span["metrics"], "operation_name": span["name"]}
    return {
        "id": str(span["span_id"]),
        "type": "spans",
        "attributes": {
            "service": span["service"],
            "resource_name": span["resource"],
            "env": span["meta"].get("env") or tp.get("env") or payload.get("env") or "",
            "host": tp.get("hostname") or payload.get("hostName") or "",
            "span_id": str(span["span_id"]),
            "trace_id": str(span["trace_id"]),
            "parent_id": str(span["parent_id"]),
            "start_timestamp": _iso(span["start"]),
            "end_timestamp": _iso(span["start"] + span["duration"]),
            "type": span["type"],
            "tags": tags,
            "attributes": attributes,
            "custom": dict(span["meta"]),
        },
    }


def search_spans(store: IntakeStore, query: str = "*", start: float | None = None, end: float | None = None,
                 limit: int = 10, cursor: str | None = None, sort: str = "-timestamp") -> dict[str, Any]:
    began = time.monotonic()
    now = time.time()
    start = now - 900 if start is None else start
    end = now if end is None else end
    found = []
    for _record, payload in store.select("/api/v0.2/traces").items:
        for tp, _chunk, span in traces_decoder.iter_spans(payload):
            if not (start * 1e9 <= span["start"] <= end * 1e9):
                continue
            if span_matches_query(query or "*", span, tp, payload):
                found.append((span["start"], span, tp, payload))
    found.sort(key=lambda f: f[0], reverse=sort.startswith("-"))
    offset = int(cursor) if cursor and cursor.isdigit() else 0
    page = found[offset:offset + limit]
    meta: dict[str, Any] = {
        "elapsed": int((time.monotonic() - began) * 1000),
        "request_id": uuid.uuid4().hex,
        "status": "done",
    }
    if offset + limit < len(found):
        meta["page"] = {"after": str(offset + limit)}
    return {"data": [_span_resource(s, tp, p) for _, s, tp, p in page], "meta": meta, "links": {}}


# --- log search ----------------------------------------------------------------------------------

# The logs search API's largest page (LogsListRequestPage.limit).
MAX_LOG_PAGE = 5000
_LOG_TERM_RE = re.compile(r'(-?)(?:([^\s:"]+):)?("[^"]*"|\S+)')
# Reserved attributes of the log search syntax -> the field of a log entry as sent.
_LOG_FIELDS = {"service": ("service",), "source": ("ddsource", "source"), "host": ("hostname", "host"),
               "status": ("status",)}


def parse_log_query(query: str) -> list[tuple[bool, str | None, str]]:
    """`service:web -status:error "disk full" env:lab` -> [(negated, key or None, pattern), ...]."""
    terms = []
    for m in _LOG_TERM_RE.finditer(query or ""):
        negate, key, value = m[1] == "-", m[2], m[3]
        if value.startswith('"'):
            value = value.strip('"')
        if key is None and value == "*":
            continue
        terms.append((negate, key, value))
    return terms


def _log_term_matches(key: str | None, pattern: str, entry: dict[str, Any], tags: list[str]) -> bool:
    def match(value: Any) -> bool:
        return value is not None and fnmatch.fnmatchcase(str(value), pattern)

    if key is None:
        # Free text: the message contains it (case-insensitive, as the log explorer's search is).
        return fnmatch.fnmatchcase(logs_decoder.message_text(entry).lower(), f"*{pattern.lower()}*")
    if key in _LOG_FIELDS:
        return any(match(entry.get(f)) for f in _LOG_FIELDS[key] if f in entry)
    if key.startswith("@"):
        value: Any = entry
        for part in key[1:].split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return match(value)
    return any(fnmatch.fnmatchcase(t, f"{key}:{pattern}") for t in tags)


def log_matches_query(terms: list[tuple[bool, str | None, str]], entry: dict[str, Any]) -> bool:
    tags = entry.get("tags") or logs_decoder.split_tags(entry.get("ddtags"))
    return all(_log_term_matches(key, pattern, entry, tags) != negate for negate, key, pattern in terms)


_LOG_RESERVED = frozenset({"message", "status", "timestamp", "hostname", "service", "ddsource", "ddtags",
                           "tags"})


def _log_resource(seq: int, index: int, ts_ms: float, entry: dict[str, Any]) -> dict[str, Any]:
    attributes = {k: v for k, v in entry.items() if k not in _LOG_RESERVED}
    if entry.get("ddsource"):
        attributes["source"] = entry["ddsource"]
    return {
        "id": f"{seq:012d}-{index:06d}",
        "type": "log",
        "attributes": {
            "message": logs_decoder.message_text(entry),
            "status": entry.get("status") or "info",
            "service": entry.get("service") or "",
            "host": entry.get("hostname") or "",
            "timestamp": _iso(int(ts_ms * 1e6)),
            "tags": entry.get("tags") or logs_decoder.split_tags(entry.get("ddtags")),
            "attributes": attributes,
        },
    }


def search_logs(store: IntakeStore, query: str = "*", start: float | None = None, end: float | None = None,
                limit: int = 10, cursor: str | None = None, sort: str = "-timestamp") -> dict[str, Any]:
    began = time.monotonic()
    now = time.time()
    start = now - 900 if start is None else start
    end = now if end is None else end
    if not 1 <= limit <= MAX_LOG_PAGE:
        raise QueryError(f"page limit {limit} is out of range: 1..{MAX_LOG_PAGE}")
    terms = parse_log_query(query)
    found = []
    for record, entries in store.select("/api/v2/logs").items:
        for index, entry in enumerate(entries or []):
            # A log without a timestamp is dated by its arrival, as the intake does.
            ts = entry.get("timestamp")
            ts_ms = float(ts) if isinstance(ts, int | float) else record.received * 1000
            if start * 1000 <= ts_ms <= end * 1000 and log_matches_query(terms, entry):
                found.append((ts_ms, record.seq, index, entry))
    found.sort(key=lambda f: (f[0], f[1], f[2]), reverse=sort.startswith("-"))
    offset = int(cursor) if cursor and cursor.isdigit() else 0
    page = found[offset:offset + limit]
    meta: dict[str, Any] = {
        "elapsed": int((time.monotonic() - began) * 1000),
        "request_id": uuid.uuid4().hex,
        "status": "done",
    }
    links: dict[str, Any] = {}
    if offset + limit < len(found):
        meta["page"] = {"after": str(offset + limit)}
    return {"data": [_log_resource(seq, i, ts, e) for ts, seq, i, e in page], "meta": meta, "links": links}


# --- wire ----------------------------------------------------------------------------------------

def _error(status: int, reason: str) -> web.Response:
    return web.json_response({"errors": [reason]}, status=status)


def add_routes(app: web.Application, store: IntakeStore) -> None:
    async def validate(_request: web.Request) -> web.Response:
        return web.json_response({"valid": True})

    async def metrics_query(request: web.Request) -> web.Response:
        params = request.query
        try:
            start = int(params["from"])
            end = int(params["to"])
            result = query_metrics(store, params["query"], start, end)
        except KeyError as exc:
            return _error(400, f"missing parameter {exc.args[0]}")
        except (ValueError, QueryError) as exc:
            return _error(400, str(exc))
        return web.json_response(result)

    def _search(query: str, frm: Any, to: Any, limit: Any, cursor: Any, sort: Any,
                search=search_spans) -> web.Response:
        now = time.time()
        try:
            start = parse_time(frm, now, now - 900)
            end = parse_time(to, now, now)
            result = search(store, query or "*", start, end, int(limit or 10), cursor, sort or "-timestamp")
        except (ValueError, QueryError) as exc:
            return _error(400, str(exc))
        return web.json_response(result)

    async def spans_search(request: web.Request) -> web.Response:
        try:
            body = await request.json() if request.can_read_body else {}
        except ValueError:
            return _error(400, "request body is not JSON")
        attrs = ((body or {}).get("data") or {}).get("attributes") or {}
        flt = attrs.get("filter") or {}
        page = attrs.get("page") or {}
        return _search(flt.get("query", "*"), flt.get("from"), flt.get("to"), page.get("limit"),
                       page.get("cursor"), attrs.get("sort"))

    async def spans_get(request: web.Request) -> web.Response:
        q = request.query
        return _search(q.get("filter[query]", "*"), q.get("filter[from]"), q.get("filter[to]"),
                       q.get("page[limit]"), q.get("page[cursor]"), q.get("sort"))

    async def logs_search(request: web.Request) -> web.Response:
        try:
            body = await request.json() if request.can_read_body else {}
        except ValueError:
            return _error(400, "request body is not JSON")
        # LogsListRequest is flat: {filter: {query, from, to, indexes}, page: {limit, cursor}, sort}.
        body = body or {}
        flt = body.get("filter") or {}
        page = body.get("page") or {}
        return _search(flt.get("query", "*"), flt.get("from"), flt.get("to"), page.get("limit"),
                       page.get("cursor"), body.get("sort"), search_logs)

    async def logs_get(request: web.Request) -> web.Response:
        q = request.query
        return _search(q.get("filter[query]", "*"), q.get("filter[from]"), q.get("filter[to]"),
                       q.get("page[limit]"), q.get("page[cursor]"), q.get("sort"), search_logs)

    app.router.add_get("/api/v1/validate", validate)
    app.router.add_get("/api/v1/query", metrics_query)
    app.router.add_post("/api/v2/spans/events/search", spans_search)
    app.router.add_get("/api/v2/spans/events", spans_get)
    app.router.add_post("/api/v2/logs/events/search", logs_search)
    app.router.add_get("/api/v2/logs/events", logs_get)
