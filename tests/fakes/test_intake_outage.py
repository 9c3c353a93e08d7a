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


def test_a_request_the_refusal_closes_before_its_answer_is_not_stored_and_its_retry_is_stored_once(http):
    """A refusal that begins after a POST arrived and before it is answered closes its connection
    (as a server going down drops what it has not answered): the sender gets no answer and sends
    it again, so the first must not be stored. (Found by the resilience scenario: a process payload
    made as the refusal began was stored, its answer lost, and its retry stored again.)"""
    import asyncio
    import threading

    arrived, release = threading.Event(), threading.Event()
    with IntakeServer(max_payloads=1000) as intake:
        handle = intake._datadog_request

        async def refusal_begins_before_the_answer(request):
            # The request is in and its body read (aiohttp keeps it for the handler's own read());
            # the test starts the refusal; then the handler goes on, as when the body's last bytes
            # and the refusal come in the same turn of the server's loop.
            if request.method == "POST" and request.path == SERIES:
                await request.read()
                arrived.set()
                while not release.is_set():
                    await asyncio.sleep(0.01)
            return await handle(request)

        intake._datadog_request = refusal_begins_before_the_answer  # the app is made at listen()
        intake.listen("127.0.0.1", 0)
        body, headers = series_body(n_series=1, metric="app.refused.midway")
        outcome: list = []

        def send() -> None:
            try:
                outcome.append(http.post(intake.url + SERIES, data=body, headers=headers, timeout=10))
            except requests.exceptions.ConnectionError as exc:
                outcome.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        assert arrived.wait(10), "the POST never reached the intake"
        intake.start_outage({"mode": "refuse"})
        release.set()
        sender.join(15)
        assert not sender.is_alive()
        assert isinstance(outcome[0], requests.exceptions.ConnectionError), outcome
        # The handler has gone on (the query API shares the refused port: the store is asked).
        _wait(lambda: sum(intake.store.route_stats().get(SERIES, {}).get(k, 0)
                          for k in ("accepted", "abandoned")) == 1, 5, "the POST handled")
        intake.end_outages()
        # The sender's retry after the outage: stored once, in all.
        assert http.post(intake.url + SERIES, data=body, headers=headers, timeout=10).status_code == 202
        stats = _stats(http, intake, SERIES)
        assert (stats["count"], stats["abandoned"]) == (1, 1), f"stored {stats['count']} times: {stats}"


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
