"""fluent-bit's Datadog output (fluent/fluent-bit `plugins/out_datadog/`), reproduced: the body it
posts, its headers and its retry rule. docs/logs.md#what-fluent-bit-sends lists the details.

Each record becomes one JSON object, keys in fluent-bit's order: `timestamp` (ms, rounded half up;
key `json_date_key`), `tagkey` (with `include_tag_key`), `ddsource`, `service`, `hostname` (from
dd_source, dd_service, dd_hostname when set), the record's own keys with `dd_message_key` (default
`log`) renamed `message`, then `ddtags`. With `provider ecs`, string attributes `container_id`,
`container_image`, `container_name` (leading `/` dropped), `ecs_cluster` (-> `cluster_name`, the part
after `cluster/`), `ecs_task_definition` (-> `task_family`, `task_version`) and `ecs_task_arn`
(-> `task_arn`, `region`, `task_id`) leave the record and become tags, written before dd_tags.
"""

from __future__ import annotations

import gzip
import ipaddress
import json
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp

from lab.log_router.config import ConfigError, Section, is_on

log = logging.getLogger("lab.log_router.datadog")

# What fluent-bit reports as DD-EVP-ORIGIN-VERSION (its FLB_VERSION_STR); the lab's stand-in
# claims the fluent-bit release aws-for-fluent-bit 2.32 ships.
FLUENT_BIT_VERSION = "1.9.10"
ROUTE = "/api/v2/logs"
_ECS_ARN_PREFIX = "arn:aws:ecs:"


@dataclass
class DatadogOutputConfig:
    match: str
    host: str
    port: int
    tls: bool
    api_key: str
    dd_service: str | None = None
    dd_source: str | None = None
    dd_tags: str | None = None
    dd_hostname: str | None = None
    dd_message_key: str = "log"
    json_date_key: str = "timestamp"
    include_tag_key: bool = False
    tag_key: str = "tagkey"
    remap: bool = False
    compress_gzip: bool = False
    retry_limit: int = 1

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}{ROUTE}"

    @classmethod
    def from_section(cls, section: Section) -> DatadogOutputConfig:
        api_key = section.get("apikey")
        if not api_key:
            # fluent-bit refuses to start the output: "no ApiKey configuration key defined".
            raise ConfigError("datadog output: no apikey configured")
        tls = is_on(section.get("tls"), False)
        port = section.get("port")
        try:
            retry = section.get("retry_limit", "1") or "1"
            retry_limit = 0 if retry.lower() in ("no_retries", "false", "off") else int(retry)
            port_n = int(port) if port else (443 if tls else 80)
        except ValueError as exc:
            raise ConfigError(f"datadog output: {exc}") from None
        return cls(
            match=section.get("match", "*") or "*",
            host=section.get("host") or "http-intake.logs.datadoghq.com",
            port=port_n,
            tls=tls,
            api_key=api_key,
            dd_service=section.get("dd_service"),
            dd_source=section.get("dd_source"),
            dd_tags=section.get("dd_tags"),
            dd_hostname=section.get("dd_hostname"),
            dd_message_key=section.get("dd_message_key") or "log",
            json_date_key=section.get("json_date_key") or "timestamp",
            include_tag_key=is_on(section.get("include_tag_key"), False),
            tag_key=section.get("tag_key") or "tagkey",
            remap=(section.get("provider") or "") == "ecs",
            compress_gzip=(section.get("compress") or "").lower() == "gzip",
            retry_limit=retry_limit,
        )


def timestamp_ms(t: float) -> int:
    """Seconds -> milliseconds, rounded half up on the sub-millisecond part, as fluent-bit does."""
    ns = round(t * 1e9)
    ms, rest = divmod(ns, 1_000_000)
    return ms + (1 if rest >= 500_000 else 0)


def _ecs_tags(key: str, value: str) -> list[str]:
    if key in ("container_id", "container_image"):
        return [f"{key}:{value}"]
    if key == "container_name":
        return [f"container_name:{value[1:] if value.startswith('/') else value}"]
    if key == "ecs_cluster":
        _, found, name = value.partition("cluster/")
        return [f"cluster_name:{name if found else value}"]
    if key == "ecs_task_definition":
        family, found, version = value.partition(":")
        if not found:
            return [f"ecs_task_definition:{value}"]
        return [f"task_family:{family}", f"task_version:{version}"]
    if key == "ecs_task_arn":
        tags = [f"task_arn:{value}"]
        if value.startswith(_ECS_ARN_PREFIX) and len(value) > len(_ECS_ARN_PREFIX):
            region, found, _ = value[len(_ECS_ARN_PREFIX):].partition(":")
            if found:
                tags.append(f"region:{region}")
        _, found, task_id = value.partition("task/")
        tags.append(f"task_id:{task_id if found else value}")
        return tags
    return []


