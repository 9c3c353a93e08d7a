"""What a scenario may know about the agent under test: only what the real Datadog Agent offers.

The agent is a black box. `AgentProbe` reads it through the same doors an operator has on ECS:

- `agent status --json` (`-j`), `agent health`, `agent config`, run inside the agent's container
  (an *exec function* supplied by the backend: `docker exec`, or the emulated agent's CLI run with
  the agent container's environment);
- the trace-agent's `GET /info` on its receiver port (8126).

From those it answers what scenarios need: the agent's version, whether it offers a data type or
endpoint (`offers`), and the intervals that decide how long data takes to reach the intake
(`intervals`): read from `agent config` / `/info` where the agent reports them, else the documented
defaults of the agent's code (see docs/agent_probe.md for the upstream sources).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

ExecFn = Callable[[list[str]], tuple[int, str]]
"""argv -> (exit code, output): runs a command inside the agent's container."""

STATUS_ARGV = ["agent", "status", "--json"]  # `-j` is the same flag (cobra BoolVarP "json", "j")
HEALTH_ARGV = ["agent", "health"]
CONFIG_ARGV = ["agent", "config"]

# Margin added to every wait on top of the agent's own intervals: the machine is shared (2 cores,
# several labs), so a payload can be late by a few seconds without the agent being wrong.
DEFAULT_MARGIN = 10.0


class AgentProbeError(RuntimeError):
    """The agent did not answer one of its documented commands in its documented format."""


class NotOffered(AgentProbeError):
    """The agent's container has no such command (exit 127, as `docker exec` of a missing executable,
    or an agent kind that says it does not offer it)."""


# -- agent health ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Health:
    """`agent health`: `Agent health: PASS|FAIL`, then `=== N healthy components ===` and the
    comma-separated list, then the same for unhealthy ones; exit 1 when any is unhealthy."""

    exit_code: int
    passed: bool
    healthy: tuple[str, ...]
    unhealthy: tuple[str, ...]
    text: str

    def __bool__(self) -> bool:
        return self.passed and self.exit_code == 0


_HEALTH_LINE = re.compile(r"^Agent health:\s*(PASS|FAIL)\s*$")
_SECTION = re.compile(r"^===\s*(\d+)\s+(healthy|unhealthy) components\s*===\s*$")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # the agent colours PASS/FAIL and the counts on a terminal


def parse_health(text: str, exit_code: int) -> Health:
    """Parse `agent health` output. An answer without the `Agent health:` line (e.g. "could not
    reach agent") is an error naming what was printed."""
    lines = [_ANSI.sub("", line).strip() for line in text.splitlines()]
    verdict = next((m.group(1) for m in map(_HEALTH_LINE.match, lines) if m), None)
    if verdict is None:
        raise AgentProbeError(f"`agent health` (exit {exit_code}) printed no 'Agent health: PASS|FAIL' line: "
                              f"{text.strip()[:300]!r}")
    found: dict[str, tuple[str, ...]] = {"healthy": (), "unhealthy": ()}
    for i, line in enumerate(lines):
        m = _SECTION.match(line)
        if not m:
            continue
        names = tuple(n.strip() for n in (lines[i + 1] if i + 1 < len(lines) else "").split(",") if n.strip())
        if len(names) != int(m.group(1)):
            raise AgentProbeError(f"`agent health` announced {m.group(1)} {m.group(2)} components and "
                                  f"listed {len(names)}: {lines[i + 1] if i + 1 < len(lines) else ''!r}")
        found[m.group(2)] = names
    return Health(exit_code, verdict == "PASS", found["healthy"], found["unhealthy"], text)


# -- agent status --json ------------------------------------------------------------------------------


def parse_status(text: str) -> dict:
    """`agent status --json`: one JSON object (the header plus each status provider's keys)."""
    start = text.find("{")
    if start < 0:
        raise AgentProbeError(f"`agent status --json` printed no JSON object: {text.strip()[:300]!r}")
    try:
        doc, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError as exc:
        raise AgentProbeError(f"`agent status --json` printed invalid JSON ({exc}): "
                              f"{text[start:start + 300]!r}") from None
    if not isinstance(doc, dict):
        raise AgentProbeError(f"`agent status --json` printed a {type(doc).__name__}, not an object")
    return doc


