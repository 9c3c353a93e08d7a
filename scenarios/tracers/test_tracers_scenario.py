"""tracers: what current tracers send the instance's agent, besides traces, reaches the intake.

- The trace receiver's tracer-facing routes (docs/tracer_surface.md): client-side stats PUT and POST
  on /v0.6/stats, the DogStatsD, telemetry, EVP and profiling relays; `/info` lists exactly the routes
  served (remote configuration is off in the lab, so /v0.7/config is neither listed nor served).
- OTLP: with the agent's OTLP settings, the OpenTelemetry SDK's own exporters (OTLP/HTTP on 4318,
  OTLP/gRPC on 4317) send spans and a metric that arrive mapped as the agent maps them; without the
  settings both ports are closed.
- A second tracer: the Node sample app (real dd-trace and hot-shots from npm, agent host set in code
  from IMDS), run as an ECS task, with client-side stats on: its spans, its own stats and its metrics
  arrive, tagged with its task. On the local backend it runs with the host's node and the modules
  `npm ci`ed into the app's directory; on docker in its own image (`ecs-agent-lab/node-app`: Debian's
  Node, the modules installed from the same lock file when the image is built).

Both backends run every case: on docker the agent task publishes 4317/4318 as host ports when its
environment enables the OTLP receiver, as it publishes 8126/8125.

Every request goes to the agent at the instance's private IP, as an app container in bridge mode
reaches it. Waits: the agent's flush intervals (`probe.intervals()`) plus the tracer's own (dd-trace-js
sends traces every 2 s and its stats buckets every 10 s).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import msgpack
import pytest

from lab.agent_probe import Wait, waiting_for
from lab.stack import DEFAULT_FEATURES
from lab.world import wait_until

NODE_SERVICE = "node-web"
# dd-trace-js: a span-stats bucket is 10 s and is sent when it closes (span_stats.js).
NODE_STATS_SECONDS = 10.0
# The app serves itself one /work request (spans, hot-shots metrics) per LAB_NODE_WORK_INTERVAL_MS.
NODE_WORK_SECONDS = 1.0
# The agent's OTLP receiver as its docs enable it (all interfaces, the standard ports).
OTLP_ENV = {"DD_OTLP_CONFIG_RECEIVER_PROTOCOLS_HTTP_ENDPOINT": "0.0.0.0:4318",
            "DD_OTLP_CONFIG_RECEIVER_PROTOCOLS_GRPC_ENDPOINT": "0.0.0.0:4317"}
LAB_WITH = {"features": set(DEFAULT_FEATURES) - {"processes"}, "agent_env": OTLP_ENV, "apps": ()}
# The same stack without the OTLP settings: the control that the ports stay closed.
PLAIN = {"features": set(DEFAULT_FEATURES) - {"processes"}, "apps": ()}
# What current tracers call besides traces (dd-trace-js, ddtrace): /info must list each.
TRACER_ROUTES = {
    "/v0.4/traces", "/v0.5/traces", "/v0.6/stats", "/profiling/v1/input", "/telemetry/proxy/",
    "/evp_proxy/v1/", "/evp_proxy/v2/", "/evp_proxy/v3/", "/evp_proxy/v4/",
    "/dogstatsd/v1/proxy", "/dogstatsd/v2/proxy",
}


@pytest.fixture(scope="module")
def tracers_lab(lab_with):
    return lab_with(**LAB_WITH)


@pytest.fixture(scope="module")
def agent(tracers_lab):
    return tracers_lab.agents[0]


@pytest.fixture(scope="module")
def intake(tracers_lab):
    client = tracers_lab.ecs_lab.intake
    yield client
    client.close()


def _call(url: str, method: str, body: bytes = b"", headers: dict | None = None) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(url, data=body if method != "GET" else None, method=method,
                                 headers=headers or {})
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# -- the tracer-facing surface ------------------------------------------------------------------------
@pytest.mark.agent_offers("traces_v05", "client_stats", "profiling", "telemetry_proxy", "evp_proxy",
                           "dogstatsd_proxy")
def test_info_lists_the_routes_tracers_use_and_serves_what_it_lists(agent):
    status, body = _call(agent.apm_url + "/info", "GET")
    assert status == 200
    listed = set(json.loads(body)["endpoints"])
    missing = TRACER_ROUTES - listed
    assert not missing, f"/info does not list {sorted(missing)}: tracers would not use them"
    # Tracers pick what to send by this list: each route listed must exist (any method, as the
    # agent's handlers take; an empty GET gets a decode error or an empty relay, never a 404).
    not_served = [path for path in sorted(listed) if _call(agent.apm_url + path, "GET")[0] == 404]
    assert not not_served, f"/info lists routes that answer 404: {not_served}"
    assert "/v0.7/config" not in listed and _call(agent.apm_url + "/v0.7/config", "POST", b"{}")[0] == 404, \
        "remote configuration is off in the lab: /v0.7/config must not exist, as on the agent"


@pytest.mark.agent_offers("client_stats")
@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_client_stats_arrive_at_the_stats_intake(agent, intake, method):
    service = f"stats-{method.lower()}"
    stats = {"Hostname": "", "Env": "lab", "Version": "1", "Lang": "nodejs", "TracerVersion": "5",
             "Stats": [{"Start": time.time_ns() // 10**10 * 10**10, "Duration": 10**10, "Stats": [
                 {"Service": service, "Name": "web.request", "Resource": "GET /", "Hits": 5, "Errors": 0,
                  "Duration": 9, "TopLevelHits": 5}]}]}
    status, reply = _call(agent.apm_url + "/v0.6/stats", method, msgpack.packb(stats),
                          {"Content-Type": "application/msgpack", "Datadog-Meta-Lang": "nodejs"})
    assert 200 <= status < 300, f"{method} /v0.6/stats answered {status}: the tracer's stats would be lost"
    # A 2xx is all a tracer checks; what the agent said with it goes into a failure (an agent may
    # accept the stats and drop them, e.g. when it computes stats itself).
    answer = f"the agent answered {status} {reply[:200]!r}"
    with waiting_for(agent.probe.intervals().apm_stats()) as timeout:
        payload, group = wait_until(lambda: _stats_group(intake, service), timeout, interval=0.3,
                                    what=f"{service}'s stats at /api/v0.2/stats ({answer})")
    assert payload["ClientComputed"] is True and group["Hits"] == 5
    assert payload["AgentHostname"] == agent.instance_id


def _stats_group(intake, service: str) -> tuple[dict, dict] | None:
    """The first stats group of `service` at the intake (ClientStatsPayload > bucket > group)."""
    for row in intake.payloads("/api/v0.2/stats", fmt="json"):
        for client in row["data"].get("Stats") or []:
            for bucket in client.get("Stats") or []:
                for group in bucket.get("Stats") or []:
                    if group.get("Service") == service:
                        return row["data"], group
    return None


@pytest.mark.agent_offers("dogstatsd_proxy", "dogstatsd_metrics")
def test_dogstatsd_relay_feeds_the_metrics_pipeline(agent, intake):
    body = b"ecs_lab.relay.hits:2|c|#relay:dogstatsd_v2\necs_lab.relay.level:7|g|#relay:dogstatsd_v2"
    assert _call(agent.apm_url + "/dogstatsd/v2/proxy", "POST", body)[0] == 200
    def counted() -> float:
        # A DogStatsD counter leaves the agent as a RATE (per second over its 10 s bucket) and may be
        # split over two flushes: the count is the sum of value * interval once every bucket is in.
        series = intake.metrics("ecs_lab.relay.hits", tags="relay:dogstatsd_v2")
        return sum(p["value"] * (s.get("interval") or 1) for s in series for p in s["points"])

    with waiting_for(agent.probe.intervals().metrics()) as timeout:
        series = intake.wait_for_metric("ecs_lab.relay.hits", tags="relay:dogstatsd_v2", timeout=timeout)
    with waiting_for(agent.probe.intervals().flush_after()) as timeout:
        wait_until(lambda: abs(counted() - 2) < 1e-6, timeout=timeout,
                   what=f"2 hits counted by ecs_lab.relay.hits (counted {counted()})")
    resources = {(r["type"], r["name"]) for s in series for r in s.get("resources", [])}
    assert ("host", agent.instance_id) in resources, series[0]


@pytest.mark.agent_offers("telemetry_proxy")
def test_telemetry_relay_reaches_the_telemetry_intake(agent, intake):
    event = {"api_version": "v2", "request_type": "app-heartbeat", "tracer_time": int(time.time()),
             "runtime_id": "scenario-telemetry", "seq_id": 1, "payload": {},
             "application": {"service_name": "telemetry-scenario", "language_name": "nodejs"},
             "host": {"hostname": "app"}}
    status, reply = _call(agent.apm_url + "/telemetry/proxy/api/v2/apmtelemetry", "POST",
                          json.dumps(event).encode(), {"Content-Type": "application/json"})
    assert (status, json.loads(reply)) == (200, {})

    def arrived():
        return next((r["data"] for r in intake.payloads("/api/v2/apmtelemetry", fmt="json")
                     if r["data"].get("runtime_id") == "scenario-telemetry"), None)

    data = wait_until(arrived, 15, interval=0.3, what="the telemetry event at /api/v2/apmtelemetry")
    assert data["agent_hostname"] == agent.instance_id


@pytest.mark.agent_offers("evp_proxy")
def test_evp_relay_keeps_the_subdomain(agent, intake):
    status, _ = _call(agent.apm_url + "/evp_proxy/v4/api/v2/llmobs", "POST", b'{"spans": []}',
                      {"X-Datadog-EVP-Subdomain": "llmobs-intake", "Content-Type": "application/json"})
    assert 200 <= status < 300, status
    rows = wait_until(lambda: intake.payloads("/api/v2/llmobs", fmt="") or None, 15, interval=0.3,
                      what="the EVP payload at /api/v2/llmobs")
    assert rows[0]["evp_subdomain"] == "llmobs-intake"


@pytest.mark.agent_offers("profiling")
def test_profiles_relay_reaches_the_profiling_intake(agent, intake):
    boundary = "scenarioboundary"
    event = json.dumps({"attachments": ["cpu.pprof"], "family": "node", "version": "4",
                        "tags_profiler": "service:profile-scenario"}).encode()
    body = _multipart(boundary, [("event", "application/json", event),
                                 ("cpu.pprof", "application/octet-stream", b"pprof")])
    status, _ = _call(agent.apm_url + "/profiling/v1/input", "POST", body,
                      {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert 200 <= status < 300, status

    def arrived():
        rows = intake.payloads("/api/v2/profile", fmt="json")
        mine = "service:profile-scenario"
        return next((r["data"] for r in rows if (r["data"].get("event") or {}).get("tags_profiler") == mine),
                    None)

    data = wait_until(arrived, 15, interval=0.3, what="the profile at /api/v2/profile")
    assert f"host:{agent.instance_id}" in data["additional_tags"].split(",")
    assert [p["name"] for p in data["parts"]] == ["event", "cpu.pprof"]


def _multipart(boundary: str, parts: list[tuple[str, str, bytes]]) -> bytes:
    """A multipart/form-data body as profilers send it: (name, content type, content) per part."""
    out = b""
    for name, ctype, content in parts:
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\n"
                f"Content-Type: {ctype}\r\n\r\n").encode() + content + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


# -- the Node tracer ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def node_task(tracers_lab):
    """The Node sample app as an ECS task on the lab's cluster: its npm modules installed first (local
    backend), or its image made first (docker: cached by content, so made once per source change)."""
    from lab.apps.node_app import ensure_installed, task_definition

    backend = tracers_lab.state.get("backend", "local")
    if backend == "docker":
        from lab.backends import images

        images.ensure_node_app_image()
    else:
        ensure_installed()
    ecs = tracers_lab.ecs_lab.control_plane.clients.ecs
    cluster = tracers_lab.cluster_name
    definition = task_definition(service=NODE_SERVICE, backend=backend)
    arn = ecs.register_task_definition(**definition)["taskDefinition"]
    task_arn = ecs.run_task(cluster=cluster, taskDefinition=arn["taskDefinitionArn"])["tasks"][0]["taskArn"]
    started = time.monotonic()

    def described() -> dict:
        return ecs.describe_tasks(cluster=cluster, tasks=[task_arn])["tasks"][0]

    def status() -> str:
        return described()["lastStatus"]

    def fail_if_stopped() -> None:
        task = described()
        if task["lastStatus"] == "STOPPED":
            log = tracers_lab.backend.container_logs(task_arn, "app", 40)
            raise AssertionError(f"the Node app stopped: {task.get('stoppedReason')}\n{log}")

    # wait_until takes a predicate's exception for "not yet": so each wait also ends when the task
    # stops (the app exits when its IMDS lookup fails), and what ended it is checked after.
    wait_until(lambda: status() in ("RUNNING", "STOPPED"), 60, interval=0.3, what="the Node app task to run")
    fail_if_stopped()
    # RUNNING is the container's start; the app sends once Node has loaded dd-trace and listens
    # (seconds on a loaded machine), and its first /work request is one work interval after that.
    # Every wait on what the app sends counts from there, never from the task's start.
    log = ""

    def listening_or_stopped() -> bool:
        nonlocal log
        log = tracers_lab.backend.container_logs(task_arn, "app", 60)
        return "listening on " in log or status() == "STOPPED"

    try:
        wait_until(listening_or_stopped, 90, interval=0.3, what="the Node app to listen (dd-trace loaded)")
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}; the app's log:\n{log[-4000:] or '(empty)'}") from None
    fail_if_stopped()
    sending = time.monotonic() + NODE_WORK_SECONDS
    yield {"arn": task_arn, "started": started, "sending": sending, "ecs": ecs}
    ecs.stop_task(cluster=cluster, task=task_arn, reason="scenario done")


def _node_log(tracers_lab, node_task) -> str:
    return tracers_lab.backend.container_logs(node_task["arn"], "app", 60)


def test_node_app_sets_the_agent_host_from_imds(tracers_lab, agent, node_task):
    line = wait_until(lambda: next((ln for ln in _node_log(tracers_lab, node_task).splitlines()
                                    if ln.startswith("agent host ")), None),
                      30, interval=0.3, what="the Node app's agent host line")
    assert line.split()[2] == agent.private_ip, \
        f"{line!r}: the app must find the agent at the instance's private IP (IMDS local-ipv4)"


# The Node app's task is started by the module: what it sends before the agent's tagger has learnt
# the task (its next pull of ECS metadata, 5 s on the real agent) arrives without task tags. It sends
# every second, so its data carries them once the agent knows it: each wait below is for data with
# the task's tags, bounded by that discovery + the data's own wait (Intervals.of_new_task).
NODE_FAMILY_TAG = "task_family:node-web-task"


def _tags_seen(items: list[dict], key: str) -> list[list[str]]:
    return sorted({tuple(sorted(i.get(key) or [])) for i in items})[:3]


@pytest.mark.agent_offers("traces")
def test_node_spans_arrive_with_the_task_tags(tracers_lab, agent, intake, node_task):
    # dd-trace-js writes traces every 2 s (flushInterval).
    intervals = agent.probe.intervals()
    try:
        with waiting_for(intervals.of_new_task(intervals.traces(tracer_flush=2.0)),
                         node_task["sending"]) as timeout:
            spans = intake.wait_for_spans(
                service=NODE_SERVICE, timeout=max(timeout, 5.0),
                predicate=lambda s: s.get("name") == "work.step"
                and NODE_FAMILY_TAG in (s.get("container_tags") or []))
    except (AssertionError, TimeoutError) as exc:
        seen = [s for s in intake.spans(service=NODE_SERVICE) if s.get("name") == "work.step"]
        raise AssertionError(f"{exc}; {len(seen)} work.step span(s) arrived without {NODE_FAMILY_TAG}, "
                             f"container tags e.g. {_tags_seen(seen, 'container_tags')}") from None
    span = spans[0]
    assert span["hostname"] == agent.instance_id and span["env"] == "lab"
    # The tracer payload says who sent it: dd-trace-js (language nodejs, its own version).
    tracer_payloads = [tp for row in intake.payloads("/api/v0.2/traces", fmt="json")
                       for tp in row["data"]["tracerPayloads"]
                       if any(s.get("service") == NODE_SERVICE for ch in tp.get("chunks", [])
                              for s in ch.get("spans", []))]
    assert tracer_payloads, "no tracer payload carries the Node app's spans"
    assert {tp["language_name"] for tp in tracer_payloads} == {"nodejs"}
    assert all(tp["tracer_version"].startswith("5.") for tp in tracer_payloads), tracer_payloads[0]


@pytest.mark.agent_offers("client_stats")
def test_node_client_side_stats_arrive(tracers_lab, agent, intake, node_task):
    wait = agent.probe.intervals().apm_stats()
    budget = Wait(NODE_STATS_SECONDS * 2 + wait.seconds,
                  f"two dd-trace-js stats buckets ({NODE_STATS_SECONDS:g} s) + {wait}")
    try:
        with waiting_for(budget, node_task["sending"]) as timeout:
            payload, group = wait_until(lambda: _stats_group(intake, NODE_SERVICE), max(timeout, 5.0),
                                        interval=0.5, what=f"{NODE_SERVICE}'s client-side stats")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; app log:\n{_node_log(tracers_lab, node_task)}") from None
    assert payload["ClientComputed"] is True, "the tracer's own stats are forwarded as ClientComputed"
    assert group["Hits"] >= 1


@pytest.mark.agent_offers("dogstatsd_metrics")
def test_node_hot_shots_metrics_arrive(tracers_lab, agent, intake, node_task):
    intervals = agent.probe.intervals()
    try:
        with waiting_for(intervals.of_new_task(intervals.metrics()), node_task["sending"]) as timeout:
            series = intake.wait_for_metric("ecs_lab.node.requests",
                                            tags=[f"service:{NODE_SERVICE}", NODE_FAMILY_TAG],
                                            timeout=max(timeout, 5.0))
    except (AssertionError, TimeoutError) as exc:
        seen = intake.metrics("ecs_lab.node.requests", tags=f"service:{NODE_SERVICE}")
        log = _node_log(tracers_lab, node_task)
        raise AssertionError(f"{exc}; {len(seen)} series arrived without {NODE_FAMILY_TAG}, tags e.g. "
                             f"{_tags_seen(seen, 'tags')}; app log:\n{log}") from None
    tags = set(series[0]["tags"])
    assert {"app:ecs-lab-node", "env:lab", "route:/work"} <= tags, sorted(tags)


# -- OTLP ---------------------------------------------------------------------------------------------
def _otel_resource(service: str):
    from opentelemetry.sdk.resources import Resource

    return Resource.create({"service.name": service, "deployment.environment.name": "lab"})


def _no_proxy_session():
    import requests

    session = requests.Session()
    session.trust_env = False  # the instance's address is on loopback: never through a proxy
    return session


@pytest.mark.agent_offers("otlp")
@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_otlp_spans_arrive_mapped(agent, intake, transport):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import SpanKind

    if transport == "http":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=f"http://{agent.private_ip}:4318/v1/traces",
                                    session=_no_proxy_session())
    else:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=f"{agent.private_ip}:4317", insecure=True,
                                    channel_options=(("grpc.enable_http_proxy", 0),))
    service = f"otlp-{transport}"
    provider = TracerProvider(resource=_otel_resource(service))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("lab.scenario").start_as_current_span(
            "GET /orders", kind=SpanKind.SERVER,
            attributes={"http.request.method": "GET", "http.route": "/orders"}):
        pass
    provider.shutdown()
    with waiting_for(agent.probe.intervals().traces()) as timeout:
        (span, *_) = intake.wait_for_spans(service=service, timeout=timeout)
    assert (span["name"], span["resource"], span["type"]) == ("http.server.request", "GET /orders", "web")
    assert span["hostname"] == agent.instance_id and span["env"] == "lab"


@pytest.mark.agent_offers("otlp")
def test_otlp_metric_arrives_as_a_count(agent, intake):
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    exporter = OTLPMetricExporter(endpoint=f"http://{agent.private_ip}:4318/v1/metrics",
                                  session=_no_proxy_session())
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(resource=_otel_resource("otlp-metrics"), metric_readers=[reader])
    provider.get_meter("lab.scenario").create_counter("ecs_lab.otlp.orders").add(4, {"shop": "lab"})
    provider.shutdown()  # exports once more, then stops
    with waiting_for(agent.probe.intervals().metrics()) as timeout:
        series = intake.wait_for_metric("ecs_lab.otlp.orders", tags="shop:lab", timeout=timeout)
    assert sum(p["value"] for s in series for p in s["points"]) == 4
    assert {s["type"] for s in series} == {1}, "a monotonic OTLP sum is a Datadog count"
    resources = {(r["type"], r["name"]) for s in series for r in s.get("resources", [])}
    assert ("host", agent.instance_id) in resources, series[0]


@pytest.mark.agent_offers("otlp")
def test_otlp_ports_are_closed_without_the_settings(agent, lab_with):
    """Last in the module: on docker `lab_with(**PLAIN)` redeploys the instance's agent without the
    settings (one docker lab per engine), so everything about the OTLP agent is checked first."""
    import socket

    def refused(host: str, port: int) -> bool:
        with socket.socket() as s:
            s.settimeout(2)
            return s.connect_ex((host, port)) != 0

    assert not refused(agent.private_ip, 4318) and not refused(agent.private_ip, 4317), \
        "control: with the settings the agent listens on 4318 and 4317"
    # `agent status -j` says the same (its otlp section).
    assert agent.probe.status()["otlp"]["otlpStatus"] is True
    plain = lab_with(**PLAIN).agents[0]
    assert refused(plain.private_ip, 4318) and refused(plain.private_ip, 4317), \
        "without DD_OTLP_CONFIG_RECEIVER_PROTOCOLS_* the OTLP ports must stay closed"
    assert plain.probe.status()["otlp"]["otlpStatus"] is False
