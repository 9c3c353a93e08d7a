"""The lab's services inside the docker backend: what EC2 and ECS provide around the containers.

`python -m lab.backends.docker_services --world-file /run/ecs-lab/world.json --role ROLE` runs in
the lab image, on the lab's link-local network, where the lab's own fakes hold the addresses AWS
uses (docs/environment.md#link-local-addresses-belong-to-someone-else):

- role `imds` at 169.254.169.254: the fake IMDS on port 80, one listener for every instance,
  answering each caller as the instance its source address belongs to (Docker refuses
  overlapping subnets, so all instances share one link-local network).
- role `services` at 169.254.170.2: task metadata v2/v3/v4 and credentials on port 80, the ECS
  agent introspection API on 51678 (again by caller address), the fake intake on 8091 and the
  recording egress proxy on 3128.
- role `ports`: a userland port forwarder in the docker host's network namespace that plays an
  instance's host ports (`portMappings`): the lab's networks are `internal` so nothing can leave,
  and Docker publishes no ports of containers on internal networks.

The world these answer from is the backend's `World`, written as JSON (`world_to_json`) to a file
mounted read-only; the services reload it when it changes and report the generation they hold at
`GET /ecs-lab/world`, so the backend starts a container only once its metadata is being served.
That and the lab's other controls are on their own port (`CONTROL_PORT`), apart from the AWS
endpoints, so a scenario can take the ECS endpoints down (`POST /ecs-lab/ecs-endpoints
{"up": false}`: their ports refuse connections, as when the ECS agent is down) while the backend
still reads the world.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import errno
import functools
import ipaddress
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from lab.backends.docker_topology import (  # the ports both sides agree on, the per-site listeners
    EGRESS_PROXY_PORT,
    INTAKE_PORT,
    INTROSPECTION_PORT,
    site_intake_ports,
)
from lab.world import Cluster, Container, ContainerInstance, PortMapping, Task, World

log = logging.getLogger("lab.docker_services")

IMDS_PORT = 80
TASK_METADATA_PORT = 80
# The lab's own controls (world generation, egress attempts, faults): no AWS endpoint uses it.
CONTROL_PORT = 8092
WORLD_PATH = "/ecs-lab/world"
ECS_ENDPOINTS_PATH = "/ecs-lab/ecs-endpoints"


# -- the world as JSON ----------------------------------------------------------------------------


def _fields(cls, doc: Mapping[str, Any]) -> dict[str, Any]:
    """Only the keys `cls` knows: a world file from newer code still loads (and vice versa)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in doc.items() if k in names}


def world_to_json(world: World, routes: Mapping[str, str] | None = None,
                  hops: Mapping[str, int] | None = None) -> dict:
    """The world (cluster, instances, tasks, containers) plus `routes` {cidr: instance_id} and `hops`
    {link-local address: IP hops from its instance}, for callers further than one hop (bridge mode)."""
    with world._lock:
        return {
            "generation": world.generation,
            "cluster": dataclasses.asdict(world.cluster),
            "instances": [dataclasses.asdict(inst) for inst in world.instances],
            # Fargate tasks' hosts: task metadata answers their containers as it answers the instances'.
            "fargate_hosts": [dataclasses.asdict(host) for host in world.fargate_hosts],
            "routes": dict(routes or {}),
            "hops": dict(hops or {}),
        }


def world_from_json(doc: Mapping[str, Any], into: World | None = None) -> World:
    """Rebuild a `World` from `world_to_json`'s output; with `into`, replace that world's contents."""
    instances = [_host_from_json(idoc) for idoc in doc.get("instances", [])]
    fargate_hosts = [_host_from_json(idoc) for idoc in doc.get("fargate_hosts", [])]
    world = into or World(Cluster(**_fields(Cluster, doc.get("cluster", {}))))
    with world._lock:
        if into is not None:
            world.cluster = Cluster(**_fields(Cluster, doc.get("cluster", {})))
        world.instances = instances
        world.fargate_hosts = fargate_hosts
        world.touch()
    return world


def _host_from_json(idoc: Mapping[str, Any]) -> ContainerInstance:
    """One instance (or Fargate task host) with its tasks and their containers."""
    tasks = []
    for tdoc in idoc.get("tasks", []):
        containers = []
        for cdoc in tdoc.get("containers", []):
            c = dict(_fields(Container, cdoc))
            c["ports"] = [PortMapping(**_fields(PortMapping, p)) for p in cdoc.get("ports", [])]
            containers.append(Container(**c))
        t = dict(_fields(Task, tdoc))
        t["containers"] = containers
        tasks.append(Task(**t))
    i = dict(_fields(ContainerInstance, idoc))
    i["tasks"] = tasks
    return ContainerInstance(**i)


