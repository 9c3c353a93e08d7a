"""The Fluentd forward protocol (v1), server side: what Docker's fluentd log driver (FireLens's
`awsfirelens` driver underneath) and the fluent-logger libraries send to a log router.

Every message is a msgpack array `[tag, entries, option?]` in one of three modes
(fluent/fluentd `docs/forward-protocol-v1` spec):
- Message: `[tag, time, record, option?]`;
- Forward: `[tag, [[time, record], ...], option?]`;
- PackedForward: `[tag, <bin: concatenated [time, record]>, option?]`, gzip-compressed when
  `option.compressed == "gzip"` (CompressedPackedForward).
`time` is an integer (seconds) or the EventTime extension (type 0: big-endian uint32 seconds and
nanoseconds). With `option.chunk` the sender waits for `{"ack": chunk}`.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import struct
from collections.abc import Callable
from typing import Any

import msgpack

log = logging.getLogger("lab.log_router.forward")

# (tag, [(time in s, record), ...]) -> None; called on the event loop.
EventSink = Callable[[str, list[tuple[float, dict[str, Any]]]], None]


class ProtocolError(ValueError):
    pass


class EventTime:
    """Fluentd's EventTime extension value."""

    __slots__ = ("seconds", "nanoseconds")

    def __init__(self, seconds: int, nanoseconds: int) -> None:
        self.seconds, self.nanoseconds = seconds, nanoseconds

    def as_float(self) -> float:
        return self.seconds + self.nanoseconds / 1e9


def _ext_hook(code: int, data: bytes) -> Any:
    if code == 0 and len(data) == 8:
        return EventTime(*struct.unpack(">II", data))
    return msgpack.ExtType(code, data)


def _unpacker() -> msgpack.Unpacker:
    return msgpack.Unpacker(ext_hook=_ext_hook, raw=False, strict_map_key=False, max_buffer_size=64 << 20)


def _time(value: Any) -> float:
    if isinstance(value, EventTime):
        return value.as_float()
    if isinstance(value, int | float):
        return float(value)
    raise ProtocolError(f"event time {value!r} is neither an integer nor an EventTime")


def _entry(pair: Any) -> tuple[float, dict[str, Any]]:
    if not isinstance(pair, list | tuple) or len(pair) != 2 or not isinstance(pair[1], dict):
        raise ProtocolError(f"entry {pair!r} is not [time, record]")
    return _time(pair[0]), pair[1]


def decode_message(msg: Any) -> tuple[str, list[tuple[float, dict[str, Any]]], dict[str, Any]]:
    """One forward-protocol message -> (tag, entries, option); ProtocolError on anything else."""
    if not isinstance(msg, list | tuple) or len(msg) < 2 or not isinstance(msg[0], str):
        raise ProtocolError(f"message is not [tag, ...]: {str(msg)[:80]}")
    tag, second = msg[0], msg[1]
    if isinstance(second, list):  # Forward mode
        option = msg[2] if len(msg) > 2 and isinstance(msg[2], dict) else {}
        return tag, [_entry(p) for p in second], option
    if isinstance(second, bytes | bytearray):  # PackedForward
        option = msg[2] if len(msg) > 2 and isinstance(msg[2], dict) else {}
        data = bytes(second)
        if option.get("compressed") == "gzip":
            data = gzip.decompress(data)
        unpacker = _unpacker()
        unpacker.feed(data)
        return tag, [_entry(p) for p in unpacker], option
    # Message mode
    if len(msg) < 3 or not isinstance(msg[2], dict):
        raise ProtocolError(f"message-mode entry has no record: {str(msg)[:80]}")
    option = msg[3] if len(msg) > 3 and isinstance(msg[3], dict) else {}
    return tag, [(_time(second), msg[2])], option


class ForwardServer:
    """Listens on TCP and/or a unix socket and hands each message's events to `sink`."""

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink
        self.servers: list[asyncio.base_events.Server] = []
        self.received = 0
        self.errors = 0

    async def listen_tcp(self, host: str, port: int) -> int:
        server = await asyncio.start_server(self._serve, host, port)
        self.servers.append(server)
        return server.sockets[0].getsockname()[1]

    async def listen_unix(self, path: str) -> None:
        self.servers.append(await asyncio.start_unix_server(self._serve, path))

    async def close(self) -> None:
        for server in self.servers:
            server.close()
            await server.wait_closed()
        self.servers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        unpacker = _unpacker()
        try:
            while data := await reader.read(65536):
                unpacker.feed(data)
                for msg in unpacker:
                    try:
                        tag, entries, option = decode_message(msg)
                    except (ProtocolError, OSError, EOFError, msgpack.UnpackException) as exc:
                        # fluent-bit drops a bad message and the connection with it.
                        self.errors += 1
                        log.warning("forward: dropping connection after a bad message: %s", exc)
                        return
                    self.received += len(entries)
                    self.sink(tag, entries)
                    if option.get("chunk"):
                        writer.write(msgpack.packb({"ack": option["chunk"]}))
                        await writer.drain()
        except (ConnectionError, msgpack.UnpackException) as exc:
            self.errors += 1
            log.warning("forward: connection ended: %r", exc)
        finally:
            writer.close()
