"""Load mode: real ddtrace spans and real DogStatsD metrics at a steady rate, then a count of what left.

Benchmarks and scenarios compare the `LoadReport` with what the agent and the intake received.
Every span carries the tag `lab.run_id` and every metric the tag `run_id:<id>`, so a receiver
shared with other traffic can count only this run.

ddtrace reads its agent URL once, when it is imported (ddtrace >= 3 has no public API to change it),
so `run_load` must run in a process where ddtrace has not started yet, or already points at the
same agent: the CLI (`ecs-lab app load`) is such a process. It refuses otherwise instead of quietly
sending to the wrong place.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field

METRIC_PREFIX = "ecs_lab.load"
METRIC_KINDS = ("count", "gauge", "histogram", "distribution")


@dataclass
class LoadReport:
    run_id: str
    agent_host: str
    apm_port: int
    dogstatsd_port: int
    service: str
    duration_s: float
    spans_per_sec_target: float
    metrics_per_sec_target: float
    spans_sent: int = 0
    traces_sent: int = 0
    metrics_sent: int = 0
    metrics_by_kind: dict[str, int] = field(default_factory=dict)
    # Sums per kind of the values sent, so a receiver's aggregates can be checked exactly.
    count_total: int = 0
    elapsed_s: float = 0.0
    spans_per_sec: float = 0.0
    metrics_per_sec: float = 0.0
    tracer_flushed: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


class LoadConfigError(RuntimeError):
    pass


def _prepare_tracer_env(agent_host: str, apm_port: int, service: str) -> None:
    wanted = f"http://{agent_host}:{apm_port}"
    if "ddtrace" in sys.modules:
        try:  # ddtrace 4.x; 3.x kept it in ddtrace.settings
            from ddtrace.internal.settings._agent import config as agent_config
        except ImportError:
            from ddtrace.settings._agent import config as agent_config

        if agent_config.trace_agent_url.rstrip("/") != wanted:
            raise LoadConfigError(
                f"ddtrace already started in this process pointing at {agent_config.trace_agent_url}, "
                f"not {wanted}; ddtrace reads its agent URL once at import, run the load in a fresh "
                "process (`ecs-lab app load`)"
            )
        return
    os.environ.pop("DD_TRACE_AGENT_URL", None)  # it would win over host and port
    os.environ["DD_AGENT_HOST"] = agent_host
    os.environ["DD_TRACE_AGENT_PORT"] = str(apm_port)
    os.environ.setdefault("DD_SERVICE", service)
    # Nothing but the spans we count: no telemetry or remote-config traffic competing with them.
    os.environ.setdefault("DD_INSTRUMENTATION_TELEMETRY_ENABLED", "false")
    os.environ.setdefault("DD_REMOTE_CONFIGURATION_ENABLED", "false")
    # Keep every trace: the count is what a receiver must see, so the tracer must not sample.
    os.environ.setdefault("DD_TRACE_SAMPLING_RULES", '[{"sample_rate": 1.0}]')


def run_load(*, agent_host: str, apm_port: int = 8126, dogstatsd_port: int = 8125,
             spans_per_sec: float = 100.0, metrics_per_sec: float = 100.0, duration: float = 5.0,
             spans_per_trace: int = 3, service: str = "ecs-lab-load", run_id: str | None = None,
             buffered: bool = True) -> LoadReport:
    """Send spans and metrics at the given rates for `duration` seconds; return what was sent.

    Spans come in traces of `spans_per_trace` (a root and nested children). Metrics rotate through
    count, gauge, histogram and distribution, one datagram line each; with `buffered` the client
    packs several lines per packet as the real client does under load.
    """
    if spans_per_trace < 1:
        raise ValueError("spans_per_trace must be >= 1")
    _prepare_tracer_env(agent_host, apm_port, service)
    from datadog.dogstatsd import DogStatsd
    from ddtrace.trace import tracer

    run_id = run_id or uuid.uuid4().hex[:12]
    report = LoadReport(run_id=run_id, agent_host=agent_host, apm_port=apm_port,
                        dogstatsd_port=dogstatsd_port, service=os.environ.get("DD_SERVICE", service),
                        duration_s=duration, spans_per_sec_target=spans_per_sec,
                        metrics_per_sec_target=metrics_per_sec,
                        metrics_by_kind={k: 0 for k in METRIC_KINDS})
    # Client telemetry off: its own `datadog.dogstatsd.client.*` metrics would muddy sent vs received.
    statsd = DogStatsd(host=agent_host, port=dogstatsd_port, disable_telemetry=True,
                       disable_buffering=not buffered, constant_tags=[f"run_id:{run_id}"])
    tags = ["source:ecs-lab-load"]

    def emit_trace() -> None:
        with tracer.trace("load.request", resource="load", service=report.service) as root:
            root.set_tag("lab.run_id", run_id)
            parent = []
            for i in range(spans_per_trace - 1):
                span = tracer.trace("load.step", resource=f"step-{i}")
                span.set_tag("lab.run_id", run_id)
                parent.append(span)
            for span in reversed(parent):
                span.finish()
        report.traces_sent += 1
        report.spans_sent += spans_per_trace

    def emit_metric(n: int) -> None:
        kind = METRIC_KINDS[n % len(METRIC_KINDS)]
        name = f"{METRIC_PREFIX}.{kind}"
        if kind == "count":
            statsd.increment(name, 1, tags=tags)
            report.count_total += 1
        elif kind == "gauge":
            statsd.gauge(name, n, tags=tags)
        elif kind == "histogram":
            statsd.histogram(name, n % 100, tags=tags)
        else:
            statsd.distribution(name, n % 100, tags=tags)
        report.metrics_by_kind[kind] += 1
        report.metrics_sent += 1

    traces_per_sec = spans_per_sec / spans_per_trace
    start = time.monotonic()
    while True:
        elapsed = time.monotonic() - start
        if elapsed >= duration:
            break
        due_traces = int(elapsed * traces_per_sec) - report.traces_sent
        for _ in range(max(0, due_traces)):
            emit_trace()
        due_metrics = int(elapsed * metrics_per_sec) - report.metrics_sent
        for _ in range(max(0, due_metrics)):
            emit_metric(report.metrics_sent)
        # Pace in small ticks; the next due item is at most one tick late.
        time.sleep(0.002)
    statsd.flush()
    statsd.close_socket()
    tracer.flush()
    report.tracer_flushed = True
    report.elapsed_s = round(time.monotonic() - start, 3)
    if report.elapsed_s > 0:
        report.spans_per_sec = round(report.spans_sent / report.elapsed_s, 1)
        report.metrics_per_sec = round(report.metrics_sent / report.elapsed_s, 1)
    return report
