from lab.proto import span_pb2 as _span_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TraceChunk(_message.Message):
    __slots__ = ("priority", "origin", "spans", "tags", "droppedTrace")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    SPANS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    DROPPEDTRACE_FIELD_NUMBER: _ClassVar[int]
    priority: int
    origin: str
    spans: _containers.RepeatedCompositeFieldContainer[_span_pb2.Span]
    tags: _containers.ScalarMap[str, str]
    droppedTrace: bool
    def __init__(self, priority: _Optional[int] = ..., origin: _Optional[str] = ..., spans: _Optional[_Iterable[_Union[_span_pb2.Span, _Mapping]]] = ..., tags: _Optional[_Mapping[str, str]] = ..., droppedTrace: bool = ...) -> None: ...

class TracerPayload(_message.Message):
    __slots__ = ("containerID", "languageName", "languageVersion", "tracerVersion", "runtimeID", "chunks", "tags", "env", "hostname", "appVersion", "APMMode")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CONTAINERID_FIELD_NUMBER: _ClassVar[int]
    LANGUAGENAME_FIELD_NUMBER: _ClassVar[int]
    LANGUAGEVERSION_FIELD_NUMBER: _ClassVar[int]
    TRACERVERSION_FIELD_NUMBER: _ClassVar[int]
    RUNTIMEID_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    APPVERSION_FIELD_NUMBER: _ClassVar[int]
    APMMODE_FIELD_NUMBER: _ClassVar[int]
    containerID: str
    languageName: str
    languageVersion: str
    tracerVersion: str
    runtimeID: str
    chunks: _containers.RepeatedCompositeFieldContainer[TraceChunk]
    tags: _containers.ScalarMap[str, str]
    env: str
    hostname: str
    appVersion: str
    APMMode: str
    def __init__(self, containerID: _Optional[str] = ..., languageName: _Optional[str] = ..., languageVersion: _Optional[str] = ..., tracerVersion: _Optional[str] = ..., runtimeID: _Optional[str] = ..., chunks: _Optional[_Iterable[_Union[TraceChunk, _Mapping]]] = ..., tags: _Optional[_Mapping[str, str]] = ..., env: _Optional[str] = ..., hostname: _Optional[str] = ..., appVersion: _Optional[str] = ..., APMMode: _Optional[str] = ...) -> None: ...
