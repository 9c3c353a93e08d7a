"""What every decoder returns or raises, and the small helpers they share.

A decoder turns one request body into a `DecodedPayload`: `native` is what parsing produced
(a protobuf message, msgpack or JSON objects) and `data` is the JSON-able view the query API
serves, built only when someone asks (the intake validates every payload on arrival but renders
it on query, so ingest stays cheap). A body that cannot be what its route carries raises
`MalformedPayload` with a reason the intake sends back to the agent.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message


class MalformedPayload(ValueError):
    """The body is not what the route carries; `reason` goes back to the sender in a 400."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class DecodedPayload:
    kind: str
    native: Any = field(repr=False)
    render: Callable[[Any], Any] = field(repr=False)
    # Accepted, but only partly understood (e.g. a process body in the pre-1.0 zstd format).
    flags: tuple[str, ...] = ()
    _data: Any = field(default=None, repr=False)
    _rendered: bool = field(default=False, repr=False)

    @property
    def data(self) -> Any:
        if not self._rendered:
            self._data = self.render(self.native)
            self._rendered = True
        return self._data


def parse_protobuf(raw: bytes, message_cls: type[Message], what: str) -> Message:
    """Parse decompressed bytes as `message_cls`, or reject the body saying it is not `what`."""
    try:
        return message_cls.FromString(raw)
    except DecodeError as exc:
        raise MalformedPayload(f"body is not {what}: {exc}") from None


def header(headers: Mapping[str, str] | None, name: str, default: str = "") -> str:
    """Case-insensitive header lookup over a plain dict or a multidict."""
    if not headers:
        return default
    value = headers.get(name)
    if value is not None:
        return value
    lname = name.lower()
    for key, val in headers.items():
        if key.lower() == lname:
            return val
    return default


def parse_tag_filter(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """`tags=k:v,k2:v2` (or a list of them) -> ("k:v", "k2:v2")."""
    if not value:
        return ()
    parts: list[str] = []
    for chunk in [value] if isinstance(value, str) else value:
        parts.extend(t.strip() for t in chunk.split(",") if t.strip())
    return tuple(parts)


def tags_match(wanted: Iterable[str], have: Iterable[str]) -> bool:
    """Every wanted tag is present (fakeintake's AreTagsSubsetOfOtherTags); `key:*` matches any value."""
    have_set = set(have)
    for tag in wanted:
        if tag.endswith(":*"):
            prefix = tag[:-1]
            if not any(h.startswith(prefix) for h in have_set):
                return False
        elif tag not in have_set:
            return False
    return True


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def proto_to_dict(msg: Message) -> dict[str, Any]:
    """Set fields of a message as plain JSON types, keyed by proto field name.

    Unlike json_format.MessageToDict, 64-bit integers stay numbers (as Go's encoding/json writes
    them, which is what fakeintake users parse) and enums stay numbers.
    """
    out: dict[str, Any] = {}
    for fd, value in msg.ListFields():
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            val_fd = fd.message_type.fields_by_name["value"]
            out[fd.name] = {k: _scalar(val_fd, v) for k, v in value.items()}
        elif fd.is_repeated:
            out[fd.name] = [_scalar(fd, v) for v in value]
        else:
            out[fd.name] = _scalar(fd, value)
    return out


def _scalar(fd: FieldDescriptor, value: Any) -> Any:
    if fd.type == FieldDescriptor.TYPE_MESSAGE:
        return proto_to_dict(value)
    if fd.type == FieldDescriptor.TYPE_BYTES:
        return b64(value)
    return value
