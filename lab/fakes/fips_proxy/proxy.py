"""A stand-in for the Datadog FIPS proxy: one listener per port of the map, forwarding to an intake.

With `DD_FIPS_ENABLED=true` the agent sends each data type to its own port
(`DD_FIPS_PORT_RANGE_START + offset` on `DD_FIPS_LOCAL_ADDRESS`, see `ports.py`), and the real
proxy (HAProxy in `datadog/fips-proxy`) relays it to Datadog over FIPS TLS. This stand-in relays
plain HTTP to the lab's intake, unchanged, and records which port carried which request, so a
scenario can prove every data type used its own port: a request on the wrong port is still
forwarded (the real proxy would, too) but its record is flagged `misrouted`.

Offset 0 is the proxy's own stats page, as on HAProxy: HTML at `/`, `/;csv`, `/;json`, and the
raw records at `/ecs-lab/records`.
"""

from __future__ import annotations

import html
import random
import socket
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass

import aiohttp
from aiohttp import web

from lab.serving import PortInUseError, ServerThread

from .ports import (
    DEFAULT_PORT_RANGE_START,
    ROUTES,
    FipsRoute,
    routes_for_path,
    validate_local_address,
    via_value,
)

# RFC 9110 hop-by-hop headers: a proxy consumes them, never forwards them.
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
               "te", "trailer", "transfer-encoding", "upgrade", "content-length"}


@dataclass(frozen=True)
class ForwardRecord:
    port: int
    route: str
    method: str
    path: str
    status: int
    bytes_in: int
    bytes_out: int
    at: float
    duration_ms: float
    misrouted: bool
    expected_routes: tuple[str, ...]
    client: str
    error: str | None = None

    def as_json(self) -> dict:
        return asdict(self)


