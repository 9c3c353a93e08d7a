from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SpanLink(_message.Message):
    __slots__ = ("traceID", "traceID_high", "spanID", "attributes", "tracestate", "flags")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TRACEID_FIELD_NUMBER: _ClassVar[int]
    TRACEID_HIGH_FIELD_NUMBER: _ClassVar[int]
    SPANID_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    TRACESTATE_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    traceID: int
    traceID_high: int
    spanID: int
    attributes: _containers.ScalarMap[str, str]
    tracestate: str
    flags: int
    def __init__(self, traceID: _Optional[int] = ..., traceID_high: _Optional[int] = ..., spanID: _Optional[int] = ..., attributes: _Optional[_Mapping[str, str]] = ..., tracestate: _Optional[str] = ..., flags: _Optional[int] = ...) -> None: ...

class Span(_message.Message):
    __slots__ = ("service", "name", "resource", "traceID", "spanID", "parentID", "start", "duration", "error", "meta", "metrics", "type", "meta_struct", "spanLinks")
    class MetaEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class MetaStructEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bytes
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    TRACEID_FIELD_NUMBER: _ClassVar[int]
    SPANID_FIELD_NUMBER: _ClassVar[int]
    PARENTID_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    META_STRUCT_FIELD_NUMBER: _ClassVar[int]
    SPANLINKS_FIELD_NUMBER: _ClassVar[int]
    service: str
    name: str
    resource: str
    traceID: int
    spanID: int
    parentID: int
    start: int
    duration: int
    error: int
    meta: _containers.ScalarMap[str, str]
    metrics: _containers.ScalarMap[str, float]
    type: str
    meta_struct: _containers.ScalarMap[str, bytes]
    spanLinks: _containers.RepeatedCompositeFieldContainer[SpanLink]
    def __init__(self, service: _Optional[str] = ..., name: _Optional[str] = ..., resource: _Optional[str] = ..., traceID: _Optional[int] = ..., spanID: _Optional[int] = ..., parentID: _Optional[int] = ..., start: _Optional[int] = ..., duration: _Optional[int] = ..., error: _Optional[int] = ..., meta: _Optional[_Mapping[str, str]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., type: _Optional[str] = ..., meta_struct: _Optional[_Mapping[str, bytes]] = ..., spanLinks: _Optional[_Iterable[_Union[SpanLink, _Mapping]]] = ...) -> None: ...
