"""`ecs-lab agent`: run the emulated agent, and the task definition's `agent health` check."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading

import click


@click.group()
def agent() -> None:
    """The emulated Datadog Agent (stands in for public.ecr.aws/datadog/agent)."""


@agent.command()
def run() -> None:
    """Run in the foreground with the DD_* environment; Ctrl-C (or SIGTERM) stops cleanly."""
    from lab.agent.config import AgentConfig, ConfigError
    from lab.agent.main import Agent

    level = os.environ.get("DD_LOG_LEVEL", "info").upper()
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s | CORE | %(levelname)s | (%(name)s) | %(message)s",
    )
    try:
        config = AgentConfig.from_env(os.environ)
    except ConfigError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    # Receivers, parser and flushes are threads of one interpreter: a shorter GIL switch interval
    # keeps the DogStatsD reader from waiting 5 ms behind a busy thread (packets lost meanwhile).
    sys.setswitchinterval(0.001)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    agent_ = Agent(config, os.environ)
    try:
        agent_.start()
    except OSError as exc:  # a busy port names its holder (lab.serving.PortInUseError)
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    with agent_ as a:
        click.echo(
            json.dumps(
                {
                    "event": "ready",
                    "hostname": a.hostname.hostname if a.hostname else "",
                    "ports": a.ports.__dict__,
                    "apm": a.apm_listening,
                    "dogstatsd": a.dogstatsd.snapshot()["listening"] if a.dogstatsd else [],
                }
            ),
            err=False,
        )
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
        click.echo("Agent stopping", err=True)


def _ipc_error(exc: OSError) -> None:
    # pkg/cli/subcommands/health and status: the same advice on any failure to reach the agent.
    click.echo(
        f"Error: could not reach agent: {exc} \nMake sure the agent is running before requesting the "
        "status and contact support if you continue having issues",
        err=True,
    )
    sys.exit(1)


@agent.command()
@click.option("-t", "--timeout", default=20.0, show_default=True, help="timeout in second to query the Agent")
def health(timeout: float) -> None:
    """Print the current agent health (exit 1 when a component is unhealthy or the agent unreachable)."""
    from lab.agent.config import ConfigError
    from lab.agent.ipc import ipc_get_json
    from lab.agent.status import health_text

    try:
        h = ipc_get_json(os.environ, "/agent/status/health", timeout)
    except ConfigError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except (OSError, ValueError) as exc:
        _ipc_error(exc if isinstance(exc, OSError) else OSError(str(exc)))
    click.echo(health_text(h))
    if h.get("Unhealthy"):
        click.echo(f"Error: found {len(h['Unhealthy'])} unhealthy components", err=True)
        sys.exit(1)


@agent.command()
@click.option("-j", "--json", "as_json", is_flag=True, help="print out raw json")
@click.option("-p", "--pretty-json", "pretty", is_flag=True, help="pretty print JSON")
def status(as_json: bool, pretty: bool) -> None:
    """Print the current status of the running agent (its IPC API's /agent/status)."""
    from lab.agent.ipc import ipc_get

    fmt = "json" if as_json or pretty else "text"
    try:
        code, body = ipc_get(os.environ, f"/agent/status?format={fmt}")
    except OSError as exc:
        _ipc_error(exc)
    if code != 200:
        _ipc_error(OSError(f"HTTP {code}: {body.decode(errors='replace').strip()}"))
    if pretty:
        click.echo(json.dumps(json.loads(body), indent=2))
    else:
        click.echo(body.decode().rstrip("\n"))


@agent.command()
def config() -> None:
    """Print the runtime configuration of the running agent (YAML, API key scrubbed)."""
    from lab.agent.ipc import ipc_get

    try:
        code, body = ipc_get(os.environ, "/agent/config")
    except OSError as exc:
        _ipc_error(exc)
    if code != 200:
        _ipc_error(OSError(f"HTTP {code}: {body.decode(errors='replace').strip()}"))
    click.echo(body.decode().rstrip("\n"))
