"""POST /api/v1/check_run: a compressed JSON array of service checks
`[{check, host_name, timestamp, status, message, tags}]` (status 0 ok, 1 warning, 2 critical,
3 unknown). `agent diagnose` may post a non-array JSON object: accepted, with no check runs, as
fakeintake does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from lab.fakes.intake.decode.compression import decompress
from lab.fakes.intake.decode.payload import DecodedPayload, MalformedPayload, header, tags_match

KIND = "check_runs"
FILTERS = frozenset({"check", "tags", "host", "status"})


def decode(body: bytes, headers: Mapping[str, str] | None = None) -> DecodedPayload:
    raw = decompress(body, header(headers, "Content-Encoding"))
    try:
        obj = json.loads(raw) if raw.strip() else []
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedPayload(f"check run body is not JSON: {exc}") from None
    if isinstance(obj, dict):
        obj = []
    if not isinstance(obj, list) or not all(isinstance(c, dict) and "check" in c for c in obj):
        raise MalformedPayload("check run body must be a JSON array of {check, host_name, status, ...}")
    return DecodedPayload(KIND, obj, _render)


def _render(obj: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "check": c.get("check", ""),
            "host_name": c.get("host_name", ""),
            "timestamp": c.get("timestamp", 0),
            "status": c.get("status", 0),
            "message": c.get("message", ""),
            "tags": list(c.get("tags") or []),
        }
        for c in obj
    ]


def select(data: list[dict[str, Any]], filters: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    kept = [
        c for c in data
        if (not filters.get("check") or c["check"] == filters["check"])
        and (not filters.get("host") or c["host_name"] == filters["host"])
        and (filters.get("status") in (None, "") or str(c["status"]) == str(filters["status"]))
        and (not filters.get("tags") or tags_match(filters["tags"], c["tags"]))
    ]
    return kept or None
