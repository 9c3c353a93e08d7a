"""POST /api/v1/collector, /api/v1/container, /api/v1/discovery, /api/v1/connections: process
agent messages in the v3 envelope (lab.proto.process_codec).

A body the lab cannot read (the pre-1.0 zstd encoding 2, a message type without a schema here) is
still accepted: the header is decoded, the raw body kept, and the payload flagged with the reason,
so nothing the agent sent is lost or silently misread. A body that cannot be a process message at
all (short, wrong version, corrupt protobuf or zstd, a network payload whose tag buffers point
outside themselves) is malformed.

Network payloads (`CollectorConnections`, type 22, on /api/v1/connections) also get a flat
`connections` view: each connection with its addresses, pid, type and direction by name, byte
counters, and the tag sets its indexes point at, decoded (docs/npm.md#what-the-intake-shows).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from lab.fakes.intake.decode.compression import decompress
from lab.fakes.intake.decode.payload import DecodedPayload, MalformedPayload, b64, header, proto_to_dict
from lab.proto import process_agent_pb2 as pb
from lab.proto import process_codec
from lab.proto.tag_encoding import TagBufferError, decode_tag_set

KIND = "process"
FILTERS = frozenset({"host", "type", "cmdline", "container_id", "pid"})


def decode(body: bytes, headers: Mapping[str, str] | None = None) -> DecodedPayload:
    raw = decompress(body, header(headers, "Content-Encoding"))
    try:
        message = process_codec.decode_message(raw)
    except process_codec.ProcessMessageError as exc:
        raise MalformedPayload(str(exc)) from None
    if isinstance(message.body, pb.CollectorConnections):
        try:
            connection_view(message.body)
        except TagBufferError as exc:
            raise MalformedPayload(f"network payload: {exc}") from None
    flags = (message.undecoded_reason,) if message.undecoded_reason else ()
    return DecodedPayload(KIND, message, render, flags=flags)


def render(message: process_codec.ProcessMessage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "header": message.header.as_dict(),
        "body": proto_to_dict(message.body) if message.body is not None else None,
    }
    if message.body is None:
        out["undecoded_reason"] = message.undecoded_reason
        out["raw_body"] = b64(message.raw_body)
    elif isinstance(message.body, pb.CollectorConnections):
        out["connections"] = connection_view(message.body)
        out["host_tags"] = decode_tag_set(message.body.encodedTags, message.body.hostTagsIndex)
    return out


def _addr(addr: pb.Addr) -> dict[str, Any]:
    out: dict[str, Any] = {"ip": addr.ip, "port": addr.port}
    if addr.containerId:
        out["container_id"] = addr.containerId
    return out


def connection_view(body: pb.CollectorConnections) -> list[dict[str, Any]]:
    """Each connection as a user reads it; raises TagBufferError on a tag index the buffers
    do not hold."""
    out = []
    for c in body.connections:
        out.append({
            "pid": c.pid,
            "laddr": _addr(c.laddr),
            "raddr": _addr(c.raddr),
            "type": pb.ConnectionType.Name(c.type),
            "family": pb.ConnectionFamily.Name(c.family),
            "direction": pb.ConnectionDirection.Name(c.direction),
            "bytes_sent": c.lastBytesSent,
            "bytes_received": c.lastBytesReceived,
            "net_ns": c.netNS,
            "intra_host": c.intraHost,
            "container_tags": decode_tag_set(body.encodedTags, c.localContainerTagsIndex),
            "tags": decode_tag_set(body.encodedConnectionsTags, c.tagsIdx),
            "hostName": body.hostName,
        })
    return out


def command_line(proc: Mapping[str, Any]) -> str:
    return " ".join(proc.get("command", {}).get("args", []))


def iter_processes(data: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    body = data.get("body") or {}
    yield from body.get("processes", [])
    yield from body.get("processDiscoveries", [])


def host_name(data: Mapping[str, Any]) -> str:
    return (data.get("body") or {}).get("hostName", "")


def select(data: dict[str, Any], filters: Mapping[str, Any]) -> dict[str, Any] | None:
    hdr = data["header"]
    if filters.get("type") and str(filters["type"]) not in (str(hdr["type"]), hdr["type_name"]):
        return None
    if filters.get("host") and host_name(data) != filters["host"]:
        return None
    body = data.get("body")
    if "connections" in data:
        return _select_connections(data, filters)
    if not (filters.get("cmdline") or filters.get("container_id")):
        return data
    if body is None:
        return None

    def proc_ok(p: Mapping[str, Any]) -> bool:
        if filters.get("cmdline") and filters["cmdline"] not in command_line(p):
            return False
        return not (filters.get("container_id") and p.get("containerId") != filters["container_id"])

    new_body = dict(body)
    matched = False
    for key in ("processes", "processDiscoveries"):
        if key in body:
            new_body[key] = [p for p in body[key] if proc_ok(p)]
            matched = matched or bool(new_body[key])
    if filters.get("container_id") and not filters.get("cmdline"):
        for key in ("containers", "stats", "containerStats"):
            if key in body:
                cid = filters["container_id"]
                kept = [c for c in body[key] if cid in (c.get("id"), c.get("containerId"))]
                new_body[key] = kept
                matched = matched or bool(kept)
    return {**data, "body": new_body} if matched else None


def _select_connections(data: dict[str, Any], filters: Mapping[str, Any]) -> dict[str, Any] | None:
    """A network payload keeps the connections of the asked container (laddr) and pid."""
    cid, pid = filters.get("container_id"), filters.get("pid")
    if not (cid or pid):
        return data
    kept = [c for c in data["connections"]
            if (not cid or c["laddr"].get("container_id") == cid) and (not pid or str(c["pid"]) == str(pid))]
    return {**data, "connections": kept} if kept else None
