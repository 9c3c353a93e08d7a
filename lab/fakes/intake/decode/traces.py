"""POST /api/v0.2/traces: a protobuf `AgentPayload`, gzip or zstd.

The JSON view follows the Go JSON of the agent's own structs (what fakeintake users parse):
AgentPayload keeps its proto names (`hostName`, `tracerPayloads`, `agentVersion`), while
TracerPayload, TraceChunk and Span use their `@gotags` json names (`container_id`,
`language_name`, `trace_id`, `span_id`, `parent_id`, `app_version`...). The container's
orchestrator tags travel as one comma-separated string in
`TracerPayload.tags["_dd.tags.container"]` (that is how ECS task tags reach traces).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from lab.fakes.intake.decode.compression import decompress
from lab.fakes.intake.decode.payload import (
    DecodedPayload,
    header,
    parse_protobuf,
    tags_match,
)
from lab.proto import agent_payload_pb2, frames_pb2

KIND = "traces"
FILTERS = frozenset({"service", "name", "resource", "env", "tags", "host"})
CONTAINER_TAGS_KEY = "_dd.tags.container"


def decode(body: bytes, headers: Mapping[str, str] | None = None) -> DecodedPayload:
    raw = decompress(body, header(headers, "Content-Encoding"))
    msg = parse_protobuf(raw, agent_payload_pb2.AgentPayload, "a protobuf AgentPayload")
    return DecodedPayload(KIND, msg, render)


def check(body: bytes, headers: Mapping[str, str] | None = None) -> None:
    """The fast ingest path: decompress and check the top-level framing only (see frames.proto)."""
    raw = decompress(body, header(headers, "Content-Encoding"))
    parse_protobuf(raw, frames_pb2.AgentPayloadFrame, "a protobuf AgentPayload")


def render(msg: agent_payload_pb2.AgentPayload) -> dict[str, Any]:
    return {
        "hostName": msg.hostName,
        "env": msg.env,
        "tracerPayloads": [_tracer_payload(tp) for tp in msg.tracerPayloads],
        "tags": dict(msg.tags),
        "agentVersion": msg.agentVersion,
        "targetTPS": msg.targetTPS,
        "errorTPS": msg.errorTPS,
        "rareSamplerEnabled": msg.rareSamplerEnabled,
    }


def _tracer_payload(tp) -> dict[str, Any]:
    return {
        "container_id": tp.containerID,
        "language_name": tp.languageName,
        "language_version": tp.languageVersion,
        "tracer_version": tp.tracerVersion,
        "runtime_id": tp.runtimeID,
        "chunks": [
            {
                "priority": ch.priority,
                "origin": ch.origin,
                "spans": [_span(s) for s in ch.spans],
                "tags": dict(ch.tags),
                "dropped_trace": ch.droppedTrace,
            }
            for ch in tp.chunks
        ],
        "tags": dict(tp.tags),
        "env": tp.env,
        "hostname": tp.hostname,
        "app_version": tp.appVersion,
    }


def _span(s) -> dict[str, Any]:
    return {
        "service": s.service,
        "name": s.name,
        "resource": s.resource,
        "trace_id": s.traceID,
        "span_id": s.spanID,
        "parent_id": s.parentID,
        "start": s.start,
        "duration": s.duration,
        "error": s.error,
        "meta": dict(s.meta),
        "metrics": dict(s.metrics),
        "type": s.type,
    }


def container_tags(tracer_payload: Mapping[str, Any]) -> list[str]:
    value = tracer_payload.get("tags", {}).get(CONTAINER_TAGS_KEY, "")
    return [t for t in value.split(",") if t]


def span_tags(payload: Mapping[str, Any], tracer_payload: Mapping[str, Any],
              span: Mapping[str, Any]) -> list[str]:
    """Every tag a span can be searched by: its meta, env/version, the container's ECS tags, and
    the tracer payload's and agent payload's tags."""
    tags = [f"{k}:{v}" for k, v in span["meta"].items()]
    env = span["meta"].get("env") or tracer_payload.get("env") or payload.get("env")
    if env:
        tags.append(f"env:{env}")
    if tracer_payload.get("app_version"):
        tags.append(f"version:{tracer_payload['app_version']}")
    tags.extend(container_tags(tracer_payload))
    tags.extend(f"{k}:{v}" for k, v in tracer_payload.get("tags", {}).items() if k != CONTAINER_TAGS_KEY)
    tags.extend(f"{k}:{v}" for k, v in payload.get("tags", {}).items())
    return list(dict.fromkeys(tags))


def iter_spans(payload: Mapping[str, Any]) -> Iterator[tuple[dict, dict, dict]]:
    """(tracer_payload, chunk, span) for every span of a rendered AgentPayload."""
    for tp in payload.get("tracerPayloads", []):
        for chunk in tp["chunks"]:
            for span in chunk["spans"]:
                yield tp, chunk, span


def span_matches(payload: Mapping[str, Any], tp: Mapping[str, Any], span: Mapping[str, Any],
                 filters: Mapping[str, Any]) -> bool:
    for key in ("service", "name", "resource"):
        if filters.get(key) and span[key] != filters[key]:
            return False
    if filters.get("env"):
        env = span["meta"].get("env") or tp.get("env") or payload.get("env")
        if env != filters["env"]:
            return False
    if filters.get("host") and filters["host"] not in (tp.get("hostname"), payload.get("hostName")):
        return False
    if filters.get("tags") and not tags_match(filters["tags"], span_tags(payload, tp, span)):
        return False
    return True


def select(data: dict[str, Any], filters: Mapping[str, Any]) -> dict[str, Any] | None:
    """Keep the traces (chunks) with at least one matching span, whole: a trace is the unit a test
    reasons about. None when nothing matches."""
    kept_tps = []
    for tp in data["tracerPayloads"]:
        chunks = [ch for ch in tp["chunks"] if any(span_matches(data, tp, s, filters) for s in ch["spans"])]
        if chunks:
            kept_tps.append({**tp, "chunks": chunks})
    if not kept_tps:
        return None
    return {**data, "tracerPayloads": kept_tps}
