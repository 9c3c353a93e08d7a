"""`ecs-lab fake imds`: run the fake EC2 instance metadata service on its own."""

from __future__ import annotations

import ipaddress
import logging
import signal
import threading

import click

from lab.fakes.imds.server import ImdsServer
from lab.serving import PortInUseError
from lab.world import World


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise click.BadParameter(f"expected HOST:PORT (e.g. 127.0.0.1:1338), got {value!r}")
    return host.strip("[]"), int(port)


def _tag(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"expected KEY=VALUE, got {value!r}")
    return key, val


@click.command("imds")
@click.option("--listen", "listen", default="127.0.0.1:1338", show_default=True, metavar="HOST:PORT",
              help="Where to serve (port 0 picks a free one). With --instances N, the port each instance's "
                   "private IP serves on.")
@click.option("--instances", "count", type=click.IntRange(1, 254), default=1, show_default=True,
              help="Emulate N instances, each on its own private IP (SUBNET.1 .. SUBNET.N) "
                   "at the --listen port.")
@click.option("--subnet", default="127.0.1.0/24", show_default=True,
              help="With --instances > 1: the loopback subnet the instances' private IPs come from.")
@click.option("--shared", is_flag=True,
              help="Also open one shared listener at --listen that answers each caller as the instance its "
                   "source address belongs to (the docker backend's 169.254.169.254).")
@click.option("--require-token", is_flag=True, help="HttpTokens=required: IMDSv1 GETs get 401.")
@click.option("--disabled", is_flag=True, help="HttpEndpoint=disabled: every request gets 403.")
@click.option("--hop-limit", type=click.IntRange(1, 64), default=2, show_default=True,
              help="HttpPutResponseHopLimit, recorded and reported (a userspace server cannot enforce it).")
@click.option("--no-tags", is_flag=True, help="InstanceMetadataTags=disabled: tags/instance answers 404.")
@click.option("--instance-id", default=None, help="Instance id (default: derived from the private IP).")
@click.option("--local-ipv4", default=None,
              help="Private IP answered as local-ipv4 (default: the --listen host, "
                   "or 127.0.0.1 for a wildcard).")
@click.option("--public-ipv4", default=None, help="Public IP (default: none, so public-ipv4 answers 404).")
@click.option("--region", default="us-east-1", show_default=True)
@click.option("--availability-zone", default=None, help="Default: the region + a, b, c by instance.")
@click.option("--instance-type", default="m5.large", show_default=True)
@click.option("--account-id", default="123456789012", show_default=True)
@click.option("--iam-role", default="ecs-lab-instance-role", show_default=True,
              help="Instance profile role served under iam/security-credentials/.")
@click.option("--no-iam-role", is_flag=True, help="No instance profile: iam/ answers 404.")
@click.option("--tag", "tags", multiple=True, callback=lambda _c, _p, v: [_tag(t) for t in v],
              metavar="KEY=VALUE", help="Instance tag (repeatable). Default: Name=ecs-lab-instance-N.")
@click.option("--spot-action", type=click.Choice(["terminate", "stop", "hibernate"]), default=None,
              help="Start with a spot interruption notice pending (two minutes out).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def imds(listen: str, count: int, subnet: str, shared: bool, require_token: bool, disabled: bool,
         hop_limit: int, no_tags: bool, instance_id: str | None, local_ipv4: str | None,
         public_ipv4: str | None, region: str, availability_zone: str | None, instance_type: str,
         account_id: str, iam_role: str, no_iam_role: bool, tags: list[tuple[str, str]],
         spot_action: str | None, log_level: str) -> None:
    """Serve a fake EC2 instance metadata service (IMDSv1 + IMDSv2) until Ctrl-C.

    \b
    Examples:
      ecs-lab fake imds --listen 127.0.0.1:1338 --require-token
      ecs-lab fake imds --instances 3 --listen 0.0.0.0:1338      # 127.0.1.1-3, one identity each
    The lab's control API (faults, spot notices, request counts) is under <url>/ecs-lab/.
    """
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    host, port = _host_port(listen)
    if count > 1 and (instance_id or local_ipv4 or public_ipv4):
        raise click.UsageError("--instance-id/--local-ipv4/--public-ipv4 describe one instance; "
                               "drop them or use --instances 1")
    from lab.world import Cluster

    world = World(Cluster(region=region, account_id=account_id))
    common = dict(imds_tokens_required=require_token, imds_enabled=not disabled, imds_hop_limit=hop_limit,
                  imds_tags_enabled=not no_tags, instance_type=instance_type,
                  iam_role=None if no_iam_role else iam_role)
    if count == 1:
        wildcard = host in ("0.0.0.0", "::", "")
        ip = local_ipv4 or ("127.0.0.1" if wildcard else host)
        kw = dict(common, public_ip=public_ipv4)
        if instance_id:
            kw["instance_id"] = instance_id
        if availability_zone:
            kw["availability_zone"] = availability_zone
        if tags:
            kw["tags"] = dict(tags)
        world.add_instance(ip, **kw)
    else:
        net = ipaddress.ip_network(subnet, strict=False)
        hosts = list(net.hosts())
        if len(hosts) < count:
            raise click.UsageError(f"{subnet} has room for {len(hosts)} instances, not {count}")
        for n in range(count):
            world.add_instance(str(hosts[n]), **common, **({"tags": dict(tags)} if tags else {}))

    stop = threading.Event()
    # Ctrl-C and SIGTERM both ask for a clean stop; a second Ctrl-C must not cut the cleanup short.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        with ImdsServer(world) as server:
            try:
                if count == 1 and not shared:
                    server.listen(host, port, world.instances[0])
                else:
                    if count > 1:
                        for inst in world.instances:
                            server.listen(inst.private_ip, port, inst)
                    if shared:
                        server.listen(host, port, None)
            except PortInUseError as exc:
                raise click.ClickException(str(exc)) from None
            if spot_action:
                for inst in world.instances:
                    server.model.interrupt_spot(inst.instance_id, spot_action)
            for listener, iid in server.listeners:
                if iid is None:
                    click.echo(f"IMDS (shared: callers resolved by source address): {listener.url}")
                    continue
                inst = server.model.instance(iid)
                policy = server.model.policy(inst)
                click.echo(f"IMDS for {iid} (local-ipv4 {inst.private_ip}, {inst.availability_zone}, "
                           f"HttpTokens={policy['HttpTokens']}, HttpEndpoint={policy['HttpEndpoint']}): "
                           f"{listener.url}")
            first = server.listeners[0][0].url
            click.echo(f"export AWS_EC2_METADATA_SERVICE_ENDPOINT={first}")
            click.echo(f"control API: {first}/ecs-lab/ (faults, spot, stats, requests, instances)")
            click.echo("Ctrl-C to stop.", err=True)
            while not stop.wait(0.5):
                pass
    finally:
        click.echo("IMDS stopped.", err=True)
