"""POST /api/v0.2/stats: APM stats, msgpack (usually gzip).

The trace agent serialises `StatsPayload` with msgp, so keys are the Go field names, capitalised
(`AgentHostname`, `AgentEnv`, `Stats` -> `Stats` -> `Stats`, three lists deep: client payloads,
time buckets, grouped stats with `Service`, `Name`, `Resource`, `Hits`, `Errors`, `Duration`,
`OkSummary`/`ErrorSummary` as ddsketch bytes). The JSON view keeps those keys; bytes become base64.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgpack

from lab.fakes.intake.decode.compression import decompress
from lab.fakes.intake.decode.payload import DecodedPayload, MalformedPayload, b64, header

KIND = "apm_stats"
FILTERS = frozenset({"service", "name", "resource", "env"})


def decode(body: bytes, headers: Mapping[str, str] | None = None) -> DecodedPayload:
    raw = decompress(body, header(headers, "Content-Encoding"))
    try:
        obj = msgpack.unpackb(raw, raw=False, strict_map_key=False)
    except (msgpack.UnpackException, ValueError) as exc:
        raise MalformedPayload(f"body is not msgpack: {exc}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("Stats", []), list):
        raise MalformedPayload("stats payload must be a map with a `Stats` list (StatsPayload)")
    return DecodedPayload(KIND, obj, render)


def render(obj: Any) -> Any:
    if isinstance(obj, bytes):
        return b64(obj)
    if isinstance(obj, dict):
        return {str(k): render(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [render(v) for v in obj]
    return obj


def iter_grouped(data: Mapping[str, Any]):
    """(client_payload, bucket, grouped_stats) triples."""
    for client in data.get("Stats") or []:
        for bucket in client.get("Stats") or []:
            for grouped in bucket.get("Stats") or []:
                yield client, bucket, grouped


def select(data: dict[str, Any], filters: Mapping[str, Any]) -> dict[str, Any] | None:
    def keep(client: Mapping[str, Any], grouped: Mapping[str, Any]) -> bool:
        for key, field in (("service", "Service"), ("name", "Name"), ("resource", "Resource")):
            if filters.get(key) and grouped.get(field) != filters[key]:
                return False
        env = client.get("Env") or data.get("AgentEnv")
        return not (filters.get("env") and env != filters["env"])

    clients = []
    for client in data.get("Stats") or []:
        buckets = []
        for bucket in client.get("Stats") or []:
            grouped = [g for g in bucket.get("Stats") or [] if keep(client, g)]
            if grouped:
                buckets.append({**bucket, "Stats": grouped})
        if buckets:
            clients.append({**client, "Stats": buckets})
    return {**data, "Stats": clients} if clients else None