@dataclass(frozen=True)
class AgentStatus:
    """Readers over the status document's provider keys, as the real agent names them."""

    raw: dict

    @property
    def version(self) -> str | None:
        return self.raw.get("version")

    def receiver_stats(self) -> list[dict] | None:
        """The trace-agent's receiver stats (`apmStats.receiver`: one entry per tracer tag set, with
        `Service`, `Lang`, `TracesReceived`, `SpansReceived`, ...), or None if not reported."""
        apm = self.raw.get("apmStats")
        if isinstance(apm, dict) and isinstance(apm.get("receiver"), list):
            return apm["receiver"]
        return None

    def traces_received(self, service: str | None = None) -> int | None:
        """Traces the receiver counted (for `service`, when the agent reports per service)."""
        stats = self.receiver_stats()
        if stats is None:
            return None
        per_service = any(s.get("Service") for s in stats)
        return sum(int(s.get("TracesReceived") or 0) for s in stats
                   if service is None or not per_service or s.get("Service") == service)

    def transactions_succeeded(self) -> int | None:
        """`forwarderStats.Transactions.Success`: payloads the forwarder delivered."""
        fwd = self.raw.get("forwarderStats")
        if isinstance(fwd, dict) and isinstance(fwd.get("Transactions"), dict):
            return int(fwd["Transactions"].get("Success") or 0)
        return None



# -- agent config -------------------------------------------------------------------------------------


def parse_config(text: str) -> dict:
    """`agent config`: the runtime configuration as YAML (a mapping of settings)."""
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AgentProbeError(f"`agent config` printed invalid YAML ({exc}): "
                              f"{text.strip()[:300]!r}") from None
    # The CLI's failures ("Error: unable to ...", cobra's form) are YAML mappings too.
    if not isinstance(doc, dict) or set(doc) == {"Error"}:
        raise AgentProbeError(f"`agent config` printed no settings mapping: {text.strip()[:300]!r}")
    return doc


def setting(config: dict, key: str) -> Any:
    """A dotted setting (`apm_config.trace_writer.flush_period_seconds`) of a parsed `agent config`;
    None when unset. A flat key with dots is accepted too."""
    if key in config:
        return config[key]
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


# -- intervals ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wait:
    """How long to wait for something the agent sends, and which of its intervals that is."""

    seconds: float
    what: str

    def __str__(self) -> str:
        return f"{self.what} = {self.seconds:.0f} s"


