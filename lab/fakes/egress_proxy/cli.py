"""`python -m lab.fakes.egress_proxy --listen HOST:PORT`: the recording egress proxy on its own.

(Register it as `ecs-lab fake egress-proxy` with "lab.fakes.egress_proxy.cli:egress_proxy".)
"""

from __future__ import annotations

import threading

import click


@click.command("egress-proxy")
@click.option("--listen", default="127.0.0.1:3128", show_default=True, help="HOST:PORT to listen on.")
def egress_proxy(listen: str) -> None:
    """Record and refuse every outbound attempt (CONNECT or absolute-URI); never connect anywhere."""
    from .proxy import EgressProxy

    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise click.BadParameter(f"expected HOST:PORT, got {listen!r}", param_hint="--listen")
    with EgressProxy(host, int(port)) as proxy:
        click.echo(f"egress proxy: {proxy.url}  (attempts: {proxy.url}/ecs-lab/attempts)")
        click.echo("agent env: " + " ".join(f"{k}={v}" for k, v in proxy.agent_env().items()))
        click.echo("serving; Ctrl-C to stop")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            for a in proxy.attempts:
                click.echo(f"attempt: {a.method} {a.host}:{a.port} from {a.client}")
