"""The agent's OTLP receiver with the real OpenTelemetry Python SDK exporters (OTLP/HTTP protobuf,
OTLP/HTTP JSON, OTLP/gRPC): spans become Datadog spans and metrics become series as the agent maps
them (docs/otlp.md); without the settings nothing listens."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
import requests

from lab.agent import otlp
from lab.agent.config import AgentConfig
from lab.agent.main import Agent
from lab.world import wait_until

from .conftest import agent_env

pytest.importorskip("opentelemetry.sdk", reason="the dev extra installs the OpenTelemetry SDK")

from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.trace import SpanKind, Status, StatusCode  # noqa: E402


@pytest.fixture
def fake_intake():
    from lab.fakes.intake.client import IntakeClient
    from lab.fakes.intake.server import IntakeServer

    with IntakeServer() as server:
        server.listen("127.0.0.1", 0)
        client = IntakeClient(server.url, timeout=10)
        yield server, client
        client.close()


@pytest.fixture
def otlp_agent(fake_intake):
    server, _ = fake_intake
    env = agent_env(server.url, DD_OTLP_CONFIG_RECEIVER_PROTOCOLS_HTTP_ENDPOINT="127.0.0.1:0",
                    DD_OTLP_CONFIG_RECEIVER_PROTOCOLS_GRPC_ENDPOINT="127.0.0.1:0", DD_ENV="agent-env")
    with Agent(AgentConfig.from_env(env), env) as agent:
        yield agent


def _port(agent: Agent, scheme: str) -> int:
    return int(next(u for u in agent.otlp_listening if u.startswith(scheme + "://")).rsplit(":", 1)[1])


def _no_proxy_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # loopback only: never a proxy from the environment
    return session


def _span_exporter(agent: Agent, transport: str):
    if transport == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=f"127.0.0.1:{_port(agent, 'grpc')}", insecure=True,
                                channel_options=(("grpc.enable_http_proxy", 0),))
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=f"http://127.0.0.1:{_port(agent, 'http')}/v1/traces",
                            session=_no_proxy_session())


def _metric_exporter(agent: Agent, transport: str):
    if transport == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter(endpoint=f"127.0.0.1:{_port(agent, 'grpc')}", insecure=True,
                                  channel_options=(("grpc.enable_http_proxy", 0),))
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter(endpoint=f"http://127.0.0.1:{_port(agent, 'http')}/v1/metrics",
                              session=_no_proxy_session())


def _resource(service: str) -> Resource:
    return Resource.create({"service.name": service, "deployment.environment.name": "otel-env",
                            "service.version": "2.0.0"})


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_sdk_spans_become_datadog_spans(otlp_agent, fake_intake, transport):
    _, client = fake_intake
    service = f"otel-{transport}"
    provider = TracerProvider(resource=_resource(service))
    provider.add_span_processor(SimpleSpanProcessor(_span_exporter(otlp_agent, transport)))
    tracer = provider.get_tracer("lab.scenario", "1.0")
    with tracer.start_as_current_span("GET /items", kind=SpanKind.SERVER,
                                      attributes={"http.request.method": "GET", "http.route": "/items",
                                                  "http.response.status_code": 200}) as root:
        with tracer.start_as_current_span("SELECT items", kind=SpanKind.CLIENT,
                                          attributes={"db.system": "postgresql",
                                                      "db.statement": "SELECT * FROM items"}):
            pass
        with tracer.start_as_current_span("fails") as failing:
            failing.set_status(Status(StatusCode.ERROR, "boom"))
        trace_id = root.get_span_context().trace_id
    provider.shutdown()

    spans = client.wait_for_spans(service=service, count=3, timeout=15)
    by_name = {s["name"]: s for s in spans}
    assert set(by_name) == {"http.server.request", "postgresql.query", "internal"}, sorted(by_name)
    server, db, internal = by_name["http.server.request"], by_name["postgresql.query"], by_name["internal"]
    assert (server["resource"], server["type"]) == ("GET /items", "web")
    assert (db["resource"], db["type"]) == ("SELECT * FROM items", "db")
    assert internal["type"] == "custom" and internal["error"] == 1
    assert internal["meta"]["otel.status_code"] == "Error"
    assert int(server["trace_id"]) == trace_id & ((1 << 64) - 1)
    assert server["meta"]["otel.trace_id"] == f"{trace_id:032x}"
    assert server["meta"]["span.kind"] == "server" and server["meta"]["version"] == "2.0.0"
    assert server["env"] == "otel-env"
    assert db["parent_id"] == server["span_id"]
    assert server["metrics"]["http.response.status_code"] == 200


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_sdk_metrics_become_series(otlp_agent, fake_intake, transport):
    _, client = fake_intake
    reader = PeriodicExportingMetricReader(_metric_exporter(otlp_agent, transport),
                                           export_interval_millis=3_600_000)
    provider = MeterProvider(resource=_resource("otel-metrics"), metric_readers=[reader])
    meter = provider.get_meter("lab.scenario")
    counter = meter.create_counter(f"otel.{transport}.requests")
    gauge = meter.create_up_down_counter(f"otel.{transport}.queue")
    counter.add(3, {"route": "/items"})
    gauge.add(7, {"route": "/items"})
    reader.force_flush()
    counter.add(2, {"route": "/items"})
    reader.force_flush()
    provider.shutdown()

    name = f"otel.{transport}.requests"

    def all_counted():
        found = client.metrics(name, tags="route:/items")
        return found if sum(p["value"] for s in found for p in s["points"]) >= 5 else None

    counts = wait_until(all_counted, 15, interval=0.2, what=f"{name} to add up to 5")
    # Cumulative monotonic sum -> count deltas: 3 (the series started after the agent), then 2; the
    # shutdown's export repeats the last value: a delta of 0, which the agent sends as well.
    assert sorted(v for s in counts for p in s["points"] if (v := p["value"])) == [2.0, 3.0]
    assert {s["type"] for s in counts} == {1}  # COUNT
    gauges = client.wait_for_metric(f"otel.{transport}.queue", timeout=15)
    assert gauges[0]["type"] == 3 and gauges[0]["points"][0]["value"] == 7.0  # non-monotonic -> gauge


def test_otlp_json_with_hex_ids(otlp_agent, fake_intake):
    _, client = fake_intake
    body = {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "otel-json"}}]},
        "scopeSpans": [{"scope": {"name": "curl"}, "spans": [{
            "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
            "name": "checkout", "kind": 2, "startTimeUnixNano": str(time.time_ns() - 5_000_000),
            "endTimeUnixNano": str(time.time_ns()),
            "attributes": [{"key": "rpc.system", "value": {"stringValue": "grpc"}},
                           {"key": "rpc.method", "value": {"stringValue": "Pay"}},
                           {"key": "rpc.service", "value": {"stringValue": "Checkout"}}]}]}]}]}
    req = urllib.request.Request(f"http://127.0.0.1:{_port(otlp_agent, 'http')}/v1/traces",
                                 data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("application/json")
    (span,) = client.wait_for_spans(service="otel-json", timeout=15)
    assert (span["name"], span["resource"]) == ("grpc.server.request", "Pay Checkout")
    assert int(span["trace_id"]) == 0xD269B633813FC60C


def test_bad_otlp_bodies_are_refused_with_a_reason(otlp_agent):
    url = f"http://127.0.0.1:{_port(otlp_agent, 'http')}/v1/traces"
    for ctype, body in (("application/x-protobuf", b"\xff\xff\xff"), ("application/json", b"{nope"),
                        ("text/plain", b"x")):
        req = urllib.request.Request(url, data=body, headers={"Content-Type": ctype})
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(req, timeout=5)
        assert exc.value.code == 400 and exc.value.read()


def test_without_the_settings_nothing_listens(start_agent):
    agent = start_agent()
    assert agent.otlp is None and agent.otlp_listening == []


def test_a_bad_endpoint_setting_is_refused():
    with pytest.raises(ValueError, match="host:port"):
        otlp.parse_endpoint("4318")


def test_v1_names_when_the_v2_logic_is_disabled(fake_intake):
    server, client = fake_intake
    env = agent_env(server.url, DD_OTLP_CONFIG_RECEIVER_PROTOCOLS_HTTP_ENDPOINT="127.0.0.1:0",
                    DD_APM_FEATURES="disable_operation_and_resource_name_logic_v2")
    with Agent(AgentConfig.from_env(env), env) as agent:
        provider = TracerProvider(resource=_resource("otel-v1"))
        provider.add_span_processor(SimpleSpanProcessor(_span_exporter(agent, "http")))
        with provider.get_tracer("my.lib").start_as_current_span("op", kind=SpanKind.SERVER):
            pass
        provider.shutdown()
        (span,) = client.wait_for_spans(service="otel-v1", timeout=15)
    assert span["name"] == "my.lib.server"



def test_sdk_histogram_becomes_a_distribution(otlp_agent, fake_intake):
    _, client = fake_intake
    reader = PeriodicExportingMetricReader(_metric_exporter(otlp_agent, "http"),
                                           export_interval_millis=3_600_000)
    provider = MeterProvider(resource=_resource("otel-hist"), metric_readers=[reader])
    histogram = provider.get_meter("lab.scenario").create_histogram("otel.latency_ms")
    for value in (3, 7, 40, 40):
        histogram.record(value, {"route": "/h"})
    provider.shutdown()
    sketches = wait_until(lambda: client.sketches("otel.latency_ms") or None, 15, interval=0.2,
                          what="the histogram's sketch at /api/beta/sketches")
    dogsketches = [d for s in sketches for d in s.get("dogsketches", [])]
    assert sum(d["cnt"] for d in dogsketches) == 4, sketches
    assert "route:/h" in sketches[0]["tags"]


def test_agent_config_shows_the_otlp_endpoints(otlp_agent):
    from lab.agent.config import runtime_settings

    receiver = runtime_settings(otlp_agent.config)["otlp_config"]["receiver"]["protocols"]
    assert receiver["http"]["endpoint"] == "127.0.0.1:0" and receiver["grpc"]["endpoint"] == "127.0.0.1:0"