_REMAPPED = frozenset({"container_id", "container_name", "container_image", "ecs_cluster",
                       "ecs_task_definition", "ecs_task_arn"})


def format_record(cfg: DatadogOutputConfig, tag: str, t: float, record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {cfg.json_date_key: timestamp_ms(t)}
    if cfg.include_tag_key:
        out[cfg.tag_key] = tag
    if cfg.dd_source is not None:
        out["ddsource"] = cfg.dd_source
    if cfg.dd_service is not None:
        out["service"] = cfg.dd_service
    if cfg.dd_hostname is not None:
        out["hostname"] = cfg.dd_hostname
    remapped: list[str] = []
    for key, value in record.items():
        if cfg.remap and key in _REMAPPED and isinstance(value, str) and value:
            remapped.extend(_ecs_tags(key, value))
            continue
        out["message" if key == cfg.dd_message_key else key] = value
    tags = ",".join(remapped + ([cfg.dd_tags] if cfg.dd_tags is not None else []))
    if remapped or cfg.dd_tags is not None:
        out["ddtags"] = tags
    return out


def body_and_headers(cfg: DatadogOutputConfig, entries: list[dict[str, Any]]) -> tuple[bytes, dict[str, str]]:
    # fluent-bit writes compact JSON (its msgpack-to-JSON converter adds no spaces).
    body = json.dumps(entries, separators=(",", ":"), ensure_ascii=False).encode()
    headers = {
        "User-Agent": "Fluent-Bit",
        "DD-API-KEY": cfg.api_key,
        "DD-EVP-ORIGIN": "Fluent-Bit",
        "DD-EVP-ORIGIN-VERSION": FLUENT_BIT_VERSION,
        "Content-Type": "application/json",
    }
    if cfg.compress_gzip:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    return body, headers


def check_lab_target(host: str, extra_allowed: frozenset[str] = frozenset()) -> None:
    """Refuse a destination outside the lab: only loopback and private addresses (the lab's own
    networks) may receive what the stand-in sends; a real Datadog host means the redirect is missing."""
    if host in extra_allowed or host == "localhost":
        return
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"datadog output Host {host!r} is outside the lab: redirect it to the lab's "
                          "intake (an IP address on loopback or a lab network)") from None
    if not (addr.is_loopback or addr.is_private):
        raise ConfigError(f"datadog output Host {host} is not a loopback or lab-network address")


class DatadogOutput:
    """Buffers formatted records for one `[OUTPUT] Name datadog` and posts them on flush."""

    def __init__(self, cfg: DatadogOutputConfig) -> None:
        self.cfg = cfg
        self.pending: list[dict[str, Any]] = []
        self.stats = {"sent_records": 0, "requests": 0, "retries": 0, "dropped_records": 0, "errors": 0}
        self.last_error = ""

    def add(self, tag: str, entries: list[tuple[float, dict[str, Any]]]) -> None:
        self.pending.extend(format_record(self.cfg, tag, t, rec) for t, rec in entries)

    async def flush(self, session: aiohttp.ClientSession) -> None:
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        body, headers = body_and_headers(self.cfg, batch)
        for attempt in range(self.cfg.retry_limit + 1):
            if attempt:
                self.stats["retries"] += 1
            try:
                async with session.post(self.cfg.url, data=body, headers=headers) as resp:
                    self.stats["requests"] += 1
                    # fluent-bit: 200..205 is success, anything else is retried.
                    if 200 <= resp.status <= 205:
                        self.stats["sent_records"] += len(batch)
                        return
                    self.last_error = f"HTTP status={resp.status}"
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                self.last_error = f"could not flush records to {self.cfg.host}:{self.cfg.port}: {exc!r}"
            self.stats["errors"] += 1
            log.warning("datadog output: %s", self.last_error)
        self.stats["dropped_records"] += len(batch)
