"""The tag buffers of the network payload (`CollectorConnections.encodedTags`,
`encodedConnectionsTags`), in the layout DataDog/agent-payload defines in `process/tags_v2.go` and
`process/tags_v3.go` (the process agent writes version 3 since its connections check switched to
`NewV3TagEncoder`; version 2 has the same layout without the sorting and de-duplication).

Layout, little-endian::

    version u8 | footer offset u32 | tags: (length u16, bytes)* | footer: (count u16, offset u32 * count)*

A tag set is referred to by the offset of its entry within the footer (what `tagsIdx`,
`localContainerTagsIndex` and `hostTagsIndex` hold); -1 means "no tags". Each tag string is stored
once; a footer entry lists the offsets of its tags from the start of the buffer.
"""

from __future__ import annotations

import struct

VERSION_2 = 2
VERSION_3 = 3
_PREAMBLE = 1 + 4
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")


class TagBufferError(ValueError):
    """The bytes are not a v2/v3 tag buffer, or an index points outside it."""


class TagSetEncoder:
    """Writes tag sets into one buffer, as the process agent's v3 encoder does: each set sorted and
    de-duplicated, identical sets stored once (the same index is returned)."""

    def __init__(self) -> None:
        self._offsets: dict[str, int] = {}
        self._tags: list[bytes] = []
        self._next_tag_at = _PREAMBLE
        self._footer = bytearray()
        self._sets: dict[tuple[str, ...], int] = {}

    def encode(self, tags: list[str] | tuple[str, ...]) -> int:
        unique = tuple(sorted(set(tags)))
        if not unique:
            return -1
        if unique in self._sets:
            return self._sets[unique]
        index = len(self._footer)
        self._footer += _U16.pack(len(unique))
        for tag in unique:
            if tag not in self._offsets:
                raw = tag.encode()[:0xFFFF]
                self._offsets[tag] = self._next_tag_at
                self._tags.append(raw)
                self._next_tag_at += 2 + len(raw)
            self._footer += _U32.pack(self._offsets[tag])
        self._sets[unique] = index
        return index

    def buffer(self) -> bytes:
        out = bytearray([VERSION_3])
        out += _U32.pack(self._next_tag_at)
        for raw in self._tags:
            out += _U16.pack(len(raw)) + raw
        return bytes(out + self._footer)


def decode_tag_set(buffer: bytes, index: int) -> list[str]:
    """The tags of the set at `index` (a footer offset); [] for index -1 or an empty buffer.

    Raises TagBufferError on a version other than 2 or 3 or on offsets past the end: the agent's
    reader skips such entries silently, the lab's intake reports them instead.
    """
    if index < 0 or not buffer:
        return []
    if len(buffer) < _PREAMBLE:
        raise TagBufferError(f"tag buffer of {len(buffer)} bytes is shorter than its 5-byte preamble")
    version = buffer[0]
    if version not in (VERSION_2, VERSION_3):
        raise TagBufferError(f"tag buffer version {version} is not 2 or 3 (the lab reads only those)")
    (footer_at,) = _U32.unpack_from(buffer, 1)
    at = footer_at + index
    if at + 2 > len(buffer):
        raise TagBufferError(f"tag set index {index} is past the end of the {len(buffer)}-byte buffer")
    (count,) = _U16.unpack_from(buffer, at)
    at += 2
    tags = []
    for _ in range(count):
        if at + 4 > len(buffer):
            raise TagBufferError(f"tag set {index} lists more tags than its buffer holds")
        (tag_at,) = _U32.unpack_from(buffer, at)
        at += 4
        if tag_at + 2 > len(buffer):
            raise TagBufferError(f"tag set {index} points at offset {tag_at}, past the buffer")
        (length,) = _U16.unpack_from(buffer, tag_at)
        end = tag_at + 2 + length
        if end > len(buffer):
            raise TagBufferError(f"tag at offset {tag_at} runs past the buffer")
        tags.append(buffer[tag_at + 2:end].decode("utf-8", "replace"))
    return tags