@dataclass(frozen=True)
class Intervals:
    """The agent's timing, each value with where it came from (`source[name]`)."""

    metric_flush: float  # aggregator flush (DogStatsD and check metrics leave on it)
    metric_bucket: float  # DogStatsD time buckets; only closed buckets are flushed
    trace_flush: float  # trace writer flush period
    apm_stats_bucket: float  # APM stats (concentrator) bucket width
    process_check: float
    container_check: float
    process_first_run_skipped: bool  # process/container checks send nothing on their first run
    core_check: float  # default collection interval of core checks (container, docker, ...)
    version: str
    source: dict[str, str] = field(default_factory=dict)
    margin: float = DEFAULT_MARGIN
    logs_batch_wait: float = 5.0  # the logs sender's batch wait (logs_config.batch_wait)
    connections_check: float = 30.0  # the process agent's connections check (NPM)
    task_discovery: float = 5.0  # the tagger learns a new ECS task on workloadmeta's next pull

    def describe(self) -> str:
        names = ("metric_flush", "metric_bucket", "trace_flush", "apm_stats_bucket", "process_check",
                 "container_check", "core_check", "logs_batch_wait", "connections_check", "task_discovery")
        return f"agent {self.version}: " + ", ".join(
            f"{n}={getattr(self, n):g}s ({self.source.get(n, '?')})" for n in names)

    # What each kind of data takes, worst case, from the moment it was sent or produced.
    def metrics(self) -> Wait:
        """A DogStatsD point: its bucket closes, then the next aggregator flush sends it."""
        return Wait(self.metric_bucket + self.metric_flush + self.margin,
                    f"one metric bucket ({self.metric_bucket:g} s) + one aggregator flush "
                    f"({self.metric_flush:g} s) + margin {self.margin:g} s")

    def traces(self, tracer_flush: float = 1.0) -> Wait:
        """A span: the tracer's own writer interval, then the agent's trace writer flush."""
        return Wait(tracer_flush + self.trace_flush + self.margin,
                    f"the tracer's flush ({tracer_flush:g} s) + one trace writer flush "
                    f"({self.trace_flush:g} s) + margin {self.margin:g} s")

    def apm_stats(self) -> Wait:
        """APM stats: the bucket closes and is kept one more width before it is flushed."""
        return Wait(2 * self.apm_stats_bucket + self.trace_flush + self.margin,
                    f"two APM stats buckets ({self.apm_stats_bucket:g} s) + one trace writer flush "
                    f"({self.trace_flush:g} s) + margin {self.margin:g} s")

    def processes(self) -> Wait:
        runs = 2 if self.process_first_run_skipped else 1
        return Wait(runs * self.process_check + self.margin,
                    f"{runs} process check run(s) ({self.process_check:g} s"
                    f"{', the first sends nothing' if runs == 2 else ''}) + margin {self.margin:g} s")

    def connections(self, runs: int = 1) -> Wait:
        """A connection the check can see: `runs` connections check runs (the check sends on every
        run, its first included), each posted at once."""
        return Wait(runs * self.connections_check + self.margin,
                    f"{runs} connections check run(s) ({self.connections_check:g} s) + "
                    f"margin {self.margin:g} s")

    def check_metrics(self, runs: int = 1) -> Wait:
        """A core check's metric: `runs` check runs (rates need two), then the aggregator flush."""
        return Wait(runs * self.core_check + self.metric_flush + self.margin,
                    f"{runs} core check run(s) ({self.core_check:g} s) + one aggregator flush "
                    f"({self.metric_flush:g} s) + margin {self.margin:g} s")

    def logs(self) -> Wait:
        """A container's log line: the logs agent picks the container up (its autodiscovery sees a
        new container within about a second), then the sender's batch waits `batch_wait`."""
        return Wait(1.0 + self.logs_batch_wait + self.margin,
                    f"container discovery (1 s) + one logs batch wait ({self.logs_batch_wait:g} s) + "
                    f"margin {self.margin:g} s")

    def of_new_task(self, then: Wait) -> Wait:
        """Data of a task started just now, carrying its ECS tags: the agent's tagger learns the task
        on its next pull of ECS metadata (workloadmeta pulls every 5 s; what a task sends before that
        has no task tags), then `then`."""
        return Wait(self.task_discovery + then.seconds,
                    f"the agent learning the new task ({self.task_discovery:g} s) + {then.what}")

    def flush_after(self) -> Wait:
        """One complete aggregator flush from now (a flush already under way may not carry it)."""
        return Wait(2 * self.metric_flush + self.margin,
                    f"two aggregator flushes ({self.metric_flush:g} s) + margin {self.margin:g} s")


# Documented defaults of the agent's code, used when the agent does not report a setting. The same
# for every 6.x/7.x agent the lab knows; docs/agent_probe.md names the source file of each.
DOCUMENTED_DEFAULTS: dict[str, float] = {
    "metric_flush": 15.0,  # pkg/aggregator/aggregator.go DefaultFlushInterval (no setting)
    "metric_bucket": 10.0,  # pkg/aggregator bucketSize (no setting)
    "trace_flush": 5.0,  # pkg/trace/writer/trace.go flush tick
    "apm_stats_bucket": 10.0,  # pkg/trace/config BucketInterval
    "process_check": 10.0,  # pkg/process/checks/interval.go ProcessCheckDefaultInterval
    "container_check": 10.0,  # pkg/process/checks/interval.go ContainerCheckDefaultInterval
    "core_check": 15.0,  # pkg/collector/check/defaults DefaultCheckInterval
    "logs_batch_wait": 5.0,  # comp/logs-library/defaults DefaultBatchWait
    "connections_check": 30.0,  # pkg/process/checks/interval.go ConnectionsCheckDefaultInterval
    "task_discovery": 5.0,  # comp/core/workloadmeta/impl/store.go pullCollectorInterval (no setting)
}

