"""`ecs-lab app`: run the sample traced app, its load mode, and show its entrypoints and task definitions.

Heavy imports (ddtrace, Flask) stay inside the commands: ddtrace must start after DD_AGENT_HOST is
known (see `lab.apps.web`).
"""

from __future__ import annotations

import json
import os
import sys

import click

from lab.apps import entrypoints


@click.group()
def app() -> None:
    """The sample traced app (Flask + ddtrace + DogStatsD) and its DD_AGENT_HOST variants."""


@app.command()
@click.option("--host", default=lambda: os.environ.get("LAB_APP_BIND", "0.0.0.0"), show_default="0.0.0.0",
              help="Address to listen on (env LAB_APP_BIND).")
@click.option("--port", type=int, default=lambda: int(os.environ.get("LAB_APP_PORT", entrypoints.APP_PORT)),
              show_default=str(entrypoints.APP_PORT), help="Port; 0 picks a free one (env LAB_APP_PORT).")
@click.option("--port-file", default=lambda: os.environ.get("LAB_APP_PORT_FILE"),
              help="Write the bound port here once listening (env LAB_APP_PORT_FILE).")
@click.option("--agent-host-from", type=click.Choice(["env", "imds"]), default="env", show_default=True,
              help="env: DD_AGENT_HOST exported by the entryPoint line; imds: ask IMDS in code.")
def web(host: str, port: int, port_file: str | None, agent_host_from: str) -> None:
    """Serve the sample app: /, /work?ms=&depth=, /error, /healthz."""
    from lab.apps.web import serve

    sys.exit(serve(host=host, port=port, port_file=port_file, agent_host_from=agent_host_from))


@app.command()
@click.option("--agent-host", default=lambda: os.environ.get("DD_AGENT_HOST", "127.0.0.1"),
              show_default="$DD_AGENT_HOST or 127.0.0.1", help="Where the agent's APM and DogStatsD listen.")
@click.option("--apm-port", type=int, default=lambda: int(os.environ.get("DD_TRACE_AGENT_PORT", 8126)),
              show_default="8126")
@click.option("--dogstatsd-port", type=int, default=lambda: int(os.environ.get("DD_DOGSTATSD_PORT", 8125)),
              show_default="8125")
@click.option("--spans-per-sec", type=float, default=100.0, show_default=True)
@click.option("--metrics-per-sec", type=float, default=100.0, show_default=True)
@click.option("--duration", type=float, default=5.0, show_default=True, help="Seconds.")
@click.option("--spans-per-trace", type=int, default=3, show_default=True)
@click.option("--service", default="ecs-lab-load", show_default=True)
@click.option("--run-id", default=None, help="Tag value to tell this run apart (default: random).")
@click.option("--buffered/--unbuffered", default=True, show_default=True,
              help="Pack several DogStatsD lines per packet, as the client does under load.")
def load(agent_host: str, apm_port: int, dogstatsd_port: int, spans_per_sec: float, metrics_per_sec: float,
         duration: float, spans_per_trace: int, service: str, run_id: str | None, buffered: bool) -> None:
    """Send ddtrace spans and DogStatsD metrics at a steady rate; print what was sent as JSON."""
    from lab.apps.load import LoadConfigError, run_load

    try:
        report = run_load(agent_host=agent_host, apm_port=apm_port, dogstatsd_port=dogstatsd_port,
                          spans_per_sec=spans_per_sec, metrics_per_sec=metrics_per_sec, duration=duration,
                          spans_per_trace=spans_per_trace, service=service, run_id=run_id,
                          buffered=buffered)
    except (LoadConfigError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(report.as_dict()))


@app.command()
@click.argument("variant", required=False, type=click.Choice(entrypoints.VARIANTS))
@click.option("--json", "as_json", is_flag=True, help="All variants as JSON: name -> entryPoint/command.")
def entrypoint(variant: str | None, as_json: bool) -> None:
    """Show the `sh -c` line a variant uses to export DD_AGENT_HOST (all variants without an argument)."""
    names = [variant] if variant else list(entrypoints.VARIANTS)
    if as_json:
        click.echo(json.dumps({n: {"entryPoint": entrypoints.entry_point(n),
                                   "command": entrypoints.container_command(n)} for n in names}, indent=2))
        return
    for n in names:
        line = entrypoints.shell_line(n)
        if line is None:
            line = "(no entryPoint) command: " + " ".join(entrypoints.IN_CODE_COMMAND)
        shown = line
        click.echo(f"{n}: {shown}" if not variant else shown)


@app.command()
@click.argument("variant", type=click.Choice(entrypoints.VARIANTS))
def taskdef(variant: str) -> None:
    """Print the sample app's task definition for VARIANT (input for register-task-definition)."""
    click.echo(entrypoints.task_definition_json(variant), nl=False)


@app.command("node-install")
def node_install() -> None:
    """Install the Node sample app's npm dependencies (`npm ci` in lab/apps/node) when missing or stale."""
    from lab.apps.node_app import NodeAppUnavailable, ensure_installed

    try:
        path = ensure_installed()
    except NodeAppUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"node sample app ready in {path}")
