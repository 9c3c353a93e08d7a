"""POST /api/v2/series: a protobuf `MetricPayload`, zstd (recent agents) or deflate (older).

The JSON view is fakeintake's: a list of series, each with `resources` ([{type, name}]),
`metric`, `tags`, `points` ([{value, timestamp}], timestamps in seconds), `type` (the v2 enum as a
number: 0 unspecified, 1 count, 2 rate, 3 gauge), `unit`, `source_type_name`, `interval`.
Like fakeintake, a body sent as `application/json` is read as the JSON form of the same message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError

from lab.fakes.intake.decode.compression import decompress
from lab.fakes.intake.decode.payload import (
    DecodedPayload,
    MalformedPayload,
    header,
    parse_protobuf,
    tags_match,
)
from lab.proto import frames_pb2, metrics_payload_pb2

KIND = "series"
FILTERS = frozenset({"metric", "tags", "host", "type"})
TYPE_NAMES = {0: "unspecified", 1: "count", 2: "rate", 3: "gauge"}
_TYPE_BY_NAME = {v: k for k, v in TYPE_NAMES.items()}


def decode(body: bytes, headers: Mapping[str, str] | None = None) -> DecodedPayload:
    raw = decompress(body, header(headers, "Content-Encoding"))
    msg = metrics_payload_pb2.MetricPayload()
    if _is_empty_json(raw):
        # The agent may send an empty JSON object (fakeintake accepts it too).
        return DecodedPayload(KIND, msg, render)
    try:
        if header(headers, "Content-Type").startswith("application/json"):
            json_format.Parse(raw.decode(), msg, ignore_unknown_fields=True)
        else:
            msg.ParseFromString(raw)
    except (DecodeError, json_format.ParseError, UnicodeDecodeError) as exc:
        raise MalformedPayload(f"body is not a MetricPayload: {exc}") from None
    return DecodedPayload(KIND, msg, render)


def _is_empty_json(raw: bytes) -> bool:
    return len(raw) < 16 and raw.strip() == b"{}"


def check(body: bytes, headers: Mapping[str, str] | None = None) -> None:
    """The fast ingest path: decompress and check the top-level framing only (see frames.proto)."""
    raw = decompress(body, header(headers, "Content-Encoding"))
    if _is_empty_json(raw) or header(headers, "Content-Type").startswith("application/json"):
        decode(body, headers)
        return
    parse_protobuf(raw, frames_pb2.MetricPayloadFrame, "a MetricPayload")


def render(msg: metrics_payload_pb2.MetricPayload) -> list[dict[str, Any]]:
    return [_series(s) for s in msg.series]


def _series(s: metrics_payload_pb2.MetricPayload.MetricSeries) -> dict[str, Any]:
    return {
        "resources": [{"type": r.type, "name": r.name} for r in s.resources],
        "metric": s.metric,
        "tags": list(s.tags),
        "points": [{"value": p.value, "timestamp": p.timestamp} for p in s.points],
        "type": s.type,
        "unit": s.unit,
        "source_type_name": s.source_type_name,
        "interval": s.interval,
    }


def select_native(msg: metrics_payload_pb2.MetricPayload, filters: Mapping[str, Any]) -> list[dict] | None:
    wanted = filters.get("metric")
    kept = []
    for s in msg.series:
        if wanted and s.metric != wanted:
            continue
        rendered = _series(s)
        if series_matches(rendered, filters):
            kept.append(rendered)
    return kept or None


def host_of(series: Mapping[str, Any]) -> str:
    for res in series.get("resources", []):
        if res.get("type") == "host":
            return res.get("name", "")
    return ""


def series_matches(series: Mapping[str, Any], filters: Mapping[str, Any]) -> bool:
    if filters.get("metric") and series["metric"] != filters["metric"]:
        return False
    if filters.get("host") and host_of(series) != filters["host"]:
        return False
    if filters.get("type"):
        wanted = filters["type"]
        wanted = _TYPE_BY_NAME.get(wanted, wanted)
        if str(series["type"]) != str(wanted):
            return False
    return not (filters.get("tags") and not tags_match(filters["tags"], series["tags"]))


def select(data: list[dict[str, Any]], filters: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    kept = [s for s in data if series_matches(s, filters)]
    return kept or None