# Settings a real agent reports in `agent config` for some of them.
CONFIG_KEYS: dict[str, str] = {
    "trace_flush": "apm_config.trace_writer.flush_period_seconds",
    "apm_stats_bucket": "apm_config.bucket_size_seconds",
    "process_check": "process_config.intervals.process",
    "container_check": "process_config.intervals.container",
    "logs_batch_wait": "logs_config.batch_wait",
    "connections_check": "process_config.intervals.connections",
}


def intervals_from(config: dict | None, version: str | None, *, margin: float = DEFAULT_MARGIN,
                   config_error: str | None = None) -> Intervals:
    """The intervals of an agent from its parsed `agent config` (None if it could not be read)."""
    values: dict[str, float] = {}
    source: dict[str, str] = {}
    label = version or "unknown version"
    for name, default in DOCUMENTED_DEFAULTS.items():
        key = CONFIG_KEYS.get(name)
        raw = setting(config, key) if (config is not None and key) else None
        try:
            value = float(raw) if raw not in (None, "", 0, "0") else None
        except (TypeError, ValueError):
            raise AgentProbeError(f"`agent config` setting {key}={raw!r} is not a number of seconds") \
                from None
        if value is not None and value > 0:
            values[name], source[name] = value, f"agent config {key}"
        else:
            values[name] = default
            why = f"; agent config unavailable: {config_error}" if config_error else ""
            source[name] = f"documented default for agent {label}{why}"
    return Intervals(**values, process_first_run_skipped=True, version=label, source=source, margin=margin)


# -- offers -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    """Whether the agent under test offers something; `reason` says why not (for pytest.skip)."""

    what: str
    offered: bool
    reason: str

    def __bool__(self) -> bool:
        return self.offered


# Data types / endpoints by the trace-agent endpoints (`/info` "endpoints") that serve them.
INFO_ENDPOINTS: dict[str, tuple[str, ...]] = {
    "traces": ("/v0.4/traces", "/v0.5/traces", "/v0.7/traces"),
    "traces_v05": ("/v0.5/traces",),
    "client_stats": ("/v0.6/stats",),
    "dogstatsd_proxy": ("/dogstatsd/v2/proxy",),
    "evp_proxy": ("/evp_proxy/v2/", "/evp_proxy/v3/", "/evp_proxy/v4/"),
    "telemetry_proxy": ("/telemetry/proxy/",),
    "remote_config": ("/v0.7/config",),
    "profiling": ("/profiling/v1/input",),
    "debugger": ("/debugger/v1/input",),
}
STATUS_OFFERS = ("apm_receiver_stats", "forwarder_stats")
# Data types by the `agent status --json` providers of the components that produce and send them:
# an agent whose status has no such provider (or has no `agent status` at all) does not run them.
STATUS_PROVIDERS: dict[str, tuple[str, ...]] = {
    "agent_status": (),  # the command itself answers
    "dogstatsd_metrics": ("dogstatsdStats", "aggregatorStats", "forwarderStats"),  # 8125 -> intake
    "check_metrics": ("runnerStats", "aggregatorStats", "forwarderStats"),  # core checks -> intake
    "processes": ("processAgentStatus",),
    "fips_proxy": ("fips_status",),  # header field since the agent's FIPS proxy support
    "logs": ("logsStats",),  # the logs agent (pkg/logs/status), present even with logs off
    "otlp": ("otlp",),  # the OTLP ingest (otlpStatus, otlpCollectorStatus), present even when off
}
# Commands of the agent's CLI (an agent without them answers like a missing command: exit 127).
CLI_OFFERS: dict[str, list[str]] = {"agent_health": HEALTH_ARGV, "agent_config": CONFIG_ARGV}
VERSION_ARGV = ["agent", "version"]


