from lab.proto import tracer_payload_pb2 as _tracer_payload_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AgentPayload(_message.Message):
    __slots__ = ("hostName", "env", "tracerPayloads", "tags", "agentVersion", "targetTPS", "errorTPS", "rareSamplerEnabled", "APMMode")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    TRACERPAYLOADS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    AGENTVERSION_FIELD_NUMBER: _ClassVar[int]
    TARGETTPS_FIELD_NUMBER: _ClassVar[int]
    ERRORTPS_FIELD_NUMBER: _ClassVar[int]
    RARESAMPLERENABLED_FIELD_NUMBER: _ClassVar[int]
    APMMODE_FIELD_NUMBER: _ClassVar[int]
    hostName: str
    env: str
    tracerPayloads: _containers.RepeatedCompositeFieldContainer[_tracer_payload_pb2.TracerPayload]
    tags: _containers.ScalarMap[str, str]
    agentVersion: str
    targetTPS: float
    errorTPS: float
    rareSamplerEnabled: bool
    APMMode: str
    def __init__(self, hostName: _Optional[str] = ..., env: _Optional[str] = ..., tracerPayloads: _Optional[_Iterable[_Union[_tracer_payload_pb2.TracerPayload, _Mapping]]] = ..., tags: _Optional[_Mapping[str, str]] = ..., agentVersion: _Optional[str] = ..., targetTPS: _Optional[float] = ..., errorTPS: _Optional[float] = ..., rareSamplerEnabled: bool = ..., APMMode: _Optional[str] = ...) -> None: ...
