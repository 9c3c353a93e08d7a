"""The intake on the wire: the agent's routes, fakeintake's query API, and the lab's extensions.

Agent side (docs/agent_contract.md#intake-routes-and-payloads): every POST is accepted and stored (unknown
routes too, raw, as fakeintake does); a body its route cannot carry is answered `400 {"errors": [reason]}`
(the error shape of Datadog's API and of fakeintake). Accepted payloads get the answer of the real API for
that route (`202 {"errors": []}` for v2 series and sketches, `202 {"status": "ok"}` for check
runs and the v1 routes, `202 {}` for logs, traces and stats) and the process routes get a v3
`ResCollector` (type 23) message, which the process agent decodes to pace itself. `GET
/api/v1/validate` answers `{"valid": true}`. Any answer can be replaced at run time with
`POST /fakeintake/configure/override` (fakeintake's API: endpoint, status_code, content_type,
method, body as base64); like fakeintake it stores the payload before answering, unless the
override says `"store": false` (then a payload the agent retries is stored once). Outages (the
lab's extension, lab/fakes/intake/outage.py): `POST /fakeintake/configure/outage` answers errors,
slows answers or refuses connections, storing nothing; `GET` lists them, `DELETE` ends them.
Every stored payload is marked with the answer it got (`answer`, `answer_delay_ms`).

Query side, fakeintake-compatible: `GET /fakeintake/payloads?endpoint=<route>[&format=json]`,
`/fakeintake/routestats`, `/fakeintake/flushPayloads`, `/fakeintake/health`.

Sites and API keys (docs/intake.md#sites-and-api-keys): `listen(..., site=S)` opens a listener that
stands for Datadog site S (the lab points an agent configured with `DD_SITE=S` at it); every payload
stored from it carries `site` and `intended_host` (lab.datadog_sites). `POST
/fakeintake/configure/keys {"site": S, "keys": [...]}` (or `set_valid_keys`) makes that site know
only those API keys: any other key (header DD-API-KEY, or the process agent's X-Dd-APIKey) is
answered `403 {"errors": ["Forbidden"]}` as Datadog's intake answers, nothing is stored, and the
route's `forbidden` count goes up; `GET /api/v1/validate` then answers 403 too. A site with no keys
configured accepts every key (fakeintake's behaviour). Extensions: filters
(`metric=`, `service=`, `tags=k:v,...` and per-kind ones), `since=<seq>` cursors (`next_since` in
every answer), sessions (`POST /fakeintake/sessions`, then `session=<id>`, or send payloads to
`/session/<id>/<route>` or with `X-Lab-Session`), rejected payloads
(`/fakeintake/rejected?endpoint=`), and route stats with accepted/rejected/evicted counts.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from lab.datadog_sites import intended_host
from lab.fakes.intake import public_api
from lab.fakes.intake.decode import ROUTES, decoder_for
from lab.fakes.intake.decode.logs import BadLogFilter
from lab.fakes.intake.decode.payload import b64, parse_tag_filter
from lab.fakes.intake.outage import Outage, OutageBoard, OutageSpecError, parse_outage
from lab.fakes.intake.store import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PAYLOADS,
    IntakeStore,
    UnknownSession,
    UnsupportedFilter,
)
from lab.proto import process_codec
from lab.serving import Listener, ServerThread, listen_again, stop_listening

log = logging.getLogger("lab.fakes.intake")

SESSION_HEADER = "X-Lab-Session"
SITE_KEY = web.AppKey("site", str)  # the Datadog site a listener's app stands for ("" = none)
SESSION_PREFIX = "/session/"
# Agent payloads are a few MB at most (the forwarder splits above ~3 MB compressed); leave room.
MAX_BODY = 64 * 1024 * 1024

_ERRORS_OK = (202, {"errors": []})
_STATUS_OK = (202, {"status": "ok"})
_EMPTY_OK = (202, {})
# What the real intake answers on success, per route (Datadog API reference: v2 series and
# sketches -> {"errors": []}; v1 check_run and series -> {"status": "ok"}; logs -> {}).
ACCEPTED_ANSWERS: dict[str, tuple[int, dict]] = {
    "/api/v2/series": _ERRORS_OK,
    "/api/beta/sketches": _ERRORS_OK,
    "/api/v1/series": _STATUS_OK,
    "/api/v1/check_run": _STATUS_OK,
    "/intake/": _STATUS_OK,
    "/api/v1/metadata": _STATUS_OK,
    "/api/v2/logs": _EMPTY_OK,
    "/api/v0.2/traces": _EMPTY_OK,
    "/api/v0.2/stats": _EMPTY_OK,
}
# fakeintake's default for everything else.
DEFAULT_ANSWER = (200, {"errors": []})
PROCESS_ROUTES = frozenset({"/api/v1/collector", "/api/v1/container", "/api/v1/discovery",
                            "/api/v1/connections"})
# Query parameters that are not filters.
_QUERY_PARAMS = frozenset({"endpoint", "format", "since", "session", "limit"})
# `name=` means the kind's own name field where the kind has no `name` filter of its own (for
# traces and APM stats, `name` is the span/operation name).
_NAME_ALIASES = {"series": "metric", "sketches": "metric", "series_v1": "metric", "check_runs": "check",
                 "logs": "service"}


@dataclass
class Override:
    status: int
    content_type: str
    body: bytes
    # fakeintake stores every POST before answering, an error override too (tools built on it
    # count on that); `store: false` (the lab's extension) answers like a real intake in an
    # outage, which has not kept the payload, so the agent's retry is stored exactly once.
    store: bool = True

    @property
    def stores(self) -> bool:
        return self.store


def go_time(ts: float) -> str:
    """A timestamp as Go's encoding/json writes time.Time (RFC 3339, UTC)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _strip_session(path: str) -> tuple[str | None, str]:
    """`/session/<id>/api/v2/series` -> ("<id>", "/api/v2/series")."""
    if path.startswith(SESSION_PREFIX):
        sid, _, rest = path[len(SESSION_PREFIX):].partition("/")
        return sid or None, "/" + rest
    return None, path


