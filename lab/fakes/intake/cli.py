"""`ecs-lab fake intake`: run the fake Datadog intake on its own."""

from __future__ import annotations

import signal
import threading

import click

from lab.fakes.intake.server import IntakeServer
from lab.fakes.intake.store import DEFAULT_MAX_BYTES, DEFAULT_MAX_PAYLOADS
from lab.serving import PortInUseError


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise click.BadParameter(f"expected HOST:PORT (e.g. 127.0.0.1:8091), got {value!r}")
    return host.strip("[]"), int(port)


@click.command("intake")
@click.option("--listen", "listen", multiple=True, default=["127.0.0.1:8091"], show_default=True,
              metavar="HOST:PORT", help="Where to serve (repeatable; port 0 picks a free one).")
@click.option("--max-payloads", type=click.IntRange(1), default=DEFAULT_MAX_PAYLOADS, show_default=True,
              help="Keep at most this many payloads; the oldest are evicted first, and counted.")
@click.option("--max-mb", type=click.IntRange(1), default=DEFAULT_MAX_BYTES // (1024 * 1024),
              show_default=True, help="Keep at most this many MiB of payload bodies (same eviction).")
@click.option("--collector-interval", type=click.IntRange(1), default=10, show_default=True,
              help="ResCollector status.interval answered to the process agent (seconds).")
@click.option("--collector-active-clients", type=click.IntRange(0), default=0, show_default=True,
              help="ResCollector status.activeClients: > 0 switches the agent's real-time process "
                   "collection on, as if someone watched the live processes page.")
@click.option("--fast-ingest", is_flag=True,
              help="Check series, sketches and traces on arrival by compression and top-level framing "
                   "only, and decode them fully when queried (several times cheaper per payload; a body "
                   "that fails the full decode later is flagged and counted in decode_errors).")
def intake(listen: tuple[str, ...], max_payloads: int, max_mb: int, collector_interval: int,
           collector_active_clients: int, fast_ingest: bool) -> None:
    """Serve a fake Datadog intake (fakeintake-compatible query API) until Ctrl-C.

    \b
    Point the agent at it:
      DD_DD_URL=URL DD_APM_DD_URL=URL DD_PROCESS_CONFIG_PROCESS_DD_URL=URL
      DD_LOGS_CONFIG_LOGS_DD_URL=HOST:PORT DD_LOGS_CONFIG_USE_HTTP=true DD_LOGS_CONFIG_LOGS_NO_SSL=true
    \b
    Then query it:
      curl 'URL/fakeintake/payloads?endpoint=/api/v2/series&format=json&metric=my.metric'
      curl URL/fakeintake/routestats
    """
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server = IntakeServer(max_payloads=max_payloads, max_bytes=max_mb * 1024 * 1024,
                          collector_interval=collector_interval,
                          collector_active_clients=collector_active_clients,
                          ingest="fast" if fast_ingest else "full")
    try:
        with server:
            for spec in listen:
                host, port = _host_port(spec)
                try:
                    listener = server.listen(host, port)
                except PortInUseError as exc:
                    raise click.ClickException(str(exc)) from None
                click.echo(f"intake: {listener.url}")
            url = server.url
            click.echo(f"export DD_DD_URL={url} DD_APM_DD_URL={url} DD_PROCESS_CONFIG_PROCESS_DD_URL={url}")
            click.echo(f"query API: {url}/fakeintake/payloads?endpoint=/api/v2/series&format=json, "
                       f"{url}/fakeintake/routestats")
            click.echo(f"limits: {max_payloads} payloads, {max_mb} MiB (oldest evicted first, counted); "
                       f"ingest: {server.store.ingest_mode}")
            click.echo("Ctrl-C to stop.", err=True)
            while not stop.wait(0.5):
                pass
    finally:
        click.echo("intake stopped.", err=True)