# -- the probe ----------------------------------------------------------------------------------------


class AgentProbe:
    """The agent under test, seen only through what the real agent offers."""

    def __init__(self, exec_fn: ExecFn, trace_agent_url: str | None, *, timeout: float = 30.0,
                 margin: float = DEFAULT_MARGIN) -> None:
        self._exec = exec_fn
        self.trace_agent_url = trace_agent_url.rstrip("/") if trace_agent_url else None
        self.timeout = timeout
        self.margin = margin
        self._intervals: Intervals | None = None

    def run(self, argv: list[str]) -> tuple[int, str]:
        """Any command in the agent's container (`docker exec`): (exit code, output)."""
        return self._run(argv)

    def _run(self, argv: list[str]) -> tuple[int, str]:
        try:
            return self._exec(list(argv))
        except (OSError, TimeoutError) as exc:
            raise AgentProbeError(f"could not run `{' '.join(argv)}` in the agent's container: {exc}") \
                from exc

    def status(self) -> dict:
        """`agent status --json`, parsed (raises AgentProbeError when it fails)."""
        code, out = self._run(STATUS_ARGV)
        if code == 127:
            raise NotOffered(f"`{' '.join(STATUS_ARGV)}`: {out.strip()[:300]}")
        if code != 0:
            raise AgentProbeError(f"`{' '.join(STATUS_ARGV)}` exited {code}: {out.strip()[:300]!r}")
        return parse_status(out)

    def agent_status(self) -> AgentStatus:
        return AgentStatus(self.status())

    def health(self) -> Health:
        """`agent health`: exit code and the healthy/unhealthy components."""
        code, out = self._run(HEALTH_ARGV)
        if code == 127:
            raise NotOffered(f"`{' '.join(HEALTH_ARGV)}`: {out.strip()[:300]}")
        return parse_health(out, code)

    def wait_healthy(self, timeout: float = 60.0) -> Health:
        """Until `agent health` passes, as an operator waits after a deploy (`until agent health; do
        sleep 1; done`, or the task's health check turning HEALTHY). A task is RUNNING once its
        container started; the agent answers its CLI only once its API listens (after its first log
        lines and its receivers), and passes once each component has pinged (pkg/status/health). An
        agent without `agent health` raises NotOffered at once; a timeout names the last answer."""
        from lab.world import wait_until

        last: list[str] = []
        not_offered: list[NotOffered] = []

        def passed() -> Health | bool | None:
            try:
                health = self.health()
            except NotOffered as exc:  # ends the wait (wait_until takes exceptions for "not yet")
                not_offered.append(exc)
                return True
            except AgentProbeError as exc:
                last[:] = [str(exc)]
                return None
            last[:] = [health.text.strip()[:300]]
            return health if health else None

        try:
            found = wait_until(passed, timeout, interval=0.5, what="`agent health` to pass")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; its last answer: {last[0] if last else '(none)'}") from None
        if not_offered:
            raise not_offered[0]
        assert isinstance(found, Health)
        return found

    def config(self) -> dict:
        """`agent config`, parsed YAML."""
        code, out = self._run(CONFIG_ARGV)
        if code != 0:
            raise AgentProbeError(f"`{' '.join(CONFIG_ARGV)}` exited {code}: {out.strip()[:300]!r}")
        return parse_config(out)

    def info(self) -> dict:
        """The trace-agent's `GET /info` document."""
        import urllib.error
        import urllib.request

        if not self.trace_agent_url:
            raise AgentProbeError("no trace-agent URL: the agent's APM receiver is not reachable from here")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(f"{self.trace_agent_url}/info", timeout=min(self.timeout, 10.0)) as resp:
                doc = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise AgentProbeError(f"GET {self.trace_agent_url}/info -> {exc.code}") from None
        except (OSError, ValueError) as exc:
            raise AgentProbeError(f"GET {self.trace_agent_url}/info failed: {exc}") from None
        if not isinstance(doc, dict):
            raise AgentProbeError(f"GET {self.trace_agent_url}/info answered a {type(doc).__name__}")
        return doc

    def cli_version(self) -> str | None:
        """`agent version`'s first line (the real agent: "Agent 7.60.0 - Commit: ..."), or None."""
        code, out = self._run(VERSION_ARGV)
        line = next((ln.strip() for ln in _ANSI.sub("", out).splitlines() if ln.strip()), "")
        if code != 0 or not line:
            raise AgentProbeError(f"`{' '.join(VERSION_ARGV)}` exited {code}: {out.strip()[:300]!r}")
        return line

    @property
    def version(self) -> str:
        """The agent's version: `/info` "version", else the status header's, else `agent version`."""
        errors = []
        for read in (lambda: self.info().get("version"), lambda: AgentStatus(self.status()).version,
                     self.cli_version):
            try:
                version = read()
            except AgentProbeError as exc:
                errors.append(str(exc))
                continue
            if version:
                return str(version)
        return f"unknown version ({'; '.join(errors)[:300]})" if errors else "unknown version"

    def intervals(self, refresh: bool = False) -> Intervals:
        """The agent's intervals (cached: they do not change while it runs)."""
        if self._intervals is None or refresh:
            config, error = None, None
            try:
                config = self.config()
            except AgentProbeError as exc:
                error = str(exc)
            self._intervals = intervals_from(config, self.version, margin=self.margin, config_error=error)
        return self._intervals

    def offers(self, what: str) -> Offer:
        """Does this agent offer `what`? A data type or endpoint of the trace-agent (INFO_ENDPOINTS, from
        `/info` "endpoints", or a literal `/path`), a data type by the status provider that runs it
        (STATUS_PROVIDERS, STATUS_OFFERS, from `agent status --json`), or a CLI command (CLI_OFFERS)."""
        known = [*INFO_ENDPOINTS, *STATUS_OFFERS, *STATUS_PROVIDERS, *CLI_OFFERS]
        if what not in known and not what.startswith("/"):
            raise ValueError(f"unknown offer {what!r}: known are {sorted(known)} "
                             "or a literal endpoint path such as '/v0.6/stats'")
        try:
            info = self.info()
            endpoints = [str(e) for e in info.get("endpoints") or []]
        except AgentProbeError:
            endpoints = []
        listed = ", ".join(endpoints) or "none (no /info)"
        reason = f"not offered by this agent ({self.version}, endpoints from /info: {listed})"
        if what in CLI_OFFERS:
            argv = CLI_OFFERS[what]
            code, out = self._run(argv)
            return Offer(what, code != 127, "" if code != 127 else
                         f"{reason}; `{' '.join(argv)}` exited 127 (no such command)")
        if what in STATUS_OFFERS or what in STATUS_PROVIDERS:
            try:
                status = AgentStatus(self.status())
            except NotOffered:
                return Offer(what, False, f"{reason}; `{' '.join(STATUS_ARGV)}` exited 127 (no such command)")
            if what in STATUS_OFFERS:
                got = status.receiver_stats() if what == "apm_receiver_stats" \
                    else status.transactions_succeeded()
                return Offer(what, got is not None, "" if got is not None else
                             f"{reason}; `agent status --json` has no {what}")
            missing = [k for k in STATUS_PROVIDERS[what] if k not in status.raw]
            return Offer(what, not missing, "" if not missing else
                         f"{reason}; `agent status --json` has no {', '.join(missing)}")
        wanted = INFO_ENDPOINTS.get(what, (what,))
        offered = any(e in endpoints for e in wanted)
        return Offer(what, offered, "" if offered else reason)


# -- waiting on the agent's intervals ------------------------------------------------------------------


@contextmanager
def waiting_for(wait: Wait, started: float | None = None) -> Iterator[float]:
    """Yields the seconds left of `wait` (counted from `started`, a time.monotonic(), else now);
    a wait that times out inside is re-raised saying which of the agent's intervals it waited for."""
    left = wait.seconds - (time.monotonic() - started if started is not None else 0.0)
    try:
        yield max(left, 1.0)
    except (AssertionError, TimeoutError) as exc:
        raise type(exc)(f"{exc} [waited for {wait}]") from exc