def _extras(rec) -> dict[str, Any]:
    """A payload row's optional fields beyond fakeintake's: decode `flags`, and `via` (the `Via`
    header, set when a proxy such as the lab's FIPS proxy relayed the payload)."""
    out: dict[str, Any] = {"answer": rec.answer}
    if rec.site:
        out["site"] = rec.site
        out["intended_host"] = rec.intended_host
    if rec.answer_delay_ms:
        out["answer_delay_ms"] = rec.answer_delay_ms
    if rec.flags:
        out["flags"] = list(rec.flags)
    if via := rec.header("Via"):
        out["via"] = via
    if subdomain := rec.header("X-Datadog-EVP-Subdomain"):
        # Relayed by the agent's EVP proxy: the intake product it was meant for.
        out["evp_subdomain"] = subdomain
    return out


def joined_headers(headers: Any) -> dict[str, str]:
    """A request's headers with repeated fields joined by ", " (RFC 9110 section 5.3: the same as one
    field listing each value). HAProxy's `add-header Via` adds a second `Via` field after the
    agent's own (`Via: trace-agent 7.x`); keeping the first only would lose the proxy's entry."""
    out: dict[str, str] = {}
    names: dict[str, str] = {}
    for key, value in headers.items():
        first = names.setdefault(key.lower(), key)
        out[first] = f"{out[first]}, {value}" if first in out else value
    return out


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(data, separators=(",", ":")).encode(), status=status,
                        content_type="application/json")


def _connection_gone(request: web.Request) -> bool:
    """Whether the request's connection has closed: an answer would be written nowhere."""
    return request.transport is None or request.transport.is_closing()


def _error(reason: str, status: int = 400) -> web.Response:
    return _json({"errors": [reason]}, status)


