from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StatsPayload(_message.Message):
    __slots__ = ("agentHostname", "agentEnv", "stats", "agentVersion", "clientComputed", "splitPayload")
    AGENTHOSTNAME_FIELD_NUMBER: _ClassVar[int]
    AGENTENV_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    AGENTVERSION_FIELD_NUMBER: _ClassVar[int]
    CLIENTCOMPUTED_FIELD_NUMBER: _ClassVar[int]
    SPLITPAYLOAD_FIELD_NUMBER: _ClassVar[int]
    agentHostname: str
    agentEnv: str
    stats: _containers.RepeatedCompositeFieldContainer[ClientStatsPayload]
    agentVersion: str
    clientComputed: bool
    splitPayload: bool
    def __init__(self, agentHostname: _Optional[str] = ..., agentEnv: _Optional[str] = ..., stats: _Optional[_Iterable[_Union[ClientStatsPayload, _Mapping]]] = ..., agentVersion: _Optional[str] = ..., clientComputed: bool = ..., splitPayload: bool = ...) -> None: ...

class ClientStatsPayload(_message.Message):
    __slots__ = ("hostname", "env", "version", "stats", "lang", "tracerVersion", "runtimeID", "sequence", "agentAggregation", "service", "containerID", "tags", "git_commit_sha", "image_tag", "is_parent_root")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    LANG_FIELD_NUMBER: _ClassVar[int]
    TRACERVERSION_FIELD_NUMBER: _ClassVar[int]
    RUNTIMEID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    AGENTAGGREGATION_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    CONTAINERID_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    GIT_COMMIT_SHA_FIELD_NUMBER: _ClassVar[int]
    IMAGE_TAG_FIELD_NUMBER: _ClassVar[int]
    IS_PARENT_ROOT_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    env: str
    version: str
    stats: _containers.RepeatedCompositeFieldContainer[ClientStatsBucket]
    lang: str
    tracerVersion: str
    runtimeID: str
    sequence: int
    agentAggregation: str
    service: str
    containerID: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    git_commit_sha: str
    image_tag: str
    is_parent_root: bool
    def __init__(self, hostname: _Optional[str] = ..., env: _Optional[str] = ..., version: _Optional[str] = ..., stats: _Optional[_Iterable[_Union[ClientStatsBucket, _Mapping]]] = ..., lang: _Optional[str] = ..., tracerVersion: _Optional[str] = ..., runtimeID: _Optional[str] = ..., sequence: _Optional[int] = ..., agentAggregation: _Optional[str] = ..., service: _Optional[str] = ..., containerID: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., git_commit_sha: _Optional[str] = ..., image_tag: _Optional[str] = ..., is_parent_root: bool = ...) -> None: ...

class ClientStatsBucket(_message.Message):
    __slots__ = ("start", "duration", "stats", "agentTimeShift")
    START_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    AGENTTIMESHIFT_FIELD_NUMBER: _ClassVar[int]
    start: int
    duration: int
    stats: _containers.RepeatedCompositeFieldContainer[ClientGroupedStats]
    agentTimeShift: int
    def __init__(self, start: _Optional[int] = ..., duration: _Optional[int] = ..., stats: _Optional[_Iterable[_Union[ClientGroupedStats, _Mapping]]] = ..., agentTimeShift: _Optional[int] = ...) -> None: ...

class ClientGroupedStats(_message.Message):
    __slots__ = ("service", "name", "resource", "HTTP_status_code", "type", "DB_type", "hits", "errors", "duration", "okSummary", "errorSummary", "synthetics", "topLevelHits", "span_kind", "peer_tags")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    HTTP_STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DB_TYPE_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    OKSUMMARY_FIELD_NUMBER: _ClassVar[int]
    ERRORSUMMARY_FIELD_NUMBER: _ClassVar[int]
    SYNTHETICS_FIELD_NUMBER: _ClassVar[int]
    TOPLEVELHITS_FIELD_NUMBER: _ClassVar[int]
    SPAN_KIND_FIELD_NUMBER: _ClassVar[int]
    PEER_TAGS_FIELD_NUMBER: _ClassVar[int]
    service: str
    name: str
    resource: str
    HTTP_status_code: int
    type: str
    DB_type: str
    hits: int
    errors: int
    duration: int
    okSummary: bytes
    errorSummary: bytes
    synthetics: bool
    topLevelHits: int
    span_kind: str
    peer_tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, service: _Optional[str] = ..., name: _Optional[str] = ..., resource: _Optional[str] = ..., HTTP_status_code: _Optional[int] = ..., type: _Optional[str] = ..., DB_type: _Optional[str] = ..., hits: _Optional[int] = ..., errors: _Optional[int] = ..., duration: _Optional[int] = ..., okSummary: _Optional[bytes] = ..., errorSummary: _Optional[bytes] = ..., synthetics: bool = ..., topLevelHits: _Optional[int] = ..., span_kind: _Optional[str] = ..., peer_tags: _Optional[_Iterable[str]] = ...) -> None: ...
