"""What the agent's IPC API answers, and how its CLI prints it.

- `ipc_app`: the HTTPS IPC API (lab.agent.ipc serves it): `/agent/status` (text, or JSON with
  `?format=json`), `/agent/status/health` (`{"Healthy": [...], "Unhealthy": [...]}`),
  `/agent/config` (YAML), `/agent/version`, `/agent/hostname` - comp/api/api/apiimpl/internal/agent.
- `status_document`: `agent status -j`, the header of comp/core/status/statusimpl
  (common_header_provider.go) plus each provider's key, with the agent's value shapes (expvar
  names of comp/forwarder/defaultforwarder/transaction, pkg/aggregator, comp/dogstatsd/server,
  pkg/trace/info).
- `make_app`: the lab's private plain-HTTP status (fast profile only; the lab's own readiness
  checks read it - never a scenario: the real agent has nothing like it).
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING

from lab.agent.config import AGENT_VERSION, runtime_settings

if TYPE_CHECKING:  # the server's: the CLI (`agent health`, `agent status`) must not import aiohttp
    from aiohttp import web

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# comp/forwarder/defaultforwarder/endpoints: the expvar name of each route the lab sends.
FORWARDER_ENDPOINT_NAMES = {
    "series": "series_v2",
    "sketches": "sketches_v2",
    "check_run": "check_run_v1",
    "events": "intake",
    "host_metadata": "intake",
    "process": "process",
    "container": "container",
}
TRACE_WRITER_NAMES = ("traces", "apm_stats")


def _forwarder_stats(snapshot: dict) -> dict:
    success_by_endpoint = {name: 0 for name in sorted(set(FORWARDER_ENDPOINT_NAMES.values()))}
    dropped_by_endpoint: dict[str, int] = {}
    by_code: dict[str, int] = {}
    success = errors = dropped = http_errors = 0
    for txn_name, c in snapshot.items():
        endpoint = FORWARDER_ENDPOINT_NAMES.get(txn_name)
        if endpoint is None:
            continue  # the trace-agent's writers: apmStats
        success_by_endpoint[endpoint] += c["sent"]
        success += c["sent"]
        errors += c["errors"]
        dropped += c["dropped"]
        if c["dropped"]:
            dropped_by_endpoint[endpoint] = dropped_by_endpoint.get(endpoint, 0) + c["dropped"]
        for code, n in c.get("http_errors", {}).items():
            by_code[str(code)] = by_code.get(str(code), 0) + n
            http_errors += n
    return {
        "Transactions": {
            "Success": success,
            "Errors": errors,
            "SuccessByEndpoint": success_by_endpoint,
            "HTTPErrors": http_errors,
            "HTTPErrorsByCode": by_code,
            "Dropped": dropped,
            "DroppedByEndpoint": dropped_by_endpoint,
            "ErrorsByType": {"DNSErrors": 0, "TLSErrors": 0, "ConnectionErrors": 0,
                             "WroteRequestErrors": 0, "SentRequestErrors": 0},
        },
        "APIKeyStatus": {},
    }


def _with_api_key_status(stats: dict, agent) -> dict:
    """APIKeyStatus as the agent keys it: by the last 5 characters of the key (never the key)."""
    status = getattr(agent.forwarder, "api_key_status", "") if agent.forwarder else ""
    key = agent.config.api_key or ""
    if status and key:
        stats["APIKeyStatus"] = {f"API key ending with {key[-5:]}": status}
    return stats


def status_document(agent) -> dict:  # agent: lab.agent.main.Agent (not imported: a cycle)
    """`agent status -j` of the running emulated agent."""
    import platform
    import sys

    cfg = agent.config
    fwd = agent.forwarder.snapshot() if agent.forwarder else {}
    agg = agent.aggregator_counts()
    ds = agent.dogstatsd.stats if agent.dogstatsd else None
    errs = dict(ds.errors) if ds else {}
    apm_stats: dict = {}
    if agent.traces is not None:
        writer = {name: fwd.get(name, {}) for name in TRACE_WRITER_NAMES}
        apm_stats = {
            "pid": os.getpid(),
            "uptime": int(time.time() - agent.started_at),
            "version": {"Version": AGENT_VERSION, "GitCommit": "ecs-lab"},
            "receiver": agent.traces.stats.receiver(),
            "ratebyservice": {"service:,env:": 1},
            "trace_writer": {
                "Payloads": writer["traces"].get("sent", 0),
                "Errors": writer["traces"].get("errors", 0),
                "Retries": writer["traces"].get("retries", 0),
                "Bytes": writer["traces"].get("bytes", 0),
            },
            "stats_writer": {
                "Payloads": writer["apm_stats"].get("sent", 0),
                "Errors": writer["apm_stats"].get("errors", 0),
                "Retries": writer["apm_stats"].get("retries", 0),
                "Bytes": writer["apm_stats"].get("bytes", 0),
            },
            "config": {"Enabled": cfg.apm_enabled, "ReceiverPort": agent.ports.apm, "DefaultEnv": cfg.env},
        }
    host = agent.hostname.hostname if agent.hostname else ""
    return {
        # comp/core/status/statusimpl common_header_provider.go
        "version": AGENT_VERSION,
        "flavor": "agent",
        "conf_file": "/etc/datadog-agent/datadog.yaml",
        "extra_conf_file": [],
        "pid": os.getpid(),
        "go_version": f"python{platform.python_version()} (ecs-lab emulation)",
        "agent_start_nano": int(agent.started_at * 1e9),
        "build_arch": platform.machine(),
        "time_nano": time.time_ns(),
        "config": {
            "log_file": "",
            "log_level": cfg.log_level,
            "confd_path": "/etc/datadog-agent/conf.d",
            "additional_checksd": "/etc/datadog-agent/checks.d",
            "fips_enabled": "true" if cfg.fips else "false",
            "fips_local_address": cfg.fips.local_address if cfg.fips else "localhost",
            "fips_port_range_start": str(cfg.fips.port_range_start if cfg.fips else 9803),
        },
        # populateFIPSStatus: "proxy" when fips.enabled without a FIPS build
        "fips_status": "proxy" if cfg.fips else "not available",
        "python_version": sys.version.split(" ")[0],
        "hostnameStats": {"provider": agent.hostname.provider if agent.hostname else "",
                          "errors": dict(agent.hostname.errors) if agent.hostname else {}},
        "hostinfo": {"hostname": host},
        "forwarderStats": _with_api_key_status(_forwarder_stats(fwd), agent),
        "aggregatorStats": {
            "Flush": {},
            "FlushCount": {"Series": {"LastFlush": agg["last_series"]}},
            "NumberOfFlush": agg["flushes"],
            "SeriesFlushed": agg["series"],
            "SeriesFlushErrors": 0,
            "SketchesFlushed": agg["sketches"],
            "SketchesFlushErrors": 0,
            "ServiceCheckFlushed": agg["service_checks"],
            "ServiceCheckFlushErrors": 0,
            "EventsFlushed": agg["events"],
            "EventsFlushErrors": 0,
            "DogstatsdMetricSample": ds.metric_samples if ds else 0,
            "ChecksMetricSample": agg["check_samples"],
            "ServiceCheck": ds.service_checks if ds else 0,
            "Event": ds.events if ds else 0,
            "HostnameUpdate": 0,
            "DogstatsdContexts": agent.aggregator.contexts_seen if agent.aggregator else 0,
        },
        "dogstatsdStats": {
            "MetricPackets": ds.metric_samples if ds else 0,
            "MetricParseErrors": sum(errs.values()),
            "EventPackets": ds.events if ds else 0,
            "EventParseErrors": 0,
            "ServiceCheckPackets": ds.service_checks if ds else 0,
            "ServiceCheckParseErrors": 0,
            "UdpPackets": ds.packets if ds else 0,
            "UdpBytes": ds.bytes if ds else 0,
            "UdpPacketReadingErrors": 0,
        },
        "apmStats": apm_stats,
        "processAgentStatus": {
            "core": {"version": AGENT_VERSION, "build_arch": platform.machine()},
            "expvars": {
                "process_agent": {
                    "enabled_checks": agent.enabled_process_checks(),
                    "process_count": 0,
                    "container_count": 0,
                    "last_collect_time": "",
                    "uptime": int(time.time() - agent.started_at),
                    "endpoints": {cfg.endpoints.processes: [cfg.api_key[-5:]]},
                    "submission_error_count": sum(
                        fwd.get(n, {}).get("errors", 0) for n in ("process", "container", "connections")
                    ),
                }
            },
        },
        **({"systemProbeStats": agent.system_probe.status(time.time())}
           if getattr(agent, "system_probe", None) is not None else {}),
        # pkg/status (status_otlp.go): whether the OTLP pipeline is enabled and its collector runs.
        "otlp": {"otlpStatus": agent.otlp is not None,
                 "otlpCollectorStatus": "Running" if agent.otlp is not None else "Not running",
                 "otlpCollectorStatusErr": ""},
        "runnerStats": agent.runner_stats(),
        # the API key of each endpoint, shortened to its last five characters
        "endpointsInfos": {cfg.endpoints.metrics: [cfg.api_key[-5:]]},
        "logsStats": agent.logs.status() if agent.logs is not None else {
            "is_running": False, "endpoints": [], "metrics": {}, "process_file_stats": {},
            "integrations": [], "errors": [], "warnings": [], "use_http": False},
        "errors": [],
    }


def status_text(s: dict) -> str:
    """Plain `agent status`: the sections of the real page for what the emulation runs."""
    tx = s["forwarderStats"]["Transactions"]
    agg, ds = s["aggregatorStats"], s["dogstatsdStats"]
    out = [
        "=" * 26,
        f"Agent (v{s['version']})",
        "=" * 26,
        "",
        "  Status date: " + time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(s["time_nano"] / 1e9)),
        "  Agent start: "
        + time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(s["agent_start_nano"] / 1e9)),
        f"  Pid: {s['pid']}",
        f"  Python Version: {s['python_version']}",
        f"  Build arch: {s['build_arch']}",
        f"  Agent flavor: {s['flavor']}",
        f"  FIPS Mode: {s['fips_status']}",
        f"  Log Level: {s['config']['log_level']}",
        "",
        "=========",
        "Forwarder",
        "=========",
        "",
        "  Transactions",
        "  ============",
    ]
    for name, n in sorted(tx["SuccessByEndpoint"].items()):
        if n:
            out.append(f"    {name}: {n}")
    out += [
        f"    Success: {tx['Success']}",
        f"    Errors: {tx['Errors']}",
        f"    HTTP errors: {tx['HTTPErrors']}",
        f"    Dropped: {tx['Dropped']}",
        "",
        "==========",
        "Aggregator",
        "==========",
        f"  Number Of Flushes: {agg['NumberOfFlush']}",
        f"  Series Flushed: {agg['SeriesFlushed']}",
        f"  Service Check Flushed: {agg['ServiceCheckFlushed']}",
        f"  Dogstatsd Metric Sample: {agg['DogstatsdMetricSample']}",
        "",
        "=========",
        "DogStatsD",
        "=========",
    ]
    out += [f"  {k}: {v}" for k, v in ds.items()]
    if s["apmStats"]:
        out += ["", "=========", "APM Agent", "=========", "  Status: Running", "  Receiver"]
        for r in s["apmStats"]["receiver"]:
            parts = (r["Lang"], r["LangVersion"], r["Interpreter"], r["TracerVersion"])
            who = " ".join(x for x in parts if x)
            out.append(f"    From {who or 'unknown'} ({r['EndpointVersion']})")
            out.append(f"      Traces received: {r['TracesReceived']} ({r['TracesBytes']} bytes)")
            out.append(f"      Spans received: {r['SpansReceived']}")
    return "\n".join(out) + "\n"


def config_yaml(config) -> str:
    """`/agent/config`: the runtime settings as YAML (the agent marshals its settings map)."""
    import yaml

    return yaml.safe_dump(runtime_settings(config), default_flow_style=False, sort_keys=True)


def ipc_app(agent, token) -> web.Application:
    """The IPC API's routes, behind the bearer-token check (`token()` gives the current token)."""
    from aiohttp import web

    from lab.agent.ipc import auth_middleware

    app = web.Application(middlewares=[auth_middleware(token)])

    async def status_handler(request: web.Request) -> web.Response:
        doc = status_document(agent)
        if request.query.get("format", "text") == "json":
            return web.json_response(doc)
        return web.Response(text=status_text(doc))

    async def health_handler(request: web.Request) -> web.Response:
        return web.json_response(agent.health_catalog.status())

    async def config_handler(request: web.Request) -> web.Response:
        return web.Response(text=config_yaml(agent.config), content_type="text/yaml")

    async def version_handler(request: web.Request) -> web.Response:
        major, minor, patch = (int(x) for x in AGENT_VERSION.split("."))
        return web.json_response(
            {"Major": major, "Minor": minor, "Patch": patch, "Pre": "", "Meta": "", "Commit": "ecs-lab"}
        )

    async def hostname_handler(request: web.Request) -> web.Response:
        return web.json_response(agent.hostname.hostname if agent.hostname else "")

    app.router.add_get("/agent/status", status_handler)
    app.router.add_get("/agent/status/health", health_handler)
    app.router.add_get("/agent/config", config_handler)
    app.router.add_get("/agent/version", version_handler)
    app.router.add_get("/agent/hostname", hostname_handler)
    return app


def make_app(status: Callable[[], dict], health: Callable[[], dict]) -> web.Application:
    from aiohttp import web

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
    """pkg/cli/subcommands/health: PASS/FAIL, then the healthy and the unhealthy components."""
    healthy, unhealthy = sorted(h.get("Healthy") or []), sorted(h.get("Unhealthy") or [])
    lines = [f"Agent health: {'PASS' if not unhealthy else 'FAIL'}"]
    if healthy:
        lines += [f"=== {len(healthy)} healthy components ===", ", ".join(healthy)]
    if unhealthy:
        lines += [f"=== {len(unhealthy)} unhealthy components ===", ", ".join(unhealthy)]
    return "\n".join(lines)