class IntakeServer:
    """Owner of a fake intake: its store, its overrides, and the listeners it starts.

    Usage::

        with IntakeServer() as intake:
            listener = intake.listen("127.0.0.1", 0)
            ... DD_DD_URL=listener.url ...
            intake.store.payloads("/api/v2/series")
    """

    def __init__(self, store: IntakeStore | None = None, max_payloads: int = DEFAULT_MAX_PAYLOADS,
                 max_bytes: int = DEFAULT_MAX_BYTES, collector_interval: int = 10,
                 collector_active_clients: int = 0, ingest: str = "full") -> None:
        self.store = store if store is not None else IntakeStore(max_payloads, max_bytes, ingest=ingest)
        # ResCollector.status: `interval` paces the process agent's real-time checks and
        # `activeClients` > 0 switches real-time collection on (someone watching live processes).
        self.collector_interval = collector_interval
        self.collector_active_clients = collector_active_clients
        self.overrides: dict[tuple[str, str], Override] = {}
        self.outages = OutageBoard()
        self._reopen: asyncio.TimerHandle | None = None
        self._refusing = False
        self._thread: ServerThread | None = None
        self.listeners: list[Listener] = []
        self.site_listeners: dict[str, Listener] = {}
        # site ("" = the lab's own listener) -> the API keys it knows; absent = every key accepted.
        self.valid_keys: dict[str, frozenset[str]] = {}
        # The agent release a payload's intended host is derived for (its version-prefixed host).
        self.agent_version = "7.60.0"

    # --- owner ------------------------------------------------------------------------------------

    def listen(self, host: str = "127.0.0.1", port: int = 0, site: str = "") -> Listener:
        """A listener; with `site`, the one that stands for that Datadog site (module docstring)."""
        if self._thread is None:
            self._thread = ServerThread("intake").start()
        # The agent's bodies must be stored exactly as sent: no transparent decompression.
        listener = self._thread.add_app(self.app(site), host, port, auto_decompress=False)
        self.listeners.append(listener)
        if site:
            self.site_listeners[site] = listener
        return listener

    def set_valid_keys(self, site: str, keys: list[str] | None) -> None:
        """Make `site` ("" = the lab's own listener) know only `keys`; None: every key again."""
        if keys is None:
            self.valid_keys.pop(site, None)
        else:
            self.valid_keys[site] = frozenset(keys)

    def _key_refused(self, site: str, request: web.Request) -> bool:
        known = self.valid_keys.get(site)
        if known is None:
            return False
        key = request.headers.get("DD-API-KEY") or request.headers.get("X-Dd-APIKey") or ""
        return key not in known

    @property
    def url(self) -> str:
        if not self.listeners:
            raise RuntimeError("the intake is not listening; call listen() first")
        return self.listeners[0].url

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()
            self._thread = None
            self.listeners = []

    def __enter__(self) -> IntakeServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- app --------------------------------------------------------------------------------------

    def app(self, site: str = "") -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._override_middleware])
        app[SITE_KEY] = site
        r = app.router
        r.add_get("/fakeintake/health", self._health)
        r.add_get("/fakeintake/payloads", self._payloads)
        r.add_get("/fakeintake/routestats", self._routestats)
        r.add_route("*", "/fakeintake/flushPayloads", self._flush)
        r.add_post("/fakeintake/configure/override", self._configure_override)
        r.add_post("/fakeintake/configure/keys", self._configure_keys)
        r.add_get("/fakeintake/configure/keys", self._list_keys)
        r.add_post("/fakeintake/configure/outage", self._start_outage)
        r.add_get("/fakeintake/configure/outage", self._list_outages)
        r.add_delete("/fakeintake/configure/outage", self._end_outages)
        r.add_get("/fakeintake/rejected", self._rejected)
        r.add_post("/fakeintake/sessions", self._open_session)
        r.add_get("/fakeintake/sessions", self._list_sessions)
        r.add_get("/fakeintake/sessions/{sid}", self._get_session)
        r.add_delete("/fakeintake/sessions/{sid}", self._close_session)
        public_api.add_routes(app, self.store)
        # Everything else is the agent talking: registered last so the routes above win.
        r.add_route("*", "/{tail:.*}", self._datadog_request)
        return app

    @web.middleware
    async def _override_middleware(self, request: web.Request, handler) -> web.StreamResponse:
        # Overrides of non-POST answers (e.g. GET /api/v1/validate -> 403) win over every handler;
        # POSTs are stored first and answered with the override in _datadog_request.
        if request.method != "POST" and not request.path.startswith("/fakeintake/"):
            path = _strip_session(request.path)[1]
            if path == "/api/v1/validate" and self._key_refused(request.app[SITE_KEY], request):
                return _json({"errors": ["Forbidden"]}, 403)
            override = self.overrides.get((request.method, path))
            if override is not None:
                return self._answer_override(override)
        return await handler(request)

    # --- agent side -------------------------------------------------------------------------------

    async def _datadog_request(self, request: web.Request) -> web.StreamResponse:
        sid, path = _strip_session(request.path)
        session = sid or request.headers.get(SESSION_HEADER) or None
        site = request.app[SITE_KEY]
        if request.method != "POST":
            if path == "/api/v1/validate":
                if self._key_refused(site, request):
                    return _json({"errors": ["Forbidden"]}, 403)
                return _json({"valid": True})
            if request.method in ("GET", "HEAD"):
                return web.Response(status=200)
            return _error(f"invalid request with route {path} and method {request.method}")
        body = await request.read()
        if self._key_refused(site, request):
            # Datadog's intake refuses a key its site does not know before looking at the body. The
            # payload is kept aside with the reason (`/fakeintake/rejected`: what the doctor shows).
            self.store.count_not_stored(path, "forbidden")
            reason = (f"403 Forbidden: the API key is not one of {site}'s (the agent's DD_SITE); a key "
                      "is valid only on its organization's site" if site
                      else "403 Forbidden: the API key is not one the intake knows")
            self.store.refuse(path, body, joined_headers(request.headers), reason, session, count=False)
            return _json({"errors": ["Forbidden"]}, 403)
        delay_ms = 0
        outage = self.outages.for_route(path)
        if outage is not None:
            if outage.mode == "slow":
                await asyncio.sleep(outage.delay_ms / 1000)
                if _connection_gone(request):
                    # The client's timeout came first: it got no answer and will send it again.
                    return self._abandoned(path)
                delay_ms = outage.delay_ms
            if outage.status_code is not None:
                self.store.count_not_stored(path, "answered_not_stored")
                return _error(f"intake outage ({outage.mode}): answering {outage.status_code}",
                              outage.status_code)
        override = self.overrides.get(("POST", path))
        if override is not None and not override.stores:
            self.store.count_not_stored(path, "answered_not_stored")
            return self._answer_override(override)
        if override is not None:
            answer_status = override.status
        elif path in PROCESS_ROUTES:
            answer_status = 200
        else:
            answer_status = ACCEPTED_ANSWERS.get(path, DEFAULT_ANSWER)[0]
        if _connection_gone(request):
            # The connection closed between the request's arrival and now: a refusal that began
            # meanwhile closed it (as a server going down drops the requests it has not answered),
            # or the client gave up. No answer can reach the sender, which sends the payload again:
            # stored now, it would be stored twice.
            return self._abandoned(path)
        # The metrics host carries the sender's version (the core forwarder sends DD-Agent-Version).
        version = request.headers.get("DD-Agent-Version") or self.agent_version
        meant_for = intended_host(site, path, version) if site else ""
        result = self.store.ingest(path, body, joined_headers(request.headers), "POST", session,
                                   answer=answer_status, answer_delay_ms=delay_ms, site=site,
                                   intended_host=meant_for)
        if not result.accepted:
            return _error(result.reason)
        if override is not None:
            return self._answer_override(override)
        if path in PROCESS_ROUTES:
            reply = process_codec.res_collector(interval=self.collector_interval,
                                                active_clients=self.collector_active_clients)
            return web.Response(body=reply, status=200, content_type="application/x-protobuf")
        status, answer = ACCEPTED_ANSWERS.get(path, DEFAULT_ANSWER)
        return _json(answer, status)

    def _abandoned(self, path: str) -> web.Response:
        """A POST not stored because its connection is gone: counted `abandoned`, answered 499
        (written nowhere; the status is only for the server's access log)."""
        self.store.count_not_stored(path, "abandoned")
        return web.Response(status=499)

    @staticmethod
    def _answer_override(override: Override) -> web.Response:
        resp = web.Response(body=override.body, status=override.status)
        if override.content_type:
            resp.headers["Content-Type"] = override.content_type
        return resp

    def set_override(self, endpoint: str, status_code: int, body: bytes = b"", content_type: str = "",
                     method: str = "POST", store: bool = True) -> None:
        self.overrides[(method.upper(), endpoint)] = Override(status_code, content_type, body, store)

    # --- outages ----------------------------------------------------------------------------------

    def start_outage(self, spec: dict[str, Any] | Outage) -> Outage:
        """Start an outage (see lab/fakes/intake/outage.py); from Python, `refuse` may go without
        `duration_s` and last until end_outages()."""
        outage = spec if isinstance(spec, Outage) else parse_outage(spec, over_http=False)
        if self._thread is None:
            raise RuntimeError("the intake is not listening; call listen() first")

        async def _start() -> Outage:
            return self._begin(outage, delay=0.0)

        return self._thread.call(_start)

    def end_outages(self) -> list[Outage]:
        """End every outage (reopening the port if it was refusing); returns the ones ended."""
        if self._thread is None:
            return []

        async def _end() -> list[Outage]:
            return await self._end_all()

        return self._thread.call(_end)

    def _begin(self, outage: Outage, delay: float) -> Outage:
        """On the server loop: record the outage; a refusal closes the port after `delay` (time for
        the HTTP answer that asked for it to leave) and reopens it when its duration is up."""
        if outage.mode == "refuse" and self.outages.refusing() is not None:
            raise OutageSpecError("the intake is already refusing connections")
        self.outages.add(outage)
        if outage.mode == "refuse":
            loop = asyncio.get_running_loop()
            if delay > 0:
                loop.call_later(delay, self._close_listeners)
            else:
                # From Python: refusing once start_outage() returns (a later callback of the loop
                # would leave the port open for the caller's next connect).
                self._close_listeners()
            if outage.duration_s is not None:
                self._reopen = loop.call_later(delay + outage.duration_s,
                                               lambda: loop.create_task(self._end_refusal(outage)))
        return outage

    def _close_listeners(self) -> None:
        self._refusing = True
        for listener in self.listeners:
            stop_listening(listener)

    async def _open_listeners(self) -> None:
        for listener in self.listeners:
            await listen_again(listener)
        self._refusing = False

    async def _end_refusal(self, outage: Outage) -> None:
        self.outages.end(outage)
        if self._refusing:
            try:
                await self._open_listeners()
            except OSError as exc:  # someone took the port meanwhile: say so, loudly
                log.error("the intake could not listen again after its outage: %s", exc)
                raise

    async def _end_all(self) -> list[Outage]:
        ended = self.outages.end_all()
        if self._reopen is not None:
            self._reopen.cancel()
            self._reopen = None
        if self._refusing:
            await self._open_listeners()
        return ended

    async def _start_outage(self, request: web.Request) -> web.Response:
        try:
            spec = await request.json()
        except ValueError as exc:
            return _error(f"outage must be JSON: {exc}")
        try:
            outage = self._begin(parse_outage(spec), delay=0.2)
        except OutageSpecError as exc:
            return _error(str(exc))
        return _json({"outage": outage.as_dict()})

    async def _list_outages(self, _request: web.Request) -> web.Response:
        return _json(self.outages.as_dict())

    async def _end_outages(self, _request: web.Request) -> web.Response:
        ended = await self._end_all()
        return _json({"ended": [o.as_dict() for o in ended]})

    # --- query side -------------------------------------------------------------------------------

    async def _health(self, _request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def _payloads(self, request: web.Request) -> web.Response:
        q = request.query
        route = q.get("endpoint")
        if not route:
            return web.Response(status=400, text="missing endpoint query parameter")
        session = q.get("session") or None
        try:
            since = int(q["since"]) if q.get("since") else None
            limit = int(q["limit"]) if q.get("limit") else None
        except ValueError:
            return _error("since and limit must be integers")
        filters = self._filters(route, q)
        try:
            if q.get("format") == "json":
                if decoder_for(route) is None:
                    return _error(f"invalid route parameter: {route} has no decoded view "
                                  f"(decoded routes: {', '.join(sorted(ROUTES))})")
                selection = self.store.select(route, since, session, filters, limit)
                payloads = [
                    {"timestamp": go_time(rec.received), "api_key": rec.api_key, "data": data,
                     "encoding": rec.encoding, "seq": rec.seq, "session": rec.session, **_extras(rec)}
                    for rec, data in selection.items
                ]
                cursor, evicted = selection.cursor, selection.evicted_after_cursor
            else:
                if filters:
                    selection = self.store.select(route, since, session, filters, limit)
                    records = [rec for rec, _ in selection.items]
                    cursor, evicted = selection.cursor, selection.evicted_after_cursor
                else:
                    records, cursor = self.store.snapshot(route, since, session, limit)
                    evicted = self.store.evicted_after(route, since)
                payloads = [
                    {"timestamp": go_time(rec.received), "api_key": rec.api_key, "data": b64(rec.body),
                     "encoding": rec.encoding, "content_type": rec.content_type, "seq": rec.seq,
                     "session": rec.session, **_extras(rec)}
                    for rec in records
                ]
        except (UnsupportedFilter, BadLogFilter) as exc:
            return _error(str(exc))
        except UnknownSession:
            return _error(f"unknown session {session!r}", 404)
        return _json({"payloads": payloads, "next_since": cursor, "evicted_after_cursor": evicted})

    @staticmethod
    def _filters(route: str, query) -> dict[str, Any]:
        filters: dict[str, Any] = {}
        decoder = decoder_for(route)
        for key, value in query.items():
            if key in _QUERY_PARAMS:
                continue
            if key == "name" and decoder is not None and "name" not in decoder.filters:
                key = _NAME_ALIASES.get(decoder.kind, key)
            if key == "tags":
                filters["tags"] = parse_tag_filter(query.getall("tags"))
            else:
                filters[key] = value
        return filters

    async def _routestats(self, request: web.Request) -> web.Response:
        session = request.query.get("session") or None
        try:
            stats = self.store.route_stats(session)
        except UnknownSession:
            return _error(f"unknown session {session!r}", 404)
        routes = {route: {"id": route, **counts} for route, counts in stats.items()}
        return _json({"routes": routes, "totals": self.store.totals(), "last_seq": self.store.last_seq})

    async def _flush(self, request: web.Request) -> web.Response:
        session = request.query.get("session") or None
        try:
            flushed = self.store.flush(session)
        except UnknownSession:
            return _error(f"unknown session {session!r}", 404)
        return _json({"flushed": flushed})

    async def _configure_override(self, request: web.Request) -> web.Response:
        try:
            spec = await request.json()
            endpoint = spec["endpoint"]
            status = int(spec.get("status_code") or 200)
        except (ValueError, KeyError, TypeError) as exc:
            return _error("override must be JSON {endpoint, status_code, content_type, method, body}: "
                          f"{exc}")
        method = (spec.get("method") or "POST").upper()
        if method not in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"):
            return _error(f"invalid request method {method}")
        raw = spec.get("body") or ""
        # Go marshals []byte as base64, so fakeintake clients send the body that way.
        try:
            body = base64.b64decode(raw, validate=True) if isinstance(raw, str) else json.dumps(raw).encode()
        except (binascii.Error, ValueError):
            body = raw.encode()
        store = spec.get("store", True)
        if not isinstance(store, bool):
            return _error(f"store must be true or false, not {store!r}")
        self.set_override(endpoint, status, body, spec.get("content_type") or "", method, store)
        return web.Response(status=200)

    async def _configure_keys(self, request: web.Request) -> web.Response:
        try:
            spec = await request.json()
        except ValueError:
            return _error("body must be JSON: {\"site\": ..., \"keys\": [...] or null}")
        if not isinstance(spec, dict) or not isinstance(spec.get("site", ""), str) or not (
                spec.get("keys") is None or (isinstance(spec["keys"], list)
                                             and all(isinstance(k, str) and k for k in spec["keys"]))):
            return _error("expected {\"site\": \"<site or empty for the lab's listener>\", "
                          "\"keys\": [\"<api key>\", ...] or null}")
        self.set_valid_keys(spec.get("site", ""), spec.get("keys"))
        return await self._list_keys(request)

    async def _list_keys(self, _request: web.Request) -> web.Response:
        # How many keys each site knows, never the keys themselves.
        listeners = {site: listener.url for site, listener in sorted(self.site_listeners.items())}
        return _json({"sites": {site: len(keys) for site, keys in sorted(self.valid_keys.items())},
                      "listeners": listeners})

    async def _rejected(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            items = self.store.rejected(q.get("endpoint") or None, q.get("session") or None)
        except UnknownSession:
            return _error(f"unknown session {q.get('session')!r}", 404)
        return _json({"rejected": [
            {"seq": r.seq, "route": r.route, "timestamp": go_time(r.received), "reason": r.reason,
             "headers": r.headers, "data": b64(r.body), "body_truncated": r.body_truncated,
             "session": r.session}
            for r in items
        ], "dropped": self.store.rejected_dropped})

    async def _open_session(self, request: web.Request) -> web.Response:
        spec: dict[str, Any] = {}
        if request.can_read_body:
            try:
                spec = await request.json() or {}
            except ValueError:
                return _error("session spec must be JSON {label, id}")
        try:
            sess = self.store.open_session(spec.get("label", ""), spec.get("id"))
        except ValueError as exc:
            return _error(str(exc), 409)
        return _json(sess.as_dict(), 201)

    async def _list_sessions(self, _request: web.Request) -> web.Response:
        return _json({"sessions": [s.as_dict() for s in self.store.sessions()]})

    async def _get_session(self, request: web.Request) -> web.Response:
        try:
            return _json(self.store.session(request.match_info["sid"]).as_dict())
        except UnknownSession:
            return _error(f"unknown session {request.match_info['sid']!r}", 404)

    async def _close_session(self, request: web.Request) -> web.Response:
        try:
            return _json(self.store.close_session(request.match_info["sid"]).as_dict())
        except UnknownSession:
            return _error(f"unknown session {request.match_info['sid']!r}", 404)
