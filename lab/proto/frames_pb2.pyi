from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class MetricPayloadFrame(_message.Message):
    __slots__ = ("series",)
    SERIES_FIELD_NUMBER: _ClassVar[int]
    series: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, series: _Optional[_Iterable[bytes]] = ...) -> None: ...

class SketchPayloadFrame(_message.Message):
    __slots__ = ("sketches",)
    SKETCHES_FIELD_NUMBER: _ClassVar[int]
    sketches: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, sketches: _Optional[_Iterable[bytes]] = ...) -> None: ...

class AgentPayloadFrame(_message.Message):
    __slots__ = ("tracerPayloads",)
    TRACERPAYLOADS_FIELD_NUMBER: _ClassVar[int]
    tracerPayloads: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, tracerPayloads: _Optional[_Iterable[bytes]] = ...) -> None: ...
