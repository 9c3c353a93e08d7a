"""Content-Encoding as the agent uses it: gzip (traces, stats, logs), deflate (zlib-wrapped, as Go's
compress/zlib writes it: older series, metadata, check runs) and zstd (recent series, traces, logs).

The agent's zstd streams can be several concatenated frames (its stream compressor flushes frame
by frame), and a frame need not record its content size, so zstd is read with streaming
decompressors frame after frame, never with a one-shot decompress (which needs the size).
"""

from __future__ import annotations

import gzip
import io
import threading
import zlib

import zstandard

from lab.fakes.intake.decode.payload import MalformedPayload

# Decompressed bodies beyond this are refused: the real intake caps payloads well below it, and a
# lab must not be knocked over by a zip bomb in a test.
MAX_DECOMPRESSED = 256 * 1024 * 1024

# One decompressor per thread: a ZstdDecompressor is not thread-safe (python-zstandard's docs), and
# every `decompressobj()` resets its one decompression context, so two threads sharing one (two labs'
# intakes in one process, e.g. a stack started ahead beside the running one) garble each other's
# frames: "Unknown frame descriptor", or the wrong bytes without an error.
_local = threading.local()


def _decompressor() -> zstandard.ZstdDecompressor:
    dctx = getattr(_local, "zstd", None)
    if dctx is None:
        dctx = _local.zstd = zstandard.ZstdDecompressor()
    return dctx


def decompress(body: bytes, content_encoding: str) -> bytes:
    """Undo `content_encoding` ("", "identity", "gzip", "deflate", "zstd"); MalformedPayload on bad input."""
    enc = (content_encoding or "").strip().lower()
    if enc in ("", "identity"):
        return body
    try:
        if enc in ("gzip", "x-gzip"):
            return _gzip(body)
        if enc == "deflate":
            return _deflate(body)
        if enc == "zstd":
            return _zstd(body)
    except (OSError, EOFError, zlib.error, zstandard.ZstdError) as exc:
        raise MalformedPayload(f"body is not valid {enc}: {exc}") from None
    raise MalformedPayload(f"unsupported Content-Encoding {content_encoding!r} (gzip, deflate, zstd)")


def _gzip(body: bytes) -> bytes:
    # Multi-member gzip is legal; GzipFile reads every member.
    with gzip.GzipFile(fileobj=io.BytesIO(body)) as f:
        out = f.read(MAX_DECOMPRESSED + 1)
    _check_size(out)
    return out


def _deflate(body: bytes) -> bytes:
    # HTTP "deflate" means zlib-wrapped; some clients send raw deflate, so fall back to it.
    for wbits in (zlib.MAX_WBITS, -zlib.MAX_WBITS):
        d = zlib.decompressobj(wbits)
        try:
            out = d.decompress(body, MAX_DECOMPRESSED + 1)
        except zlib.error:
            continue
        _check_size(out)
        if not d.eof:
            raise zlib.error("truncated deflate stream")
        return out
    raise zlib.error("neither zlib nor raw deflate data")


def _zstd(body: bytes) -> bytes:
    # One streaming decompressor per frame: `eof` says the frame really ended (a reader that
    # reads across frames returns a truncated last frame's bytes without complaint) and
    # `unused_data` is where the next frame starts.
    if not body:
        raise zstandard.ZstdError("empty body")
    parts: list[bytes] = []
    total = 0
    rest = body
    frame = 0
    dctx = _decompressor()
    while rest:
        dobj = dctx.decompressobj()
        chunk = dobj.decompress(rest)
        if not dobj.eof:
            raise zstandard.ZstdError(f"frame {frame} is truncated")
        parts.append(chunk)
        total += len(chunk)
        if total > MAX_DECOMPRESSED:
            raise MalformedPayload(f"decompressed body exceeds {MAX_DECOMPRESSED} bytes")
        rest = dobj.unused_data
        frame += 1
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _check_size(out: bytes) -> None:
    if len(out) > MAX_DECOMPRESSED:
        raise MalformedPayload(f"decompressed body exceeds {MAX_DECOMPRESSED} bytes")
