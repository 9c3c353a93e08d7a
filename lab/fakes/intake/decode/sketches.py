"""POST /api/beta/sketches: a protobuf `SketchPayload` (DogStatsD distributions), zstd or deflate.

The JSON view is a list of sketches: `metric`, `host`, `tags`, `distributions` (old form) and
`dogsketches` ([{ts, cnt, min, max, avg, sum, k, n}]: DDSketch bin keys and counts).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lab.fakes.intake.decode.compression import decompress
from lab.fakes.intake.decode.payload import (
    DecodedPayload,
    header,
    parse_protobuf,
    tags_match,
)
from lab.proto import frames_pb2, metrics_payload_pb2

KIND = "sketches"
FILTERS = frozenset({"metric", "tags", "host"})


def decode(body: bytes, headers: Mapping[str, str] | None = None) -> DecodedPayload:
    raw = decompress(body, header(headers, "Content-Encoding"))
    msg = parse_protobuf(raw, metrics_payload_pb2.SketchPayload, "a SketchPayload")
    return DecodedPayload(KIND, msg, render)


def check(body: bytes, headers: Mapping[str, str] | None = None) -> None:
    """The fast ingest path: decompress and check the top-level framing only (see frames.proto)."""
    raw = decompress(body, header(headers, "Content-Encoding"))
    parse_protobuf(raw, frames_pb2.SketchPayloadFrame, "a SketchPayload")


def render(msg: metrics_payload_pb2.SketchPayload) -> list[dict[str, Any]]:
    return [
        {
            "metric": sk.metric,
            "host": sk.host,
            "tags": list(sk.tags),
            "distributions": [
                {"ts": d.ts, "cnt": d.cnt, "min": d.min, "max": d.max, "avg": d.avg, "sum": d.sum,
                 "v": list(d.v), "g": list(d.g), "delta": list(d.delta), "buf": list(d.buf)}
                for d in sk.distributions
            ],
            "dogsketches": [
                {"ts": d.ts, "cnt": d.cnt, "min": d.min, "max": d.max, "avg": d.avg, "sum": d.sum,
                 "k": list(d.k), "n": list(d.n)}
                for d in sk.dogsketches
            ],
        }
        for sk in msg.sketches
    ]


def select(data: list[dict[str, Any]], filters: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    kept = [
        sk for sk in data
        if (not filters.get("metric") or sk["metric"] == filters["metric"])
        and (not filters.get("host") or sk["host"] == filters["host"])
        and (not filters.get("tags") or tags_match(filters["tags"], sk["tags"]))
    ]
    return kept or None
