"""The emulated agent's configuration: the ONE place that knows the agent's `DD_*` names and defaults.

`AgentConfig.from_env(os.environ)` reads the same environment as `public.ecr.aws/datadog/agent`
(docs/agent_contract.md) and resolves every intake URL the way the agent does:

- a `*_DD_URL` override is used as given (DataDog/datadog-agent pkg/config/utils/endpoints.go,
  `GetMainEndpoint`: "value under ddURLKey takes precedence over 'site'");
- otherwise the URL is derived from `DD_SITE` (default `datadoghq.com`), and only a real Datadog
  infra host (`app[.mrf][.xx1].datadoghq.com|eu, datad0g, ddog-gov.com`) gets the version prefix
  `7-NN-N-app.agent.` (`AddAgentVersionToDomain` and its `ddURLRegexp`);
- `DD_FIPS_ENABLED=true` replaces every URL by `http(s)://<DD_FIPS_LOCAL_ADDRESS>:<start+offset>`
  from `lab.fakes.fips_proxy.ports`, unsets the proxies, disables remote configuration and logs the
  agent's warning (pkg/config/setup/config.go `setupFipsEndpoints`). A non-loopback local address
  fails the load with the agent's own message.

Lab-only variables (docs/local_backend.md#an-instances-network-namespaces-on-loopback): `LAB_AGENT_LOCALHOST`
(what 127.0.0.1 is inside the agent's own network namespace; default 127.0.0.1), `LAB_AGENT_HOST_ADDRESSES`
(comma list standing for "all interfaces"; default 0.0.0.0), `LAB_AGENT_FLUSH_INTERVAL` (DogStatsD/metrics
flush, seconds, default 1 instead of the agent's 15), `LAB_AGENT_TRACE_FLUSH_INTERVAL` (default 1 instead of
5), `LAB_AGENT_PROCESS_INTERVAL` (default 2 instead of 10), `LAB_AGENT_CONNECTIONS_INTERVAL` (the
connections check, default 1 instead of 30; docs/npm.md), `LAB_AGENT_STATS_BUCKET_INTERVAL` (width
of the APM stats buckets the agent computes, seconds; default 2 instead of 10: a bucket is sent two
widths after it opens), `LAB_AGENT_APM_DECODER_PROCESSES` /
`LAB_AGENT_APM_DECODER_MIN_BYTES` (trace requests of at least that size decoded in that many worker
processes; default: one per usable CPU, 64 KiB; see decoders.py), `LAB_AGENT_DOGSTATSD_READER`
(`process`, the default: DogStatsD's sockets drained by a process of their own; `threads`: by the
agent's own threads; see dogstatsd_drain.py), `LAB_AGENT_ALLOW_LINK_LOCAL_IMDS=1`
(only where the lab itself owns 169.254.x: the docker backend).

`LAB_AGENT_PROFILE` picks the timing (docs/agent.md): `fast` (default; the intervals above) or
`real-timing` (the agent's own: metrics flushed every 15 s in 10 s buckets, traces every 5 s, APM
stats buckets 10 s, process/container checks every 10 s sending nothing on their first run, the
connections check every 30 s, health
pings every 15 s, and no private plain-HTTP status endpoint). An explicit `LAB_AGENT_*` interval
still wins over the profile; `agent config` reports what is in effect.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from lab.fakes.fips_proxy import ports as fips_ports

log = logging.getLogger("lab.agent.config")

# The agent release the emulation speaks for (version prefix, /info, payload agentVersion).
AGENT_VERSION = "7.60.0"
DEFAULT_SITE = "datadoghq.com"

# pkg/config/utils/endpoints.go: only these hosts get the X-Y-Z-app.agent. prefix.
_DD_INFRA_HOST = re.compile(r"^app(\.mrf)?(\.[a-z]{2}\d)?\.(datad(oghq|0g)\.(com|eu)|ddog-gov\.com)\.?$")

_TRUE = {"1", "true", "yes", "on", "t", "y"}
_FALSE = {"0", "false", "no", "off", "f", "n", ""}


PROFILES = ("fast", "real-timing")


@dataclass(frozen=True)
class Timing:
    """The intervals one profile stands for (seconds)."""

    flush_interval: float  # aggregator flush (pkg/aggregator DefaultFlushInterval: 15 s)
    bucket_interval: float  # DogStatsD bucket width (time_sampler: 10 s), only closed ones flushed
    trace_flush_interval: float  # trace writer tick (pkg/trace/writer: 5 s)
    stats_bucket_interval: float  # APM stats buckets (pkg/trace/config BucketInterval: 10 s)
    process_interval: float  # process and container checks (pkg/process/checks/interval.go: 10 s)
    check_interval: float  # core checks' min_collection_interval (15 s)
    health_ping_interval: float  # health catalog ping (pkg/status/health: 15 s)
    first_check_run_sends: bool  # process/container checks send on their first run (the agent: no)
    private_status: bool  # the lab's plain-HTTP /agent/status besides the HTTPS IPC API
    connections_interval: float  # connections check (pkg/process/checks/interval.go: 30 s)


TIMINGS = {
    "fast": Timing(1.0, 1.0, 1.0, 2.0, 2.0, 1.0, 0.5, True, True, 1.0),
    "real-timing": Timing(15.0, 10.0, 5.0, 10.0, 10.0, 15.0, 15.0, False, False, 30.0),
}


class ConfigError(ValueError):
    """The environment cannot make a running agent (the real agent exits at start-up too)."""


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (use true or false)")


def _reader(env: Mapping[str, str]) -> bool:
    """LAB_AGENT_DOGSTATSD_READER: `process` (default: the sockets drained by a process of their
    own, lab/agent/dogstatsd_drain.py) or `threads` (read and parsed by the agent's own threads)."""
    raw = (env.get("LAB_AGENT_DOGSTATSD_READER") or "process").strip().lower()
    if raw not in ("process", "threads"):
        raise ConfigError(f"LAB_AGENT_DOGSTATSD_READER={raw!r}: use process or threads")
    return raw == "process"


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be positive")
    return value


def parse_tags(raw: str | None) -> list[str]:
    """DD_TAGS: space separated in the agent's env binding; commas are accepted too (both appear in docs)."""
    if not raw:
        return []
    return [t for t in re.split(r"[\s,]+", raw.strip()) if t]


def add_agent_version_to_domain(url: str, app: str = "app", version: str = AGENT_VERSION) -> str:
    """`AddAgentVersionToDomain`: https://app.datadoghq.com -> https://7-60-0-app.agent.datadoghq.com."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not _DD_INFRA_HOST.match(host):
        return url
    major, minor, patch = (version.split(".") + ["0", "0"])[:3]
    prefix = f"{major}-{minor}-{patch}-{app}.agent"
    new_host = host.replace(host.split(".")[0], prefix, 1)
    netloc = parts.netloc.replace(host, new_host, 1)
    return parts._replace(netloc=netloc).geturl()


@dataclass(frozen=True)
class Endpoints:
    """Where each data type goes (base URLs; the forwarder appends the route)."""

    metrics: str  # dd_url: series, sketches, check runs, events, metadata
    traces: str  # apm_config.apm_dd_url: traces and APM stats
    processes: str  # process_config.process_dd_url
    logs: str  # logs_config.logs_dd_url
    orchestrator: str  # orchestrator_explorer.orchestrator_dd_url
    profiling: str  # apm_config.profiling_dd_url (already ends with /api/v2/profile)
    telemetry: str  # apm_config.telemetry.dd_url

    def as_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


def site_endpoints(site: str) -> Endpoints:
    """Defaults derived from DD_SITE (pkg/config/setup: each product's `<prefix>.<site>` host)."""
    return Endpoints(
        metrics=add_agent_version_to_domain(f"https://app.{site}"),
        traces=f"https://trace.agent.{site}",
        processes=f"https://process.{site}",
        logs=f"https://agent-http-intake.logs.{site}",
        orchestrator=f"https://orchestrator.{site}",
        profiling=f"https://intake.profile.{site}/api/v2/profile",
        telemetry=f"https://instrumentation-telemetry-intake.{site}",
    )


def _clean_url(raw: str) -> str:
    value = raw.strip()
    if not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", value):
        # The agent prefixes scheme-less dd_url values with https:// (pkg/config/utils).
        value = "https://" + value
    return value.rstrip("/")


@dataclass(frozen=True)
class FipsSettings:
    local_address: str
    port_range_start: int
    https: bool
    tls_verify: bool

    def url_for(self, route: str) -> str:
        scheme = "https" if self.https else "http"
        host = f"[{self.local_address}]" if ":" in self.local_address else self.local_address
        return f"{scheme}://{host}:{fips_ports.port_for(route, self.port_range_start)}"

    @property
    def log_line(self) -> str:
        return (
            "FIPS mode is enabled! All communication to DataDog will be routed to the local FIPS proxy "
            f"on '{self.local_address}' starting from port {self.port_range_start}"
        )


@dataclass(frozen=True)
class AgentConfig:
    api_key: str
    site: str = DEFAULT_SITE
    endpoints: Endpoints = field(default_factory=lambda: site_endpoints(DEFAULT_SITE))
    hostname: str = ""  # DD_HOSTNAME; empty -> resolved (IMDS instance-id on ECS EC2)
    env: str = ""  # DD_ENV
    tags: tuple[str, ...] = ()
    log_level: str = "info"
    remote_configuration_enabled: bool = True
    # APM
    apm_enabled: bool = True
    apm_receiver_port: int = 8126
    apm_non_local_traffic: bool = True
    apm_telemetry_enabled: bool = True  # apm_config.telemetry.enabled: the /telemetry/proxy/ relay
    evp_proxy_enabled: bool = True  # apm_config.evp_proxy_config.enabled
    evp_proxy_dd_url: str = ""  # apm_config.evp_proxy_config.dd_url: a domain ("" -> site)
    # OTLP receiver (otlp_config.receiver.protocols.{http,grpc}.endpoint): "" -> not listening.
    otlp_http_endpoint: str = ""
    otlp_grpc_endpoint: str = ""
    # DogStatsD
    dogstatsd_enabled: bool = True
    dogstatsd_port: int = 8125
    dogstatsd_non_local_traffic: bool = False
    dogstatsd_so_rcvbuf: int = 0  # the agent's default: the kernel's (net.core.rmem_default)
    # Datagrams read and not yet parsed, at most: dogstatsd_queue_size packet buffers of
    # dogstatsd_packet_buffer_size packets (pkg/config/setup: 1024 and 32).
    dogstatsd_queue_size: int = 1024
    dogstatsd_packet_buffer_size: int = 32
    dogstatsd_reader_process: bool = True  # LAB_AGENT_DOGSTATSD_READER: process | threads
    dogstatsd_origin_detection: bool = False
    dogstatsd_tag_cardinality: str = "low"
    dogstatsd_tags: tuple[str, ...] = ()  # DD_DOGSTATSD_TAGS: added to every DogStatsD message
    checks_tag_cardinality: str = "low"
    histogram_aggregates: tuple[str, ...] = ("max", "median", "avg", "count")
    histogram_percentiles: tuple[float, ...] = (0.95,)
    # Processes
    process_collection_enabled: bool = False
    container_collection_enabled: bool = True
    procfs_path: str = "/proc"
    docker_socket: str = "/var/run/docker.sock"
    # Network Performance Monitoring: system-probe's network_config.enabled (docs/npm.md)
    network_enabled: bool = False
    # system_probe_config.enabled set without network_config.enabled: the deprecated way to enable NPM
    network_enabled_by_deprecated_key: bool = False
    max_conns_per_message: int = 600  # system_probe_config.max_conns_per_message (at most 1000)
    connections_interval: float = 1.0
    # FIPS and proxies
    fips: FipsSettings | None = None
    proxy_http: str = ""
    proxy_https: str = ""
    no_proxy: tuple[str, ...] = ()
    # IPC
    cmd_port: int = 5001
    expvar_port: int = 5000
    # ECS / EC2
    ecs_agent_url: str = ""
    aws_execution_env: str = ""
    # ECS_FARGATE=true: the agent is a sidecar in a Fargate task (docs/fargate.md#the-agent-as-a-sidecar)
    ecs_fargate: bool = False
    metadata_uri_v4: str = ""  # ECS_CONTAINER_METADATA_URI_V4 of the agent's own container
    imds_endpoint: str = ""  # AWS_EC2_METADATA_SERVICE_ENDPOINT
    imds_timeout: float = 0.3  # ec2_metadata_timeout: 300 ms
    allow_link_local: bool = False
    # Lab-only
    localhost: str = "127.0.0.1"
    host_addresses: tuple[str, ...] = ("0.0.0.0",)
    profile: str = "fast"
    flush_interval: float = 1.0
    bucket_interval: float = 1.0
    trace_flush_interval: float = 1.0
    process_interval: float = 2.0
    stats_bucket_interval: float = 2.0
    check_interval: float = 1.0
    health_ping_interval: float = 0.5
    first_check_run_sends: bool = True
    private_status: bool = True
    auth_token_file_path: str = ""  # "" -> ipc.default_auth_token_path (resolved at start)
    apm_decoder_processes: int = 0
    apm_decoder_min_bytes: int = 65536
    # Logs (pkg/config/setup: logs_enabled, logs_config.*; docs/logs.md#the-agents-container-logs)
    logs_enabled: bool = False
    logs_container_collect_all: bool = False
    logs_use_compression: bool = True
    logs_compression_kind: str = "zstd"  # comp/logs-library/defaults DefaultLogCompressionKind
    logs_compression_level: int = 1
    logs_batch_wait: float = 5.0  # DefaultBatchWait (s); the fast profile: 1 s
    logs_batch_max_size: int = 1000  # DefaultBatchMaxSize (entries)
    logs_batch_max_content_size: int = 5_000_000  # DefaultBatchMaxContentSize (bytes, uncompressed)

    # -- loading -------------------------------------------------------------------------------
    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AgentConfig:
        api_key = (env.get("DD_API_KEY") or "").strip()
        if not api_key:
            # The real agent refuses to start: "API key is missing" / "no API key configured, exiting".
            raise ConfigError("no API key configured, exiting (set DD_API_KEY)")
        site = (env.get("DD_SITE") or DEFAULT_SITE).strip() or DEFAULT_SITE
        base = site_endpoints(site)
        dd_url = env.get("DD_DD_URL") or env.get("DD_URL")
        process_url = env.get("DD_PROCESS_CONFIG_PROCESS_DD_URL") or env.get("DD_PROCESS_AGENT_URL")
        endpoints = Endpoints(
            metrics=_clean_url(dd_url) if dd_url else base.metrics,
            traces=_clean_url(env["DD_APM_DD_URL"]) if env.get("DD_APM_DD_URL") else base.traces,
            processes=_clean_url(process_url) if process_url else base.processes,
            logs=_clean_url(env["DD_LOGS_CONFIG_LOGS_DD_URL"])
            if env.get("DD_LOGS_CONFIG_LOGS_DD_URL")
            else base.logs,
            orchestrator=_clean_url(env["DD_ORCHESTRATOR_EXPLORER_ORCHESTRATOR_DD_URL"])
            if env.get("DD_ORCHESTRATOR_EXPLORER_ORCHESTRATOR_DD_URL")
            else base.orchestrator,
            profiling=_clean_url(env["DD_APM_PROFILING_DD_URL"])
            if env.get("DD_APM_PROFILING_DD_URL")
            else base.profiling,
            telemetry=_clean_url(env["DD_APM_TELEMETRY_DD_URL"])
            if env.get("DD_APM_TELEMETRY_DD_URL")
            else base.telemetry,
        )

        # process_config.process_collection.enabled, or the legacy DD_PROCESS_AGENT_ENABLED.
        process_enabled = _bool(
            env, "DD_PROCESS_CONFIG_PROCESS_COLLECTION_ENABLED", _bool(env, "DD_PROCESS_AGENT_ENABLED", False)
        )
        container_enabled = _bool(env, "DD_PROCESS_CONFIG_CONTAINER_COLLECTION_ENABLED", True)
        # pkg/system-probe/config/adjust.go: system_probe_config.enabled=true with no
        # network_config.enabled (and USM off) enables the network module, with a deprecation warning.
        network_explicit = env.get("DD_SYSTEM_PROBE_NETWORK_ENABLED")
        sysprobe_enabled = _bool(env, "DD_SYSTEM_PROBE_ENABLED", False)
        usm_enabled = _bool(env, "DD_SYSTEM_PROBE_SERVICE_MONITORING_ENABLED", False)
        if network_explicit is not None and network_explicit.strip() != "":
            network_enabled, network_deprecated = _bool(env, "DD_SYSTEM_PROBE_NETWORK_ENABLED", False), False
        else:
            network_enabled = network_deprecated = sysprobe_enabled and not usm_enabled
        # adjust_npm.go limitMaxInt: max_conns_per_message is capped at 1000.
        max_conns = min(_int(env, "DD_SYSTEM_PROBE_CONFIG_MAX_CONNS_PER_MESSAGE", 600), 1000)
        if max_conns <= 0:
            raise ConfigError("DD_SYSTEM_PROBE_CONFIG_MAX_CONNS_PER_MESSAGE must be positive")

        # The docs' task definition mounts the host's /proc at /host/proc; without it, our own.
        host_proc = env.get("LAB_AGENT_HOST_PROC", "/host/proc")
        procfs = host_proc if _is_dir(host_proc) else "/proc"

        profile = (env.get("LAB_AGENT_PROFILE") or "fast").strip().lower()
        if profile not in TIMINGS:
            raise ConfigError(f"LAB_AGENT_PROFILE={profile!r}: use one of {', '.join(PROFILES)}")
        timing = TIMINGS[profile]
        flush_interval = _float(env, "LAB_AGENT_FLUSH_INTERVAL", timing.flush_interval)
        # The fast profile buckets at its flush interval; an explicit flush interval moves both.
        bucket_default = timing.bucket_interval if profile != "fast" else flush_interval
        bucket_interval = _float(env, "LAB_AGENT_BUCKET_INTERVAL", bucket_default)
        if bucket_interval > flush_interval and profile == "fast":
            bucket_interval = flush_interval

        host_addresses = tuple(
            a.strip() for a in env.get("LAB_AGENT_HOST_ADDRESSES", "0.0.0.0").split(",") if a.strip()
        ) or ("0.0.0.0",)

        cfg = cls(
            api_key=api_key,
            site=site,
            endpoints=endpoints,
            hostname=(env.get("DD_HOSTNAME") or "").strip(),
            env=(env.get("DD_ENV") or "").strip(),
            tags=tuple(parse_tags(env.get("DD_TAGS"))),
            log_level=(env.get("DD_LOG_LEVEL") or "info").strip().lower(),
            remote_configuration_enabled=_bool(env, "DD_REMOTE_CONFIGURATION_ENABLED", True),
            apm_enabled=_bool(env, "DD_APM_ENABLED", True),
            apm_receiver_port=_int(env, "DD_APM_RECEIVER_PORT", 8126),
            # The agent image's datadog-docker.yaml sets apm_config.apm_non_local_traffic: true.
            apm_non_local_traffic=_bool(env, "DD_APM_NON_LOCAL_TRAFFIC", True),
            apm_telemetry_enabled=_bool(env, "DD_APM_TELEMETRY_ENABLED", True),
            evp_proxy_enabled=_bool(env, "DD_APM_EVP_PROXY_CONFIG_ENABLED", True),
            evp_proxy_dd_url=(env.get("DD_APM_EVP_PROXY_CONFIG_DD_URL") or "").strip().rstrip("/"),
            otlp_http_endpoint=(env.get("DD_OTLP_CONFIG_RECEIVER_PROTOCOLS_HTTP_ENDPOINT") or "").strip(),
            otlp_grpc_endpoint=(env.get("DD_OTLP_CONFIG_RECEIVER_PROTOCOLS_GRPC_ENDPOINT") or "").strip(),
            dogstatsd_enabled=_bool(env, "DD_USE_DOGSTATSD", True),
            dogstatsd_port=_int(env, "DD_DOGSTATSD_PORT", 8125),
            dogstatsd_non_local_traffic=_bool(env, "DD_DOGSTATSD_NON_LOCAL_TRAFFIC", False),
            dogstatsd_so_rcvbuf=_int(env, "DD_DOGSTATSD_SO_RCVBUF", 0),
            dogstatsd_queue_size=max(1, _int(env, "DD_DOGSTATSD_QUEUE_SIZE", 1024)),
            dogstatsd_packet_buffer_size=max(1, _int(env, "DD_DOGSTATSD_PACKET_BUFFER_SIZE", 32)),
            dogstatsd_reader_process=_reader(env),
            dogstatsd_origin_detection=_bool(env, "DD_DOGSTATSD_ORIGIN_DETECTION", False),
            dogstatsd_tag_cardinality=_cardinality(env, "DD_DOGSTATSD_TAG_CARDINALITY"),
            dogstatsd_tags=tuple(parse_tags(env.get("DD_DOGSTATSD_TAGS"))),
            checks_tag_cardinality=_cardinality(env, "DD_CHECKS_TAG_CARDINALITY"),
            histogram_aggregates=tuple(parse_tags(env.get("DD_HISTOGRAM_AGGREGATES")))
            or ("max", "median", "avg", "count"),
            histogram_percentiles=_percentiles(env.get("DD_HISTOGRAM_PERCENTILES")),
            process_collection_enabled=process_enabled,
            container_collection_enabled=container_enabled,
            procfs_path=procfs,
            docker_socket=_docker_socket(env),
            network_enabled=network_enabled,
            network_enabled_by_deprecated_key=network_deprecated,
            max_conns_per_message=max_conns,
            # process_config.intervals.connections (the agent's own setting), else the lab's override.
            connections_interval=_float(env, "DD_PROCESS_CONFIG_INTERVALS_CONNECTIONS",
                                        _float(env, "LAB_AGENT_CONNECTIONS_INTERVAL",
                                               timing.connections_interval)),
            proxy_http=(env.get("DD_PROXY_HTTP") or "").strip(),
            proxy_https=(env.get("DD_PROXY_HTTPS") or "").strip(),
            no_proxy=tuple(parse_tags(env.get("DD_PROXY_NO_PROXY") or env.get("DD_NO_PROXY"))),
            cmd_port=_int(env, "DD_CMD_PORT", 5001),
            expvar_port=_int(env, "DD_EXPVAR_PORT", 5000),
            ecs_agent_url=(env.get("DD_ECS_AGENT_URL") or "").strip().rstrip("/"),
            aws_execution_env=(env.get("AWS_EXECUTION_ENV") or "").strip(),
            ecs_fargate=_bool(env, "ECS_FARGATE", False),
            metadata_uri_v4=(env.get("ECS_CONTAINER_METADATA_URI_V4") or "").strip().rstrip("/"),
            imds_endpoint=(env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") or "").strip().rstrip("/"),
            imds_timeout=_int(env, "DD_EC2_METADATA_TIMEOUT", 300) / 1000.0,
            allow_link_local=_bool(env, "LAB_AGENT_ALLOW_LINK_LOCAL_IMDS", False),
            localhost=(env.get("LAB_AGENT_LOCALHOST") or "127.0.0.1").strip(),
            host_addresses=host_addresses,
            profile=profile,
            flush_interval=flush_interval,
            bucket_interval=bucket_interval,
            trace_flush_interval=_float(env, "LAB_AGENT_TRACE_FLUSH_INTERVAL", timing.trace_flush_interval),
            process_interval=_float(env, "LAB_AGENT_PROCESS_INTERVAL", timing.process_interval),
            # pkg/trace/config BucketInterval: 10 s in the agent.
            stats_bucket_interval=_float(
                env, "LAB_AGENT_STATS_BUCKET_INTERVAL", timing.stats_bucket_interval
            ),
            check_interval=timing.check_interval if profile != "fast" else flush_interval,
            health_ping_interval=timing.health_ping_interval,
            first_check_run_sends=timing.first_check_run_sends,
            private_status=timing.private_status,
            # auth_token_file_path (pkg/config/setup: BindEnvAndSetDefault, so DD_AUTH_TOKEN_FILE_PATH).
            auth_token_file_path=(env.get("DD_AUTH_TOKEN_FILE_PATH") or "").strip(),
            # Python decodes on one core per process; the trace-agent on all of them (decoders.py).
            apm_decoder_processes=_int(env, "LAB_AGENT_APM_DECODER_PROCESSES", _usable_cpus()),
            apm_decoder_min_bytes=_int(env, "LAB_AGENT_APM_DECODER_MIN_BYTES", 65536),
            logs_enabled=_bool(env, "DD_LOGS_ENABLED", False),
            logs_container_collect_all=_bool(env, "DD_LOGS_CONFIG_CONTAINER_COLLECT_ALL", False),
            logs_use_compression=_bool(env, "DD_LOGS_CONFIG_USE_COMPRESSION", True),
            logs_compression_kind=_compression_kind(env),
            logs_compression_level=_int(env, "DD_LOGS_CONFIG_COMPRESSION_LEVEL",
                                        1 if _compression_kind(env) == "zstd" else 6),
            logs_batch_wait=_float(env, "DD_LOGS_CONFIG_BATCH_WAIT", 1.0 if profile == "fast" else 5.0),
            logs_batch_max_size=_int(env, "DD_LOGS_CONFIG_BATCH_MAX_SIZE", 1000),
        )
        if _bool(env, "DD_FIPS_ENABLED", False):
            cfg = cfg.with_fips(
                FipsSettings(
                    local_address=(
                        env.get("DD_FIPS_LOCAL_ADDRESS") or fips_ports.DEFAULT_LOCAL_ADDRESS
                    ).strip(),
                    port_range_start=_int(
                        env, "DD_FIPS_PORT_RANGE_START", fips_ports.DEFAULT_PORT_RANGE_START
                    ),
                    https=_bool(env, "DD_FIPS_HTTPS", True),
                    tls_verify=_bool(env, "DD_FIPS_TLS_VERIFY", True),
                )
            )
        return cfg

    def with_fips(self, fips: FipsSettings) -> AgentConfig:
        """`setupFipsEndpoints`: every URL to the local proxy, proxies off, remote config off."""
        try:
            fips_ports.validate_local_address(fips.local_address)
        except fips_ports.NonLoopbackFipsAddress as exc:
            raise ConfigError(str(exc)) from None
        endpoints = Endpoints(
            metrics=fips.url_for("metrics"),
            traces=fips.url_for("traces"),
            processes=fips.url_for("processes"),
            # logs_dd_url is host:port (use_http=true, logs_no_ssl=!fips.https)
            logs=fips.url_for("logs"),
            orchestrator=fips.url_for("orchestrator"),
            # "Adding /api/v2/profile because it's not added to the profiling_dd_url value by the Agent"
            profiling=fips.url_for("profiles") + "/api/v2/profile",
            telemetry=fips.url_for("instrumentation_telemetry"),
        )
        return replace(
            self,
            fips=fips,
            endpoints=endpoints,
            proxy_http="",
            proxy_https="",
            remote_configuration_enabled=False,
        )

    # -- derived -------------------------------------------------------------------------------
    @property
    def container_check_enabled(self) -> bool:
        """The process agent's container check (`/api/v1/container`). It and the process check are
        mutually exclusive (pkg/process/checks `canEnableContainerChecks`): with process collection
        on, containers travel inside the process payloads instead. The agent also needs a container
        environment (here: ECS found), which the caller checks."""
        return self.container_collection_enabled and not self.process_collection_enabled

    def bind_addresses(self, non_local_traffic: bool) -> list[str]:
        """Where a receiver listens: "localhost" only, or "all interfaces" too (docs/local_backend.md)."""
        if not non_local_traffic:
            return [self.localhost]
        if "0.0.0.0" in self.host_addresses:
            return ["0.0.0.0"]
        out = [self.localhost]
        out += [a for a in self.host_addresses if a not in out]
        return out

    def proxy_for(self, url: str) -> str | None:
        """proxy.https for https:// targets, proxy.http for http:// ones, minus proxy.no_proxy."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        for entry in self.no_proxy:
            e = entry.lower().lstrip(".")
            if host == e or host.endswith("." + e):
                return None
        proxy = self.proxy_https if parts.scheme == "https" else self.proxy_http
        return proxy or None

    def tags_for(self, cardinality: str | None = None) -> list[str]:
        return list(self.tags)

    def summary(self) -> dict:
        return {
            "site": self.site,
            "endpoints": self.endpoints.as_dict(),
            "env": self.env,
            "tags": list(self.tags),
            "apm": {
                "enabled": self.apm_enabled,
                "port": self.apm_receiver_port,
                "non_local_traffic": self.apm_non_local_traffic,
            },
            "dogstatsd": {
                "port": self.dogstatsd_port,
                "non_local_traffic": self.dogstatsd_non_local_traffic,
                "so_rcvbuf": self.dogstatsd_so_rcvbuf,
                "queue": self.dogstatsd_queue_size * self.dogstatsd_packet_buffer_size,
                "reader": "process" if self.dogstatsd_reader_process else "threads",
            },
            "process_collection": self.process_collection_enabled,
            "container_check": self.container_check_enabled,
            "network_enabled": self.network_enabled,
            "fips": None
            if self.fips is None
            else {
                "local_address": self.fips.local_address,
                "port_range_start": self.fips.port_range_start,
                "https": self.fips.https,
            },
            "remote_configuration_enabled": self.remote_configuration_enabled,
            "proxy": {"http": self.proxy_http, "https": self.proxy_https, "no_proxy": list(self.no_proxy)},
            "profile": self.profile,
            "flush_interval": self.flush_interval,
            "bucket_interval": self.bucket_interval,
            "trace_flush_interval": self.trace_flush_interval,
            "stats_bucket_interval": self.stats_bucket_interval,
            "apm_decoder_processes": self.apm_decoder_processes,
        }


def _compression_kind(env: Mapping[str, str]) -> str:
    kind = (env.get("DD_LOGS_CONFIG_COMPRESSION_KIND") or "zstd").strip().lower()
    if kind not in ("zstd", "gzip"):
        # The agent warns and keeps its default (comp/logs-library: 'zstd' and 'gzip' are valid).
        log.warning("invalid logs_config.compression_kind %r, falling back to zstd", kind)
        return "zstd"
    return kind


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def ipc_address(env: Mapping[str, str]) -> tuple[str, int]:
    """Where `agent health` / `agent status` find the running agent (cmd_host:cmd_port).

    Needs no API key: the health command reads only where to ask.
    """
    host = (env.get("DD_CMD_HOST") or env.get("LAB_AGENT_LOCALHOST") or "127.0.0.1").strip()
    if host == "localhost":
        host = "127.0.0.1"
    return host, _int(env, "DD_CMD_PORT", 5001)


def _cardinality(env: Mapping[str, str], name: str) -> str:
    value = (env.get(name) or "low").strip().lower()
    if value not in ("low", "orchestrator", "high"):
        raise ConfigError(f"{name}={value!r}: use low, orchestrator or high")
    return value


def _percentiles(raw: str | None) -> tuple[float, ...]:
    if not raw:
        return (0.95,)
    out = []
    for item in parse_tags(raw):
        try:
            p = float(item)
        except ValueError:
            raise ConfigError(f"DD_HISTOGRAM_PERCENTILES: {item!r} is not a number") from None
        if not 0 < p < 1:
            raise ConfigError(f"DD_HISTOGRAM_PERCENTILES: {item!r} must be between 0 and 1")
        out.append(p)
    return tuple(out)


def _docker_socket(env: Mapping[str, str]) -> str:
    # LAB_AGENT_DOCKER_SOCKET="" turns docker discovery off: on the local backend the host's docker
    # engine is not the emulated instance's, and its containers are none of the agent's business.
    if "LAB_AGENT_DOCKER_SOCKET" in env:
        return env["LAB_AGENT_DOCKER_SOCKET"]
    host = env.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        return host[len("unix://") :]
    return "/var/run/docker.sock"


def _is_dir(path: str) -> bool:
    import os

    return os.path.isdir(path) and os.path.isdir(os.path.join(path, "1"))


def scrub_api_key(key: str) -> str:
    """The agent's scrubber keeps the last five characters of an API key (pkg/util/scrubber)."""
    return "*" * max(0, len(key) - 5) + key[-5:] if len(key) > 5 else "*" * len(key)


def runtime_settings(cfg: AgentConfig) -> dict:
    """What `agent config` prints: the settings in effect, under their datadog.yaml keys.

    Only what the emulation implements; secrets scrubbed as the agent scrubs them. Intervals the
    real agent hard-codes (aggregator flush, buckets) have no datadog.yaml key: they are under
    `lab:` (a real agent has no such section: a probe falls back to the documented values)."""
    fips = cfg.fips
    return {
        "api_key": scrub_api_key(cfg.api_key),
        "site": cfg.site,
        "dd_url": cfg.endpoints.metrics,
        "hostname": cfg.hostname,
        "env": cfg.env,
        "tags": list(cfg.tags),
        "log_level": cfg.log_level,
        "cmd_port": cfg.cmd_port,
        "expvar_port": cfg.expvar_port,
        "auth_token_file_path": cfg.auth_token_file_path,
        "remote_configuration": {"enabled": cfg.remote_configuration_enabled},
        "otlp_config": {"receiver": {"protocols": {"http": {"endpoint": cfg.otlp_http_endpoint},
                                                   "grpc": {"endpoint": cfg.otlp_grpc_endpoint}}}},
        "proxy": {"http": cfg.proxy_http, "https": cfg.proxy_https, "no_proxy": list(cfg.no_proxy)},
        "fips": {
            "enabled": fips is not None,
            "local_address": fips.local_address if fips else fips_ports.DEFAULT_LOCAL_ADDRESS,
            "port_range_start": fips.port_range_start if fips else fips_ports.DEFAULT_PORT_RANGE_START,
            "https": fips.https if fips else True,
            "tls_verify": fips.tls_verify if fips else True,
        },
        "use_dogstatsd": cfg.dogstatsd_enabled,
        "dogstatsd_port": cfg.dogstatsd_port,
        "dogstatsd_non_local_traffic": cfg.dogstatsd_non_local_traffic,
        "dogstatsd_so_rcvbuf": cfg.dogstatsd_so_rcvbuf,
        "dogstatsd_queue_size": cfg.dogstatsd_queue_size,
        "dogstatsd_packet_buffer_size": cfg.dogstatsd_packet_buffer_size,
        "dogstatsd_origin_detection": cfg.dogstatsd_origin_detection,
        "dogstatsd_tag_cardinality": cfg.dogstatsd_tag_cardinality,
        "dogstatsd_tags": list(cfg.dogstatsd_tags),
        "checks_tag_cardinality": cfg.checks_tag_cardinality,
        "histogram_aggregates": list(cfg.histogram_aggregates),
        "histogram_percentiles": [f"{p:g}" for p in cfg.histogram_percentiles],
        "min_collection_interval": cfg.check_interval,
        "apm_config": {
            "enabled": cfg.apm_enabled,
            "receiver_port": cfg.apm_receiver_port,
            "apm_non_local_traffic": cfg.apm_non_local_traffic,
            "apm_dd_url": cfg.endpoints.traces,
            "profiling_dd_url": cfg.endpoints.profiling,
            "telemetry": {"enabled": cfg.apm_telemetry_enabled, "dd_url": cfg.endpoints.telemetry},
            "evp_proxy_config": {"enabled": cfg.evp_proxy_enabled, "dd_url": cfg.evp_proxy_dd_url},
            "trace_writer": {"flush_period_seconds": cfg.trace_flush_interval},
        },
        "process_config": {
            "process_collection": {"enabled": cfg.process_collection_enabled},
            "container_collection": {"enabled": cfg.container_collection_enabled},
            "process_dd_url": cfg.endpoints.processes,
            "intervals": {"process": cfg.process_interval, "container": cfg.process_interval,
                          "connections": cfg.connections_interval},
        },
        # system-probe.yaml's settings (the agent image writes both files from the same DD_* env).
        "network_config": {"enabled": cfg.network_enabled},
        "system_probe_config": {"enabled": cfg.network_enabled,
                                "max_conns_per_message": cfg.max_conns_per_message},
        "logs_enabled": cfg.logs_enabled,
        "logs_config": {
            "logs_dd_url": cfg.endpoints.logs,
            "use_http": True,
            "container_collect_all": cfg.logs_container_collect_all,
            "use_compression": cfg.logs_use_compression,
            "compression_kind": cfg.logs_compression_kind,
            "compression_level": cfg.logs_compression_level,
            "batch_wait": cfg.logs_batch_wait,
            "batch_max_size": cfg.logs_batch_max_size,
            "batch_max_content_size": cfg.logs_batch_max_content_size,
        },
        "orchestrator_explorer": {"orchestrator_dd_url": cfg.endpoints.orchestrator},
        "ecs_agent_url": cfg.ecs_agent_url,
        "ec2_metadata_timeout": int(round(cfg.imds_timeout * 1000)),
        "procfs_path": cfg.procfs_path,
        "lab": {
            "profile": cfg.profile,
            "flush_interval": cfg.flush_interval,
            "bucket_interval": cfg.bucket_interval,
            "trace_flush_interval": cfg.trace_flush_interval,
            "stats_bucket_interval": cfg.stats_bucket_interval,
            "process_interval": cfg.process_interval,
            "check_interval": cfg.check_interval,
            "health_ping_interval": cfg.health_ping_interval,
            "first_check_run_sends": cfg.first_check_run_sends,
            "private_status_endpoint": cfg.private_status,
        },
    }
