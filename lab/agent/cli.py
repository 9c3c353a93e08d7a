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


@agent.command()
@click.option("--timeout", default=5.0, show_default=True, help="seconds to wait for the agent")
def health(timeout: float) -> None:
    """Exit 0 when the running agent is healthy, 1 when not or unreachable."""
    from lab.agent.config import ConfigError, ipc_address
    from lab.agent.status import fetch, health_text

    try:
        host, port = ipc_address(os.environ)
        _code, h = fetch(host, port, "/agent/status/health", timeout)
    except ConfigError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:
        click.echo(
            f"Error: could not reach agent: {exc}\nMake sure the agent is running before requesting "
            "the status and contact support if you continue having issues.",
            err=True,
        )
        sys.exit(1)
    click.echo(health_text(h))
    sys.exit(0 if not h.get("unhealthy") else 1)


@agent.command()
@click.option("--json", "as_json", is_flag=True, help="print the raw status document")
def status(as_json: bool) -> None:
    """Print the running agent's status page."""
    from lab.agent.config import ipc_address
    from lab.agent.status import fetch, status_text

    host, port = ipc_address(os.environ)
    try:
        _code, s = fetch(host, port, "/agent/status")
    except OSError as exc:
        click.echo(f"Error: could not reach agent: {exc}", err=True)
        sys.exit(1)
    click.echo(json.dumps(s, indent=2) if as_json else status_text(s))
