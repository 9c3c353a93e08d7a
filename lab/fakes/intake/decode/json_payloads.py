"""The agent's JSON routes other than logs (logs.py): the legacy `/intake/` (events, host
metadata), `/api/v1/metadata` (inventories, host metadata) and v1 series (`/api/v1/series`, older
agents and some tools).

Views:
- v1 series: the `series` list (`metric`, `points` [[ts, value]], `tags`, `host`, `type`).
- intake / metadata: the JSON object as sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from lab.fakes.intake.decode.compression import decompress
from lab.fakes.intake.decode.payload import DecodedPayload, MalformedPayload, header, tags_match

SERIES_V1_FILTERS = frozenset({"metric", "tags", "host"})
OBJECT_FILTERS = frozenset()


def _load(body: bytes, headers: Mapping[str, str] | None, what: str) -> Any:
    raw = decompress(body, header(headers, "Content-Encoding"))
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedPayload(f"{what} body is not JSON: {exc}") from None


def _identity(obj: Any) -> Any:
    return obj


# --- v1 series ------------------------------------------------------------------------------------

def decode_series_v1(body: bytes, headers: Mapping[str, str] | None = None) -> DecodedPayload:
    obj = _load(body, headers, "series")
    if obj is None or obj == {}:
        obj = {"series": []}
    if not isinstance(obj, dict) or not isinstance(obj.get("series"), list):
        raise MalformedPayload('v1 series body must be {"series": [...]}')
    return DecodedPayload("series_v1", obj, _render_series_v1)


def _render_series_v1(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**s, "tags": list(s.get("tags") or [])} for s in obj["series"]]


def select_series_v1(data: list[dict[str, Any]], filters: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    kept = [
        s for s in data
        if (not filters.get("metric") or s.get("metric") == filters["metric"])
        and (not filters.get("host") or s.get("host") == filters["host"])
        and (not filters.get("tags") or tags_match(filters["tags"], s["tags"]))
    ]
    return kept or None


# --- /intake/ and /api/v1/metadata ----------------------------------------------------------------

def decode_object(body: bytes, headers: Mapping[str, str] | None = None) -> DecodedPayload:
    obj = _load(body, headers, "metadata")
    if obj is None:
        obj = {}
    if not isinstance(obj, dict | list):
        raise MalformedPayload("body must be a JSON object")
    return DecodedPayload("json", obj, _identity)


def select_object(data: Any, filters: Mapping[str, Any]) -> Any:
    return data
