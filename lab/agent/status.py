"""The agent's IPC API on cmd_port: `/agent/status` (JSON) and the health endpoint.

The real `agent health` asks the running agent over its IPC API (cmd_host:cmd_port,
`/agent/status/health`) and prints `Agent health: PASS` (exit 0) or `Agent health: FAIL` with the
unhealthy components (exit 1); an unreachable agent is an error (exit 1). The lab serves the same
shape over plain HTTP on `LAB_AGENT_LOCALHOST:DD_CMD_PORT`.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable

from aiohttp import web

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def make_app(status: Callable[[], dict], health: Callable[[], dict]) -> web.Application:
    app = web.Application()

    async def status_handler(request: web.Request) -> web.Response:
        return web.json_response(status())

    async def health_handler(request: web.Request) -> web.Response:
        h = health()
        return web.json_response(h, status=200 if not h["unhealthy"] else 500)

    app.router.add_get("/agent/status", status_handler)
    app.router.add_get("/agent/status/health", health_handler)
    app.router.add_get("/health", health_handler)
    return app


def fetch(host: str, port: int, path: str, timeout: float = 5.0) -> tuple[int, dict]:
    url = f"http://{host}:{port}{path}"
    try:
        with _opener.open(url, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read().decode())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read().decode() or "{}")


def health_text(h: dict) -> str:
    lines = [f"Agent health: {'PASS' if not h['unhealthy'] else 'FAIL'}"]
    if h["healthy"]:
        lines.append(f"=== {len(h['healthy'])} healthy components ===")
        lines.append(", ".join(h["healthy"]))
    if h["unhealthy"]:
        lines.append(f"=== {len(h['unhealthy'])} unhealthy components ===")
        lines.append(", ".join(h["unhealthy"]))
    return "\n".join(lines)


def status_text(s: dict) -> str:
    out = [
        f"Agent (v{s['version']}) — ecs-lab emulation",
        "=" * 40,
        f"  Hostname: {s['hostname']} (provider: {s['hostname_provider']})",
        f"  FIPS proxy: {json.dumps(s['config']['fips']) if s['config']['fips'] else 'disabled'}",
        "",
        "Forwarder",
        "---------",
    ]
    for name, c in s["forwarder"].items():
        out.append(
            f"  {name}: sent={c['sent']} errors={c['errors']} retries={c['retries']} "
            f"dropped={c['dropped']} last_status={c['last_status']}"
        )
    d = s.get("dogstatsd") or {}
    if d:
        out += [
            "",
            "DogStatsD",
            "---------",
            f"  listening: {', '.join(d['listening'])}",
            f"  packets={d['packets']} metric_samples={d['metric_samples']} events={d['events']} "
            f"service_checks={d['service_checks']} errors={d['errors']} {d['errors_by_reason']}",
        ]
    a = s.get("apm") or {}
    if a:
        out += [
            "",
            "APM Agent",
            "---------",
            f"  listening: {', '.join(a['listening'])}",
            f"  traces received={a['traces_received']} spans={a['spans_received']} "
            f"decode_errors={a['decode_errors']}",
        ]
    e = s.get("ecs") or {}
    out += [
        "",
        "ECS",
        "---",
        f"  introspection: {e.get('introspection_url')} cluster={e.get('cluster')}",
        f"  containers: {len(e.get('containers') or {})}",
    ]
    return "\n".join(out)
