"""The trace-agent's relays on 8126: what tracers send through the agent rather than to it.

Every route, method and target follows DataDog/datadog-agent pkg/trace/api (docs/tracer_surface.md):
- `/dogstatsd/v1/proxy`, `/dogstatsd/v2/proxy` (dogstatsd.go): the body, DogStatsD datagrams one a
  line, goes into the agent's DogStatsD pipeline; with DogStatsD off the agent answers 405.
- `/telemetry/proxy/<path>` (telemetry.go): answered `200 {}` at once, then forwarded to
  `apm_config.telemetry.dd_url` + `<path>` with DD-Agent-Hostname / DD-Agent-Env; not served when
  `apm_config.telemetry.enabled` is false.
- `/evp_proxy/v1..v4/<path>` (evp_proxy.go): forwarded to `https://<X-Datadog-EVP-Subdomain>.<site>/<path>`
  with only the allowed headers plus the agent's own; a missing or invalid subdomain, path or query
  is refused (the reverse proxy's 502). With the EVP proxy disabled: 405.
- `/profiling/v1/input` (profiles.go): forwarded as is to `apm_config.profiling_dd_url` (a full URL,
  `/api/v2/profile` on Datadog), with X-Datadog-Additional-Tags; the intake's answer goes back.
- `/v0.7/config` (remote config, attached by the trace-agent only when remote configuration is on):
  with it off the route does not exist (404) and `/info` does not list it.

The lab's one deviation: an EVP target given as a URL (the lab's `DD_APM_EVP_PROXY_CONFIG_DD_URL`
redirect) is used as the address, the subdomain going into the Host header and X-Datadog-EVP-Subdomain,
because the lab's intake is one address and cannot have `<subdomain>.` in front of it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aiohttp import web

from lab.agent.config import AGENT_VERSION, AgentConfig

log = logging.getLogger("lab.agent.apm")

EVP_VERSIONS = (1, 2, 3, 4)
# evp_proxy.go's allowed headers (EvpProxyAllowedHeaders, which /info also lists; recent agents
# added the encodings for the v4 route's compressed bodies): every other tracer header is dropped.
EVP_ALLOWED_HEADERS = ("Content-Type", "Accept-Encoding", "Content-Encoding", "User-Agent",
                       "DD-CI-PROVIDER-NAME")
_SUBDOMAIN = re.compile(r"^[A-Za-z0-9_.-]+$")
_PATH = re.compile(r"^[A-Za-z0-9/_+-]*$")
_QUERY = re.compile(r'^[A-Za-z0-9/_+@?&=.:"-]*$')
# Hop-by-hop and length headers a relay recomputes.
_NOT_RELAYED = frozenset({"host", "content-length", "connection", "transfer-encoding", "keep-alive",
                          "accept-encoding", "dd-api-key"})

# relay(name, method, url, body, headers) -> (status, body, content type)
Relay = Callable[[str, str, str, bytes, dict[str, str]], Awaitable[tuple[int, bytes, str]]]


@dataclass
class ProxyCounts:
    """What each relay handled (the lab's status shows it; the real agent counts in its own metrics)."""

    dogstatsd_payloads: int = 0
    telemetry: int = 0
    evp: int = 0
    profiles: int = 0
    remote_config: int = 0
    refused: dict[str, int] = field(default_factory=dict)

    def refuse(self, what: str) -> None:
        self.refused[what] = self.refused.get(what, 0) + 1


class TracerProxies:
    """The relays of one agent. `relay(name, method, url, body, headers)` sends one request through
    the agent's forwarder and returns (status, body, content type); `dogstatsd(body)` feeds datagrams
    to the DogStatsD pipeline (None when DogStatsD is off); `hostname()` is the agent's hostname."""

    def __init__(
        self,
        config: AgentConfig,
        relay: Relay,
        dogstatsd: Callable[[bytes], None] | None,
        hostname: Callable[[], str],
    ) -> None:
        self.config = config
        self.relay = relay
        self.dogstatsd = dogstatsd
        self.hostname = hostname
        self.counts = ProxyCounts()
        self._background: set[asyncio.Task] = set()

    # -- what is served ------------------------------------------------------------------------
    def endpoints(self) -> list[str]:
        """The relay routes `/info` lists (endpoints.go order; /v0.7/config only with remote config)."""
        out = ["/profiling/v1/input"]
        if self.config.apm_telemetry_enabled:
            out.append("/telemetry/proxy/")
        out += [f"/evp_proxy/v{v}/" for v in EVP_VERSIONS]
        out += ["/dogstatsd/v1/proxy", "/dogstatsd/v2/proxy"]
        if self.config.remote_configuration_enabled:
            out.append("/v0.7/config")
        return out

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_route("*", "/profiling/v1/input", self.profiles)
        if self.config.apm_telemetry_enabled:
            r.add_route("*", "/telemetry/proxy/{tail:.*}", self.telemetry)
        for v in EVP_VERSIONS:
            r.add_route("*", f"/evp_proxy/v{v}/{{tail:.*}}", self.evp)
        r.add_route("*", "/dogstatsd/v1/proxy", self.dogstatsd_proxy)
        r.add_route("*", "/dogstatsd/v2/proxy", self.dogstatsd_proxy)
        if self.config.remote_configuration_enabled:
            r.add_route("*", "/v0.7/config", self.remote_config)

    def _agent_headers(self) -> dict[str, str]:
        return {"Via": f"trace-agent {AGENT_VERSION}"}

    # -- DogStatsD -----------------------------------------------------------------------------
    async def dogstatsd_proxy(self, request: web.Request) -> web.Response:
        if self.dogstatsd is None:
            self.counts.refuse("dogstatsd")
            return web.Response(status=405, text="405 Method Not Allowed\n")
        body = await request.read()
        # v2 batches datagrams one a line: the pipeline parses a packet of several lines as one.
        await asyncio.get_running_loop().run_in_executor(None, self.dogstatsd, body)
        self.counts.dogstatsd_payloads += 1
        return web.Response(status=200)

    # -- instrumentation telemetry -------------------------------------------------------------
    async def telemetry(self, request: web.Request) -> web.Response:
        body = await request.read()
        path = "/" + request.match_info["tail"]
        query = f"?{request.query_string}" if request.query_string else ""
        url = self.config.endpoints.telemetry + path + query
        headers = _relayed(request.headers)
        headers.update(self._agent_headers())
        headers["DD-Agent-Hostname"] = self.hostname()
        headers["DD-Agent-Env"] = self.config.env
        # telemetry.go: the tracer is answered at once; the forward happens in the background.
        task = asyncio.get_running_loop().create_task(
            self._forget(self.relay("telemetry_proxy", request.method, url, body, headers))
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        self.counts.telemetry += 1
        return web.json_response({})

    async def _forget(self, relay) -> None:
        try:
            status, _, _ = await relay
            if not 200 <= status < 300:
                log.warning("telemetry.Proxy: Received unexpected status code %s", status)
        except Exception as exc:  # noqa: BLE001 - a lost telemetry payload is only logged
            log.warning("telemetry.Proxy: %r", exc)

    # -- EVP -----------------------------------------------------------------------------------
    async def evp(self, request: web.Request) -> web.Response:
        if not self.config.evp_proxy_enabled:
            self.counts.refuse("evp")
            return web.Response(status=405, text="EVPProxy is disabled: Has been disabled in config\n")
        body = await request.read()
        subdomain = request.headers.get("X-Datadog-EVP-Subdomain", "")
        path = "/" + request.match_info["tail"]
        query = request.query_string
        problem = (
            "no subdomain specified" if not subdomain
            else f"invalid subdomain: {subdomain}" if not _SUBDOMAIN.match(subdomain)
            else f"invalid target path: {path}" if not _PATH.match(path)
            else f"invalid query string: {query}" if not _QUERY.match(query)
            else ""
        )
        if problem:
            # The reverse proxy's transport refuses the request; the tracer sees a 502.
            self.counts.refuse("evp")
            log.warning("EVPProxy: %s", problem)
            return web.Response(status=502, text="")
        headers = {h: request.headers[h] for h in EVP_ALLOWED_HEADERS if request.headers.get(h)}
        headers.update(self._agent_headers())
        headers["X-Datadog-Hostname"] = self.hostname()
        headers["X-Datadog-AgentDefaultEnv"] = self.config.env
        headers["Datadog-Container-ID"] = request.headers.get("Datadog-Container-ID", "")
        url, host = evp_target(self.config, subdomain)
        headers["Host"] = host
        headers["X-Datadog-EVP-Subdomain"] = subdomain
        target = url + path + (f"?{query}" if query else "")
        try:
            status, reply, ctype = await self.relay("evp_proxy", request.method, target, body, headers)
        except Exception as exc:  # noqa: BLE001 - the reverse proxy answers 502 on a failed forward
            log.warning("EVPProxy: %r", exc)
            return web.Response(status=502, text="")
        self.counts.evp += 1
        return web.Response(status=status, body=reply, content_type=_ctype(ctype))

    # -- profiles ------------------------------------------------------------------------------
    async def profiles(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = _relayed(request.headers)
        headers.update(self._agent_headers())
        tags = [f"host:{self.hostname()}", f"default_env:{self.config.env or 'none'}",
                f"agent_version:{AGENT_VERSION}"]
        headers["X-Datadog-Additional-Tags"] = ",".join(tags)
        try:
            status, reply, ctype = await self.relay(
                "profiles", request.method, self.config.endpoints.profiling, body, headers
            )
        except Exception as exc:  # noqa: BLE001 - the reverse proxy answers 502 on a failed forward
            log.warning("profiling proxy: %r", exc)
            return web.Response(status=502, text="")
        self.counts.profiles += 1
        return web.Response(status=status, body=reply, content_type=_ctype(ctype))

    # -- remote configuration ------------------------------------------------------------------
    async def remote_config(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            json.loads(body or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return web.Response(status=400, text=f"unable to unmarshal request: {exc}\n")
        self.counts.remote_config += 1
        # The lab has no remote-configuration backend: the answer of an agent with no configs.
        return web.json_response({})


def evp_target(config: AgentConfig, subdomain: str) -> tuple[str, str]:
    """(base URL, Host header) for an EVP request. `apm_config.evp_proxy_config.dd_url` (default: the
    site) is a domain: the target is https://<subdomain>.<domain>. A URL there (the lab's redirect)
    is used as the address, with `<subdomain>.<its host>` as the Host header."""
    target = config.evp_proxy_dd_url or config.site
    if "://" in target:
        parts = urlsplit(target)
        return target.rstrip("/"), f"{subdomain}.{parts.netloc}"
    host = f"{subdomain}.{target}"
    return f"https://{host}", host


def _relayed(headers) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in _NOT_RELAYED}


def _ctype(value: str) -> str | None:
    return value.split(";")[0].strip() or None
