"""`/api/v2/logs`: what the agent's logs pipeline and fluent-bit's Datadog output send.

Both send a JSON array of log objects (`message`, `status`, `timestamp` in ms, `hostname`, `service`,
`ddsource`, `ddtags` as one comma-separated string), compressed as the sender chose: the agent
zstd by default (`logs_config.compression_kind`) or gzip, fluent-bit gzip with `compress gzip`,
plain otherwise; deflate is read too. See docs/logs.md.

The view is the list of entries as sent, each with `tags` added (ddtags split, the field
fakeintake's `Log` exposes). Filters, server-side forms of fakeintake's client options
(`FilterLogs(service, WithMessageContaining, WithMessageMatching, WithTags)`): `service`, `host`,
`source`, `status`, `tags` (all present, `key:*` for any value), `message` (substring) and
`message_matching` (a regular expression, searched).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from lab.fakes.intake.decode.compression import decompress
from lab.fakes.intake.decode.payload import DecodedPayload, MalformedPayload, header, tags_match

KIND = "logs"
FILTERS = frozenset({"service", "tags", "host", "source", "status", "message", "message_matching"})


class BadLogFilter(ValueError):
    """A filter value that cannot be applied (e.g. an invalid regular expression)."""


def decode(body: bytes, headers: Mapping[str, str] | None = None) -> DecodedPayload:
    raw = decompress(body, header(headers, "Content-Encoding"))
    if not raw.strip():
        return DecodedPayload(KIND, [], render)
    try:
        obj = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedPayload(f"logs body is not JSON: {exc}") from None
    if isinstance(obj, dict):
        obj = [obj]
    if not isinstance(obj, list) or not all(isinstance(e, dict) for e in obj):
        raise MalformedPayload("logs body must be a JSON array of log objects")
    return DecodedPayload(KIND, obj, render)


def split_tags(ddtags: Any) -> list[str]:
    """`ddtags` as a list: a comma-separated string (what both senders write) or already a list."""
    if isinstance(ddtags, str):
        return [t.strip() for t in ddtags.split(",") if t.strip()]
    if isinstance(ddtags, list):
        return [str(t) for t in ddtags]
    return []


def render(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for e in entries:
        entry = dict(e)
        if "tags" not in entry:
            entry["tags"] = split_tags(entry.get("ddtags"))
        out.append(entry)
    return out


def message_text(entry: Mapping[str, Any]) -> str:
    message = entry.get("message", "")
    return message if isinstance(message, str) else json.dumps(message, sort_keys=True)


@lru_cache(maxsize=64)
def _pattern(text: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as exc:
        raise BadLogFilter(f"message_matching {text!r} is not a regular expression: {exc}") from None


def entry_matches(e: Mapping[str, Any], filters: Mapping[str, Any]) -> bool:
    if filters.get("service") and e.get("service") != filters["service"]:
        return False
    if filters.get("host") and e.get("hostname") != filters["host"]:
        return False
    if filters.get("source") and e.get("ddsource", e.get("source")) != filters["source"]:
        return False
    if filters.get("status") and e.get("status") != filters["status"]:
        return False
    if filters.get("tags") and not tags_match(filters["tags"], e.get("tags") or split_tags(e.get("ddtags"))):
        return False
    if filters.get("message") and filters["message"] not in message_text(e):
        return False
    if filters.get("message_matching") and not _pattern(filters["message_matching"]).search(message_text(e)):
        return False
    return True


def select(data: list[dict[str, Any]], filters: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    if filters.get("message_matching"):
        _pattern(filters["message_matching"])  # a bad pattern fails even when there is nothing to match
    kept = [e for e in data if entry_matches(e, filters)]
    return kept or None
