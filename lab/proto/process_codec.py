"""The process agent's message envelope (v3), as spoken on /api/v1/collector and its siblings.

Layout (DataDog/agent-payload `process/message.go`, `readHeaderV3` / `encodeHeaderV3`), 16 bytes,
little-endian, then the body::

    version u8 (=3) | encoding u8 | type u8 | subscription u8 | orgID int32 | timestamp int64

Encodings (`MessageEncoding`): 0 protobuf, 1 JSON (gogo jsonpb), 2 zstd through the pre-1.0
`DataDog/zstd_0` library, 4 zstd 1.x (cgo `DataDog/zstd`), 5 zstd through the pure-Go
`klauspost/compress/zstd` decoder. 4 and 5 both produce standard zstd frames (RFC 8878), so both
decode here. 2 is an obsolete frame format that python-zstandard generally cannot read: such a
message keeps its raw body and decoded header, and says so, instead of failing.
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import zstandard
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from lab.proto import process_agent_pb2 as pb

HEADER = struct.Struct("<BBBBiq")
HEADER_SIZE = HEADER.size  # 16
VERSION_3 = 3

ENCODING_PROTOBUF = 0
ENCODING_JSON = 1
ENCODING_ZSTD_LEGACY = 2
ENCODING_ZSTD_1X = 4
ENCODING_ZSTD_NOCGO = 5
ENCODING_NAMES = {
    ENCODING_PROTOBUF: "protobuf",
    ENCODING_JSON: "json",
    ENCODING_ZSTD_LEGACY: "zstd-pre-1.0",
    ENCODING_ZSTD_1X: "zstd-1.x",
    ENCODING_ZSTD_NOCGO: "zstd-nocgo",
}

# Message types (agent-payload `process/message.go`); the ones the lab reads have a body class.
TYPE_COLLECTOR_PROC = 12
TYPE_COLLECTOR_CONNECTIONS = 22
TYPE_RES_COLLECTOR = 23
TYPE_COLLECTOR_REALTIME = 27
TYPE_COLLECTOR_CONTAINER = 39
TYPE_COLLECTOR_CONTAINER_REALTIME = 40
TYPE_COLLECTOR_PROC_DISCOVERY = 53
TYPE_COLLECTOR_ECS_TASK = 200

BODY_TYPES: dict[int, type[Message]] = {
    TYPE_COLLECTOR_PROC: pb.CollectorProc,
    TYPE_COLLECTOR_CONNECTIONS: pb.CollectorConnections,
    TYPE_RES_COLLECTOR: pb.ResCollector,
    TYPE_COLLECTOR_REALTIME: pb.CollectorRealTime,
    TYPE_COLLECTOR_CONTAINER: pb.CollectorContainer,
    TYPE_COLLECTOR_CONTAINER_REALTIME: pb.CollectorContainerRealTime,
    TYPE_COLLECTOR_PROC_DISCOVERY: pb.CollectorProcDiscovery,
    TYPE_COLLECTOR_ECS_TASK: pb.CollectorECSTask,
}
TYPE_NAMES = {
    TYPE_COLLECTOR_PROC: "process",
    TYPE_COLLECTOR_CONNECTIONS: "network",
    TYPE_RES_COLLECTOR: "res-collector",
    TYPE_COLLECTOR_REALTIME: "process-rt",
    TYPE_COLLECTOR_CONTAINER: "container",
    TYPE_COLLECTOR_CONTAINER_REALTIME: "container-rt",
    TYPE_COLLECTOR_PROC_DISCOVERY: "process-discovery",
    TYPE_COLLECTOR_ECS_TASK: "ecs-task",
}
_TYPE_OF_CLASS = {cls: t for t, cls in BODY_TYPES.items()}


class ProcessMessageError(ValueError):
    """The bytes are not a process message (too short, wrong version, corrupt body)."""


@dataclass(frozen=True)
class MessageHeader:
    version: int
    encoding: int
    type: int
    subscription_id: int = 0
    org_id: int = 0
    timestamp: int = 0  # milliseconds since the epoch, as the agent writes it

    @property
    def type_name(self) -> str:
        return TYPE_NAMES.get(self.type, str(self.type))

    @property
    def encoding_name(self) -> str:
        return ENCODING_NAMES.get(self.encoding, str(self.encoding))

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "encoding": self.encoding,
            "encoding_name": self.encoding_name,
            "type": self.type,
            "type_name": self.type_name,
            "subscription_id": self.subscription_id,
            "org_id": self.org_id,
            "timestamp": self.timestamp,
        }


@dataclass
class ProcessMessage:
    """A decoded envelope. `body` is None when the body could not be decoded; `raw_body` then holds
    the bytes as received and `undecoded_reason` says why (e.g. the pre-1.0 zstd format)."""

    header: MessageHeader
    body: Message | None
    raw_body: bytes = field(repr=False, default=b"")
    undecoded_reason: str | None = None

    @property
    def decoded(self) -> bool:
        return self.body is not None

    def body_dict(self) -> dict[str, Any] | None:
        if self.body is None:
            return None
        return json_format.MessageToDict(self.body, preserving_proto_field_name=True)


def encode_header(header: MessageHeader) -> bytes:
    if header.version != VERSION_3:
        raise ProcessMessageError(f"only v3 headers are encoded, not v{header.version}")
    return HEADER.pack(header.version, header.encoding, header.type, header.subscription_id,
                       header.org_id, header.timestamp)


def read_header(data: bytes) -> MessageHeader:
    # The agent-payload reader rejects anything of 4 bytes or fewer before looking at the version.
    if len(data) < HEADER_SIZE:
        raise ProcessMessageError(f"message of {len(data)} bytes is shorter than the 16-byte v3 header")
    version, encoding, mtype, sub, org, ts = HEADER.unpack_from(data)
    if version != VERSION_3:
        raise ProcessMessageError(f"unsupported message version {version} (the agent sends v3)")
    return MessageHeader(version, encoding, mtype, sub, org, ts)


def encode_message(msg_type: int, body: Message, encoding: int = ENCODING_ZSTD_1X,
                   timestamp_ms: int | None = None, org_id: int = 0) -> bytes:
    """Header + body, encoded the way the agent (or the intake, for ResCollector) does."""
    if msg_type in BODY_TYPES and not isinstance(body, BODY_TYPES[msg_type]):
        raise ProcessMessageError(
            f"type {msg_type} carries {BODY_TYPES[msg_type].__name__}, not {type(body).__name__}")
    if encoding == ENCODING_PROTOBUF:
        payload = body.SerializeToString()
    elif encoding == ENCODING_JSON:
        payload = json_format.MessageToJson(body, always_print_fields_with_no_presence=True).encode()
    elif encoding in (ENCODING_ZSTD_1X, ENCODING_ZSTD_NOCGO):
        payload = zstandard.ZstdCompressor().compress(body.SerializeToString())
    else:
        raise ProcessMessageError(f"cannot encode with encoding {encoding} "
                                  f"({ENCODING_NAMES.get(encoding, 'unknown')})")
    if timestamp_ms is None:
        timestamp_ms = int(time.time() * 1000)
    header = MessageHeader(VERSION_3, encoding, msg_type, 0, org_id, timestamp_ms)
    return encode_header(header) + payload


def type_of(body: Message) -> int:
    try:
        return _TYPE_OF_CLASS[type(body)]
    except KeyError:
        raise ProcessMessageError(f"no message type for {type(body).__name__}") from None


def _zstd_decompress(payload: bytes) -> bytes:
    # One-shot decompress needs the content size in the frame header; a streaming reader does not.
    reader = zstandard.ZstdDecompressor().stream_reader(payload, read_across_frames=True)
    with reader:
        return reader.read()


def decode_message(data: bytes) -> ProcessMessage:
    """Decode header and body.

    Raises ProcessMessageError when the bytes cannot be a process message (short, wrong version,
    a body that fails to parse). Returns a message with `body=None` and `undecoded_reason` when
    the envelope is fine but the lab cannot read the body (unknown type, legacy zstd).
    """
    header = read_header(data)
    raw = bytes(data[HEADER_SIZE:])
    body_cls = BODY_TYPES.get(header.type)
    if body_cls is None:
        return ProcessMessage(header, None, raw, f"message type {header.type} has no schema in the lab")
    body = body_cls()
    if header.encoding == ENCODING_ZSTD_LEGACY:
        # libzstd reads some pre-1.0 frame formats when built with legacy support; try, and keep the
        # body raw (not an error: the envelope is sound) when this build cannot.
        try:
            body.ParseFromString(_zstd_decompress(raw))
            return ProcessMessage(header, body, raw)
        except (zstandard.ZstdError, DecodeError):
            return ProcessMessage(header, None, raw,
                                  "encoding 2 is DataDog/zstd_0 (a pre-1.0 zstd frame format) which this "
                                  "decoder cannot read; body kept raw")
    try:
        if header.encoding == ENCODING_PROTOBUF:
            body.ParseFromString(raw)
        elif header.encoding == ENCODING_JSON:
            json_format.Parse(raw.decode(), body, ignore_unknown_fields=True)
        elif header.encoding in (ENCODING_ZSTD_1X, ENCODING_ZSTD_NOCGO):
            body.ParseFromString(_zstd_decompress(raw))
        else:
            return ProcessMessage(header, None, raw, f"unknown message encoding {header.encoding}")
    except (DecodeError, zstandard.ZstdError, json_format.ParseError, UnicodeDecodeError,
            json.JSONDecodeError) as exc:
        raise ProcessMessageError(
            f"{header.type_name} body ({header.encoding_name}) does not decode: {exc}") from exc
    return ProcessMessage(header, body, raw)


def res_collector(message: str = "", interval: int = 10, active_clients: int = 0) -> bytes:
    """The intake's reply to a process payload: a v3 ResCollector (type 23), protobuf encoded."""
    body = pb.ResCollector(
        header=pb.ResCollector.Header(type=TYPE_RES_COLLECTOR),
        message=message,
        status=pb.CollectorStatus(activeClients=active_clients, interval=interval),
    )
    return encode_message(TYPE_RES_COLLECTOR, body, ENCODING_PROTOBUF)
