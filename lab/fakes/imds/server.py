"""The fake IMDS on the wire: aiohttp listeners in front of `ImdsModel`, and the owner that runs them.

A listener is either bound to one instance (the local backend: instance N's IMDS is its own
address, `http://127.0.1.N:1338`) or shared (the docker backend: one 169.254.169.254 on a link-local
network every instance's containers join), in which case the caller's source address says which
instance answers (`ImdsModel.resolve`).

The lab's control API lives under `/ecs-lab/`, a prefix no IMDS version uses:

    GET    /ecs-lab/health
    GET    /ecs-lab/instances                        MetadataOptions + listeners of every instance
    POST   /ecs-lab/instances/{instance_id}/policy   {"tokens_required", "enabled", "hop_limit",
                                                      "tags_enabled"}
    POST   /ecs-lab/policy                           the same, for the listener's own instance
    GET    /ecs-lab/faults                           rules in force
    POST   /ecs-lab/faults                           {"path", "instance_id", "method", "delay_ms",
                                                      "status", "drop", "times"}
    DELETE /ecs-lab/faults[/{id}]
    POST   /ecs-lab/spot                             {"instance_id", "action", "in_seconds"}
    DELETE /ecs-lab/spot[?instance_id=...]
    GET    /ecs-lab/stats, DELETE /ecs-lab/stats     counts per instance, path and status
    GET    /ecs-lab/requests?limit=N                 the most recent requests (who asked what)

On a bound listener, `instance_id` may be left out of policy and spot calls: it means that listener's
instance.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict

from aiohttp import web

from lab.fakes.imds.model import Fault, ImdsModel, ImdsRequest
from lab.serving import Listener, ServerThread
from lab.world import ContainerInstance, World

log = logging.getLogger("lab.imds")

CONTROL_PREFIX = "/ecs-lab"
_INSTANCE_KEY = web.AppKey("imds_instance", object)  # the bound ContainerInstance, or None
_HOPS_KEY = web.AppKey("imds_hops", int)  # how many IP hops the listener's callers are from the instance


class ImdsServer:
    """Owner of the fake IMDS: `listen()` opens listeners, `stop()` (or leaving the `with`) closes
    them all.

    Usage::

        with ImdsServer(world) as imds:
            url = imds.listen("127.0.0.1", 0, instance=world.instance(1)).url
            imds.model.faults.add(path="/latest/api/token", status=503, times=1)
    """

    def __init__(self, world: World, *, clock: Callable[[], float] = time.time,
                 model: ImdsModel | None = None, name: str = "imds") -> None:
        self.world = world
        self.model = model or ImdsModel(world, clock=clock)
        self._thread = ServerThread(name)
        self.listeners: list[tuple[Listener, str | None]] = []
        self.control_rejected: Counter[str] = Counter()

    # -- owning -------------------------------------------------------------------------------------
    def listen(self, host: str, port: int, instance: ContainerInstance | None = None,
               hops: int = 1) -> Listener:
        """Serve IMDS on host:port (0 picks a free port) as `instance`, or, when None, as whichever
        instance the caller's source address belongs to. `hops`: how many IP hops this listener's
        callers are from the instance (2: bridge-mode containers), which the hop limit is held to."""
        if hops < 1:
            raise ValueError(f"hops must be at least 1, got {hops!r}")
        app = self._app(instance)
        app[_HOPS_KEY] = hops
        if hops > 1:
            self.model.hop_limit_enforced = True
        listener = self._thread.add_app(app, host, port)
        self.listeners.append((listener, instance.instance_id if instance else None))
        log.info("IMDS listening on %s for %s", listener.url,
                 instance.instance_id if instance else "callers resolved by source address")
        return listener

    def listen_per_instance(self, port: int) -> dict[str, Listener]:
        """One listener per instance of the world on its private IP (the local backend's layout)."""
        return {inst.instance_id: self.listen(inst.private_ip, port, inst)
                for inst in list(self.world.instances)}

    def url(self, instance: ContainerInstance | None = None) -> str:
        """The URL of the first listener bound to `instance` (None: the first shared listener)."""
        iid = instance.instance_id if instance else None
        for listener, bound in self.listeners:
            if bound == iid:
                return listener.url
        raise KeyError(f"no IMDS listener for {iid or 'shared callers'}")

    def start(self) -> ImdsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._thread.stop()
        self.listeners.clear()

    def __enter__(self) -> ImdsServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- the wire -----------------------------------------------------------------------------------
    def _app(self, instance: ContainerInstance | None) -> web.Application:
        app = web.Application()
        app[_INSTANCE_KEY] = instance
        r = app.router
        r.add_get(CONTROL_PREFIX + "/health", self._health)
        r.add_get(CONTROL_PREFIX + "/instances", self._instances)
        r.add_post(CONTROL_PREFIX + "/instances/{instance_id}/policy", self._set_policy)
        r.add_post(CONTROL_PREFIX + "/policy", self._set_policy)
        r.add_get(CONTROL_PREFIX + "/faults", self._faults)
        r.add_post(CONTROL_PREFIX + "/faults", self._add_fault)
        r.add_delete(CONTROL_PREFIX + "/faults", self._clear_faults)
        r.add_delete(CONTROL_PREFIX + "/faults/{fault_id}", self._remove_fault)
        r.add_post(CONTROL_PREFIX + "/spot", self._spot)
        r.add_delete(CONTROL_PREFIX + "/spot", self._clear_spot)
        r.add_get(CONTROL_PREFIX + "/stats", self._stats)
        r.add_delete(CONTROL_PREFIX + "/stats", self._reset_stats)
        r.add_get(CONTROL_PREFIX + "/requests", self._requests)
        r.add_route("*", CONTROL_PREFIX + "/{tail:.*}", self._control_unknown)
        r.add_route("*", "/{tail:.*}", self._imds)
        return app

    async def _imds(self, request: web.Request) -> web.StreamResponse:
        peername = request.transport.get_extra_info("peername") if request.transport else None
        peer = peername[0] if peername else None
        bound = request.app[_INSTANCE_KEY]
        why = ""
        if bound is not None:
            instance = bound
        else:
            instance, why = self.model.resolve(peer)
            if instance is None:
                log.warning("IMDS %s %s from %s: %s", request.method, request.path, peer, why)
        hops = request.app[_HOPS_KEY]
        if bound is None:
            # A shared listener tells callers apart by address: their distance too.
            hops = max(hops, self.model.hops_of(peer))
        answer = self.model.handle(
            ImdsRequest(request.method, request.path, dict(request.headers), peer, hops), instance, why)
        if answer.delay:
            await asyncio.sleep(answer.delay)
        if answer.drop:
            if answer.note:
                log.info("IMDS %s %s from %s: %s", request.method, request.path, peer, answer.note)
            # Close without a status line: the client sees the connection reset / empty reply.
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        if answer.note and answer.status >= 400:
            log.info("IMDS %s %s from %s -> %s (%s)", request.method, request.path, peer,
                     answer.status, answer.note)
        # EC2 sends a bare `text/plain` (no charset), JSON documents included.
        headers = {"Server": "EC2ws", "Content-Type": answer.content_type, **answer.headers}
        if answer.note and answer.status >= 400:
            headers.setdefault("X-Ecs-Lab-Reason", answer.note)
        response = web.Response(status=answer.status, body=answer.body.encode(), headers=headers)
        if answer.status >= 400:
            # EC2's IMDS closes the connection after every error answer (`Connection: close` on its
            # 4xx/5xx). Clients rely on it: the AWS SDK for JavaScript keeps its agent's socket
            # alive otherwise, and a Node process that asked for a missing path never exits.
            response.force_close()
        return response

    # -- control API --------------------------------------------------------------------------------
    def _reject(self, what: str, status: int, message: str) -> web.Response:
        self.control_rejected[what] += 1
        log.warning("IMDS control %s rejected: %s", what, message)
        return web.json_response({"error": message}, status=status)

    async def _json_body(self, request: web.Request) -> dict:
        raw = await request.read()
        if not raw.strip():
            return {}
        doc = json.loads(raw)
        if not isinstance(doc, dict):
            raise ValueError("the body must be a JSON object")
        return doc

    def _target(self, request: web.Request, doc: dict, key: str = "instance_id") -> str:
        iid = request.match_info.get(key) or doc.get(key) or request.query.get(key)
        if not iid:
            bound = request.app[_INSTANCE_KEY]
            if bound is None:
                raise ValueError(f"{key} is required on a shared listener")
            iid = bound.instance_id
        self.model.instance(iid)  # KeyError names the known instances
        return iid

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "instances": len(self.world.instances)})

    async def _instances(self, request: web.Request) -> web.Response:
        listeners = [(listener.url, iid) for listener, iid in self.listeners]
        return web.json_response({"instances": self.model.instances_json(listeners)})

    async def _set_policy(self, request: web.Request) -> web.Response:
        try:
            doc = await self._json_body(request)
            iid = self._target(request, doc)
            doc.pop("instance_id", None)
            allowed = {"tokens_required", "enabled", "hop_limit", "tags_enabled"}
            if set(doc) - allowed:
                raise ValueError(f"unknown policy field(s) {sorted(set(doc) - allowed)}; "
                                 f"allowed: {sorted(allowed)}")
            inst = self.model.set_policy(iid, **doc)
        except (ValueError, KeyError, TypeError) as exc:
            return self._reject("policy", 400, str(exc))
        return web.json_response(self.model.policy(inst))

    async def _faults(self, request: web.Request) -> web.Response:
        return web.json_response({"faults": [f.as_dict() for f in self.model.faults.list()]})

    async def _add_fault(self, request: web.Request) -> web.Response:
        try:
            fault = self.model.faults.add(Fault.from_json(await self._json_body(request)))
        except (ValueError, TypeError) as exc:
            return self._reject("faults", 400, str(exc))
        log.info("IMDS fault #%d added: %s", fault.id, fault)
        return web.json_response(fault.as_dict(), status=201)

    async def _clear_faults(self, request: web.Request) -> web.Response:
        n = len(self.model.faults.list())
        self.model.faults.clear()
        return web.json_response({"removed": n})

    async def _remove_fault(self, request: web.Request) -> web.Response:
        try:
            fault_id = int(request.match_info["fault_id"])
        except ValueError:
            return self._reject("faults", 400,
                                f"fault id must be an integer, got {request.match_info['fault_id']!r}")
        if not self.model.faults.remove(fault_id):
            return self._reject("faults", 404, f"no fault #{fault_id}")
        return web.json_response({"removed": 1})

    async def _spot(self, request: web.Request) -> web.Response:
        try:
            doc = await self._json_body(request)
            iid = self._target(request, doc)
            at = self.model.clock() + float(doc["in_seconds"]) if "in_seconds" in doc else None
            spot = self.model.interrupt_spot(iid, doc.get("action", "terminate"), at)
        except (ValueError, KeyError, TypeError) as exc:
            return self._reject("spot", 400, str(exc))
        return web.json_response({"instance_id": iid, **spot.as_json()}, status=201)

    async def _clear_spot(self, request: web.Request) -> web.Response:
        self.model.clear_spot(request.query.get("instance_id"))
        return web.json_response({"cleared": request.query.get("instance_id") or "all"})

    async def _stats(self, request: web.Request) -> web.Response:
        doc = self.model.stats.as_json()
        doc["tokens_evicted"] = self.model.tokens_evicted
        doc["control_rejected"] = dict(self.control_rejected)
        return web.json_response(doc)

    async def _reset_stats(self, request: web.Request) -> web.Response:
        self.model.stats.reset()
        return web.json_response({"reset": True})

    async def _requests(self, request: web.Request) -> web.Response:
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            return self._reject("requests", 400, "limit must be an integer")
        return web.json_response({"requests": [asdict(r) for r in self.model.stats.recent(limit)]})

    async def _control_unknown(self, request: web.Request) -> web.Response:
        return self._reject("unknown", 404, f"no control route {request.method} {request.path}; "
                            f"see GET {CONTROL_PREFIX}/health, /instances, /faults, /spot, /stats, /requests")
