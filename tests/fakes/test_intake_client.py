"""IntakeClient: what scenarios read and wait on, and what a failed wait says."""

from __future__ import annotations

import threading

import pytest
import requests

from lab.fakes.intake.samples import check_runs_body, series_body, traces_body
from lab.proto import process_agent_pb2 as pa
from lab.proto import process_codec


def post(url: str, route: str, body: bytes, headers: dict | None = None) -> int:
    with requests.Session() as s:
        s.trust_env = False
        return s.post(url + route, data=body, headers=headers or {}).status_code


def post_traces(url: str, service: str, **kw) -> None:
    body, headers = traces_body(service=service, **kw)
    assert post(url, "/api/v0.2/traces", body, headers) == 202


def post_series(url: str, metric: str, **kw) -> None:
    body, headers = series_body(metric=metric, **kw)
    assert post(url, "/api/v2/series", body, headers) == 202


def test_wait_for_spans_returns_spans_that_arrive_while_waiting(intake, client):
    timer = threading.Timer(0.3, post_traces, args=(intake.url, "web"))
    timer.start()
    try:
        spans = client.wait_for_spans(service="web", timeout=10, count=3)
    finally:
        timer.cancel()
    assert len(spans) == 3 and {s["service"] for s in spans} == {"web"}
    root = next(s for s in spans if s["parent_id"] == 0)
    assert "task_family:web" in root["container_tags"] and root["hostname"] == "i-0abc"
    assert "ecs_cluster_name:lab" in root["tags"] and root["env"] == "lab"


def test_wait_for_spans_with_a_predicate_and_tags(intake, client):
    post_traces(intake.url, "web")
    spans = client.wait_for_spans(service="web", tags="task_family:web", timeout=5,
                                  predicate=lambda s: s["meta"].get("http.status_code") == "200")
    assert len(spans) == 1 and spans[0]["name"] == "flask.request"


def test_a_failed_span_wait_says_what_the_intake_saw_instead(intake, client):
    post_series(intake.url, "app.hits")
    post_traces(intake.url, "worker")
    with pytest.raises(AssertionError) as err:
        client.wait_for_spans(service="web", timeout=0.5)
    message = str(err.value)
    assert message.startswith("no span for service=web in ")
    assert "intake saw 1 payloads on /api/v0.2/traces, 1 on /api/v2/series;" in message
    assert "services seen: ['worker']" in message


def test_wait_for_metric_with_tags_and_its_failure_message(intake, client):
    post_series(intake.url, "app.hits", tags=("env:lab", "task_family:web"))
    (series,) = client.wait_for_metric("app.hits", tags=["task_family:web"], timeout=5)
    assert series["metric"] == "app.hits" and "env:lab" in series["tags"]
    with pytest.raises(AssertionError, match=r"no series for metric=app.hits with tags \['task_family:db'\]"
                                             r".*metrics seen: \[\"app.hits \['env:lab'"):
        client.wait_for_metric("app.hits", tags="task_family:db", timeout=0.3)


def test_wait_for_processes_by_command_line(intake, client):
    body = pa.CollectorProc(hostName="i-1", processes=[
        pa.Process(pid=7, command=pa.Command(args=["python", "-m", "web.app"])),
        pa.Process(pid=8, command=pa.Command(args=["sleep", "60"]))])
    assert post(intake.url, "/api/v1/collector", process_codec.encode_message(12, body)) == 200
    (proc,) = client.wait_for_processes("web.app", timeout=5)
    assert proc["pid"] == 7 and proc["hostName"] == "i-1"
    assert client.wait_for_processes(lambda p: p["pid"] == 8, timeout=5)[0]["cmdline"] == "sleep 60"
    with pytest.raises(AssertionError, match=r"no process with 'java'.*command lines seen: \['python -m"):
        client.wait_for_processes("java", timeout=0.3)


def test_wait_for_check_run_with_status(intake, client):
    body, headers = check_runs_body(check="datadog.agent.up", status=0)
    post(intake.url, "/api/v1/check_run", body, headers)
    assert client.wait_for_check_run("datadog.agent.up", status=0, timeout=5)[0]["host_name"] == "i-0abc"
    with pytest.raises(AssertionError, match=r"with status 2.*check runs seen: \['datadog.agent.up=0'\]"):
        client.wait_for_check_run("datadog.agent.up", status=2, timeout=0.3)


def test_a_session_client_sees_only_what_came_after_it_opened(intake, client):
    post_series(intake.url, "old")
    scoped = client.start_session()
    post_series(intake.url, "new")
    assert [s["metric"] for s in scoped.metrics()] == ["new"]
    assert {s["metric"] for s in client.metrics()} == {"old", "new"}
    assert scoped.routestats()["/api/v2/series"]["count"] == 1
    post(scoped.session_url, "/api/v2/series", *series_body(metric="tagged"))
    assert [s["metric"] for s in scoped.metrics()] == ["new", "tagged"]
    scoped.close()


def test_rejections_show_up_in_a_failed_waits_message(intake, client):
    post(intake.url, "/api/v0.2/traces", b"not gzip", {"Content-Encoding": "gzip"})
    with pytest.raises(AssertionError, match=r"rejected: \{'/api/v0.2/traces': 1\} .*not valid gzip"):
        client.wait_for_spans(service="web", timeout=0.2)


def test_a_failed_wait_names_the_awaited_route_even_when_it_got_nothing(intake, client):
    post_series(intake.url, "app.hits")
    expected = r"intake saw 1 payloads on /api/v2/series, 0 on /api/v0.2/traces; services seen: \[\]"
    with pytest.raises(AssertionError, match=expected):
        client.wait_for_spans(service="web", timeout=0.2)


def test_raw_payloads_and_flush(intake, client):
    body, headers = series_body(metric="m")
    post(intake.url, "/api/v2/series", body, headers)
    (raw,) = client.payloads("/api/v2/series", fmt="raw")
    assert raw["data"] == body
    assert client.flush() == 1 and client.metrics() == []
