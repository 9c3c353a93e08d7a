from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ContainerHostType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    notSpecified: _ClassVar[ContainerHostType]
    fargateECS: _ClassVar[ContainerHostType]
    fargateEKS: _ClassVar[ContainerHostType]
    sidecar: _ClassVar[ContainerHostType]

class ProcessState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    U: _ClassVar[ProcessState]
    D: _ClassVar[ProcessState]
    R: _ClassVar[ProcessState]
    S: _ClassVar[ProcessState]
    T: _ClassVar[ProcessState]
    W: _ClassVar[ProcessState]
    X: _ClassVar[ProcessState]
    Z: _ClassVar[ProcessState]

class ContainerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    unknown: _ClassVar[ContainerState]
    created: _ClassVar[ContainerState]
    restarting: _ClassVar[ContainerState]
    running: _ClassVar[ContainerState]
    paused: _ClassVar[ContainerState]
    exited: _ClassVar[ContainerState]
    dead: _ClassVar[ContainerState]

class ContainerHealth(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    unknownHealth: _ClassVar[ContainerHealth]
    starting: _ClassVar[ContainerHealth]
    healthy: _ClassVar[ContainerHealth]
    unhealthy: _ClassVar[ContainerHealth]

class ConnectionType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    tcp: _ClassVar[ConnectionType]
    udp: _ClassVar[ConnectionType]

class ConnectionFamily(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    v4: _ClassVar[ConnectionFamily]
    v6: _ClassVar[ConnectionFamily]

class ConnectionDirection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    unspecified: _ClassVar[ConnectionDirection]
    incoming: _ClassVar[ConnectionDirection]
    outgoing: _ClassVar[ConnectionDirection]
    local: _ClassVar[ConnectionDirection]
    none: _ClassVar[ConnectionDirection]

class EphemeralPortState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ephemeralUnspecified: _ClassVar[EphemeralPortState]
    ephemeralTrue: _ClassVar[EphemeralPortState]
    ephemeralFalse: _ClassVar[EphemeralPortState]
notSpecified: ContainerHostType
fargateECS: ContainerHostType
fargateEKS: ContainerHostType
sidecar: ContainerHostType
U: ProcessState
D: ProcessState
R: ProcessState
S: ProcessState
T: ProcessState
W: ProcessState
X: ProcessState
Z: ProcessState
unknown: ContainerState
created: ContainerState
restarting: ContainerState
running: ContainerState
paused: ContainerState
exited: ContainerState
dead: ContainerState
unknownHealth: ContainerHealth
starting: ContainerHealth
healthy: ContainerHealth
unhealthy: ContainerHealth
tcp: ConnectionType
udp: ConnectionType
v4: ConnectionFamily
v6: ConnectionFamily
unspecified: ConnectionDirection
incoming: ConnectionDirection
outgoing: ConnectionDirection
local: ConnectionDirection
none: ConnectionDirection
ephemeralUnspecified: EphemeralPortState
ephemeralTrue: EphemeralPortState
ephemeralFalse: EphemeralPortState

class ResCollector(_message.Message):
    __slots__ = ("header", "message", "status")
    class Header(_message.Message):
        __slots__ = ("type",)
        TYPE_FIELD_NUMBER: _ClassVar[int]
        type: int
        def __init__(self, type: _Optional[int] = ...) -> None: ...
    HEADER_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    header: ResCollector.Header
    message: str
    status: CollectorStatus
    def __init__(self, header: _Optional[_Union[ResCollector.Header, _Mapping]] = ..., message: _Optional[str] = ..., status: _Optional[_Union[CollectorStatus, _Mapping]] = ...) -> None: ...

class CollectorStatus(_message.Message):
    __slots__ = ("activeClients", "interval")
    ACTIVECLIENTS_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    activeClients: int
    interval: int
    def __init__(self, activeClients: _Optional[int] = ..., interval: _Optional[int] = ...) -> None: ...

class CollectorProc(_message.Message):
    __slots__ = ("hostName", "processes", "host", "info", "groupId", "groupSize", "containers", "networkId", "containerHostType", "hintMask")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    PROCESSES_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    GROUPID_FIELD_NUMBER: _ClassVar[int]
    GROUPSIZE_FIELD_NUMBER: _ClassVar[int]
    CONTAINERS_FIELD_NUMBER: _ClassVar[int]
    NETWORKID_FIELD_NUMBER: _ClassVar[int]
    CONTAINERHOSTTYPE_FIELD_NUMBER: _ClassVar[int]
    HINTMASK_FIELD_NUMBER: _ClassVar[int]
    hostName: str
    processes: _containers.RepeatedCompositeFieldContainer[Process]
    host: Host
    info: SystemInfo
    groupId: int
    groupSize: int
    containers: _containers.RepeatedCompositeFieldContainer[Container]
    networkId: str
    containerHostType: ContainerHostType
    hintMask: int
    def __init__(self, hostName: _Optional[str] = ..., processes: _Optional[_Iterable[_Union[Process, _Mapping]]] = ..., host: _Optional[_Union[Host, _Mapping]] = ..., info: _Optional[_Union[SystemInfo, _Mapping]] = ..., groupId: _Optional[int] = ..., groupSize: _Optional[int] = ..., containers: _Optional[_Iterable[_Union[Container, _Mapping]]] = ..., networkId: _Optional[str] = ..., containerHostType: _Optional[_Union[ContainerHostType, str]] = ..., hintMask: _Optional[int] = ...) -> None: ...

class CollectorProcDiscovery(_message.Message):
    __slots__ = ("hostName", "groupId", "groupSize", "processDiscoveries", "host")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    GROUPID_FIELD_NUMBER: _ClassVar[int]
    GROUPSIZE_FIELD_NUMBER: _ClassVar[int]
    PROCESSDISCOVERIES_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    hostName: str
    groupId: int
    groupSize: int
    processDiscoveries: _containers.RepeatedCompositeFieldContainer[ProcessDiscovery]
    host: Host
    def __init__(self, hostName: _Optional[str] = ..., groupId: _Optional[int] = ..., groupSize: _Optional[int] = ..., processDiscoveries: _Optional[_Iterable[_Union[ProcessDiscovery, _Mapping]]] = ..., host: _Optional[_Union[Host, _Mapping]] = ...) -> None: ...

class ProcessDiscovery(_message.Message):
    __slots__ = ("pid", "nsPid", "host", "command", "user", "createTime", "byteKey")
    PID_FIELD_NUMBER: _ClassVar[int]
    NSPID_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    CREATETIME_FIELD_NUMBER: _ClassVar[int]
    BYTEKEY_FIELD_NUMBER: _ClassVar[int]
    pid: int
    nsPid: int
    host: Host
    command: Command
    user: ProcessUser
    createTime: int
    byteKey: bytes
    def __init__(self, pid: _Optional[int] = ..., nsPid: _Optional[int] = ..., host: _Optional[_Union[Host, _Mapping]] = ..., command: _Optional[_Union[Command, _Mapping]] = ..., user: _Optional[_Union[ProcessUser, _Mapping]] = ..., createTime: _Optional[int] = ..., byteKey: _Optional[bytes] = ...) -> None: ...

class CollectorRealTime(_message.Message):
    __slots__ = ("hostName", "stats", "hostId", "orgId", "groupId", "groupSize", "numCpus", "totalMemory", "containerStats", "containerHostType")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    HOSTID_FIELD_NUMBER: _ClassVar[int]
    ORGID_FIELD_NUMBER: _ClassVar[int]
    GROUPID_FIELD_NUMBER: _ClassVar[int]
    GROUPSIZE_FIELD_NUMBER: _ClassVar[int]
    NUMCPUS_FIELD_NUMBER: _ClassVar[int]
    TOTALMEMORY_FIELD_NUMBER: _ClassVar[int]
    CONTAINERSTATS_FIELD_NUMBER: _ClassVar[int]
    CONTAINERHOSTTYPE_FIELD_NUMBER: _ClassVar[int]
    hostName: str
    stats: _containers.RepeatedCompositeFieldContainer[ProcessStat]
    hostId: int
    orgId: int
    groupId: int
    groupSize: int
    numCpus: int
    totalMemory: int
    containerStats: _containers.RepeatedCompositeFieldContainer[ContainerStat]
    containerHostType: ContainerHostType
    def __init__(self, hostName: _Optional[str] = ..., stats: _Optional[_Iterable[_Union[ProcessStat, _Mapping]]] = ..., hostId: _Optional[int] = ..., orgId: _Optional[int] = ..., groupId: _Optional[int] = ..., groupSize: _Optional[int] = ..., numCpus: _Optional[int] = ..., totalMemory: _Optional[int] = ..., containerStats: _Optional[_Iterable[_Union[ContainerStat, _Mapping]]] = ..., containerHostType: _Optional[_Union[ContainerHostType, str]] = ...) -> None: ...

class CollectorContainer(_message.Message):
    __slots__ = ("hostName", "info", "containers", "groupId", "groupSize", "host", "containerHostType", "networkId")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    CONTAINERS_FIELD_NUMBER: _ClassVar[int]
    GROUPID_FIELD_NUMBER: _ClassVar[int]
    GROUPSIZE_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    CONTAINERHOSTTYPE_FIELD_NUMBER: _ClassVar[int]
    NETWORKID_FIELD_NUMBER: _ClassVar[int]
    hostName: str
    info: SystemInfo
    containers: _containers.RepeatedCompositeFieldContainer[Container]
    groupId: int
    groupSize: int
    host: Host
    containerHostType: ContainerHostType
    networkId: str
    def __init__(self, hostName: _Optional[str] = ..., info: _Optional[_Union[SystemInfo, _Mapping]] = ..., containers: _Optional[_Iterable[_Union[Container, _Mapping]]] = ..., groupId: _Optional[int] = ..., groupSize: _Optional[int] = ..., host: _Optional[_Union[Host, _Mapping]] = ..., containerHostType: _Optional[_Union[ContainerHostType, str]] = ..., networkId: _Optional[str] = ...) -> None: ...

class CollectorContainerRealTime(_message.Message):
    __slots__ = ("hostName", "stats", "numCpus", "totalMemory", "hostId", "groupId", "groupSize", "containerHostType")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    NUMCPUS_FIELD_NUMBER: _ClassVar[int]
    TOTALMEMORY_FIELD_NUMBER: _ClassVar[int]
    HOSTID_FIELD_NUMBER: _ClassVar[int]
    GROUPID_FIELD_NUMBER: _ClassVar[int]
    GROUPSIZE_FIELD_NUMBER: _ClassVar[int]
    CONTAINERHOSTTYPE_FIELD_NUMBER: _ClassVar[int]
    hostName: str
    stats: _containers.RepeatedCompositeFieldContainer[ContainerStat]
    numCpus: int
    totalMemory: int
    hostId: int
    groupId: int
    groupSize: int
    containerHostType: ContainerHostType
    def __init__(self, hostName: _Optional[str] = ..., stats: _Optional[_Iterable[_Union[ContainerStat, _Mapping]]] = ..., numCpus: _Optional[int] = ..., totalMemory: _Optional[int] = ..., hostId: _Optional[int] = ..., groupId: _Optional[int] = ..., groupSize: _Optional[int] = ..., containerHostType: _Optional[_Union[ContainerHostType, str]] = ...) -> None: ...

class CollectorConnections(_message.Message):
    __slots__ = ("hostName", "connections", "groupId", "groupSize", "containerForPid", "encodedTags", "networkId", "containerHostType", "architecture", "kernelVersion", "platform", "platformVersion", "agentConfiguration", "encodedConnectionsTags", "ecsTask", "hostTagsIndex")
    class ContainerForPidEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: str
        def __init__(self, key: _Optional[int] = ..., value: _Optional[str] = ...) -> None: ...
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    GROUPID_FIELD_NUMBER: _ClassVar[int]
    GROUPSIZE_FIELD_NUMBER: _ClassVar[int]
    CONTAINERFORPID_FIELD_NUMBER: _ClassVar[int]
    ENCODEDTAGS_FIELD_NUMBER: _ClassVar[int]
    NETWORKID_FIELD_NUMBER: _ClassVar[int]
    CONTAINERHOSTTYPE_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    KERNELVERSION_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    PLATFORMVERSION_FIELD_NUMBER: _ClassVar[int]
    AGENTCONFIGURATION_FIELD_NUMBER: _ClassVar[int]
    ENCODEDCONNECTIONSTAGS_FIELD_NUMBER: _ClassVar[int]
    ECSTASK_FIELD_NUMBER: _ClassVar[int]
    HOSTTAGSINDEX_FIELD_NUMBER: _ClassVar[int]
    hostName: str
    connections: _containers.RepeatedCompositeFieldContainer[Connection]
    groupId: int
    groupSize: int
    containerForPid: _containers.ScalarMap[int, str]
    encodedTags: bytes
    networkId: str
    containerHostType: ContainerHostType
    architecture: str
    kernelVersion: str
    platform: str
    platformVersion: str
    agentConfiguration: AgentConfiguration
    encodedConnectionsTags: bytes
    ecsTask: str
    hostTagsIndex: int
    def __init__(self, hostName: _Optional[str] = ..., connections: _Optional[_Iterable[_Union[Connection, _Mapping]]] = ..., groupId: _Optional[int] = ..., groupSize: _Optional[int] = ..., containerForPid: _Optional[_Mapping[int, str]] = ..., encodedTags: _Optional[bytes] = ..., networkId: _Optional[str] = ..., containerHostType: _Optional[_Union[ContainerHostType, str]] = ..., architecture: _Optional[str] = ..., kernelVersion: _Optional[str] = ..., platform: _Optional[str] = ..., platformVersion: _Optional[str] = ..., agentConfiguration: _Optional[_Union[AgentConfiguration, _Mapping]] = ..., encodedConnectionsTags: _Optional[bytes] = ..., ecsTask: _Optional[str] = ..., hostTagsIndex: _Optional[int] = ...) -> None: ...

class AgentConfiguration(_message.Message):
    __slots__ = ("npmEnabled", "usmEnabled", "dsmEnabled", "ccmEnabled", "csmEnabled")
    NPMENABLED_FIELD_NUMBER: _ClassVar[int]
    USMENABLED_FIELD_NUMBER: _ClassVar[int]
    DSMENABLED_FIELD_NUMBER: _ClassVar[int]
    CCMENABLED_FIELD_NUMBER: _ClassVar[int]
    CSMENABLED_FIELD_NUMBER: _ClassVar[int]
    npmEnabled: bool
    usmEnabled: bool
    dsmEnabled: bool
    ccmEnabled: bool
    csmEnabled: bool
    def __init__(self, npmEnabled: bool = ..., usmEnabled: bool = ..., dsmEnabled: bool = ..., ccmEnabled: bool = ..., csmEnabled: bool = ...) -> None: ...

class Addr(_message.Message):
    __slots__ = ("ip", "port", "containerId", "hostName")
    IP_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    CONTAINERID_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    ip: str
    port: int
    containerId: str
    hostName: str
    def __init__(self, ip: _Optional[str] = ..., port: _Optional[int] = ..., containerId: _Optional[str] = ..., hostName: _Optional[str] = ...) -> None: ...

class Connection(_message.Message):
    __slots__ = ("pid", "laddr", "raddr", "family", "type", "lastBytesSent", "lastBytesReceived", "lastRetransmits", "direction", "netNS", "rtt", "rttVar", "intraHost", "lastTcpEstablished", "lastTcpClosed", "lastPacketsSent", "lastPacketsReceived", "isLocalPortEphemeral", "tagsIdx", "tagsChecksum", "localContainerTagsIndex", "systemProbeConn", "remoteServiceTagsIdx")
    PID_FIELD_NUMBER: _ClassVar[int]
    LADDR_FIELD_NUMBER: _ClassVar[int]
    RADDR_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    LASTBYTESSENT_FIELD_NUMBER: _ClassVar[int]
    LASTBYTESRECEIVED_FIELD_NUMBER: _ClassVar[int]
    LASTRETRANSMITS_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    NETNS_FIELD_NUMBER: _ClassVar[int]
    RTT_FIELD_NUMBER: _ClassVar[int]
    RTTVAR_FIELD_NUMBER: _ClassVar[int]
    INTRAHOST_FIELD_NUMBER: _ClassVar[int]
    LASTTCPESTABLISHED_FIELD_NUMBER: _ClassVar[int]
    LASTTCPCLOSED_FIELD_NUMBER: _ClassVar[int]
    LASTPACKETSSENT_FIELD_NUMBER: _ClassVar[int]
    LASTPACKETSRECEIVED_FIELD_NUMBER: _ClassVar[int]
    ISLOCALPORTEPHEMERAL_FIELD_NUMBER: _ClassVar[int]
    TAGSIDX_FIELD_NUMBER: _ClassVar[int]
    TAGSCHECKSUM_FIELD_NUMBER: _ClassVar[int]
    LOCALCONTAINERTAGSINDEX_FIELD_NUMBER: _ClassVar[int]
    SYSTEMPROBECONN_FIELD_NUMBER: _ClassVar[int]
    REMOTESERVICETAGSIDX_FIELD_NUMBER: _ClassVar[int]
    pid: int
    laddr: Addr
    raddr: Addr
    family: ConnectionFamily
    type: ConnectionType
    lastBytesSent: int
    lastBytesReceived: int
    lastRetransmits: int
    direction: ConnectionDirection
    netNS: int
    rtt: int
    rttVar: int
    intraHost: bool
    lastTcpEstablished: int
    lastTcpClosed: int
    lastPacketsSent: int
    lastPacketsReceived: int
    isLocalPortEphemeral: EphemeralPortState
    tagsIdx: int
    tagsChecksum: int
    localContainerTagsIndex: int
    systemProbeConn: bool
    remoteServiceTagsIdx: int
    def __init__(self, pid: _Optional[int] = ..., laddr: _Optional[_Union[Addr, _Mapping]] = ..., raddr: _Optional[_Union[Addr, _Mapping]] = ..., family: _Optional[_Union[ConnectionFamily, str]] = ..., type: _Optional[_Union[ConnectionType, str]] = ..., lastBytesSent: _Optional[int] = ..., lastBytesReceived: _Optional[int] = ..., lastRetransmits: _Optional[int] = ..., direction: _Optional[_Union[ConnectionDirection, str]] = ..., netNS: _Optional[int] = ..., rtt: _Optional[int] = ..., rttVar: _Optional[int] = ..., intraHost: bool = ..., lastTcpEstablished: _Optional[int] = ..., lastTcpClosed: _Optional[int] = ..., lastPacketsSent: _Optional[int] = ..., lastPacketsReceived: _Optional[int] = ..., isLocalPortEphemeral: _Optional[_Union[EphemeralPortState, str]] = ..., tagsIdx: _Optional[int] = ..., tagsChecksum: _Optional[int] = ..., localContainerTagsIndex: _Optional[int] = ..., systemProbeConn: bool = ..., remoteServiceTagsIdx: _Optional[int] = ...) -> None: ...

class Process(_message.Message):
    __slots__ = ("key", "pid", "host", "command", "user", "memory", "cpu", "createTime", "container", "openFdCount", "state", "ioStat", "containerId", "containerKey", "voluntaryCtxSwitches", "involuntaryCtxSwitches", "byteKey", "containerByteKey", "nsPid", "networks", "processContext", "tags")
    KEY_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    CPU_FIELD_NUMBER: _ClassVar[int]
    CREATETIME_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    OPENFDCOUNT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    IOSTAT_FIELD_NUMBER: _ClassVar[int]
    CONTAINERID_FIELD_NUMBER: _ClassVar[int]
    CONTAINERKEY_FIELD_NUMBER: _ClassVar[int]
    VOLUNTARYCTXSWITCHES_FIELD_NUMBER: _ClassVar[int]
    INVOLUNTARYCTXSWITCHES_FIELD_NUMBER: _ClassVar[int]
    BYTEKEY_FIELD_NUMBER: _ClassVar[int]
    CONTAINERBYTEKEY_FIELD_NUMBER: _ClassVar[int]
    NSPID_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    PROCESSCONTEXT_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    key: int
    pid: int
    host: Host
    command: Command
    user: ProcessUser
    memory: MemoryStat
    cpu: CPUStat
    createTime: int
    container: Container
    openFdCount: int
    state: ProcessState
    ioStat: IOStat
    containerId: str
    containerKey: int
    voluntaryCtxSwitches: int
    involuntaryCtxSwitches: int
    byteKey: bytes
    containerByteKey: bytes
    nsPid: int
    networks: ProcessNetworks
    processContext: _containers.RepeatedScalarFieldContainer[str]
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, key: _Optional[int] = ..., pid: _Optional[int] = ..., host: _Optional[_Union[Host, _Mapping]] = ..., command: _Optional[_Union[Command, _Mapping]] = ..., user: _Optional[_Union[ProcessUser, _Mapping]] = ..., memory: _Optional[_Union[MemoryStat, _Mapping]] = ..., cpu: _Optional[_Union[CPUStat, _Mapping]] = ..., createTime: _Optional[int] = ..., container: _Optional[_Union[Container, _Mapping]] = ..., openFdCount: _Optional[int] = ..., state: _Optional[_Union[ProcessState, str]] = ..., ioStat: _Optional[_Union[IOStat, _Mapping]] = ..., containerId: _Optional[str] = ..., containerKey: _Optional[int] = ..., voluntaryCtxSwitches: _Optional[int] = ..., involuntaryCtxSwitches: _Optional[int] = ..., byteKey: _Optional[bytes] = ..., containerByteKey: _Optional[bytes] = ..., nsPid: _Optional[int] = ..., networks: _Optional[_Union[ProcessNetworks, _Mapping]] = ..., processContext: _Optional[_Iterable[str]] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class Command(_message.Message):
    __slots__ = ("args", "cwd", "root", "onDisk", "ppid", "pgroup", "exe", "comm")
    ARGS_FIELD_NUMBER: _ClassVar[int]
    CWD_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    ONDISK_FIELD_NUMBER: _ClassVar[int]
    PPID_FIELD_NUMBER: _ClassVar[int]
    PGROUP_FIELD_NUMBER: _ClassVar[int]
    EXE_FIELD_NUMBER: _ClassVar[int]
    COMM_FIELD_NUMBER: _ClassVar[int]
    args: _containers.RepeatedScalarFieldContainer[str]
    cwd: str
    root: str
    onDisk: bool
    ppid: int
    pgroup: int
    exe: str
    comm: str
    def __init__(self, args: _Optional[_Iterable[str]] = ..., cwd: _Optional[str] = ..., root: _Optional[str] = ..., onDisk: bool = ..., ppid: _Optional[int] = ..., pgroup: _Optional[int] = ..., exe: _Optional[str] = ..., comm: _Optional[str] = ...) -> None: ...

class ProcessUser(_message.Message):
    __slots__ = ("name", "uid", "gid", "euid", "egid", "suid", "sgid")
    NAME_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    EUID_FIELD_NUMBER: _ClassVar[int]
    EGID_FIELD_NUMBER: _ClassVar[int]
    SUID_FIELD_NUMBER: _ClassVar[int]
    SGID_FIELD_NUMBER: _ClassVar[int]
    name: str
    uid: int
    gid: int
    euid: int
    egid: int
    suid: int
    sgid: int
    def __init__(self, name: _Optional[str] = ..., uid: _Optional[int] = ..., gid: _Optional[int] = ..., euid: _Optional[int] = ..., egid: _Optional[int] = ..., suid: _Optional[int] = ..., sgid: _Optional[int] = ...) -> None: ...

class MemoryStat(_message.Message):
    __slots__ = ("rss", "vms", "swap", "shared", "text", "lib", "data", "dirty")
    RSS_FIELD_NUMBER: _ClassVar[int]
    VMS_FIELD_NUMBER: _ClassVar[int]
    SWAP_FIELD_NUMBER: _ClassVar[int]
    SHARED_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LIB_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    DIRTY_FIELD_NUMBER: _ClassVar[int]
    rss: int
    vms: int
    swap: int
    shared: int
    text: int
    lib: int
    data: int
    dirty: int
    def __init__(self, rss: _Optional[int] = ..., vms: _Optional[int] = ..., swap: _Optional[int] = ..., shared: _Optional[int] = ..., text: _Optional[int] = ..., lib: _Optional[int] = ..., data: _Optional[int] = ..., dirty: _Optional[int] = ...) -> None: ...

class CPUStat(_message.Message):
    __slots__ = ("lastCpu", "totalPct", "userPct", "systemPct", "numThreads", "cpus", "nice", "userTime", "systemTime")
    LASTCPU_FIELD_NUMBER: _ClassVar[int]
    TOTALPCT_FIELD_NUMBER: _ClassVar[int]
    USERPCT_FIELD_NUMBER: _ClassVar[int]
    SYSTEMPCT_FIELD_NUMBER: _ClassVar[int]
    NUMTHREADS_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    NICE_FIELD_NUMBER: _ClassVar[int]
    USERTIME_FIELD_NUMBER: _ClassVar[int]
    SYSTEMTIME_FIELD_NUMBER: _ClassVar[int]
    lastCpu: str
    totalPct: float
    userPct: float
    systemPct: float
    numThreads: int
    cpus: _containers.RepeatedCompositeFieldContainer[SingleCPUStat]
    nice: int
    userTime: int
    systemTime: int
    def __init__(self, lastCpu: _Optional[str] = ..., totalPct: _Optional[float] = ..., userPct: _Optional[float] = ..., systemPct: _Optional[float] = ..., numThreads: _Optional[int] = ..., cpus: _Optional[_Iterable[_Union[SingleCPUStat, _Mapping]]] = ..., nice: _Optional[int] = ..., userTime: _Optional[int] = ..., systemTime: _Optional[int] = ...) -> None: ...

class SingleCPUStat(_message.Message):
    __slots__ = ("name", "totalPct")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TOTALPCT_FIELD_NUMBER: _ClassVar[int]
    name: str
    totalPct: float
    def __init__(self, name: _Optional[str] = ..., totalPct: _Optional[float] = ...) -> None: ...

class IOStat(_message.Message):
    __slots__ = ("readRate", "writeRate", "readBytesRate", "writeBytesRate")
    READRATE_FIELD_NUMBER: _ClassVar[int]
    WRITERATE_FIELD_NUMBER: _ClassVar[int]
    READBYTESRATE_FIELD_NUMBER: _ClassVar[int]
    WRITEBYTESRATE_FIELD_NUMBER: _ClassVar[int]
    readRate: float
    writeRate: float
    readBytesRate: float
    writeBytesRate: float
    def __init__(self, readRate: _Optional[float] = ..., writeRate: _Optional[float] = ..., readBytesRate: _Optional[float] = ..., writeBytesRate: _Optional[float] = ...) -> None: ...

class ProcessNetworks(_message.Message):
    __slots__ = ("connectionRate", "bytesRate")
    CONNECTIONRATE_FIELD_NUMBER: _ClassVar[int]
    BYTESRATE_FIELD_NUMBER: _ClassVar[int]
    connectionRate: float
    bytesRate: float
    def __init__(self, connectionRate: _Optional[float] = ..., bytesRate: _Optional[float] = ...) -> None: ...

class ProcessStat(_message.Message):
    __slots__ = ("pid", "createTime", "memory", "cpu", "nice", "threads", "openFdCount", "key", "containerId", "containerState", "processState", "containerHealth", "containerRbps", "containerWbps", "containerKey", "ioStat", "containerNetRcvdPs", "containerNetSentPs", "containerNetRcvdBps", "containerNetSentBps", "voluntaryCtxSwitches", "involuntaryCtxSwitches", "byteKey", "containerByteKey", "networks")
    PID_FIELD_NUMBER: _ClassVar[int]
    CREATETIME_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    CPU_FIELD_NUMBER: _ClassVar[int]
    NICE_FIELD_NUMBER: _ClassVar[int]
    THREADS_FIELD_NUMBER: _ClassVar[int]
    OPENFDCOUNT_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    CONTAINERID_FIELD_NUMBER: _ClassVar[int]
    CONTAINERSTATE_FIELD_NUMBER: _ClassVar[int]
    PROCESSSTATE_FIELD_NUMBER: _ClassVar[int]
    CONTAINERHEALTH_FIELD_NUMBER: _ClassVar[int]
    CONTAINERRBPS_FIELD_NUMBER: _ClassVar[int]
    CONTAINERWBPS_FIELD_NUMBER: _ClassVar[int]
    CONTAINERKEY_FIELD_NUMBER: _ClassVar[int]
    IOSTAT_FIELD_NUMBER: _ClassVar[int]
    CONTAINERNETRCVDPS_FIELD_NUMBER: _ClassVar[int]
    CONTAINERNETSENTPS_FIELD_NUMBER: _ClassVar[int]
    CONTAINERNETRCVDBPS_FIELD_NUMBER: _ClassVar[int]
    CONTAINERNETSENTBPS_FIELD_NUMBER: _ClassVar[int]
    VOLUNTARYCTXSWITCHES_FIELD_NUMBER: _ClassVar[int]
    INVOLUNTARYCTXSWITCHES_FIELD_NUMBER: _ClassVar[int]
    BYTEKEY_FIELD_NUMBER: _ClassVar[int]
    CONTAINERBYTEKEY_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    pid: int
    createTime: int
    memory: MemoryStat
    cpu: CPUStat
    nice: int
    threads: int
    openFdCount: int
    key: int
    containerId: str
    containerState: ContainerState
    processState: ProcessState
    containerHealth: ContainerHealth
    containerRbps: float
    containerWbps: float
    containerKey: int
    ioStat: IOStat
    containerNetRcvdPs: float
    containerNetSentPs: float
    containerNetRcvdBps: float
    containerNetSentBps: float
    voluntaryCtxSwitches: int
    involuntaryCtxSwitches: int
    byteKey: bytes
    containerByteKey: bytes
    networks: ProcessNetworks
    def __init__(self, pid: _Optional[int] = ..., createTime: _Optional[int] = ..., memory: _Optional[_Union[MemoryStat, _Mapping]] = ..., cpu: _Optional[_Union[CPUStat, _Mapping]] = ..., nice: _Optional[int] = ..., threads: _Optional[int] = ..., openFdCount: _Optional[int] = ..., key: _Optional[int] = ..., containerId: _Optional[str] = ..., containerState: _Optional[_Union[ContainerState, str]] = ..., processState: _Optional[_Union[ProcessState, str]] = ..., containerHealth: _Optional[_Union[ContainerHealth, str]] = ..., containerRbps: _Optional[float] = ..., containerWbps: _Optional[float] = ..., containerKey: _Optional[int] = ..., ioStat: _Optional[_Union[IOStat, _Mapping]] = ..., containerNetRcvdPs: _Optional[float] = ..., containerNetSentPs: _Optional[float] = ..., containerNetRcvdBps: _Optional[float] = ..., containerNetSentBps: _Optional[float] = ..., voluntaryCtxSwitches: _Optional[int] = ..., involuntaryCtxSwitches: _Optional[int] = ..., byteKey: _Optional[bytes] = ..., containerByteKey: _Optional[bytes] = ..., networks: _Optional[_Union[ProcessNetworks, _Mapping]] = ...) -> None: ...

class Container(_message.Message):
    __slots__ = ("type", "id", "name", "image", "cpuLimit", "memoryLimit", "state", "health", "created", "rbps", "wbps", "key", "netRcvdPs", "netSentPs", "netRcvdBps", "netSentBps", "userPct", "systemPct", "totalPct", "memRss", "memCache", "host", "started", "byteKey", "tags", "addresses", "threadCount", "threadLimit", "memUsage", "cpuUsageNs", "memAccounted", "cpuRequest", "memoryRequest", "repoDigest")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    CPULIMIT_FIELD_NUMBER: _ClassVar[int]
    MEMORYLIMIT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    RBPS_FIELD_NUMBER: _ClassVar[int]
    WBPS_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    NETRCVDPS_FIELD_NUMBER: _ClassVar[int]
    NETSENTPS_FIELD_NUMBER: _ClassVar[int]
    NETRCVDBPS_FIELD_NUMBER: _ClassVar[int]
    NETSENTBPS_FIELD_NUMBER: _ClassVar[int]
    USERPCT_FIELD_NUMBER: _ClassVar[int]
    SYSTEMPCT_FIELD_NUMBER: _ClassVar[int]
    TOTALPCT_FIELD_NUMBER: _ClassVar[int]
    MEMRSS_FIELD_NUMBER: _ClassVar[int]
    MEMCACHE_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    BYTEKEY_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    THREADCOUNT_FIELD_NUMBER: _ClassVar[int]
    THREADLIMIT_FIELD_NUMBER: _ClassVar[int]
    MEMUSAGE_FIELD_NUMBER: _ClassVar[int]
    CPUUSAGENS_FIELD_NUMBER: _ClassVar[int]
    MEMACCOUNTED_FIELD_NUMBER: _ClassVar[int]
    CPUREQUEST_FIELD_NUMBER: _ClassVar[int]
    MEMORYREQUEST_FIELD_NUMBER: _ClassVar[int]
    REPODIGEST_FIELD_NUMBER: _ClassVar[int]
    type: str
    id: str
    name: str
    image: str
    cpuLimit: float
    memoryLimit: int
    state: ContainerState
    health: ContainerHealth
    created: int
    rbps: float
    wbps: float
    key: int
    netRcvdPs: float
    netSentPs: float
    netRcvdBps: float
    netSentBps: float
    userPct: float
    systemPct: float
    totalPct: float
    memRss: int
    memCache: int
    host: Host
    started: int
    byteKey: bytes
    tags: _containers.RepeatedScalarFieldContainer[str]
    addresses: _containers.RepeatedCompositeFieldContainer[ContainerAddr]
    threadCount: int
    threadLimit: int
    memUsage: int
    cpuUsageNs: float
    memAccounted: int
    cpuRequest: float
    memoryRequest: int
    repoDigest: str
    def __init__(self, type: _Optional[str] = ..., id: _Optional[str] = ..., name: _Optional[str] = ..., image: _Optional[str] = ..., cpuLimit: _Optional[float] = ..., memoryLimit: _Optional[int] = ..., state: _Optional[_Union[ContainerState, str]] = ..., health: _Optional[_Union[ContainerHealth, str]] = ..., created: _Optional[int] = ..., rbps: _Optional[float] = ..., wbps: _Optional[float] = ..., key: _Optional[int] = ..., netRcvdPs: _Optional[float] = ..., netSentPs: _Optional[float] = ..., netRcvdBps: _Optional[float] = ..., netSentBps: _Optional[float] = ..., userPct: _Optional[float] = ..., systemPct: _Optional[float] = ..., totalPct: _Optional[float] = ..., memRss: _Optional[int] = ..., memCache: _Optional[int] = ..., host: _Optional[_Union[Host, _Mapping]] = ..., started: _Optional[int] = ..., byteKey: _Optional[bytes] = ..., tags: _Optional[_Iterable[str]] = ..., addresses: _Optional[_Iterable[_Union[ContainerAddr, _Mapping]]] = ..., threadCount: _Optional[int] = ..., threadLimit: _Optional[int] = ..., memUsage: _Optional[int] = ..., cpuUsageNs: _Optional[float] = ..., memAccounted: _Optional[int] = ..., cpuRequest: _Optional[float] = ..., memoryRequest: _Optional[int] = ..., repoDigest: _Optional[str] = ...) -> None: ...

class ContainerAddr(_message.Message):
    __slots__ = ("ip", "port", "protocol")
    IP_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    ip: str
    port: int
    protocol: ConnectionType
    def __init__(self, ip: _Optional[str] = ..., port: _Optional[int] = ..., protocol: _Optional[_Union[ConnectionType, str]] = ...) -> None: ...

class ContainerStat(_message.Message):
    __slots__ = ("id", "userPct", "systemPct", "totalPct", "cpuLimit", "memRss", "memCache", "memLimit", "rbps", "wbps", "netRcvdPs", "netSentPs", "netRcvdBps", "netSentBps", "state", "health", "key", "started", "byteKey", "threadCount", "threadLimit", "memUsage", "cpuUsageNs", "memAccounted", "cpuRequest", "memoryRequest")
    ID_FIELD_NUMBER: _ClassVar[int]
    USERPCT_FIELD_NUMBER: _ClassVar[int]
    SYSTEMPCT_FIELD_NUMBER: _ClassVar[int]
    TOTALPCT_FIELD_NUMBER: _ClassVar[int]
    CPULIMIT_FIELD_NUMBER: _ClassVar[int]
    MEMRSS_FIELD_NUMBER: _ClassVar[int]
    MEMCACHE_FIELD_NUMBER: _ClassVar[int]
    MEMLIMIT_FIELD_NUMBER: _ClassVar[int]
    RBPS_FIELD_NUMBER: _ClassVar[int]
    WBPS_FIELD_NUMBER: _ClassVar[int]
    NETRCVDPS_FIELD_NUMBER: _ClassVar[int]
    NETSENTPS_FIELD_NUMBER: _ClassVar[int]
    NETRCVDBPS_FIELD_NUMBER: _ClassVar[int]
    NETSENTBPS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    BYTEKEY_FIELD_NUMBER: _ClassVar[int]
    THREADCOUNT_FIELD_NUMBER: _ClassVar[int]
    THREADLIMIT_FIELD_NUMBER: _ClassVar[int]
    MEMUSAGE_FIELD_NUMBER: _ClassVar[int]
    CPUUSAGENS_FIELD_NUMBER: _ClassVar[int]
    MEMACCOUNTED_FIELD_NUMBER: _ClassVar[int]
    CPUREQUEST_FIELD_NUMBER: _ClassVar[int]
    MEMORYREQUEST_FIELD_NUMBER: _ClassVar[int]
    id: str
    userPct: float
    systemPct: float
    totalPct: float
    cpuLimit: float
    memRss: int
    memCache: int
    memLimit: int
    rbps: float
    wbps: float
    netRcvdPs: float
    netSentPs: float
    netRcvdBps: float
    netSentBps: float
    state: ContainerState
    health: ContainerHealth
    key: int
    started: int
    byteKey: bytes
    threadCount: int
    threadLimit: int
    memUsage: int
    cpuUsageNs: float
    memAccounted: int
    cpuRequest: float
    memoryRequest: int
    def __init__(self, id: _Optional[str] = ..., userPct: _Optional[float] = ..., systemPct: _Optional[float] = ..., totalPct: _Optional[float] = ..., cpuLimit: _Optional[float] = ..., memRss: _Optional[int] = ..., memCache: _Optional[int] = ..., memLimit: _Optional[int] = ..., rbps: _Optional[float] = ..., wbps: _Optional[float] = ..., netRcvdPs: _Optional[float] = ..., netSentPs: _Optional[float] = ..., netRcvdBps: _Optional[float] = ..., netSentBps: _Optional[float] = ..., state: _Optional[_Union[ContainerState, str]] = ..., health: _Optional[_Union[ContainerHealth, str]] = ..., key: _Optional[int] = ..., started: _Optional[int] = ..., byteKey: _Optional[bytes] = ..., threadCount: _Optional[int] = ..., threadLimit: _Optional[int] = ..., memUsage: _Optional[int] = ..., cpuUsageNs: _Optional[float] = ..., memAccounted: _Optional[int] = ..., cpuRequest: _Optional[float] = ..., memoryRequest: _Optional[int] = ...) -> None: ...

class Host(_message.Message):
    __slots__ = ("id", "orgId", "name", "allTags", "numCpus", "totalMemory", "tagIndex", "tagsModified")
    ID_FIELD_NUMBER: _ClassVar[int]
    ORGID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ALLTAGS_FIELD_NUMBER: _ClassVar[int]
    NUMCPUS_FIELD_NUMBER: _ClassVar[int]
    TOTALMEMORY_FIELD_NUMBER: _ClassVar[int]
    TAGINDEX_FIELD_NUMBER: _ClassVar[int]
    TAGSMODIFIED_FIELD_NUMBER: _ClassVar[int]
    id: int
    orgId: int
    name: str
    allTags: _containers.RepeatedScalarFieldContainer[str]
    numCpus: int
    totalMemory: int
    tagIndex: int
    tagsModified: int
    def __init__(self, id: _Optional[int] = ..., orgId: _Optional[int] = ..., name: _Optional[str] = ..., allTags: _Optional[_Iterable[str]] = ..., numCpus: _Optional[int] = ..., totalMemory: _Optional[int] = ..., tagIndex: _Optional[int] = ..., tagsModified: _Optional[int] = ...) -> None: ...

class SystemInfo(_message.Message):
    __slots__ = ("uuid", "os", "cpus", "totalMemory")
    UUID_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    CPUS_FIELD_NUMBER: _ClassVar[int]
    TOTALMEMORY_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    os: OSInfo
    cpus: _containers.RepeatedCompositeFieldContainer[CPUInfo]
    totalMemory: int
    def __init__(self, uuid: _Optional[str] = ..., os: _Optional[_Union[OSInfo, _Mapping]] = ..., cpus: _Optional[_Iterable[_Union[CPUInfo, _Mapping]]] = ..., totalMemory: _Optional[int] = ...) -> None: ...

class OSInfo(_message.Message):
    __slots__ = ("name", "platform", "family", "version", "kernelVersion")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    KERNELVERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    platform: str
    family: str
    version: str
    kernelVersion: str
    def __init__(self, name: _Optional[str] = ..., platform: _Optional[str] = ..., family: _Optional[str] = ..., version: _Optional[str] = ..., kernelVersion: _Optional[str] = ...) -> None: ...

class CPUInfo(_message.Message):
    __slots__ = ("number", "vendor", "family", "model", "physicalId", "coreId", "cores", "mhz", "cacheSize")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    VENDOR_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PHYSICALID_FIELD_NUMBER: _ClassVar[int]
    COREID_FIELD_NUMBER: _ClassVar[int]
    CORES_FIELD_NUMBER: _ClassVar[int]
    MHZ_FIELD_NUMBER: _ClassVar[int]
    CACHESIZE_FIELD_NUMBER: _ClassVar[int]
    number: int
    vendor: str
    family: str
    model: str
    physicalId: str
    coreId: str
    cores: int
    mhz: int
    cacheSize: int
    def __init__(self, number: _Optional[int] = ..., vendor: _Optional[str] = ..., family: _Optional[str] = ..., model: _Optional[str] = ..., physicalId: _Optional[str] = ..., coreId: _Optional[str] = ..., cores: _Optional[int] = ..., mhz: _Optional[int] = ..., cacheSize: _Optional[int] = ...) -> None: ...

class AgentVersion(_message.Message):
    __slots__ = ("Major", "Minor", "Patch", "Pre", "Meta", "Commit")
    MAJOR_FIELD_NUMBER: _ClassVar[int]
    MINOR_FIELD_NUMBER: _ClassVar[int]
    PATCH_FIELD_NUMBER: _ClassVar[int]
    PRE_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    Major: int
    Minor: int
    Patch: int
    Pre: str
    Meta: str
    Commit: str
    def __init__(self, Major: _Optional[int] = ..., Minor: _Optional[int] = ..., Patch: _Optional[int] = ..., Pre: _Optional[str] = ..., Meta: _Optional[str] = ..., Commit: _Optional[str] = ...) -> None: ...

class CollectorECSTask(_message.Message):
    __slots__ = ("awsAccountID", "clusterName", "clusterId", "region", "groupId", "groupSize", "tasks", "tags", "host", "hostName", "info", "agentVersion")
    AWSACCOUNTID_FIELD_NUMBER: _ClassVar[int]
    CLUSTERNAME_FIELD_NUMBER: _ClassVar[int]
    CLUSTERID_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    GROUPID_FIELD_NUMBER: _ClassVar[int]
    GROUPSIZE_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    AGENTVERSION_FIELD_NUMBER: _ClassVar[int]
    awsAccountID: int
    clusterName: str
    clusterId: str
    region: str
    groupId: int
    groupSize: int
    tasks: _containers.RepeatedCompositeFieldContainer[ECSTask]
    tags: _containers.RepeatedScalarFieldContainer[str]
    host: Host
    hostName: str
    info: SystemInfo
    agentVersion: AgentVersion
    def __init__(self, awsAccountID: _Optional[int] = ..., clusterName: _Optional[str] = ..., clusterId: _Optional[str] = ..., region: _Optional[str] = ..., groupId: _Optional[int] = ..., groupSize: _Optional[int] = ..., tasks: _Optional[_Iterable[_Union[ECSTask, _Mapping]]] = ..., tags: _Optional[_Iterable[str]] = ..., host: _Optional[_Union[Host, _Mapping]] = ..., hostName: _Optional[str] = ..., info: _Optional[_Union[SystemInfo, _Mapping]] = ..., agentVersion: _Optional[_Union[AgentVersion, _Mapping]] = ...) -> None: ...

class ECSTask(_message.Message):
    __slots__ = ("arn", "resourceVersion", "launchType", "desiredStatus", "knownStatus", "family", "version", "availabilityZone", "limits", "ephemeralStorageMetrics", "serviceName", "vpcId", "pullStartedAt", "pullStoppedAt", "executionStoppedAt", "containers", "tags", "ecsTags", "containerInstanceTags", "host", "containerInstanceArn", "daemonName")
    class LimitsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class EphemeralStorageMetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    ARN_FIELD_NUMBER: _ClassVar[int]
    RESOURCEVERSION_FIELD_NUMBER: _ClassVar[int]
    LAUNCHTYPE_FIELD_NUMBER: _ClassVar[int]
    DESIREDSTATUS_FIELD_NUMBER: _ClassVar[int]
    KNOWNSTATUS_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITYZONE_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    EPHEMERALSTORAGEMETRICS_FIELD_NUMBER: _ClassVar[int]
    SERVICENAME_FIELD_NUMBER: _ClassVar[int]
    VPCID_FIELD_NUMBER: _ClassVar[int]
    PULLSTARTEDAT_FIELD_NUMBER: _ClassVar[int]
    PULLSTOPPEDAT_FIELD_NUMBER: _ClassVar[int]
    EXECUTIONSTOPPEDAT_FIELD_NUMBER: _ClassVar[int]
    CONTAINERS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    ECSTAGS_FIELD_NUMBER: _ClassVar[int]
    CONTAINERINSTANCETAGS_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    CONTAINERINSTANCEARN_FIELD_NUMBER: _ClassVar[int]
    DAEMONNAME_FIELD_NUMBER: _ClassVar[int]
    arn: str
    resourceVersion: str
    launchType: str
    desiredStatus: str
    knownStatus: str
    family: str
    version: str
    availabilityZone: str
    limits: _containers.ScalarMap[str, float]
    ephemeralStorageMetrics: _containers.ScalarMap[str, int]
    serviceName: str
    vpcId: str
    pullStartedAt: int
    pullStoppedAt: int
    executionStoppedAt: int
    containers: _containers.RepeatedCompositeFieldContainer[ECSContainer]
    tags: _containers.RepeatedScalarFieldContainer[str]
    ecsTags: _containers.RepeatedScalarFieldContainer[str]
    containerInstanceTags: _containers.RepeatedScalarFieldContainer[str]
    host: Host
    containerInstanceArn: str
    daemonName: str
    def __init__(self, arn: _Optional[str] = ..., resourceVersion: _Optional[str] = ..., launchType: _Optional[str] = ..., desiredStatus: _Optional[str] = ..., knownStatus: _Optional[str] = ..., family: _Optional[str] = ..., version: _Optional[str] = ..., availabilityZone: _Optional[str] = ..., limits: _Optional[_Mapping[str, float]] = ..., ephemeralStorageMetrics: _Optional[_Mapping[str, int]] = ..., serviceName: _Optional[str] = ..., vpcId: _Optional[str] = ..., pullStartedAt: _Optional[int] = ..., pullStoppedAt: _Optional[int] = ..., executionStoppedAt: _Optional[int] = ..., containers: _Optional[_Iterable[_Union[ECSContainer, _Mapping]]] = ..., tags: _Optional[_Iterable[str]] = ..., ecsTags: _Optional[_Iterable[str]] = ..., containerInstanceTags: _Optional[_Iterable[str]] = ..., host: _Optional[_Union[Host, _Mapping]] = ..., containerInstanceArn: _Optional[str] = ..., daemonName: _Optional[str] = ...) -> None: ...

class ECSContainer(_message.Message):
    __slots__ = ("dockerID", "dockerName", "name", "image", "imageID", "createdAt", "startedAt", "finishedAt", "desiredStatus", "knownStatus", "exitCode", "type", "logDriver", "logOptions", "containerArn", "ports", "networks", "labels", "limits")
    class LogOptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class LimitsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    DOCKERID_FIELD_NUMBER: _ClassVar[int]
    DOCKERNAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    IMAGEID_FIELD_NUMBER: _ClassVar[int]
    CREATEDAT_FIELD_NUMBER: _ClassVar[int]
    STARTEDAT_FIELD_NUMBER: _ClassVar[int]
    FINISHEDAT_FIELD_NUMBER: _ClassVar[int]
    DESIREDSTATUS_FIELD_NUMBER: _ClassVar[int]
    KNOWNSTATUS_FIELD_NUMBER: _ClassVar[int]
    EXITCODE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    LOGDRIVER_FIELD_NUMBER: _ClassVar[int]
    LOGOPTIONS_FIELD_NUMBER: _ClassVar[int]
    CONTAINERARN_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    dockerID: str
    dockerName: str
    name: str
    image: str
    imageID: str
    createdAt: int
    startedAt: int
    finishedAt: int
    desiredStatus: str
    knownStatus: str
    exitCode: ECSContainerExitCode
    type: str
    logDriver: str
    logOptions: _containers.ScalarMap[str, str]
    containerArn: str
    ports: _containers.RepeatedCompositeFieldContainer[ECSContainerPort]
    networks: _containers.RepeatedCompositeFieldContainer[ECSContainerNetwork]
    labels: _containers.RepeatedScalarFieldContainer[str]
    limits: _containers.ScalarMap[str, float]
    def __init__(self, dockerID: _Optional[str] = ..., dockerName: _Optional[str] = ..., name: _Optional[str] = ..., image: _Optional[str] = ..., imageID: _Optional[str] = ..., createdAt: _Optional[int] = ..., startedAt: _Optional[int] = ..., finishedAt: _Optional[int] = ..., desiredStatus: _Optional[str] = ..., knownStatus: _Optional[str] = ..., exitCode: _Optional[_Union[ECSContainerExitCode, _Mapping]] = ..., type: _Optional[str] = ..., logDriver: _Optional[str] = ..., logOptions: _Optional[_Mapping[str, str]] = ..., containerArn: _Optional[str] = ..., ports: _Optional[_Iterable[_Union[ECSContainerPort, _Mapping]]] = ..., networks: _Optional[_Iterable[_Union[ECSContainerNetwork, _Mapping]]] = ..., labels: _Optional[_Iterable[str]] = ..., limits: _Optional[_Mapping[str, float]] = ...) -> None: ...

class ECSContainerNetwork(_message.Message):
    __slots__ = ("networkMode", "ipv4Addresses", "ipv6Addresses")
    NETWORKMODE_FIELD_NUMBER: _ClassVar[int]
    IPV4ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    IPV6ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    networkMode: str
    ipv4Addresses: _containers.RepeatedScalarFieldContainer[str]
    ipv6Addresses: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, networkMode: _Optional[str] = ..., ipv4Addresses: _Optional[_Iterable[str]] = ..., ipv6Addresses: _Optional[_Iterable[str]] = ...) -> None: ...

class ECSContainerPort(_message.Message):
    __slots__ = ("containerPort", "protocol", "hostIp", "hostPort")
    CONTAINERPORT_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    HOSTIP_FIELD_NUMBER: _ClassVar[int]
    HOSTPORT_FIELD_NUMBER: _ClassVar[int]
    containerPort: int
    protocol: str
    hostIp: str
    hostPort: int
    def __init__(self, containerPort: _Optional[int] = ..., protocol: _Optional[str] = ..., hostIp: _Optional[str] = ..., hostPort: _Optional[int] = ...) -> None: ...

class ECSContainerExitCode(_message.Message):
    __slots__ = ("exitCode",)
    EXITCODE_FIELD_NUMBER: _ClassVar[int]
    exitCode: int
    def __init__(self, exitCode: _Optional[int] = ...) -> None: ...
