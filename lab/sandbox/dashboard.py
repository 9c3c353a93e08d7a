"""The live dashboard: the lab's topology, every hop as an edge with its rate, a payload browser, the
control plane's services and events, and the exercises, served by the lab itself on loopback.

`Dashboard(lab)` is an owner object (`start()` / `stop()`, or `with`), started by the supervisor
(`ecs-lab up --ui`) next to the `EcsLab`; its URL is `dashboard_url` in `ecs-lab status --json`.
Pieces:

- a traffic thread: a user's requests to every sample app (`/work`, a few per second), so there is
  data to see;
- a sampler thread: every `interval` it reads the intake since its cursor (spans per service, the
  apps' DogStatsD series per service, accepted/rejected payloads per route), keeps the last
  `window` seconds of counts, and builds a snapshot: topology from the world and the control plane,
  edges with rates, and for a dark edge the reason (the doctor's probes, cheap ones only);
- an aiohttp server in its own thread: `/` (one static page, no build step), `/api/snapshot`,
  `/api/events` (server-sent events, one snapshot per sample), `/api/payloads` (the intake's query
  API, filtered), `/api/exercises` and `/api/exercise/<action>`.

An edge goes dark when no data crossed it for `window` seconds; with the emulated agent's 1 s flushes
that is about `window` + 1 s after the break (bench/bench_dashboard.py measures it).
"""

from __future__ import annotations

import asyncio
import collections
import json
import threading
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from lab.fakes.fips_proxy.ports import BY_NAME as FIPS_BY_NAME
from lab.fakes.fips_proxy.ports import DEFAULT_PORT_RANGE_START, via_route
from lab.sandbox.target import (
    APP_METRIC,
    DATA_ROUTES,
    LabTarget,
    TargetError,
    container,
    get_env,
    http_get,
)
from lab.stack import AGENT_SERVICE

STATIC = Path(__file__).parent / "static"
# The proxy ports the agent's data types use (lab/fakes/fips_proxy/ports.py), and the intake routes
# whose payloads show which port carried them.
FIPS_EDGE_ROUTES = ("metrics", "traces", "processes")
FIPS_SAMPLED_ROUTES = (DATA_ROUTES["series"], DATA_ROUTES["check runs"], DATA_ROUTES["traces"],
                       DATA_ROUTES["processes"])


def _revision(arn: str | None) -> str:
    """`arn:...:task-definition/datadog-agent-task:3` -> `datadog-agent-task:3`."""
    return (arn or "").rsplit("/", 1)[-1]


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return value.timestamp()
    except AttributeError:
        return None


def _fips_settings(ecs: Any, task_definition: str | None) -> dict | None:
    """DD_FIPS_* of the agent container of `task_definition`, or None when FIPS is off."""
    if not task_definition:
        return None
    td = ecs.describe_task_definition(taskDefinition=task_definition)["taskDefinition"]
    try:
        agent = container(td, agent=True)
    except TargetError:
        return None
    if (get_env(agent, "DD_FIPS_ENABLED") or "").strip().lower() not in ("true", "1", "yes"):
        return None
    return {
        "port_range_start": int(get_env(agent, "DD_FIPS_PORT_RANGE_START") or DEFAULT_PORT_RANGE_START),
        "local_address": get_env(agent, "DD_FIPS_LOCAL_ADDRESS") or "127.0.0.1",
    }


