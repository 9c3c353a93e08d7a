"""The intake's outages: error answers, slow answers and refused connections store nothing, so a
payload the agent retries is stored exactly once; each stored payload says which answer it got."""

from __future__ import annotations

import base64
import socket
import time

import pytest
import requests

from lab.fakes.intake.samples import series_body, traces_body
from lab.fakes.intake.server import IntakeServer

SERIES = "/api/v2/series"
TRACES = "/api/v0.2/traces"


@pytest.fixture
def intake():
    with IntakeServer(max_payloads=1000) as server:
        server.listen("127.0.0.1", 0)
        yield server


@pytest.fixture
def http():
    with requests.Session() as s:
        s.trust_env = False
        yield s


def _stats(http, intake, route):
    return http.get(intake.url + "/fakeintake/routestats", timeout=5).json()["routes"].get(route, {})


def _refused(url: str) -> bool:
    """Whether connecting is refused. Three tries: with nothing listening on a port of the ephemeral
    range, the kernel can pick that very port as a connect's source, and the socket then connects
    to itself (TCP simultaneous open); a listener connects every time."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    for _ in range(3):
        with socket.socket() as sock:
            sock.settimeout(2)
            if sock.connect_ex((host, int(port))) != 0:
                return True
    return False


def _wait(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_a_503_outage_stores_nothing_and_the_retry_is_stored_once(intake, http):
    body, headers = series_body(n_series=3, metric="app.outage")
    resp = http.post(intake.url + "/fakeintake/configure/outage", json={"mode": "status", "endpoint": SERIES})
    assert resp.status_code == 200 and resp.json()["outage"]["status_code"] == 503
    for _ in range(3):  # the agent's first attempt and two retries during the outage
        answer = http.post(intake.url + SERIES, data=body, headers=headers)
        assert answer.status_code == 503 and "outage" in answer.json()["errors"][0]
    # Other routes are not in the outage.
    tbody, theaders = traces_body()
    assert http.post(intake.url + TRACES, data=tbody, headers=theaders).status_code == 202
    ended = http.delete(intake.url + "/fakeintake/configure/outage").json()["ended"]
    assert [o["mode"] for o in ended] == ["status"]
    assert http.post(intake.url + SERIES, data=body, headers=headers).status_code == 202
    payloads = http.get(intake.url + "/fakeintake/payloads", params={"endpoint": SERIES}).json()["payloads"]
    assert len(payloads) == 1 and payloads[0]["answer"] == 202
    assert base64.b64decode(payloads[0]["data"]) == body
    stats = _stats(http, intake, SERIES)
    assert stats["answered_not_stored"] == 3 and stats["accepted"] == 1 and stats["count"] == 1


def test_an_error_override_stores_like_fakeintake_unless_told_not_to(intake, http):
    body, headers = series_body(n_series=1)
    # fakeintake's behaviour: stored, then answered the override; the row says which answer it got.
    http.post(intake.url + "/fakeintake/configure/override", json={"endpoint": SERIES, "status_code": 500})
    assert http.post(intake.url + SERIES, data=body, headers=headers).status_code == 500
    (item,) = http.get(intake.url + "/fakeintake/payloads", params={"endpoint": SERIES}).json()["payloads"]
    assert item["answer"] == 500
    # The lab's `store: false`: answered, nothing kept, counted.
    http.post(intake.url + "/fakeintake/configure/override",
              json={"endpoint": SERIES, "status_code": 503, "store": False,
                    "body": base64.b64encode(b"later").decode()})
    answer = http.post(intake.url + SERIES, data=body, headers=headers)
    assert answer.status_code == 503 and answer.content == b"later"
    stats = _stats(http, intake, SERIES)
    assert stats["count"] == 1 and stats["answered_not_stored"] == 1
    bad = http.post(intake.url + "/fakeintake/configure/override",
                    json={"endpoint": SERIES, "status_code": 500, "store": "yes"})
    assert bad.status_code == 400 and "store must be true or false" in bad.json()["errors"][0]


def test_a_slow_answer_the_client_waits_for_is_stored_with_its_delay(intake, http):
    body, headers = series_body(n_series=1)
    http.post(intake.url + "/fakeintake/configure/outage", json={"mode": "slow", "delay_ms": 400})
    start = time.monotonic()
    assert http.post(intake.url + SERIES, data=body, headers=headers, timeout=5).status_code == 202
    assert time.monotonic() - start >= 0.4
    (item,) = http.get(intake.url + "/fakeintake/payloads", params={"endpoint": SERIES}).json()["payloads"]
    assert item["answer"] == 202 and item["answer_delay_ms"] == 400


def test_a_slow_answer_the_client_gave_up_on_is_not_stored(intake, http):
    body, headers = series_body(n_series=1)
    http.post(intake.url + "/fakeintake/configure/outage", json={"mode": "slow", "delay_ms": 1500})
    with pytest.raises(requests.exceptions.ReadTimeout):
        http.post(intake.url + SERIES, data=body, headers=headers, timeout=0.3)
    _wait(lambda: _stats(http, intake, SERIES).get("abandoned") == 1, 5, "the abandoned POST counted")
    assert _stats(http, intake, SERIES)["count"] == 0


def test_refuse_closes_the_port_then_listens_again_on_the_same_address(intake, http):
    body, headers = series_body(n_series=1)
    # A kept-alive connection from before the outage must not slip through it.
    assert http.post(intake.url + SERIES, data=body, headers=headers).status_code == 202
    resp = http.post(intake.url + "/fakeintake/configure/outage", json={"mode": "refuse", "duration_s": 1.5})
    assert resp.status_code == 200
    _wait(lambda: _refused(intake.url), 3, "connections refused")
    with pytest.raises(requests.exceptions.ConnectionError):
        http.post(intake.url + SERIES, data=body, headers=headers, timeout=2)
    _wait(lambda: not _refused(intake.url), 5, "the intake listening again")
    assert http.post(intake.url + SERIES, data=body, headers=headers).status_code == 202
    assert _stats(http, intake, SERIES)["count"] == 2
    ended = http.get(intake.url + "/fakeintake/configure/outage").json()
    assert ended["outages"] == [] and ended["ended"][0]["mode"] == "refuse"


def test_refuse_from_python_lasts_until_ended(intake, http):
    intake.start_outage({"mode": "refuse"})
    assert _refused(intake.url)
    assert [o.mode for o in intake.end_outages()] == ["refuse"]
    assert not _refused(intake.url)
    assert http.get(intake.url + "/fakeintake/health").status_code == 200


@pytest.mark.parametrize("spec, message", [
    ({"mode": "down"}, "mode must be one of"),
    ({"mode": "refuse"}, "needs duration_s"),
    ({"mode": "refuse", "endpoint": SERIES, "duration_s": 1}, "applies to every endpoint"),
    ({"mode": "slow"}, "needs delay_ms above 0"),
    ({"mode": "status", "status_code": 202}, "answers an error"),
    ({"mode": "status", "status_code": 999}, "HTTP status"),
    ({"mode": "status", "duration_s": -1}, "duration_s must be above 0"),
    ({"mode": "status", "endpoint": "api"}, "endpoint must be a route"),
    ({"mode": "status", "oops": 1}, "unknown outage field"),
    (["status"], "JSON object"),
])
def test_a_bad_outage_gets_a_clear_400(intake, http, spec, message):
    resp = http.post(intake.url + "/fakeintake/configure/outage", json=spec)
    assert resp.status_code == 400 and message in resp.json()["errors"][0]
    assert http.get(intake.url + "/fakeintake/configure/outage").json()["outages"] == []


def test_an_outage_with_a_duration_ends_by_itself(intake, http):
    body, headers = series_body(n_series=1)
    http.post(intake.url + "/fakeintake/configure/outage", json={"mode": "status", "duration_s": 0.5})
    assert http.post(intake.url + SERIES, data=body, headers=headers).status_code == 503
    _wait(lambda: http.post(intake.url + SERIES, data=body, headers=headers).status_code == 202, 5,
          "the outage to end")
    assert _stats(http, intake, SERIES)["count"] == 1