def find_free_port_range(host: str = "127.0.0.1", count: int = len(ROUTES), low: int = 20000,
                         high: int = 60000, attempts: int = 200) -> int:
    """A start port with `count` consecutive free TCP ports on host (tests must not use 9803)."""
    rng = random.Random()
    for _ in range(attempts):
        start = rng.randrange(low, high - count)
        socks = []
        try:
            for port in range(start, start + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind((host, port))
            return start
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise PortInUseError(f"no {count} consecutive free ports on {host} after {attempts} tries")


class FipsProxy:
    """Owner of the 16 FIPS proxy listeners; `with FipsProxy(url) as proxy:` binds, exit unbinds."""

    def __init__(self, upstream_url: str, local_address: str = "127.0.0.1",
                 port_range_start: int = DEFAULT_PORT_RANGE_START, *, timeout: float = 30.0) -> None:
        validate_local_address(local_address)
        self.upstream_url = upstream_url.rstrip("/")
        self.local_address = local_address
        self.bind_address = "127.0.0.1" if local_address == "localhost" else local_address
        self.port_range_start = port_range_start
        self.timeout = timeout
        self._server = ServerThread("fips-proxy")
        self._session: aiohttp.ClientSession | None = None
        self._records: list[ForwardRecord] = []
        self._lock = threading.Lock()

    # -- addresses ------------------------------------------------------------------------------
    def port_of(self, route_name: str) -> int:
        return self.port_range_start + next(r.offset for r in ROUTES if r.name == route_name)

    def url_for(self, route_name: str) -> str:
        return f"http://{self.bind_address}:{self.port_of(route_name)}"

    @property
    def stats_url(self) -> str:
        return self.url_for("stats")

    def agent_env(self) -> dict[str, str]:
        """The agent settings that point it at this proxy (docs/agent_contract.md#fips-mode)."""
        return {"DD_FIPS_ENABLED": "true", "DD_FIPS_PORT_RANGE_START": str(self.port_range_start),
                "DD_FIPS_LOCAL_ADDRESS": self.local_address, "DD_FIPS_HTTPS": "false"}

    # -- records --------------------------------------------------------------------------------
    @property
    def records(self) -> list[ForwardRecord]:
        with self._lock:
            return list(self._records)

    def records_for(self, route_name: str) -> list[ForwardRecord]:
        return [r for r in self.records if r.route == route_name]

    def misrouted(self) -> list[ForwardRecord]:
        return [r for r in self.records if r.misrouted]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def route_stats(self) -> list[dict]:
        """Per data type: requests, bytes, status classes, misrouted (like HAProxy's stats rows)."""
        records = self.records
        rows = []
        for route in ROUTES[1:]:
            mine = [r for r in records if r.route == route.name]
            classes = Counter(f"{r.status // 100}xx" for r in mine)
            rows.append({
                "route": route.name, "port": self.port_range_start + route.offset,
                "description": route.description, "requests": len(mine),
                "bytes_in": sum(r.bytes_in for r in mine), "bytes_out": sum(r.bytes_out for r in mine),
                "hrsp_2xx": classes["2xx"], "hrsp_4xx": classes["4xx"], "hrsp_5xx": classes["5xx"],
                "misrouted": sum(1 for r in mine if r.misrouted),
            })
        return rows

    # -- wire -----------------------------------------------------------------------------------
    def _forwarding_app(self, route: FipsRoute, port: int) -> web.Application:
        async def forward(request: web.Request) -> web.StreamResponse:
            started = time.monotonic()
            body = await request.read()
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
            headers["Via"] = ", ".join(filter(None, (request.headers.get("Via"), via_value(route.name))))
            expected = routes_for_path(request.path)
            status, out_body, error = 502, b"", None
            resp_headers: dict[str, str] = {}
            try:
                assert self._session is not None
                async with self._session.request(request.method, self.upstream_url + request.raw_path,
                                                 headers=headers, data=body) as upstream:
                    out_body = await upstream.read()
                    status = upstream.status
                    resp_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP}
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                # HAProxy answers 503 when no server of the backend is reachable.
                status, error = 503, f"upstream {self.upstream_url} unreachable: {exc!r}"
                out_body = (f"<html><body><h1>503 Service Unavailable</h1>\n{html.escape(error)}\n"
                            "</body></html>\n").encode()
                resp_headers = {"Content-Type": "text/html"}
            record = ForwardRecord(
                port=port, route=route.name, method=request.method, path=request.raw_path, status=status,
                bytes_in=len(body), bytes_out=len(out_body), at=time.time(),
                duration_ms=(time.monotonic() - started) * 1000,
                misrouted=bool(expected) and route.name not in expected, expected_routes=expected,
                client=request.remote or "", error=error)
            with self._lock:
                self._records.append(record)
            return web.Response(status=status, body=out_body, headers=resp_headers)

        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", forward)
        return app

    def _stats_app(self) -> web.Application:
        async def page(request: web.Request) -> web.Response:
            rows = self.route_stats()
            # HAProxy's stats URI takes ";csv" / ";json" suffixes.
            if request.raw_path.endswith(";csv") or request.query.get("format") == "csv":
                cols = ["route", "port", "requests", "bytes_in", "bytes_out", "hrsp_2xx", "hrsp_4xx",
                        "hrsp_5xx", "misrouted"]
                lines = ["# pxname," + ",".join(cols[1:])]
                lines += [",".join(str(r[c]) for c in cols) for r in rows]
                return web.Response(text="\n".join(lines) + "\n", content_type="text/csv")
            if request.raw_path.endswith(";json") or request.query.get("format") == "json":
                return web.json_response({"upstream": self.upstream_url, "routes": rows,
                                          "misrouted": [r.as_json() for r in self.misrouted()]})
            cells = "".join(
                f"<tr><td>{r['route']}</td><td>{r['port']}</td><td>{r['requests']}</td>"
                f"<td>{r['bytes_in']}</td><td>{r['hrsp_2xx']}</td><td>{r['hrsp_4xx']}</td>"
                f"<td>{r['hrsp_5xx']}</td><td>{r['misrouted']}</td></tr>" for r in rows)
            return web.Response(content_type="text/html", text=(
                "<html><head><title>Statistics Report for FIPS proxy stand-in</title></head><body>"
                f"<h1>Statistics Report</h1><p>upstream: {html.escape(self.upstream_url)}</p>"
                "<table border=1><tr><th>frontend</th><th>port</th><th>requests</th><th>bytes in</th>"
                f"<th>2xx</th><th>4xx</th><th>5xx</th><th>misrouted</th></tr>{cells}</table></body></html>"))

        async def records(request: web.Request) -> web.Response:
            return web.json_response([r.as_json() for r in self.records])

        app = web.Application()
        app.router.add_get("/ecs-lab/records", records)
        app.router.add_get("/{tail:.*}", page)
        return app

    # -- lifetime -------------------------------------------------------------------------------
    def start(self) -> FipsProxy:
        self._server.start()

        async def make_session() -> None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout), auto_decompress=False,
                connector=aiohttp.TCPConnector(limit=256))

        self._server.call(make_session)
        try:
            for route in ROUTES:
                port = self.port_range_start + route.offset
                if route.offset == 0:
                    self._server.add_app(self._stats_app(), self.bind_address, port)
                else:
                    # A proxy forwards bodies byte for byte: aiohttp's server would otherwise
                    # gunzip/inflate them on read and the intake would get a body its
                    # Content-Encoding no longer describes.
                    self._server.add_app(self._forwarding_app(route, port), self.bind_address, port,
                                         auto_decompress=False)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            try:
                self._server.call(session.close)
            except Exception:  # noqa: BLE001 - the loop may already be gone; the server stop below still runs
                pass
        self._server.stop()

    def __enter__(self) -> FipsProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class FipsProxyRecords:
    """A running stand-in's records, read from its stats port (`/ecs-lab/records`): the same
    `records`, `records_for`, `misrouted` as `FipsProxy`, for one that runs in another process."""

    def __init__(self, stats_url: str, timeout: float = 5.0) -> None:
        self.stats_url = stats_url.rstrip("/")
        self.timeout = timeout

    @property
    def records(self) -> list[ForwardRecord]:
        import json
        import urllib.request

        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{self.stats_url}/ecs-lab/records", timeout=self.timeout) as resp:
            rows = json.load(resp)
        return [ForwardRecord(**{**row, "expected_routes": tuple(row.get("expected_routes") or ())})
                for row in rows]

    def records_for(self, route_name: str) -> list[ForwardRecord]:
        return [r for r in self.records if r.route == route_name]

    def misrouted(self) -> list[ForwardRecord]:
        return [r for r in self.records if r.misrouted]
