"""The FIPS proxy port map: the one place that knows which port carries which data.

From the Datadog Agent's FIPS proxy settings (pkg/config/setup, `fips.port_range_start`): each
data type goes to `DD_FIPS_PORT_RANGE_START + offset` on `DD_FIPS_LOCAL_ADDRESS`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

DEFAULT_PORT_RANGE_START = 9803
DEFAULT_LOCAL_ADDRESS = "localhost"
# The lab's proxies add this `Via` entry to what they forward (RFC 9110 section 7.6.3: a proxy says
# it relayed a message), so the intake can tell, payload by payload, what came through a FIPS proxy.
VIA_PSEUDONYM = "ecs-lab-fips-proxy"


def via_value(route_name: str) -> str:
    """The `Via` entry of a request relayed on `route_name`'s port: `1.1 ecs-lab-fips-proxy (traces)`."""
    return f"1.1 {VIA_PSEUDONYM} ({route_name})"


def via_route(via_header: str | None) -> str | None:
    """The route a lab FIPS proxy relayed a request on, read back from its `Via` header (or None)."""
    for entry in (via_header or "").split(","):
        proto, _, rest = entry.strip().partition(" ")
        name, _, comment = rest.partition(" ")
        if name == VIA_PSEUDONYM and comment.startswith("(") and comment.endswith(")"):
            return comment[1:-1]
    return None


@dataclass(frozen=True)
class FipsRoute:
    offset: int
    name: str
    description: str
    # Agent config key whose URL is replaced by http(s)://<local_address>:<port>
    config_key: str | None


ROUTES: tuple[FipsRoute, ...] = (
    FipsRoute(0, "stats", "proxy's own stats page (HAProxy)", None),
    FipsRoute(1, "metrics", "series, sketches, check runs, metadata", "dd_url"),
    FipsRoute(2, "traces", "traces and APM stats", "apm_config.apm_dd_url"),
    FipsRoute(3, "profiles", "profiles (/api/v2/profile)", "apm_config.profiling_dd_url"),
    FipsRoute(4, "processes", "processes and containers", "process_config.process_dd_url"),
    FipsRoute(5, "logs", "logs (HTTP)", "logs_config.logs_dd_url"),
    FipsRoute(6, "dbm_metrics", "database monitoring metrics and activity",
              "database_monitoring.metrics.logs_dd_url"),
    FipsRoute(7, "dbm_samples", "database monitoring samples", "database_monitoring.samples.logs_dd_url"),
    FipsRoute(8, "network_devices_metadata", "network devices metadata",
              "network_devices.metadata.logs_dd_url"),
    FipsRoute(9, "snmp_traps", "SNMP traps", "network_devices.snmp_traps.forwarder.logs_dd_url"),
    FipsRoute(10, "instrumentation_telemetry", "instrumentation telemetry", "apm_config.telemetry.dd_url"),
    FipsRoute(11, "appsec", "appsec (unused)", None),
    FipsRoute(12, "orchestrator", "orchestrator explorer", "orchestrator_explorer.orchestrator_dd_url"),
    FipsRoute(13, "runtime_security", "runtime security", "runtime_security_config.endpoints.logs_dd_url"),
    FipsRoute(14, "compliance", "compliance (newer agents)", "compliance_config.endpoints.logs_dd_url"),
    FipsRoute(15, "netflow", "netflow (newer agents)", "network_devices.netflow.forwarder.logs_dd_url"),
)

BY_NAME = {r.name: r for r in ROUTES}


def port_for(name: str, start: int = DEFAULT_PORT_RANGE_START) -> int:
    return start + BY_NAME[name].offset


def route_for_port(port: int, start: int = DEFAULT_PORT_RANGE_START) -> FipsRoute | None:
    offset = port - start
    return ROUTES[offset] if 0 <= offset < len(ROUTES) else None


class NonLoopbackFipsAddress(ValueError):
    pass


def validate_local_address(address: str) -> str:
    """The agent refuses a FIPS proxy that is not on loopback (config load fails)."""
    if address == "localhost":
        return address
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        # pkg/util/system IsLocalAddress: "address was set to an invalid IP address: %s"
        raise NonLoopbackFipsAddress(
            f"fips.local_address: address was set to an invalid IP address: {address}"
        ) from None
    if not ip.is_loopback:
        raise NonLoopbackFipsAddress(
            f"fips.local_address: address was set to a non-loopback IP address: {address}"
        )
    return address


# Which intake paths each data type's sender posts to (the agent's forwarders and the event
# platform's endpoints). A path may be legitimate on several ports: CWS and compliance findings
# travel through the logs pipeline, so `/api/v2/logs` belongs to logs, runtime_security and
# compliance alike.
ROUTE_PATHS: dict[str, tuple[str, ...]] = {
    "metrics": ("/api/v1/series", "/api/v2/series", "/api/beta/sketches", "/api/v1/check_run",
                "/intake", "/api/v1/metadata", "/api/v1/validate", "/api/v1/events", "/api/v2/host_metadata",
                "/api/v2/contimage", "/api/v2/contlcycle", "/api/v2/sbom"),
    "traces": ("/api/v0.2/traces", "/api/v0.2/stats", "/api/v0.1/pipeline_stats",
               "/api/v2/data_streams_messages"),
    "profiles": ("/api/v2/profile",),
    "processes": ("/api/v1/collector", "/api/v1/container", "/api/v1/discovery", "/api/v1/connections",
                  "/api/v1/process_discovery"),
    "logs": ("/api/v2/logs", "/v1/input"),
    "dbm_metrics": ("/api/v2/dbmmetrics", "/api/v2/dbmactivity", "/api/v2/dbmmetadata", "/api/v2/dbmhealth",
                    "/api/v2/dbmcolumnstatistics"),
    "dbm_samples": ("/api/v2/databasequery",),
    "network_devices_metadata": ("/api/v2/ndm",),
    "snmp_traps": ("/api/v2/ndmtraps",),
    "instrumentation_telemetry": ("/api/v2/apmtelemetry",),
    "orchestrator": ("/api/v1/orchestrator", "/api/v2/orchmanif"),
    "runtime_security": ("/api/v2/logs", "/api/v2/secdump"),
    "compliance": ("/api/v2/logs", "/api/v2/cspm"),
    "netflow": ("/api/v2/ndmflow",),
}


def routes_for_path(path: str) -> tuple[str, ...]:
    """Names of the data types whose port may carry `path` (empty when the path is unknown)."""
    path = path.split("?", 1)[0].rstrip("/") or "/"
    return tuple(name for name, paths in ROUTE_PATHS.items()
                 if any(path == p or path.startswith(p + "/") for p in paths))