class Dashboard:
    def __init__(
        self,
        lab: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        interval: float = 0.5,
        window: float = 3.0,
        traffic_per_s: float = 4.0,
        exercise_state: Path | None = None,
    ) -> None:
        if host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("127."):
            raise ValueError(f"the dashboard serves loopback only, not {host!r}")
        self.lab = lab
        self.host, self.port = host, port
        self.interval, self.window, self.traffic_per_s = interval, window, traffic_per_s
        self.target = LabTarget.of_lab(lab)
        from lab.state_file import lab_home

        self.exercise_state = exercise_state or lab_home() / "exercise.json"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._snapshot: dict = {"seq": 0}
        self._snap_lock = threading.Lock()
        self._samples: collections.deque = collections.deque()
        self._reasons: dict[str, tuple[float, str]] = {}
        self._events: collections.deque = collections.deque(maxlen=50)
        self._exercise_busy = threading.Lock()
        self.sample_cpu_s = 0.0  # CPU time the sampler spent (bench)
        # The agent service's FIPS settings, read from its task definition with the topology.
        self._fips: dict | None = None
        self._fips_cursors: dict[str, int] = {}
        self._fips_samples: collections.deque = collections.deque()

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> Dashboard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Dashboard:
        ready = threading.Event()
        errors: list[BaseException] = []
        server = threading.Thread(
            target=self._serve, args=(ready, errors), name="dashboard-http", daemon=True
        )
        server.start()
        ready.wait(15)
        if errors:
            raise errors[0]
        self._threads = [server]
        for name, fn in (("dashboard-sampler", self._sample_loop), ("dashboard-traffic", self._traffic_loop)):
            t = threading.Thread(target=fn, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        self.event(f"dashboard serving on {self.url}")
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._loop is not None and self._runner is not None:
            fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
            try:
                fut.result(10)
            except Exception:  # noqa: BLE001 - stopping anyway
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)
        for t in self._threads:
            t.join(timeout=10)
        self._threads = []

    def event(self, message: str) -> None:
        self._events.appendleft({"at": time.time(), "message": message})

    # -- traffic --------------------------------------------------------------------------------
    def _traffic_loop(self) -> None:
        period = 1.0 / self.traffic_per_s if self.traffic_per_s > 0 else None
        while period and not self._stop.wait(period):
            for app in self.target.apps().values():
                if app.url:
                    http_get(app.url + "/work?ms=1&depth=2", timeout=1.0)

    # -- sampling -------------------------------------------------------------------------------
    def _sample_loop(self) -> None:
        from lab.fakes.intake.client import IntakeClient

        intake = IntakeClient(self.target.intake_url, timeout=5.0)
        cursor = 0
        try:
            cursor = self.target.cursor()
            before = self._route_counts(intake)
        except Exception:  # noqa: BLE001 - the intake may be starting; counted from zero
            before = {}
        last_topology = 0.0
        topology: dict = {}
        while not self._stop.wait(self.interval):
            c0 = time.thread_time()
            try:
                spans: dict[str, int] = collections.Counter()
                page = intake.payloads_page(DATA_ROUTES["traces"], since=cursor)
                for s in IntakeClient._spans(page["payloads"], {}):
                    spans[s["service"]] += 1
                traces_cursor = page.get("next_since") or cursor
                metrics: dict[str, int] = collections.Counter()
                page = intake.payloads_page(DATA_ROUTES["series"], since=cursor, metric=APP_METRIC)
                for series in (x for item in page["payloads"] for x in item["data"]):
                    svc = next((t[8:] for t in series.get("tags") or [] if t.startswith("service:")), "")
                    metrics[svc] += 1
                cursor = max(traces_cursor, page.get("next_since") or cursor)
                now_counts = self._route_counts(intake)
                routes = {
                    r: max(0, n - before.get(r, (0, 0))[0])
                    for r, n in ((r, v[0]) for r, v in now_counts.items())
                }
                rejected = {r: max(0, v[1] - before.get(r, (0, 0))[1]) for r, v in now_counts.items()}
                before = now_counts
                t = time.monotonic()
                self._samples.append((t, spans, metrics, routes, rejected))
                while self._samples and self._samples[0][0] < t - self.window:
                    self._samples.popleft()
                if t - last_topology > 1.0:
                    last_topology = t
                    topology = self._topology()
                if self._fips:
                    self._sample_fips(intake)
                else:
                    self._fips_cursors.clear()
                    self._fips_samples.clear()
                self._publish(topology)
            except Exception as exc:  # noqa: BLE001 - the lab changes under us; show it, keep sampling
                self.event(f"sampler: {exc!r}"[:300])
            self.sample_cpu_s += time.thread_time() - c0

    def _fips_rates(self) -> dict[str, float]:
        counts: collections.Counter = collections.Counter()
        for _t, counted in self._fips_samples:
            counts.update(counted)
        return {k: v / self.window for k, v in counts.items()}

    def _sample_fips(self, intake: Any) -> None:
        """Payloads that came through the FIPS proxy since the last sample, per proxy port: the proxy
        names the port's data type in the `Via` entry it adds (docs/fips_proxy.md)."""
        counted: collections.Counter = collections.Counter()
        for route in FIPS_SAMPLED_ROUTES:
            since = self._fips_cursors.get(route)
            if since is None:
                since = self._fips_cursors[route] = self.target.cursor()
            page = intake.payloads_page(route, fmt="raw", since=since)
            self._fips_cursors[route] = page.get("next_since") or since
            for item in page["payloads"]:
                name = via_route(item.get("via"))
                if name:
                    counted[name] += 1
        t = time.monotonic()
        self._fips_samples.append((t, counted))
        while self._fips_samples and self._fips_samples[0][0] < t - self.window:
            self._fips_samples.popleft()

    @staticmethod
    def _route_counts(intake: Any) -> dict[str, tuple[int, int]]:
        return {r: (s.get("accepted", 0), s.get("rejected", 0)) for r, s in intake.routestats().items()}

    def _topology(self) -> dict:
        world = self.lab.world
        instances = []
        for inst in list(world.instances):
            tasks = []
            for task in list(inst.tasks):
                tasks.append(
                    {
                        "arn": task.arn,
                        "family": task.family,
                        "revision": task.revision,
                        "service": task.service_name,
                        "status": task.known_status,
                        "containers": [
                            {
                                "name": c.name,
                                "status": c.known_status,
                                "health": c.health_status,
                                "image": c.image,
                            }
                            for c in task.containers
                        ],
                    }
                )
            instances.append(
                {
                    "index": inst.index,
                    "instance_id": inst.instance_id,
                    "private_ip": inst.private_ip,
                    "tasks": tasks,
                }
            )
        try:
            services, ecs_events = self._control_plane()
        except Exception as exc:  # noqa: BLE001 - the control plane may be restarting
            services, ecs_events = [], []
            self.event(f"control plane: {exc!r}"[:300])
        return {"cluster": world.cluster.name, "instances": instances, "services": services,
                "ecs_events": ecs_events}

    def _control_plane(self) -> tuple[list[dict], list[dict]]:
        """The cluster's services as `aws ecs describe-services` shows them: counts, task definition
        revision, deployments (rolloutState and their own counts) and the latest events."""
        ecs = self.target.ecs
        arns: list[str] = []
        for page in ecs.get_paginator("list_services").paginate(cluster=self.target.cluster):
            arns.extend(page["serviceArns"])
        services, events = [], []
        for i in range(0, len(arns), 10):
            described = ecs.describe_services(cluster=self.target.cluster, services=arns[i : i + 10])
            for svc in described["services"]:
                name = svc["serviceName"]
                if name == AGENT_SERVICE:
                    self._fips = _fips_settings(ecs, svc.get("taskDefinition"))
                services.append(
                    {
                        "name": name,
                        "scheduling_strategy": svc.get("schedulingStrategy", "REPLICA"),
                        "status": svc.get("status"),
                        "desired": svc.get("desiredCount", 0),
                        "running": svc.get("runningCount", 0),
                        "pending": svc.get("pendingCount", 0),
                        "task_definition": _revision(svc.get("taskDefinition")),
                        "deployments": [
                            {
                                "id": d.get("id"),
                                "status": d.get("status"),
                                "rollout_state": d.get("rolloutState"),
                                "rollout_state_reason": d.get("rolloutStateReason"),
                                "task_definition": _revision(d.get("taskDefinition")),
                                "desired": d.get("desiredCount", 0),
                                "running": d.get("runningCount", 0),
                                "pending": d.get("pendingCount", 0),
                                "updated_at": _epoch(d.get("updatedAt")),
                            }
                            for d in svc.get("deployments") or []
                        ],
                    }
                )
                events.extend(
                    {"service": name, "at": _epoch(e.get("createdAt")), "message": e.get("message")}
                    for e in (svc.get("events") or [])[:20]
                )
        events.sort(key=lambda e: e["at"] or 0, reverse=True)
        return services, events[:30]

    def _rates(self) -> tuple[dict, dict, dict, dict]:
        spans: collections.Counter = collections.Counter()
        metrics: collections.Counter = collections.Counter()
        routes: collections.Counter = collections.Counter()
        rejected: collections.Counter = collections.Counter()
        for _t, s, m, r, x in self._samples:
            spans.update(s)
            metrics.update(m)
            routes.update(r)
            rejected.update(x)
        w = self.window
        return (
            {k: v / w for k, v in spans.items()},
            {k: v / w for k, v in metrics.items()},
            {k: v / w for k, v in routes.items()},
            dict(rejected),
        )

    def _reason(self, edge_id: str, probe: Any) -> str:
        """Why an edge is dark, from the doctor's cheap probes; cached a few seconds per edge."""
        cached = self._reasons.get(edge_id)
        if cached and time.monotonic() - cached[0] < 3:
            return cached[1]
        try:
            why = probe()
        except Exception as exc:  # noqa: BLE001 - a probe failing is itself the reason
            why = repr(exc)
        self._reasons[edge_id] = (time.monotonic(), why)
        return why

    def _app_reason(self, app: Any, private_ip: str, port: int) -> str:
        from lab.sandbox.doctor import _tcp_open

        if not app.url:
            return "the app's task is not running"
        code, body = http_get(app.url + "/", timeout=1.0)
        if code != 200:
            return f"the app does not answer: {code or body}"
        host = json.loads(body).get("agent_host")
        if host != private_ip:
            return f"the app resolved DD_AGENT_HOST={host!r}, not the instance IP {private_ip}"
        refused = _tcp_open(host, port, timeout=0.5)
        return f"TCP {host}:{port}: {refused}" if refused else "no data from this app reached the intake"

    def _publish(self, topology: dict) -> None:
        spans, metrics, routes, rejected = self._rates()
        edges = []
        stack = self.lab.stack
        for v, app in self.target_apps().items():
            inst = self.lab.world.instance(app.instance)
            agent = f"agent-{app.instance}"
            rate = spans.get(app.service, 0.0)
            edges.append(
                {
                    "id": f"app-apm:{app.service}",
                    "from": app.service,
                    "to": agent,
                    "label": f"traces (8126/tcp), {app.service}",
                    "rate": round(rate, 2),
                    "unit": "spans/s",
                    "ok": rate > 0,
                    "reason": ""
                    if rate > 0
                    else self._reason(
                        f"apm:{v}", lambda a=app, ip=inst.private_ip: self._app_reason(a, ip, stack.ports.apm)
                    ),
                }
            )
            rate = metrics.get(app.service, 0.0)
            edges.append(
                {
                    "id": f"app-dogstatsd:{app.service}",
                    "from": app.service,
                    "to": agent,
                    "label": f"DogStatsD (8125/udp), {app.service}",
                    "rate": round(rate, 2),
                    "unit": "series/s",
                    "ok": rate > 0,
                    "reason": ""
                    if rate > 0
                    else "no DogStatsD series of this app reached the intake (UDP: the app sees no error)",
                }
            )
        for kind, route in DATA_ROUTES.items():
            rate = routes.get(route, 0.0)
            bad = rejected.get(route, 0)
            reason = ""
            if bad:
                reason = f"{bad} payload(s) refused by the intake"
            elif rate <= 0:
                reason = "no payload in the last window"
            edges.append(
                {
                    "id": f"agent-intake:{kind.replace(' ', '-')}",
                    "from": "agents",
                    "to": "intake",
                    "label": f"{kind} ({route})",
                    "rate": round(rate, 2),
                    "unit": "payloads/s",
                    "ok": rate > 0 and not bad,
                    "reason": reason,
                }
            )
        fips = self._fips
        if fips:
            fips_rates = self._fips_rates()
            for name in FIPS_EDGE_ROUTES:
                if name == "processes" and "processes" not in self.target.features:
                    continue
                port = fips["port_range_start"] + FIPS_BY_NAME[name].offset
                rate = fips_rates.get(name, 0.0)
                edges.append(
                    {
                        "id": f"agent-fips:{name}",
                        "from": "agents",
                        "to": "fips-proxy",
                        "label": f"FIPS proxy {fips['local_address']}:{port} "
                        f"({FIPS_BY_NAME[name].description})",
                        "rate": round(rate, 2),
                        "unit": "payloads/s",
                        "ok": rate > 0,
                        "reason": ""
                        if rate > 0
                        else f"no payload reached the intake through the proxy's {name} port {port}",
                    }
                )
        with self._snap_lock:
            self._snapshot = {
                "seq": self._snapshot["seq"] + 1,
                "at": time.time(),
                "window_s": self.window,
                "topology": topology,
                "edges": edges,
                "events": list(self._events),
                "exercise": self._active_exercise(),
            }

    def target_apps(self) -> dict:
        # App addresses change when their tasks are replaced: re-read them from the lab each sample.
        self.target.status = {**self.target.status, "apps": self.lab.backend.status().get("apps", {})}
        return self.target.apps()

    def _active_exercise(self) -> dict | None:
        from lab.sandbox.exercises import ExerciseSession

        return ExerciseSession(self.target, self.exercise_state).active()

    def snapshot(self) -> dict:
        with self._snap_lock:
            return self._snapshot

    # -- HTTP -----------------------------------------------------------------------------------
    def _serve(self, ready: threading.Event, errors: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            app = self._app()
            self._runner = web.AppRunner(app, access_log=None)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, self.host, self.port)
            loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        except BaseException as exc:  # noqa: BLE001 - handed to start()
            errors.append(exc)
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.close()

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_get("/api/snapshot", self._snapshot_json)
        app.router.add_get("/api/events", self._events_stream)
        app.router.add_get("/api/payloads", self._payloads)
        app.router.add_get("/api/exercises", self._exercises)
        app.router.add_post("/api/exercise/{action}", self._exercise_action)
        return app

    async def _snapshot_json(self, _request: web.Request) -> web.Response:
        return web.json_response(self.snapshot())

    async def _index(self, _request: web.Request) -> web.Response:
        return web.FileResponse(STATIC / "index.html")

    async def _events_stream(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        seen = -1
        while not self._stop.is_set():
            snap = self.snapshot()
            if snap["seq"] != seen:
                seen = snap["seq"]
                try:
                    await resp.write(f"data: {json.dumps(snap)}\n\n".encode())
                except (ConnectionResetError, RuntimeError):
                    break
            await asyncio.sleep(0.1)
        return resp

    async def _payloads(self, request: web.Request) -> web.Response:
        """Latest decoded payloads, filtered as the fakeintake query API filters them."""
        q = request.query
        kind = q.get("kind", "spans")
        limit = min(int(q.get("limit", "50")), 500)

        def fetch() -> list[dict]:
            intake = self.target.intake
            if kind == "spans":
                items = intake.spans(service=q.get("service") or None, tags=q.get("tags") or None)
                return [
                    {
                        k: s.get(k)
                        for k in (
                            "service",
                            "name",
                            "resource",
                            "trace_id",
                            "duration",
                            "error",
                            "hostname",
                            "container_tags",
                        )
                    }
                    for s in items[-limit:]
                ]
            if kind == "series":
                items = intake.metrics(name=q.get("name") or None, tags=q.get("tags") or None)
                return [
                    {"metric": m.get("metric"), "tags": m.get("tags"), "points": m.get("points")}
                    for m in items[-limit:]
                ]
            if kind == "processes":
                items = intake.processes()
                return [
                    {
                        "cmdline": p.get("cmdline"),
                        "hostName": p.get("hostName"),
                        "pid": p.get("pid"),
                        "tags": p.get("tags"),
                    }
                    for p in items[-limit:]
                ]
            raise ValueError(f"kind must be spans, series or processes, not {kind!r}")

        try:
            items = await asyncio.get_running_loop().run_in_executor(None, fetch)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"kind": kind, "items": items})

    async def _exercises(self, request: web.Request) -> web.Response:
        from lab.sandbox.exercises import catalogue

        return web.json_response(
            {"exercises": catalogue(request.query.get("lang", "en")), "active": self._active_exercise()}
        )

    async def _exercise_action(self, request: web.Request) -> web.Response:
        from lab.sandbox.exercises import ExerciseSession

        action = request.match_info["action"]
        body = await request.json() if request.can_read_body else {}
        lang = body.get("lang", "en")
        if action not in ("start", "check", "hint", "solve", "reset"):
            return web.json_response({"error": f"unknown action {action!r}"}, status=404)

        def run() -> dict:
            if not self._exercise_busy.acquire(blocking=False):
                raise RuntimeError("another exercise action is running")
            try:
                session = ExerciseSession(self.target, self.exercise_state)
                if action == "start":
                    ex = session.start(body.get("id", ""))
                    self.event(f"exercise {ex.id} started")
                    return {"text": ex.text(lang)}
                if action == "check":
                    report = session.check()
                    self.event(f"exercise check: {'fixed' if report.ok else report.first_broken.hop}")
                    return report.as_dict()
                if action == "hint":
                    return {"hint": session.hint(lang)}
                if action == "solve":
                    text = session.solve(lang)
                    self.event("exercise solution applied")
                    return {"solution": text}
                session.reset()
                self.event("exercise reset")
                return {"reset": True}
            finally:
                self._exercise_busy.release()

        try:
            out = await asyncio.get_running_loop().run_in_executor(None, run)
        except (KeyError, RuntimeError) as exc:
            return web.json_response({"error": str(exc)}, status=409)
        return web.json_response(out)
