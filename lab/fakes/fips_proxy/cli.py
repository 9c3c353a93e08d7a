"""`ecs-lab fake fips-proxy`: the FIPS proxy stand-in (or its HAProxy config) on its own."""

from __future__ import annotations

import threading
from urllib.parse import urlparse

import click

from .ports import DEFAULT_PORT_RANGE_START, ROUTES, NonLoopbackFipsAddress


@click.command("fips-proxy")
@click.option("--upstream", required=True, help="The intake URL every port forwards to (e.g. http://127.0.0.1:8091).")
@click.option("--local-address", default="127.0.0.1", show_default=True,
              help="DD_FIPS_LOCAL_ADDRESS: must be localhost or a loopback address.")
@click.option("--port-range-start", default=DEFAULT_PORT_RANGE_START, show_default=True, type=int,
              help="DD_FIPS_PORT_RANGE_START: the stats page; data ports follow (+1..+15).")
@click.option("--print-haproxy-cfg", is_flag=True,
              help="Print the equivalent HAProxy config (for the real haproxy) and exit.")
def fips_proxy(upstream: str, local_address: str, port_range_start: int, print_haproxy_cfg: bool) -> None:
    """Listen on the 16 FIPS ports, forward each request to the intake, record which port carried it."""
    parsed = urlparse(upstream)
    if parsed.scheme != "http" or not parsed.hostname:
        raise click.BadParameter(f"expected an http:// URL, got {upstream!r}", param_hint="--upstream")
    if print_haproxy_cfg:
        from .haproxy import render_haproxy_cfg

        try:
            click.echo(render_haproxy_cfg(parsed.hostname, parsed.port or 80, bind_address=local_address,
                                          port_range_start=port_range_start))
        except NonLoopbackFipsAddress as exc:
            raise click.BadParameter(str(exc), param_hint="--local-address") from None
        return

    from .proxy import FipsProxy

    try:
        proxy = FipsProxy(upstream, local_address, port_range_start)
    except NonLoopbackFipsAddress as exc:
        raise click.BadParameter(str(exc), param_hint="--local-address") from None
    with proxy:
        click.echo(f"FIPS proxy stand-in -> {upstream}")
        for route in ROUTES:
            click.echo(f"  {proxy.url_for(route.name):<28} {route.name:<26} {route.description}")
        click.echo("agent env: " + " ".join(f"{k}={v}" for k, v in proxy.agent_env().items()))
        click.echo("serving; Ctrl-C to stop")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            for row in proxy.route_stats():
                if row["requests"]:
                    click.echo(f"{row['route']}: {row['requests']} requests, {row['misrouted']} misrouted")
