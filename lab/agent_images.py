"""The agent kinds the lab knows how to run, by image name, and how each runs on each backend.

- `emulated`: `ecs-agent-lab/lab:*`, and the Datadog Agent's names when that image is absent. Docker:
  the lab image; local: `python -m lab.agent run`.
- `serverless-compat`: `ecs-agent-lab/agent-serverless-compat:<version>`. Docker: that image
  (`ecs-lab images build --agent serverless-compat`); local: the installed wheel's binary, through
  `python -m lab.serverless_compat run`.
- `datadog`: `public.ecr.aws/datadog/agent`, `datadog/agent`, `gcr.io/datadoghq/agent`,
  `docker.io/datadog/agent`. Docker: the real image when the engine has it (`docker load`); local:
  the emulated agent stands in.

The backends ask two questions: `agent_kind(image)` (is this an agent, and which) and, on the local
backend, `local_command(image, env)` (the process that plays it). docs/agents.md says what each kind
offers.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

from lab.tasks import AGENT_IMAGE_PREFIXES, LAB_IMAGE, SERVERLESS_COMPAT_REPOSITORY, repository

EMULATED = "emulated"
SERVERLESS_COMPAT = "serverless-compat"
DATADOG = "datadog"
KINDS = (EMULATED, SERVERLESS_COMPAT, DATADOG)
# What `ecs-lab images build --agent NAME` accepts: the kinds the lab builds an image for.
BUILDABLE = {"lab": EMULATED, EMULATED: EMULATED, SERVERLESS_COMPAT: SERVERLESS_COMPAT}

LAB_REPOSITORY = LAB_IMAGE.rsplit(":", 1)[0]


def serverless_compat_version() -> str:
    """The installed datadog-serverless-compat's version: the image tag the lab builds and runs."""
    from lab.serverless_compat import installed_version

    version = installed_version()
    if version == "unknown":
        raise RuntimeError("datadog-serverless-compat is not installed: `pip install "
                           "datadog-serverless-compat` (the lab builds its agent image for the installed "
                           "version)")
    return version


def serverless_compat_image(version: str | None = None) -> str:
    """`ecs-agent-lab/agent-serverless-compat:<version>` (the installed version by default)."""
    return f"{SERVERLESS_COMPAT_REPOSITORY}:{version or serverless_compat_version()}"


def agent_kind(image: str) -> str | None:
    """Which agent an image is (`EMULATED`, `SERVERLESS_COMPAT`, `DATADOG`), or None for an app image.

    The lab image counts as the emulated agent only when asked for as an agent; as a task's image it
    is the sample apps, so it is None here and the backends decide from the task.
    """
    repo = repository(image)
    if repo == SERVERLESS_COMPAT_REPOSITORY:
        return SERVERLESS_COMPAT
    if image.split("@", 1)[0].startswith(AGENT_IMAGE_PREFIXES):
        return DATADOG
    return None


@dataclass
class LocalAgentCommand:
    """How the local backend runs one agent kind as a process.

    `argv` and `env` start it (env = the container's env with the kind's additions); `agent_shim` is
    the body of the `agent` script to put on the container's PATH (what `agent health` runs);
    `ready_port` is the TCP port that answers once its trace receiver is up, on the addresses in
    `LAB_AGENT_HOST_ADDRESSES` (the backend's existing `agent_probe(env)` checks exactly that).
    """

    kind: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    agent_shim: str = ""
    ready_port: int = 8126


def local_command(image: str, env: Mapping[str, str]) -> LocalAgentCommand | None:
    """The process playing `image` on the local backend, or None when the backend's own default (the
    emulated agent, `python -m lab.agent run`) applies: for the Datadog Agent's images and app images.

    Raises RuntimeError with a clear message when `image` names a serverless-compat version other than
    the installed one (the local backend runs the installed wheel's binary, so it cannot run another).
    """
    if agent_kind(image) != SERVERLESS_COMPAT:
        return None
    wanted = image.split("@", 1)[0].rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""
    installed = serverless_compat_version()
    if wanted and wanted not in (installed, "latest"):
        raise RuntimeError(f"{image}: the local backend runs the installed datadog-serverless-compat "
                           f"({installed}); install {wanted} "
                           f"(`pip install datadog-serverless-compat=={wanted}`) "
                           f"or use {serverless_compat_image(installed)}")
    argv = [sys.executable, "-m", "lab.serverless_compat", "run"]
    shim = f'exec "{sys.executable}" -m lab.serverless_compat agent "$@"\n'
    return LocalAgentCommand(SERVERLESS_COMPAT, argv, dict(env), shim,
                             int(env.get("DD_APM_RECEIVER_PORT", "8126") or 8126))


# What each kind offers, by the feature names scenarios check (docs/agents.md has the sources).
# The emulated and the real agent offer them all; serverless-compat only these.
SERVERLESS_COMPAT_OFFERS = frozenset({
    "traces.v0.4",          # PUT/POST /v0.4/traces -> DD_APM_DD_URL/api/v0.2/traces
    "apm.client_stats",     # /v0.6/stats (tracer-computed) -> /api/v0.2/stats
    "apm.info",             # /info (endpoints, client_drop_p0s, peer_tags, config ports)
    "dogstatsd.receive",    # UDP 8125 on every interface
})
FEATURES = frozenset({
    *SERVERLESS_COMPAT_OFFERS,
    "traces.v0.5", "apm.agent_stats", "apm.evp_proxy", "apm.telemetry_proxy", "apm.remote_config",
    "dogstatsd.metrics_to_intake",  # its metric flush goes to https://api.<site> only
    "metrics.agent_running", "metrics.container", "check_runs", "host_metadata",
    "processes", "containers", "logs.containers", "ecs.tags", "agent.health", "agent.status",
    "agent.config", "fips_proxy",
})


def offers(kind: str | None, feature: str) -> bool:
    """Whether an agent kind offers `feature` (a name in FEATURES); unknown names are an error."""
    if feature not in FEATURES:
        raise ValueError(f"unknown agent feature {feature!r}; known: {', '.join(sorted(FEATURES))}")
    if kind == SERVERLESS_COMPAT:
        return feature in SERVERLESS_COMPAT_OFFERS
    return True


def not_offered_reason(image: str, feature: str, info: dict | None = None) -> str | None:
    """None when the agent `image` runs offers `feature`; else the sentence a scenario reports (skip),
    e.g. "processes: not offered by this agent (datadog-serverless-compat 0.19.0, endpoints from
    /info: /v0.4/traces, ...)". `info` is the agent's /info answer when the scenario has it."""
    kind = agent_kind(image)
    if offers(kind, feature):
        return None
    from lab.serverless_compat import not_offered

    version = image.split("@", 1)[0].rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else "unknown"
    endpoints = list((info or {}).get("endpoints") or []) or None
    return not_offered(feature, version, endpoints)
