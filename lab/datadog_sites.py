"""Datadog sites: the documented `DD_SITE` values and the intake hosts an agent derives from one.

The sites are the "Site Parameter" column of Datadog's "Getting Started with Datadog Sites" page
(docs.datadoghq.com/getting_started/site/): US1 `datadoghq.com`, US3 `us3.datadoghq.com`, US5
`us5.datadoghq.com`, EU1 `datadoghq.eu`, US1-FED `ddog-gov.com`, AP1 `ap1.datadoghq.com`, AP2
`ap2.datadoghq.com`. The agent has no list of its own: it builds each product's host from whatever
site it is given (DataDog/datadog-agent pkg/config/setup/config.go, the `*_dd_url` defaults, and
pkg/config/utils/endpoints.go `AddAgentVersionToDomain`, which puts `<major>-<minor>-<patch>-app.agent.`
in front of the metrics host of a Datadog site).

The lab redirects every intake URL to its own intake (lab.ecs.agent_env); `intended_host` says, for
a route the intake received, which host the agent would have sent it to on the real site, so a
stored payload can carry the site it was meant for (docs/intake.md#sites-and-api-keys).
"""

from __future__ import annotations

SITES = ("datadoghq.com", "us3.datadoghq.com", "us5.datadoghq.com", "datadoghq.eu", "ddog-gov.com",
         "ap1.datadoghq.com", "ap2.datadoghq.com")
DEFAULT_SITE = "datadoghq.com"

# Route prefix -> the product host prefix the agent derives for it ("" = the versioned metrics host).
_ROUTE_HOSTS = (
    ("/api/v0.2/", "trace.agent"),  # apm_config.apm_dd_url: traces and APM stats
    ("/api/v2/profile", "intake.profile"),  # apm_config.profiling_dd_url
    ("/api/v2/apmtelemetry", "instrumentation-telemetry-intake"),  # apm_config.telemetry.dd_url
    ("/api/v2/logs", "agent-http-intake.logs"),  # logs_config.logs_dd_url
    ("/api/v1/collector", "process"), ("/api/v1/container", "process"),  # process_config.process_dd_url
    ("/api/v1/connections", "process"), ("/api/v1/discovery", "process"),
    ("/api/v2/orch", "orchestrator"), ("/api/v1/orchestrator", "orchestrator"),
)


def is_documented(site: str) -> bool:
    return site in SITES


def metrics_host(site: str, agent_version: str) -> str:
    """`https://app.<site>` after AddAgentVersionToDomain: `7-60-0-app.agent.<site>`."""
    major, minor, patch = (agent_version.split(".") + ["0", "0"])[:3]
    return f"{major}-{minor}-{patch}-app.agent.{site}"


def intended_host(site: str, route: str, agent_version: str) -> str:
    """The host an agent configured with `site` sends `route` to (series, check runs, metadata and
    anything unlisted go to the metrics host)."""
    for prefix, product in _ROUTE_HOSTS:
        if route.startswith(prefix):
            return f"{product}.{site}"
    return metrics_host(site, agent_version)


def site_hosts(site: str, agent_version: str) -> dict[str, str]:
    """Every product host the agent derives from `site`, by the agent's setting name."""
    return {
        "dd_url": metrics_host(site, agent_version),
        "apm_config.apm_dd_url": f"trace.agent.{site}",
        "process_config.process_dd_url": f"process.{site}",
        "logs_config.logs_dd_url": f"agent-http-intake.logs.{site}",
        "orchestrator_explorer.orchestrator_dd_url": f"orchestrator.{site}",
        "apm_config.profiling_dd_url": f"intake.profile.{site}",
        "apm_config.telemetry.dd_url": f"instrumentation-telemetry-intake.{site}",
    }