def write_world_file(path: str | os.PathLike, world: World, routes: Mapping[str, str] | None = None,
                     hops: Mapping[str, int] | None = None) -> int:
    """Write atomically (rename), so a reader never sees half a file; returns the generation."""
    doc = world_to_json(world, routes, hops)
    path = Path(path)
    # Tasks start on several threads at once (one per task, as the ECS agent does): each writer its
    # own temporary file, so one rename never takes another's.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)
    return doc["generation"]


class WorldFile:
    """Keeps a `World` in step with a world file written by the backend (polls its mtime)."""

    def __init__(self, path: str | os.PathLike, on_load=None, interval: float = 0.05) -> None:
        self.path = Path(path)
        self.world = World()
        self.routes: dict[str, str] = {}
        self.hops: dict[str, int] = {}
        self.loaded_generation = -1
        self._on_load = on_load
        self._interval = interval
        self._stamp: tuple[int, int] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="world-file", daemon=True)
        self.errors = 0

    def load(self) -> bool:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return False
        stamp = (st.st_mtime_ns, st.st_ino)
        if stamp == self._stamp:
            return False
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            self.errors += 1
            log.warning("world file %s unreadable (%s); keeping the previous world", self.path, exc)
            return False
        world_from_json(doc, into=self.world)
        self.routes = dict(doc.get("routes", {}))
        self.hops = {str(ip): int(h) for ip, h in (doc.get("hops") or {}).items()}
        self._stamp = stamp
        if self._on_load:  # before the generation is announced: the backend waits on it
            self._on_load(self)
        self.loaded_generation = int(doc.get("generation", 0))
        return True

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.load()

    def start(self) -> WorldFile:
        self.load()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def resolve_instance(world: World, routes: Mapping[str, str], peer: str | None) -> ContainerInstance | None:
    """The instance a caller belongs to: its own address first, then the backend's address routes."""
    if not peer:
        return None
    found = world.find_container(ip=peer)
    if found:
        return found[0]
    inst = world.instance_by_ip(peer)
    if inst:
        return inst
    addr = ipaddress.ip_address(peer)
    for cidr, iid in routes.items():
        if addr in ipaddress.ip_network(cidr, strict=False):
            for candidate in list(world.instances):
                if candidate.instance_id == iid:
                    return candidate
    return None


def static_world(world_file: WorldFile, instances: int) -> None:
    """The topology's instances with no tasks: what `docker compose up` gets without `ecs-lab`."""
    from lab.backends.docker_topology import Topology

    topo = Topology(instances=instances)
    world = World()
    ids = {n: world.add_instance(topo.private_ip(n)).instance_id for n in range(1, instances + 1)}
    routes = topo.routes(ids)
    world_from_json(world_to_json(world, routes), into=world_file.world)
    world_file.routes = routes
    world_file.loaded_generation = 0
    if world_file._on_load:
        world_file._on_load(world_file)


EGRESS_ATTEMPTS_PATH = "/ecs-lab/egress-attempts"


def _world_app(world_file: WorldFile, extra: dict | None = None) -> web.Application:
    async def world_state(_request: web.Request) -> web.Response:
        return web.json_response({"generation": world_file.loaded_generation, "errors": world_file.errors,
                                  "instances": len(world_file.world.instances), **(extra or {})})

    app = web.Application()
    app.router.add_get(WORLD_PATH, world_state)
    return app


# -- roles ----------------------------------------------------------------------------------------


def run_imds(world_file: WorldFile, stop: threading.Event, host: str = "0.0.0.0") -> None:
    from lab.fakes.imds.server import ImdsServer

    routed: set[tuple[str, str]] = set()

    def add_routes(wf: WorldFile) -> None:
        for cidr, iid in wf.routes.items():
            if (cidr, iid) not in routed:
                imds.model.route(cidr, iid)
                routed.add((cidr, iid))
        # Bridge-mode containers are one hop further than their instance: the hop limit counts it.
        imds.model.caller_hops = dict(wf.hops)
        # The reload replaced the instances: policies set through the control API hold on.
        imds.model.reapply_policies()

    with ImdsServer(world_file.world) as imds:
        world_file._on_load = add_routes
        add_routes(world_file)
        imds.listen(host, IMDS_PORT)
        # The backend's readiness probe and world generation check (not an IMDS path: own port).
        imds._thread.add_app(_world_app(world_file, {"role": "imds"}), host, CONTROL_PORT)
        log.info("IMDS on %s:%s", host, IMDS_PORT)
        stop.wait()


