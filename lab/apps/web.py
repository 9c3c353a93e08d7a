"""The sample traced app: Flask under real ddtrace, with custom DogStatsD metrics.

It stands in for a customer's service in an ECS task. Traces get a real shape (a Flask request
span, nested custom spans on `/work`, an error span on `/error`); every request also sends
DogStatsD metrics of each kind to the same agent host (a counter, a histogram, a gauge and a
distribution), tagged by route and status. `DD_SERVICE`, `DD_ENV` and `DD_VERSION` are honoured by
both (ddtrace reads them; the DogStatsD client turns them into `service:`, `env:`, `version:` tags).

Import order matters: ddtrace must start (here or by `ddtrace-run`) before Flask is imported so its
patches apply, and in the `in_code` variant DD_AGENT_HOST must be in the environment before ddtrace
reads its configuration (ddtrace >= 3 has no public API to change the agent URL afterwards:
`tracer.configure(hostname=...)` was removed and the docs dropped that sample). So this module
imports neither at the top.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from lab.apps import entrypoints

METRIC_PREFIX = "ecs_lab.app"


@dataclass
class AppSettings:
    """What the app learned at start-up (shown on `/` so a test or a user can check it)."""

    agent_host: str
    apm_port: int
    dogstatsd_port: int
    service: str
    env: str
    version: str
    agent_host_from: str

    @classmethod
    def from_env(cls, agent_host: str, agent_host_from: str) -> AppSettings:
        return cls(
            agent_host=agent_host,
            apm_port=int(os.environ.get("DD_TRACE_AGENT_PORT") or 8126),
            dogstatsd_port=int(os.environ.get("DD_DOGSTATSD_PORT") or 8125),
            service=os.environ.get("DD_SERVICE", ""),
            env=os.environ.get("DD_ENV", ""),
            version=os.environ.get("DD_VERSION", ""),
            agent_host_from=agent_host_from,
        )


def resolve_agent_host(agent_host_from: str) -> str:
    """Find DD_AGENT_HOST the way the chosen variant does, before ddtrace starts.

    `env`: an entryPoint line already exported it; `imds`: the docs' in-code variant, asking IMDS
    `local-ipv4` from this process and putting the answer where ddtrace and DogStatsD read it.
    """
    for override in ("DD_TRACE_AGENT_URL", "DD_DOGSTATSD_URL"):
        # Either would win over DD_AGENT_HOST in ddtrace / the DogStatsD client, and the variant under
        # test would be bypassed without a sign.
        if os.environ.get(override):
            raise entrypoints.AgentHostError(
                f"{override} is set ({os.environ[override]!r}); it overrides DD_AGENT_HOST, so the "
                "variant's lookup would be ignored: unset it")
    if agent_host_from == "env":
        return entrypoints.require_agent_host()
    if agent_host_from == "imds":
        endpoint = entrypoints.require_metadata_endpoint()
        if "ddtrace" in sys.modules:
            raise entrypoints.AgentHostError(
                "the in-code variant must resolve the agent host before ddtrace starts (ddtrace reads "
                "DD_AGENT_HOST once, at import); run it with plain `python`, not `ddtrace-run`"
            )
        host = entrypoints.fetch_local_ipv4(endpoint)
        os.environ["DD_AGENT_HOST"] = host
        return host
    raise ValueError(f"agent_host_from must be 'env' or 'imds', not {agent_host_from!r}")


def start_tracing() -> None:
    """Start ddtrace unless `ddtrace-run` already did (its sitecustomize runs the same bootstrap)."""
    if "ddtrace.bootstrap.sitecustomize" not in sys.modules:
        import ddtrace.auto  # noqa: F401 - importing it is what instruments the process


def make_statsd(settings: AppSettings):
    from datadog.dogstatsd import DogStatsd

    return DogStatsd(host=settings.agent_host, port=settings.dogstatsd_port,
                     constant_tags=["app:ecs-lab-web"])


def create_app(settings: AppSettings, statsd):
    """The Flask app. Call only after `start_tracing()`."""
    import flask
    from ddtrace.trace import tracer

    app = flask.Flask("ecs_lab_web")
    inflight = 0
    inflight_lock = threading.Lock()

    @app.before_request
    def _count_in() -> None:
        nonlocal inflight
        flask.g.started = time.perf_counter()
        with inflight_lock:
            inflight += 1
            statsd.gauge(f"{METRIC_PREFIX}.inflight", inflight)

    @app.after_request
    def _metrics(response):
        nonlocal inflight
        with inflight_lock:
            inflight -= 1
        if flask.request.endpoint == "healthz":
            return response
        elapsed_ms = (time.perf_counter() - flask.g.started) * 1000.0
        tags = [f"route:{flask.request.url_rule.rule if flask.request.url_rule else 'unknown'}",
                f"status_code:{response.status_code}", f"method:{flask.request.method}"]
        statsd.increment(f"{METRIC_PREFIX}.requests", tags=tags)
        statsd.histogram(f"{METRIC_PREFIX}.request.latency_ms", elapsed_ms, tags=tags)
        statsd.distribution(f"{METRIC_PREFIX}.request.duration_ms", elapsed_ms, tags=tags)
        return response

    @app.get("/")
    def index():
        return flask.jsonify({
            "agent_host": settings.agent_host, "agent_host_from": settings.agent_host_from,
            "apm_port": settings.apm_port, "dogstatsd_port": settings.dogstatsd_port,
            "service": settings.service, "env": settings.env, "version": settings.version,
        })

    @app.get("/healthz")
    def healthz():
        return "ok\n"

    @app.get("/work")
    def work():
        # Nested custom spans under the Flask request span give traces a depth a receiver must keep.
        try:
            ms = float(flask.request.args.get("ms", "5"))
            depth = int(flask.request.args.get("depth", "3"))
        except ValueError:
            return flask.jsonify({"error": "ms must be a number and depth an integer"}), 400
        if not (0 <= ms <= 10_000 and 1 <= depth <= 20):
            return flask.jsonify({"error": "ms must be 0..10000 and depth 1..20"}), 400
        with tracer.trace("work.request", resource="work") as root:
            root.set_tag("work.ms", ms)
            _nested(tracer, depth, ms / depth)
        statsd.increment(f"{METRIC_PREFIX}.work.done", tags=[f"depth:{depth}"])
        return flask.jsonify({"ms": ms, "depth": depth, "trace_id": str(root.trace_id)})

    held: list = []  # the mapping /memory holds, so a container's memory metrics move

    @app.get("/memory")
    def memory():
        # Hold `mb` MiB (touched, so it is resident) until the next call: container_metrics checks
        # that the agent's container.memory.* follow what the app really uses. An anonymous mmap,
        # not Python objects: unmapping gives the memory back to the OS at once (malloc'd memory
        # may stay in the heap).
        import mmap

        try:
            mb = int(flask.request.args.get("mb", "0"))
        except ValueError:
            return flask.jsonify({"error": "mb must be an integer"}), 400
        if not 0 <= mb <= 1024:
            return flask.jsonify({"error": "mb must be 0..1024"}), 400
        for m in held:
            m.close()
        held.clear()
        if mb:
            m = mmap.mmap(-1, mb << 20)
            page = b"\x01" * mmap.PAGESIZE
            for offset in range(0, mb << 20, mmap.PAGESIZE):
                m[offset:offset + mmap.PAGESIZE] = page
            held.append(m)
        return flask.jsonify({"held_mb": mb})

    @app.get("/error")
    def error():
        raise RuntimeError("sample error from /error (the span should carry error=1)")

    return app


def _nested(tracer, depth: int, step_ms: float) -> None:
    if depth <= 0:
        return
    with tracer.trace("work.step", resource=f"step-{depth}") as span:
        span.set_tag("step.depth", depth)
        time.sleep(step_ms / 1000.0)  # the app's simulated work, not a wait in a test
        _nested(tracer, depth - 1, step_ms)


def write_port_file(path: str, port: int) -> None:
    """Write atomically so a reader polling the file never sees a half-written port."""
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(f"{port}\n")
    tmp.replace(target)


def serve(*, host: str, port: int, port_file: str | None, agent_host_from: str) -> int:
    """Run the app until SIGTERM/SIGINT; return the exit status."""
    try:
        agent_host = resolve_agent_host(agent_host_from)
    except entrypoints.AgentHostError as exc:
        print(f"ecs-lab web: {exc}", file=sys.stderr, flush=True)
        return 2
    settings = AppSettings.from_env(agent_host, agent_host_from)
    start_tracing()
    from ddtrace.trace import tracer
    from werkzeug.serving import make_server

    statsd = make_statsd(settings)
    server = make_server(host, port, create_app(settings, statsd), threaded=True)
    bound = server.server_port
    if port_file:
        write_port_file(port_file, bound)
    print(f"ecs-lab web: listening on http://{host}:{bound} (service={settings.service!r} "
          f"env={settings.env!r} version={settings.version!r}; agent {agent_host} "
          f"apm:{settings.apm_port} dogstatsd:{settings.dogstatsd_port}, from {agent_host_from})",
          flush=True)

    def _stop(signum, frame) -> None:
        # shutdown() waits for serve_forever to return, so it cannot run on the serving thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        tracer.flush()
        statsd.close_socket()
    return 0
