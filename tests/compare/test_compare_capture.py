"""The capture plugin, in a real pytest run against a real lab intake: every payload of each test,
decoded, with its endpoint, content type and encoding; each test's outcome; no payload twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lab.compare import capture
from lab.compare.surface import load_run, surface_of

INNER_CONFTEST = '''
import pytest
import requests

from lab.fakes.intake import samples
from lab.fakes.intake.client import IntakeClient
from lab.fakes.intake.server import IntakeServer


@pytest.fixture(scope="session")
def intake_url():
    with IntakeServer() as server:
        yield server.listen("127.0.0.1", 0).url


@pytest.fixture
def intake(intake_url):
    client = IntakeClient(intake_url)
    yield client
    client.close()


def post(client, route, body_headers):
    body, headers = body_headers
    session = requests.Session()
    session.trust_env = False
    session.post(client.url + route, data=body, headers=headers, timeout=10).raise_for_status()
'''

INNER_TESTS = '''
import pytest

from conftest import post
from lab.fakes.intake import samples


def test_metrics(intake):
    post(intake, "/api/v2/series", samples.series_body(metric="inner.metric", encoding="zstd"))
    post(intake, "/api/v1/check_run", samples.check_runs_body(check="inner.check"))
    intake.wait_for_metric("inner.metric", timeout=10)


def test_traces_then_fails(intake):
    post(intake, "/api/v0.2/traces", samples.traces_body(encoding="gzip", service="inner-web"))
    intake.wait_for_spans(service="inner-web", timeout=10)
    assert False, "this test fails on purpose"


def test_skipped(intake):
    pytest.skip("nothing to see")
'''


def test_each_test_keeps_its_own_payloads_decoded_with_endpoint_content_type_and_encoding(tmp_path):
    (tmp_path / "inner").mkdir()
    (tmp_path / "inner" / "conftest.py").write_text(INNER_CONFTEST)
    (tmp_path / "inner" / "test_inner.py").write_text(INNER_TESTS)
    out = tmp_path / "capture"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                        os.environ.get("PYTHONPATH", "")]),
           capture.AGENT_INFO_VAR: json.dumps({"spec": "emulated"})}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
                           "lab.compare.capture", "--capture-dir", str(out), "test_inner.py"],
                          cwd=tmp_path / "inner", env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # one test fails on purpose

    run = load_run(out)
    outcomes = {nodeid.split("::")[1]: t.outcome for nodeid, t in run.tests.items()}
    assert outcomes == {"test_metrics": "passed", "test_traces_then_fails": "failed",
                        "test_skipped": "skipped"}
    assert run.exit_code == 1 and run.agent == {"spec": "emulated"}

    by_test = {nodeid.split("::")[1]: list(run.payloads(nodeid)) for nodeid in run.tests}
    first = {p["endpoint"]: p for p in by_test["test_metrics"]}
    assert set(first) == {"/api/v2/series", "/api/v1/check_run"}
    series = first["/api/v2/series"]
    assert (series["content_type"], series["encoding"]) == ("application/x-protobuf", "zstd")
    assert series["data"][0]["metric"] == "inner.metric" and series["size"] > 0
    assert first["/api/v1/check_run"]["data"][0]["check"] == "inner.check"
    # The second test sees only its own trace: captures follow each other without overlap.
    [trace] = by_test["test_traces_then_fails"]
    assert trace["endpoint"] == "/api/v0.2/traces" and trace["encoding"] == "gzip"
    assert trace["data"]["tracerPayloads"][0]["chunks"][0]["spans"][0]["service"] == "inner-web"
    assert by_test["test_skipped"] == []
    skipped = next(t for nodeid, t in run.tests.items() if nodeid.endswith("test_skipped"))
    assert skipped.reason == "nothing to see", "a skip keeps its reason (the report shows it)"

    surface = surface_of(run)
    assert surface["metrics"]["inner.metric"]["types"] == ["gauge"]
    assert "task_family" in surface["ecs_tags"]["metrics"] and "task_family" in surface["ecs_tags"]["traces"]
    assert surface["check_runs"] == {"inner.check": {"statuses": [0], "tag_keys": []}}


def test_lab_agent_env_reaches_every_stack_the_run_starts_and_its_intake_is_captured(monkeypatch, tmp_path):
    import lab.pytest_plugin as plugin

    calls = []

    class StartedLab:
        intake_url = "http://127.0.0.1:9/"

    def fake_start_lab(backend_name="local", **kwargs):
        calls.append((backend_name, kwargs))
        return StartedLab()

    monkeypatch.setattr(plugin, "start_lab", fake_start_lab)
    cap = capture.PayloadCapture(tmp_path, [])
    capture._wrap_start_lab(cap, {"DD_USE_DOGSTATSD": "false", "DD_ENV": "candidate"})
    plugin.start_lab("local", agent_env={"DD_ENV": "scenario"})
    plugin.start_lab("docker")
    assert calls == [
        ("local", {"agent_env": {"DD_USE_DOGSTATSD": "false", "DD_ENV": "scenario"}}),  # the scenario wins
        ("docker", {"agent_env": {"DD_USE_DOGSTATSD": "false", "DD_ENV": "candidate"}}),
    ]
    assert list(cap.cursors) == ["http://127.0.0.1:9"]


def test_what_the_egress_proxy_refused_is_kept_with_the_test_that_caused_it(tmp_path):
    """A lab's recording egress proxy: each test keeps the attempts made since the previous capture."""
    import socket
    from types import SimpleNamespace

    from lab.fakes.egress_proxy.proxy import EgressProxy

    def connect_through(proxy_url: str, target: str) -> None:
        host, port = proxy_url.removeprefix("http://").rstrip("/").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
            assert b" 403 " in sock.recv(4096).split(b"\r\n", 1)[0] + b" "

    with EgressProxy("127.0.0.1", 0) as proxy:
        lab = SimpleNamespace(ecs_lab=SimpleNamespace(backend=SimpleNamespace(egress_proxy=proxy)))
        cap = capture.PayloadCapture(tmp_path, [])
        cap.know_egress(lab)
        connect_through(proxy.url, "api.lab.invalid:443")
        cap.capture("scenarios/a.py::test_one")
        cap.capture("scenarios/a.py::test_two")  # nothing new: nothing kept twice
    one = tmp_path / capture.capture_dir_name("scenarios/a.py::test_one") / "egress.jsonl"
    [attempt] = [json.loads(line) for line in one.read_text().splitlines()]
    assert (attempt["host"], attempt["port"], attempt["kind"]) == ("api.lab.invalid", 443, "connect")
    assert cap.tests["scenarios/a.py::test_one"]["egress_attempts"] == 1
    assert cap.tests["scenarios/a.py::test_two"]["egress_attempts"] == 0
    assert not (tmp_path / capture.capture_dir_name("scenarios/a.py::test_two") / "egress.jsonl").exists()


@pytest.mark.parametrize("text, expected", [
    ('{"DD_USE_DOGSTATSD": "false"}', {"DD_USE_DOGSTATSD": "false"}),
    ("DD_USE_DOGSTATSD=false\nDD_ENV=a=b\n", {"DD_USE_DOGSTATSD": "false", "DD_ENV": "a=b"}),
    ("", {}),
])
def test_lab_agent_env_formats(text, expected):
    assert capture.parse_agent_env(text) == expected


@pytest.mark.parametrize("text, message", [
    ('{"DD_X": 1}', "string values"), ("{not json", "not valid JSON"), ("DD X=1", "is not KEY=VALUE"),
])
def test_bad_lab_agent_env_is_a_clear_error(text, message):
    with pytest.raises(ValueError, match=message):
        capture.parse_agent_env(text)


def test_distinct_test_ids_get_distinct_readable_directories():
    a = capture.capture_dir_name("scenarios/x/test_a.py::test_b[imdsv1]")
    b = capture.capture_dir_name("scenarios/x/test_a.py::test_b[imdsv2]")
    assert a != b and a.startswith("scenarios__x__test_a.py__test_b_imdsv1")
    assert textwrap.shorten(a, 200) == a  # one line, no spaces