def _introspection_app(world_file: WorldFile, model) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        from lab.fakes.ecs_metadata.server import _to_response

        instance = resolve_instance(world_file.world, world_file.routes, request.remote)
        if instance is None:
            return web.json_response(
                f"ecs-agent-lab: no emulated instance owns caller {request.remote}", status=404)
        if request.method not in ("GET", "HEAD"):
            return web.json_response("method not allowed", status=405)
        return _to_response(model.introspection(instance, request.path, dict(request.query)))

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


ENGINE_SOCKET = "/var/run/docker.sock"  # where the services container has the engine's socket


def run_services(world_file: WorldFile, stop: threading.Event, host: str = "0.0.0.0") -> None:
    from lab.fakes.ecs_metadata.server import EcsMetadataServer
    from lab.fakes.ecs_metadata.stats import DockerStats
    from lab.fakes.egress_proxy.proxy import EgressProxy
    from lab.fakes.intake.server import IntakeServer

    # The ECS agent reads a container's stats from its engine: with the engine's socket mounted (the
    # backend mounts it), the tasks' `/stats` and `/task/stats` are docker's own for each container.
    # The world's pids are the docker host's, which mean other processes in this container.
    stats = DockerStats() if os.path.exists(ENGINE_SOCKET) else None
    with EcsMetadataServer(world_file.world, stats) as ecs, IntakeServer() as intake, \
            EgressProxy(host, EGRESS_PROXY_PORT) as egress:
        async def attempts(_request: web.Request) -> web.Response:
            # What the recording egress proxy saw (no_egress reads it from the host).
            return web.json_response({"attempts": [a.as_json() for a in egress.attempts],
                                      "malformed": egress.malformed})

        endpoints = [ecs.listen_task_metadata(host, TASK_METADATA_PORT),
                     ecs._server.add_app(_introspection_app(world_file, ecs.model), host, INTROSPECTION_PORT)]

        async def ecs_endpoints(request: web.Request) -> web.Response:
            """Take the ECS agent's endpoints (task metadata, introspection) down or up again."""
            from lab.serving import listen_again, stop_listening

            try:
                up = (await request.json())["up"]
            except (ValueError, KeyError, TypeError):
                return web.json_response({"error": 'expected {"up": true|false}'}, status=400)
            if not isinstance(up, bool):
                return web.json_response({"error": '"up" must be true or false'}, status=400)
            for listener in endpoints:
                if up:
                    await listen_again(listener)
                else:
                    stop_listening(listener)
            log.info("ECS endpoints %s", "up" if up else "down (connections refused)")
            return web.json_response({"up": up})

        control = _world_app(world_file, {"role": "services"})
        control.router.add_get(EGRESS_ATTEMPTS_PATH, attempts)
        control.router.add_post(ECS_ENDPOINTS_PATH, ecs_endpoints)
        ecs._server.add_app(control, host, CONTROL_PORT)
        intake.listen(host, INTAKE_PORT)
        # One listener per documented Datadog site (lab.ecs.agent_env points DD_SITE=<site> there).
        for port, site in site_intake_ports().items():
            intake.listen(host, port, site=site)
        log.info("task metadata :%s, introspection :%s, intake :%s, egress proxy :%s",
                 TASK_METADATA_PORT, INTROSPECTION_PORT, INTAKE_PORT, egress.bound_port)
        stop.wait()


# -- ports: an instance's host ports --------------------------------------------------------------

# The forwarder's exit status when a host port it was given is held by another socket (its one line
# on stderr names it: `host port HOSTIP:PORT/PROTO is in use`); the backend picks another dynamic
# port then (docs/docker_backend.md#dynamic-host-ports).
PORT_IN_USE_EXIT = 3
# Its line once every port is bound (`PORTS_BOUND N`, with `--report-bound`): what the backend waits
# for. Not a connection to the port: a listener someone else holds there would answer that.
PORTS_BOUND = "host ports bound:"


class HostPortInUse(OSError):
    """A host port the forwarder was to bind is held by another socket; str() is HOSTIP:PORT/PROTO."""


