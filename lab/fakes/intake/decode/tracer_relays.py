"""What tracers send through the agent's relays (lab.agent.apm_proxies): instrumentation telemetry
and profiles. EVP payloads (`/api/v2/...` of each EVP product) are kept raw: their formats belong to
the products (CI Visibility, LLM Observability...), not to the agent.

Views:
- `/api/v2/apmtelemetry` (Datadog's instrumentation telemetry API v2, as dd-trace libraries send it
  through `/telemetry/proxy/`): the JSON object (`api_version`, `request_type`, `application`,
  `host`, `payload`...), the agent's DD-Agent-Hostname / DD-Agent-Env added as `agent_hostname` /
  `agent_env`. Filter: `request_type`.
- `/api/v2/profile` (what `/profiling/v1/input` forwards: multipart/form-data): the parts (`name`,
  `filename`, `content_type`, `size`), the `event` part's JSON as `event`, and the agent's
  X-Datadog-Additional-Tags as `additional_tags`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from lab.fakes.intake.decode.compression import decompress
from lab.fakes.intake.decode.payload import DecodedPayload, MalformedPayload, header

TELEMETRY_FILTERS = frozenset({"request_type"})
PROFILE_FILTERS = frozenset()


def decode_telemetry(body: bytes, headers: Mapping[str, str] | None = None) -> DecodedPayload:
    raw = decompress(body, header(headers, "Content-Encoding"))
    try:
        obj = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MalformedPayload(f"telemetry body is not JSON: {exc}") from None
    if not isinstance(obj, dict) or "request_type" not in obj:
        raise MalformedPayload("telemetry body must be a JSON object with a request_type")
    obj = {**obj, "agent_hostname": header(headers, "DD-Agent-Hostname"),
           "agent_env": header(headers, "DD-Agent-Env")}
    return DecodedPayload("telemetry", obj, lambda o: o)


def select_telemetry(data: dict[str, Any], filters: Mapping[str, Any]) -> Any:
    wanted = filters.get("request_type")
    if wanted and data.get("request_type") != wanted:
        return None
    return data


def decode_profile(body: bytes, headers: Mapping[str, str] | None = None) -> DecodedPayload:
    ctype = header(headers, "Content-Type")
    if not ctype.lower().startswith("multipart/form-data") or "boundary=" not in ctype:
        raise MalformedPayload(f"profile body must be multipart/form-data with a boundary, not {ctype!r}")
    raw = decompress(body, header(headers, "Content-Encoding"))
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + raw)
    if not message.is_multipart():
        raise MalformedPayload("profile body has no parts")
    parts, event = [], None
    for part in message.iter_parts():
        content = part.get_payload(decode=True) or b""
        name = part.get_param("name", header="content-disposition") or ""
        parts.append({"name": name, "filename": part.get_filename() or "",
                      "content_type": part.get_content_type(), "size": len(content)})
        if name == "event":
            try:
                event = json.loads(content)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise MalformedPayload(f"profile event part is not JSON: {exc}") from None
    if not parts:
        raise MalformedPayload("profile body has no parts")
    view = {"parts": parts, "event": event,
            "additional_tags": header(headers, "X-Datadog-Additional-Tags")}
    return DecodedPayload("profile", view, lambda o: o)


def select_profile(data: dict[str, Any], filters: Mapping[str, Any]) -> Any:
    return data
