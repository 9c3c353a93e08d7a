"""The FIPS proxy port map: the one place that knows which port carries which data.

From the Datadog Agent's FIPS proxy settings (pkg/config/setup, `fips.port_range_start`): each
data type goes to `DD_FIPS_PORT_RANGE_START + offset` on `DD_FIPS_LOCAL_ADDRESS`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

DEFAULT_PORT_RANGE_START = 9803
DEFAULT_LOCAL_ADDRESS = "localhost"


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
    FipsRoute(6, "dbm_metrics", "database monitoring metrics and activity", "database_monitoring.metrics.logs_dd_url"),
    FipsRoute(7, "dbm_samples", "database monitoring samples", "database_monitoring.samples.logs_dd_url"),
    FipsRoute(8, "network_devices_metadata", "network devices metadata", "network_devices.metadata.logs_dd_url"),
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
        raise NonLoopbackFipsAddress(
            f"fips.local_address: {address!r} is not 'localhost' or an IP address"
        ) from None
    if not ip.is_loopback:
        raise NonLoopbackFipsAddress(
            f"fips.local_address: address was set to a non-loopback IP address: {address}"
        )
    return address