def parse_mapping(text: str) -> tuple[str, int, str, str, int]:
    """`HOSTIP:PORT/PROTO=TARGETIP:PORT` -> (host_ip, host_port, proto, target_ip, target_port)."""
    try:
        left, right = text.split("=", 1)
        bind, _, proto = left.partition("/")
        host_ip, host_port = bind.rsplit(":", 1)
        target_ip, target_port = right.rsplit(":", 1)
        proto = proto or "tcp"
        if proto not in ("tcp", "udp"):
            raise ValueError(f"protocol {proto!r}")
        return host_ip, int(host_port), proto, target_ip, int(target_port)
    except ValueError as exc:
        raise ValueError(f"bad port mapping {text!r} (want HOSTIP:PORT/tcp|udp=TARGETIP:PORT): {exc}"
                         ) from None


class _UdpRelay(asyncio.DatagramProtocol):
    """DogStatsD is one-way: every datagram goes on to the target from one upstream socket."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.upstream = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.upstream.setblocking(False)
        self.forwarded = 0

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            self.upstream.sendto(data, self.target)
            self.forwarded += 1
        except OSError as exc:  # target not up yet: dropped, as the kernel would drop it
            log.debug("udp relay to %s: %s", self.target, exc)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            writer.close()
        except Exception:  # noqa: BLE001
            pass


async def relay_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    target: tuple[str, int]) -> None:
    """One accepted connection relayed both ways to `target` (closed at once when it refuses)."""
    try:
        up_reader, up_writer = await asyncio.open_connection(*target)
    except OSError:
        writer.close()
        return
    await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _serve_ports(mappings: list[tuple[str, int, str, str, int]], stop: asyncio.Event,
                       bound: asyncio.Event, report_bound: bool = False) -> None:
    servers = []
    transports = []
    for host_ip, host_port, proto, target_ip, target_port in mappings:
        try:
            if proto == "tcp":
                handle = functools.partial(relay_tcp, target=(target_ip, target_port))
                servers.append(await asyncio.start_server(handle, host_ip, host_port, reuse_address=True))
            else:
                loop = asyncio.get_running_loop()
                t, _ = await loop.create_datagram_endpoint(
                    lambda _t=(target_ip, target_port): _UdpRelay(_t), local_addr=(host_ip, host_port))
                transports.append(t)
        except OSError as exc:
            for s in servers:
                s.close()
            for t in transports:
                t.close()
            if exc.errno == errno.EADDRINUSE:
                raise HostPortInUse(errno.EADDRINUSE, f"{host_ip}:{host_port}/{proto}") from None
            raise
        log.info("host port %s:%s/%s -> %s:%s", host_ip, host_port, proto, target_ip, target_port)
    if report_bound:
        print(f"{PORTS_BOUND} {len(mappings)}", file=sys.stderr, flush=True)
    bound.set()
    await stop.wait()
    for s in servers:
        s.close()
    for t in transports:
        t.close()


def run_ports(mappings: list[str], stop: threading.Event, report_bound: bool = False) -> None:
    parsed = [parse_mapping(m) for m in mappings]
    loop = asyncio.new_event_loop()
    done = asyncio.Event()
    bound = asyncio.Event()
    threading.Thread(target=lambda: (stop.wait(), loop.call_soon_threadsafe(done.set)), daemon=True).start()
    loop.run_until_complete(_serve_ports(parsed, done, bound, report_bound))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.backends.docker_services", description=__doc__)
    parser.add_argument("--role", choices=("imds", "services", "ports"), required=True)
    parser.add_argument("--world-file", default="/run/ecs-lab/world.json")
    parser.add_argument("--map", dest="mappings", action="append", default=[],
                        help="role ports: HOSTIP:PORT/tcp|udp=TARGETIP:PORT (repeatable)")
    parser.add_argument("--report-bound", action="store_true",
                        help=f"role ports: print '{PORTS_BOUND} N' on stderr once every port is bound")
    parser.add_argument("--instances", type=int, default=0,
                        help="with no world file yet: serve a world of N instances (docker compose)")
    parser.add_argument("--log-level", default=os.environ.get("LAB_LOG_LEVEL", "info"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.role == "ports":
        try:
            run_ports(args.mappings, stop, args.report_bound)
        except HostPortInUse as exc:
            print(f"host port {exc.strerror} is in use", file=sys.stderr, flush=True)
            return PORT_IN_USE_EXIT
        return 0
    world_file = WorldFile(args.world_file).start()
    if world_file.loaded_generation < 0 and args.instances:
        static_world(world_file, args.instances)
    started = time.monotonic()
    try:
        (run_imds if args.role == "imds" else run_services)(world_file, stop)
    finally:
        world_file.stop()
        log.info("%s stopped after %.1fs", args.role, time.monotonic() - started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
