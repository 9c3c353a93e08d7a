"""`Agent`: the owner object that starts every part of the emulated agent and stops all of it.

    with Agent(AgentConfig.from_env(env), env) as agent:
        agent.ports.apm, agent.ports.dogstatsd, agent.ports.cmd

Start order mirrors the real agent: configuration (FIPS rewrite and its warning already applied),
hostname, forwarder, ECS awareness, then the receivers (APM 8126/tcp, DogStatsD 8125/udp, each on
"localhost" or all addresses by its non-local-traffic switch), the IPC/status API, and the flush
loops (metrics every LAB_AGENT_FLUSH_INTERVAL, traces every LAB_AGENT_TRACE_FLUSH_INTERVAL, processes
every LAB_AGENT_PROCESS_INTERVAL, connections every LAB_AGENT_CONNECTIONS_INTERVAL when NPM is on and
its system-probe could start: lab.agent.network).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import sys
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from lab.agent import apm, apm_proxies, forwarder, ipc, network, processes, status
from lab.agent.config import AGENT_VERSION, AgentConfig
from lab.agent.containers import ContainerCollector
from lab.agent.decoders import DecoderPool
from lab.agent.dogstatsd import TYPE_GAUGE, MetricAggregator, Serie, ServiceCheck
from lab.agent.dogstatsd_server import DogStatsDServer
from lab.agent.ecs import EcsAwareness
from lab.agent.fargate_check import FargateCheck
from lab.agent.health import HealthCatalog
from lab.agent.hostname import HostnameResult, resolve_hostname
from lab.agent.logs import LogsAgent
from lab.serving import ServerThread

log = logging.getLogger("lab.agent")


@dataclass
class AgentPorts:
    apm: int | None
    dogstatsd: int | None
    cmd: int
    expvar: int | None = None


class Agent:
    def __init__(
        self, config: AgentConfig, env: Mapping[str, str] | None = None, ecs_refresh_interval: float = 2.0
    ) -> None:
        self.config = config
        self.env = dict(os.environ if env is None else env)
        self.ecs_refresh_interval = ecs_refresh_interval
        self.hostname: HostnameResult | None = None
        self.server: ServerThread | None = None
        self.forwarder: forwarder.Forwarder | None = None
        self.ecs: EcsAwareness | None = None
        self.traces: apm.TraceBuffer | None = None
        self.proxies: apm_proxies.TracerProxies | None = None
        self.otlp = None  # lab.agent.otlp.OtlpReceiver when an OTLP endpoint is configured
        self.otlp_listening: list[str] = []
        self.decoders: DecoderPool | None = None
        self.aggregator: MetricAggregator | None = None
        self.dogstatsd: DogStatsDServer | None = None
        self.ports = AgentPorts(None, None, 0)
        self.apm_listening: list[str] = []
        self._tasks: list[asyncio.Task] = []
        self._ticks: dict[str, float] = {}
        self.started_at = 0.0
        self.process_replies = 0
        self._origin_cache: dict[tuple[str, str, int], tuple[float, str | None]] = {}
        # APM connection (its transport) -> (when looked up, its container): a TCP peer does not
        # change process while connected, so one look-up per connection (a miss again after 5 s).
        self._conn_containers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.container_checks: ContainerCollector | None = None
        self.logs: LogsAgent | None = None
        self.fargate_check: FargateCheck | None = None
        self.health_catalog = HealthCatalog(config.health_ping_interval)
        self.ipc_server: ipc.IpcServer | None = None
        self.ipc_credentials: ipc.IpcCredentials | None = None
        self._process_runs: set[str] = set()
        self._agg = {"flushes": 0, "series": 0, "sketches": 0, "service_checks": 0, "events": 0,
                     "check_samples": 0, "last_series": 0}
        self._check_runs: dict[str, dict] = {}
        self._named_tasks: dict[str, asyncio.Task] = {}
        self.system_probe: network.SystemProbe | None = None
        self.connections_sent = 0
        self._byte_counters: dict[tuple, tuple[int, int]] = {}

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> Agent:
        cfg = self.config
        self.started_at = time.time()
        try:
            if cfg.fips:
                log.warning(cfg.fips.log_line)
            self.hostname = resolve_hostname(cfg, self.env)
            log.info("hostname: %s (%s)", self.hostname.hostname, self.hostname.provider)
            processes.use_procfs(cfg.procfs_path)
            if cfg.network_enabled:
                self._start_system_probe()
            self.server = ServerThread("agent").start()
            self.forwarder = forwarder.Forwarder(cfg)
            self.server.call(self.forwarder.start)
            self.ecs = EcsAwareness(cfg, self.ecs_refresh_interval).start()
            self.ecs.wait_refreshed(3.0)
            host = self.hostname.hostname
            if cfg.ecs_fargate:
                # On Fargate the `ecs_fargate` check reads the task's v4 stats (lab.agent.fargate_check).
                ecs = self.ecs
                self.fargate_check = FargateCheck(cfg.metadata_uri_v4,
                                                  lambda cid: ecs.tags_for_container(cid, "high"),
                                                  lambda: ecs.fargate_tags("high"))
            else:
                # The `container` / `docker` checks: per-task container metrics (lab.agent.containers).
                self.container_checks = ContainerCollector(cfg.docker_socket, self.ecs, host)
            if cfg.logs_enabled:
                self.logs = LogsAgent(cfg, host, self.ecs).start()
            if cfg.dogstatsd_enabled:
                self._start_dogstatsd(host)
            if cfg.apm_enabled:
                self.traces = apm.TraceBuffer(host, cfg.env, stats_bucket=cfg.stats_bucket_interval)
                self.decoders = DecoderPool(cfg.apm_decoder_processes, cfg.apm_decoder_min_bytes)
                self.proxies = apm_proxies.TracerProxies(
                    cfg, self.forwarder.relay, self._dogstatsd_relay if self.dogstatsd else None,
                    lambda: host,
                )
                app = self._clone_apm()
                port = cfg.apm_receiver_port
                for addr in cfg.bind_addresses(cfg.apm_non_local_traffic):
                    listener = self.server.add_app(
                        app if not self.apm_listening else self._clone_apm(), addr, port
                    )
                    port = listener.bound_port
                    self.apm_listening.append(f"{addr}:{port}")
                self.ports.apm = port
            if cfg.otlp_http_endpoint or cfg.otlp_grpc_endpoint:
                self._start_otlp(host)
            self._start_ipc()
            expvar_app = web.Application()
            expvar_app.router.add_get("/debug/vars", self._expvar)
            self.ports.expvar = self.server.add_app(expvar_app, cfg.localhost, cfg.expvar_port).bound_port
            self.server.call(self._start_loops)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_dogstatsd(self, host: str) -> None:
        cfg = self.config
        self.aggregator = MetricAggregator(
            host,
            cfg.bucket_interval,
            cfg.histogram_aggregates,
            cfg.histogram_percentiles,
            extra_tags=(*cfg.dogstatsd_tags, *self._fargate_dogstatsd_tags()),
        )
        self.dogstatsd = DogStatsDServer(
            self.aggregator,
            cfg.bind_addresses(cfg.dogstatsd_non_local_traffic),
            cfg.dogstatsd_port,
            cfg.dogstatsd_so_rcvbuf,
            # Without ECS there is no origin to resolve: the reader then skips senders' addresses.
            self._dogstatsd_origin if self.ecs is not None else None,
            reader_process=cfg.dogstatsd_reader_process,
            queue_size=cfg.dogstatsd_queue_size * cfg.dogstatsd_packet_buffer_size,
        ).start()
        self.ports.dogstatsd = self.dogstatsd.port

    def _start_otlp(self, host: str) -> None:
        """The OTLP receiver on the configured endpoints (lab.agent.otlp); "0.0.0.0" is all of the
        agent's interfaces, as for the other receivers (docs/local_backend.md)."""
        from lab.agent import otlp

        cfg = self.config
        assert self.server is not None and self.forwarder is not None
        features = {f.strip() for f in self.env.get("DD_APM_FEATURES", "").replace(",", " ").split()}
        receiver = otlp.OtlpReceiver(self._otlp_traces, self._otlp_metrics, otlp.MetricsTranslator(host),
                                     v2_names="disable_operation_and_resource_name_logic_v2" not in features)
        self.otlp = receiver

        def addresses(bind: str) -> list[str]:
            if bind in ("0.0.0.0", "::", ""):
                return cfg.bind_addresses(True)
            return [cfg.localhost] if bind in ("localhost", "127.0.0.1") else [bind]

        if cfg.otlp_http_endpoint:
            bind, port = otlp.parse_endpoint(cfg.otlp_http_endpoint)
            for addr in addresses(bind):
                port = self.server.add_app(receiver.http_app(), addr, port).bound_port
                self.otlp_listening.append(f"http://{addr}:{port}")
        if cfg.otlp_grpc_endpoint:
            bind, port = otlp.parse_endpoint(cfg.otlp_grpc_endpoint)
            found = addresses(bind)
            for addr, bound in zip(found, receiver.start_grpc(found, port), strict=True):
                self.otlp_listening.append(f"grpc://{addr}:{bound}")
        log.info("OTLP receiver listening on %s", ", ".join(self.otlp_listening))

    def _otlp_traces(self, mapped) -> None:
        from lab.agent import otlp

        if self.traces is None:
            return  # APM off: the agent's OTLP traces have nowhere to go
        tags = None
        if self.ecs is not None and mapped.container_id:
            tags = self.ecs.tags_for_container(mapped.container_id, "high")
        bucket_ns = self.traces.concentrator.bucket_ns
        built, info = otlp.resource_traces_payload(mapped, self.config.env, bucket_ns, tags)
        self.traces.add_built(built, info, "otlp")

    def _otlp_metrics(self, series, sketches) -> None:
        # Straight to the serializer, as the agent's OTLP metrics pipeline does (no DogStatsD buckets).
        assert self.server is not None and self.forwarder is not None
        cfg, fwd = self.config, self.forwarder

        def submit() -> None:
            if series:
                fwd.submit(forwarder.series_transaction(cfg, series))
            if sketches:
                fwd.submit(forwarder.sketches_transaction(cfg, sketches))

        self.server.loop.call_soon_threadsafe(submit)

    def _dogstatsd_relay(self, body: bytes) -> None:
        """`/dogstatsd/v2/proxy`: the tracer's datagrams into the same pipeline as UDP packets (the
        trace-agent writes them to the DogStatsD socket; in-process here, nothing to lose on the way).
        No sender address: origin comes only from a datagram's own `|c:` field, as for the agent,
        whose UDP packet comes from the trace-agent itself."""
        assert self.dogstatsd is not None
        with self.dogstatsd._parse_lock:
            self.dogstatsd.handle(body, ("", 0))

    def _start_ipc(self) -> None:
        """The IPC API on cmd_port: HTTPS with the auth token; in the fast profile the lab's private
        plain-HTTP status shares the port (lab.agent.ipc)."""
        cfg = self.config
        assert self.server is not None
        app = status.ipc_app(self, lambda: self.ipc_credentials.token if self.ipc_credentials else "")
        plain = status.make_app(self.status, self.health) if cfg.private_status else None
        ipc_server = self.ipc_server = ipc.IpcServer(app, cfg.localhost, cfg.cmd_port, plain)
        self.server.call(ipc_server.start)  # bound, not yet accepting (lab.agent.ipc.IpcServer)
        self.ports.cmd = ipc_server.bound_port
        token_path = ipc.auth_token_path(self.env, self.ports.cmd)
        self.ipc_credentials = ipc.IpcCredentials.fetch_or_create(
            token_path, ipc.ipc_cert_path(self.env, token_path), [cfg.localhost]
        )
        tls = self.ipc_credentials.server_context()
        self.server.call(lambda: ipc_server.serve(tls))
        # Components register with the health catalog at start: unhealthy until its first ping.
        catalog = self.health_catalog
        catalog.register("healthcheck", lambda: True)
        catalog.register("forwarder", lambda: self.forwarder is not None and self.server is not None)
        catalog.register("aggregator", lambda: self._loop_alive("aggregator"))
        catalog.register("collector-queue", lambda: self._loop_alive("aggregator"))
        if self.dogstatsd is not None:
            catalog.register("dogstatsd-main", lambda: all(t.is_alive() for t in self.dogstatsd._threads))

    def _loop_alive(self, name: str) -> bool:
        # A component answers the catalog from its own goroutine whether or not it flushed yet.
        task = self._named_tasks.get(name)
        return task is not None and not task.done()

    def _clone_apm(self) -> web.Application:
        # An aiohttp app is frozen once served; each address gets its own app over the same buffer.
        assert self.traces is not None
        return apm.make_app(
            self.traces, self._info, self._apm_container_tags, self._apm_cached_tags, self.decoders,
            self.proxies,
        )

    async def _start_loops(self) -> None:
        cfg = self.config

        def ticker_delay(interval: float) -> float:
            return 0.0 if cfg.profile == "fast" else interval

        self._named_tasks: dict[str, asyncio.Task] = {}
        self._tasks = [
            # The agent's flush and writer tickers fire first one interval after start
            # (time.NewTicker); the fast profile flushes at once.
            asyncio.create_task(
                self._every(self.config.flush_interval, "aggregator", self._flush_metrics,
                            first_after=ticker_delay(self.config.flush_interval))
            ),
            asyncio.create_task(self.health_catalog.run()),
        ]
        self._named_tasks["aggregator"] = self._tasks[0]
        if self.traces is not None:
            # The trace writer also flushes as soon as a full payload is waiting (pkg/trace/writer).
            loop, wake = asyncio.get_running_loop(), asyncio.Event()
            self.traces.on_full = lambda: loop.call_soon_threadsafe(wake.set)
            self._tasks.append(
                asyncio.create_task(
                    self._every(self.config.trace_flush_interval, "trace-writer", self._flush_traces, wake,
                                first_after=ticker_delay(self.config.trace_flush_interval))
                )
            )
        if self.config.process_collection_enabled:
            self._tasks.append(
                asyncio.create_task(
                    self._every(self.config.process_interval, "process-agent", self._collect_processes)
                )
            )
        elif self.config.container_check_enabled and self.ecs is not None:
            self._tasks.append(
                asyncio.create_task(
                    self._every(self.config.process_interval, "container-check", self._collect_containers)
                )
            )
        if self.system_probe is not None and self.system_probe.running:
            # The process agent's check runner runs a check at once, then every interval.
            self._tasks.append(asyncio.create_task(
                self._every(self.config.connections_interval, "connections", self._collect_connections)))
        elif self.system_probe is not None:
            # The agent image's s6 restarts a failed system-probe 2 s after it exits.
            self._tasks.append(asyncio.create_task(
                self._every(2.0, "system-probe", self._restart_system_probe, first_after=2.0, ticker=False)))
        assert self.forwarder is not None and self.hostname is not None
        self.forwarder.submit(
            forwarder.host_metadata_transaction(self.config, self.hostname.hostname, self.host_tags())
        )

    async def _every(
        self, interval: float, name: str, fn, wake: asyncio.Event | None = None, first_after: float = 0.0,
        ticker: bool = True,
    ) -> None:
        """Run `fn` every `interval` seconds (the first time after `first_after`), or sooner when
        `wake` is set.

        ticker=True: on a fixed schedule, as the Go tickers (`time.NewTicker`) of the agent's
        aggregator, trace writer and process-check runner: a run that takes long (reading /proc on a
        loaded host) does not push the next one back, ticks missed while it ran are dropped (a Go
        ticker drops them), and a run `wake` asked for early leaves the schedule as it was.
        ticker=False: `interval` after the run ended (a supervisor's restart delay)."""
        loop = asyncio.get_running_loop()
        if first_after:
            await asyncio.sleep(first_after)
        next_at = loop.time()
        while True:
            self._ticks[name] = time.monotonic()
            if wake is not None:
                wake.clear()
            try:
                await fn()
            except Exception as exc:  # noqa: BLE001 - one failed flush must not stop the loop
                log.warning("%s flush failed: %r", name, exc)
            now = loop.time()
            if not ticker or interval <= 0:
                delay = max(interval, 0.0)
            else:
                if next_at <= now:  # this run answered the tick (or ran past it): on to the next one
                    next_at += interval
                    if next_at <= now:  # it ran past more ticks: dropped
                        next_at += math.ceil((now - next_at) / interval) * interval
                delay = next_at - now
            if wake is None:
                await asyncio.sleep(delay)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), delay)

    async def _stop_loops(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # Final flush: what was received before the stop still goes out.
        try:
            await self._flush_metrics(force=True)
            await self._flush_traces(final=True)
        except Exception as exc:  # noqa: BLE001
            log.warning("final flush failed: %r", exc)

    def stop(self) -> None:
        if self.ipc_server is not None and self.server is not None:
            with contextlib.suppress(Exception):
                self.server.call(self.ipc_server.stop, timeout=10)
            self.ipc_server = None
        if self.ipc_credentials is not None:
            self.ipc_credentials.remove_created()
            self.ipc_credentials = None
        if self.otlp is not None:
            self.otlp.stop()
        if self.dogstatsd is not None:
            self.dogstatsd.drain(1.0)
            self.dogstatsd.stop()
        if self.logs is not None:
            self.logs.stop()
        if self.server is not None:
            try:
                if self._tasks:
                    self.server.call(self._stop_loops, timeout=15)
                if self.forwarder is not None:
                    self.server.call(self.forwarder.stop, timeout=15)
            finally:
                self.server.stop()
                self.server = None
        if self.decoders is not None:
            self.decoders.stop()
        if self.ecs is not None:
            self.ecs.stop()

    def __enter__(self) -> Agent:
        return self if self.server is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- flushes --------------------------------------------------------------------------------
    async def _flush_metrics(self, force: bool = False) -> None:
        assert self.forwarder is not None and self.hostname is not None
        cfg, host = self.config, self.hostname.hostname
        series, sketches, events, checks = ([], [], [], [])
        if self.aggregator is not None:
            series, sketches, events, checks = self.aggregator.flush(force=force)
        now = int(time.time())
        # The agent reports itself every flush: datadog.agent.running and the datadog.agent.up check.
        series.append(
            Serie("datadog.agent.running", [(now, 1.0)], [f"version:{AGENT_VERSION}"], host, TYPE_GAUGE)
        )
        checks.append(ServiceCheck("datadog.agent.up", 0, now, host, "", []))
        if self.fargate_check is not None and not force:
            started, error, got = time.monotonic(), "", []
            try:
                got, check = await asyncio.get_running_loop().run_in_executor(None, self.fargate_check.run)
                series += got
                checks.append(check)
                if check.status != 0:
                    error = check.message
            except Exception as exc:  # noqa: BLE001 - a failed check run must not stop the flush
                log.warning("ecs_fargate check failed: %r", exc)
                error = repr(exc)
            self._record_check_run("ecs_fargate", started, len(got), error)
            self._agg["check_samples"] += len(got)
            if self.aggregator is not None:
                # The task's tags as the tagger knows them now (the first read may have failed).
                self.aggregator.extra_tags = [*self.config.dogstatsd_tags, *self._fargate_dogstatsd_tags()]
        if self.container_checks is not None and not force:
            # docker stats and /proc reads block: off the loop that receives. The core checks run
            # at the aggregator's cadence (15 s in real-timing, their min_collection_interval).
            started, error, got = time.monotonic(), "", []
            try:
                loop = asyncio.get_running_loop()
                got = await loop.run_in_executor(None, self.container_checks.collect)
                series += got
            except Exception as exc:  # noqa: BLE001 - a failed check run must not stop the flush
                log.warning("container checks failed: %r", exc)
                error = repr(exc)
            self._record_check_run("container", started, len(got), error)
            self._agg["check_samples"] += len(got)
        a = self._agg
        a["flushes"] += 1
        a["series"] += len(series)
        a["last_series"] = len(series)
        a["sketches"] += len(sketches)
        a["service_checks"] += len(checks)
        a["events"] += len(events)
        self.forwarder.submit(forwarder.series_transaction(cfg, series))
        if sketches:
            self.forwarder.submit(forwarder.sketches_transaction(cfg, sketches))
        if events:
            self.forwarder.submit(forwarder.events_transaction(cfg, events, host))
        self.forwarder.submit(forwarder.check_runs_transaction(cfg, checks, host))

    async def _flush_traces(self, final: bool = False) -> None:
        if self.traces is None or self.forwarder is None:
            return
        # Compressing large payloads takes a while (zlib lets go of the GIL): off the receiving loop.
        for txn in await asyncio.get_running_loop().run_in_executor(None, self._trace_transactions):
            self.forwarder.submit(txn)
        # The concentrator sends its open buckets too when the agent stops (Flush(force)).
        for stats in self.traces.take_stats_payloads(force=final):
            self.forwarder.submit(forwarder.stats_transaction(self.config, stats))

    def _trace_transactions(self) -> list[forwarder.Transaction]:
        assert self.traces is not None
        return [
            forwarder.traces_transaction(self.config, body, self.traces.languages)
            for body in self.traces.take_payload_bodies()
        ]

    async def _collect_processes(self) -> None:
        from lab.proto import process_codec as codec

        assert self.hostname is not None
        await self._process_check(
            "process", "/api/v1/collector", codec.TYPE_COLLECTOR_PROC,
            processes.collect_processes, self.config, self.hostname.hostname, self.ecs,
        )

    async def _collect_containers(self) -> None:
        """The container check, when process collection is off: the ECS task containers."""
        from lab.proto import process_codec as codec

        assert self.hostname is not None and self.ecs is not None
        if not self.ecs.state.containers:
            return
        await self._process_check(
            "container", "/api/v1/container", codec.TYPE_COLLECTOR_CONTAINER,
            processes.collect_containers, self.hostname.hostname, self.ecs,
        )

    async def _process_check(self, name: str, route: str, msg_type: int, collect, *args) -> None:
        """Run a process-agent check off the loop (it reads /proc) and send its v3 message."""
        from lab.proto import process_codec as codec

        assert self.forwarder is not None and self.hostname is not None
        msg = await asyncio.get_running_loop().run_in_executor(None, collect, *args)
        if not self.config.first_check_run_sends and name not in self._process_runs:
            # pkg/process/checks: the first run only primes the rates (CPU, I/O); nothing is sent.
            self._process_runs.add(name)
            return
        self._process_runs.add(name)
        self.forwarder.submit(
            forwarder.Transaction(
                name,
                self.config.endpoints.processes + route,
                codec.encode_message(msg_type, msg),
                processes.process_headers(self.hostname.hostname),
                on_response=self._process_reply,
            )
        )

    # -- NPM ----------------------------------------------------------------------------------------
    def _start_system_probe(self) -> None:
        """system-probe's start: its requirements checked against what the container was granted."""
        if self.config.network_enabled_by_deprecated_key:
            log.warning("configuration key `system_probe_config.enabled` is deprecated, "
                        "use `network_config.enabled` instead")
        errors = network.system_probe_start_error(network.granted_capabilities(self.env),
                                                  network.mounted_paths(self.env))
        self.system_probe = network.SystemProbe(errors, started_at=time.time())
        if errors is None:
            _sysprobe_log("INFO", "module network_tracer started")
        else:
            self._log_system_probe_failure()

    def _log_system_probe_failure(self) -> None:
        assert self.system_probe is not None and self.system_probe.error_lines
        *module_errors, fatal = self.system_probe.error_lines
        for line in module_errors:
            _sysprobe_log("ERROR", line)
        _sysprobe_log("CRITICAL", fatal)
        # Dockerfiles/agent/s6-services/sysprobe/finish
        _sysprobe_log("INFO", "system-probe exited with code 1, signal 0, restarting in 2 seconds", init=True)

    async def _restart_system_probe(self) -> None:
        assert self.system_probe is not None
        self.system_probe.restarts += 1
        _sysprobe_log("INFO", "starting system-probe", init=True)
        self._log_system_probe_failure()

    async def _collect_connections(self) -> None:
        """The process agent's connections check: one run, its messages posted together."""
        from lab.proto import process_codec as codec

        assert self.forwarder is not None and self.hostname is not None and self.system_probe is not None
        messages = await asyncio.get_running_loop().run_in_executor(None, self._connection_messages)
        self.system_probe.connections_served += 1
        for msg in messages:
            self.forwarder.submit(forwarder.Transaction(
                "connections", self.config.endpoints.processes + "/api/v1/connections",
                codec.encode_message(codec.TYPE_COLLECTOR_CONNECTIONS, msg),
                processes.process_headers(self.hostname.hostname),
                on_response=self._process_reply,
            ))
            self.connections_sent += len(msg.connections)

    def _connection_messages(self) -> list:
        from lab.agent import tcp_counters

        assert self.hostname is not None
        if self.ecs is None:
            return []
        owner: dict[int, str] = {}
        for cid, (_tags, pids) in self.ecs.known_containers().items():
            for pid in network.process_tree(pids):
                owner.setdefault(pid, cid)
        records = network.connections_from(network.sockets_of(list(owner)), owner.get,
                                           network.local_addresses())
        # Each network namespace's counters, read once (from inside it where it is not ours).
        by_ns: dict[int, dict] = {}
        seen: dict[tuple, tuple[int, int]] = {}
        for r in records:
            if r.type != "tcp":
                continue
            if r.net_ns not in by_ns:
                by_ns[r.net_ns] = tcp_counters.read(network.netns_path(r.pid))
            now = by_ns[r.net_ns].get((r.laddr, r.raddr))
            if now is None:
                continue
            key = (r.type, r.laddr, r.raddr, r.net_ns)
            before = self._byte_counters.get(key, (0, 0))
            # Relative counters since the last check (Connection.lastBytesSent/Received).
            r.bytes_sent, r.bytes_received = max(0, now[0] - before[0]), max(0, now[1] - before[1])
            seen[key] = now
        self._byte_counters = seen
        ecs = self.ecs
        return network.build_payloads(records, self.hostname.hostname, network.next_group_id(),
                                      self.config.max_conns_per_message,
                                      lambda cid: ecs.tags_for_container(cid, "high"), self.host_tags())

    def _process_reply(self, status_code: int, body: bytes) -> None:
        from lab.proto import process_codec as codec

        # The process agent expects a v3 ResCollector; anything else is reported as an error.
        msg = codec.decode_message(body)
        if msg.header.type != codec.TYPE_RES_COLLECTOR:
            raise ValueError(f"expected ResCollector (23), got message type {msg.header.type}")
        self.process_replies += 1

    # -- origin / container tags ----------------------------------------------------------------
    def _apm_cached_tags(self, request: web.Request, tinfo: apm.TracerInfo) -> list[str] | None:
        """The sender's ECS tags when known without a look-up (None: `_apm_container_tags` must
        look): the container the tracer named, or the one found earlier for this connection."""
        if self.ecs is None:
            return []
        if tinfo.container_id:
            tags = self.ecs.tags_for_container(tinfo.container_id, "high")
            if tags:
                return tags
        try:
            hit = self._conn_containers.get(request.transport)
        except TypeError:  # a transport without weak references: look every time
            return None
        if hit is None or (hit[1] is None and time.monotonic() - hit[0] >= 5.0):
            return None
        if hit[1] is None:
            return []
        tinfo.container_id = hit[1]
        return self.ecs.tags_for_container(hit[1], "high")

    def _apm_container_tags(self, request: web.Request, tinfo: apm.TracerInfo) -> list[str]:
        """The sender's ECS tags, looking its container up by its socket when not known yet (in a
        thread: it may read /proc); the answer is kept for the connection."""
        known = self._apm_cached_tags(request, tinfo)
        if known is not None:
            return known
        peer = request.transport.get_extra_info("peername") if request.transport else None
        found = self._peer_container(peer[0], peer[1], "tcp") if peer else None
        with contextlib.suppress(TypeError):
            self._conn_containers[request.transport] = (time.monotonic(), found)
        if not found:
            return []
        tinfo.container_id = found
        return self.ecs.tags_for_container(found, "high")

    def _fargate_dogstatsd_tags(self) -> list[str]:
        """On Fargate every DogStatsD metric gets the task's tags (the tagger's global entity), at
        the DogStatsD tag cardinality."""
        if not self.config.ecs_fargate or self.ecs is None:
            return []
        return self.ecs.fargate_tags(self.config.dogstatsd_tag_cardinality)

    def _dogstatsd_origin(self, ip: str, port: int, container_id: str) -> list[str]:
        if self.ecs is None:
            return []
        card = self.config.dogstatsd_tag_cardinality
        if container_id:
            tags = self.ecs.tags_for_container(container_id, card)
            if tags:
                return tags
        if not ip:  # relayed by the trace-agent: no sender socket to look up
            return []
        cid = self._peer_container(ip, port, "udp")
        return self.ecs.tags_for_container(cid, card) if cid else []

    def _peer_container(self, ip: str, port: int, kind: str) -> str | None:
        """The container of a sender, cached a few seconds (a miss for one second): a process
        look-up per request or packet would cap the receivers' rate, and a sender's container does
        not change between two of its packets."""
        assert self.ecs is not None
        key = (kind, ip, port)
        now = time.monotonic()
        hit = self._origin_cache.get(key)
        if hit is not None and now - hit[0] < (5.0 if hit[1] else 1.0):
            return hit[1]
        cid = self.ecs.container_of_peer(ip, port, kind)
        if len(self._origin_cache) > 10000:
            self._origin_cache.clear()
        self._origin_cache[key] = (now, cid)
        return cid

    # -- introspection --------------------------------------------------------------------------
    def host_tags(self) -> list[str]:
        tags = list(self.config.tags)
        if self.config.env and not any(t.startswith("env:") for t in tags):
            tags.append(f"env:{self.config.env}")
        return tags

    def _info(self) -> dict:
        return apm.info_document(
            self.config,
            self.ports.dogstatsd or self.config.dogstatsd_port,
            self.ports.apm or self.config.apm_receiver_port,
            self.proxies.endpoints() if self.proxies else (),
        )

    async def _expvar(self, request: web.Request) -> web.Response:
        """expvar_port's /debug/vars: the expvar maps the status providers read."""
        doc = status.status_document(self)
        return web.json_response(
            {
                "forwarder": doc["forwarderStats"],
                "aggregator": doc["aggregatorStats"],
                "dogstatsd": doc["dogstatsdStats"],
                "runner": doc["runnerStats"],
                "pid": doc["pid"],
            }
        )

    def _record_check_run(self, name: str, started: float, samples: int, error: str) -> None:
        took_ms = int((time.monotonic() - started) * 1000)
        r = self._check_runs.setdefault(
            name,
            {"CheckName": name, "CheckID": f"{name}:ecs-lab", "TotalRuns": 0, "TotalErrors": 0,
             "TotalWarnings": 0, "MetricSamples": 0, "TotalMetricSamples": 0, "Events": 0,
             "ServiceChecks": 0, "LastExecutionTime": 0, "AverageExecutionTime": 0, "LastError": "",
             "LastWarnings": [], "UpdateTimestamp": 0, "LastSuccessDate": 0},
        )
        r["TotalRuns"] += 1
        r["MetricSamples"] = samples
        r["TotalMetricSamples"] += samples
        runs = r["TotalRuns"]
        r["AverageExecutionTime"] = (r["AverageExecutionTime"] * (runs - 1) + took_ms) // runs
        r["LastExecutionTime"] = took_ms
        r["UpdateTimestamp"] = int(time.time())
        if error:
            r["TotalErrors"] += 1
            r["LastError"] = error
        else:
            r["LastSuccessDate"] = int(time.time())

    def runner_stats(self) -> dict:
        """The collector's `runner` expvar: Checks[name][id] -> the check's run stats."""
        checks = {name: {r["CheckID"]: dict(r)} for name, r in self._check_runs.items()}
        return {
            "Checks": checks,
            "Errors": sum(r["TotalErrors"] for r in self._check_runs.values()),
            "Runs": sum(r["TotalRuns"] for r in self._check_runs.values()),
            "Running": {},
            "RunningChecks": 0,
            "Workers": {"Count": 1, "Instances": {"worker_1": {"Utilization": 0}}},
        }

    def aggregator_counts(self) -> dict:
        return dict(self._agg)

    def enabled_process_checks(self) -> list[str]:
        cfg = self.config
        if cfg.process_collection_enabled:
            checks = ["process", "rtprocess"]
        else:
            with_containers = cfg.container_check_enabled and self.ecs is not None
            checks = ["container", "rtcontainer"] if with_containers else []
        # ConnectionsCheck.IsEnabled: the network module is enabled in system-probe's configuration
        # (whether or not system-probe is up).
        return checks + (["connections"] if cfg.network_enabled else [])

    def health(self) -> dict:
        """The lab's private status shape (fast profile only): lower-case keys."""
        h = self.health_catalog.status()
        return {"healthy": h["Healthy"], "unhealthy": h["Unhealthy"]}

    def status(self) -> dict:
        """The lab's private status document (fast profile's plain HTTP; `agent status -j` is
        `status.status_document`)."""
        return {
            "version": AGENT_VERSION,
            "hostname": self.hostname.hostname if self.hostname else "",
            "hostname_provider": self.hostname.provider if self.hostname else "",
            "pid": os.getpid(),
            "uptime": time.time() - self.started_at,
            "config": self.config.summary(),
            "host_tags": self.host_tags(),
            "ports": self.ports.__dict__,
            "forwarder": self.forwarder.snapshot() if self.forwarder else {},
            "dogstatsd": self.dogstatsd.snapshot() if self.dogstatsd else None,
            "apm": {
                **self.traces.stats.as_dict(),
                "listening": self.apm_listening,
                "decoders": self.decoders.status() if self.decoders else None,
                "relays": self.proxies.counts.__dict__ if self.proxies else None,
            }
            if self.traces
            else None,
            "otlp": {"listening": self.otlp_listening, **self.otlp.counts.__dict__} if self.otlp else None,
            "processes": {"enabled": self.config.process_collection_enabled, "replies": self.process_replies},
            "ecs": self.ecs.snapshot() if self.ecs else None,
            "fips": self.config.fips is not None,
        }


def _sysprobe_log(level: str, message: str, init: bool = False) -> None:
    """A line as system-probe writes it to the container's output, beside the core agent's; with
    `init=True` as the image's s6 scripts do (Dockerfiles/agent/initlog.sh echoes it to stdout)."""
    if init:
        sys.stdout.write(message + "\n")
        sys.stdout.flush()
        return
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    sys.stderr.write(f"{stamp} | SYS-PROBE | {level} | (lab.agent.network) | {message}\n")
    sys.stderr.flush()
