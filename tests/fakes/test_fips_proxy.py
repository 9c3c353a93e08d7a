"""The FIPS proxy stand-in: every port forwards to the intake unchanged and is recorded."""

from __future__ import annotations

import gzip
import subprocess
import sys

import pytest
import requests
from aiohttp import web

from lab.fakes.fips_proxy.ports import ROUTES, NonLoopbackFipsAddress, via_route
from lab.fakes.fips_proxy.proxy import FipsProxy, find_free_port_range
from lab.serving import PortInUseError, ServerThread


@pytest.fixture
def intake():
    """A recording upstream standing in for the fake intake."""
    seen: list[dict] = []

    async def receive(request: web.Request) -> web.Response:
        seen.append({"method": request.method, "path": request.raw_path, "headers": dict(request.headers),
                     "body": await request.read()})
        return web.json_response({"errors": []}, status=202, headers={"X-Intake": "lab"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", receive)
    with ServerThread("test-intake") as srv:
        listener = srv.add_app(app, "127.0.0.1", 0, auto_decompress=False)
        yield listener.url, seen


def start_proxy(upstream: str) -> FipsProxy:
    for _ in range(5):  # other test runs may grab a port between the probe and the bind
        try:
            return FipsProxy(upstream, "127.0.0.1", find_free_port_range()).start()
        except PortInUseError:
            continue
    raise RuntimeError("could not bind 16 consecutive ports")


@pytest.fixture
def proxy(intake):
    p = start_proxy(intake[0])
    yield p
    p.stop()


def test_each_port_forwards_unchanged_and_is_recorded(proxy, intake):
    _, seen = intake
    payload = gzip.compress(b'{"series": []}')
    r = requests.post(proxy.url_for("traces") + "/api/v0.2/traces?x=1", data=payload,
                      headers={"Content-Encoding": "gzip", "DD-Api-Key": "lab",
                               "Content-Type": "application/x-protobuf"})
    assert r.status_code == 202 and r.json() == {"errors": []} and r.headers["X-Intake"] == "lab"
    got = seen[-1]
    assert got["path"] == "/api/v0.2/traces?x=1" and got["body"] == payload
    assert got["headers"]["Content-Encoding"] == "gzip" and got["headers"]["DD-Api-Key"] == "lab"
    assert got["headers"]["Via"] == "1.1 ecs-lab-fips-proxy (traces)"
    rec = proxy.records[-1]
    assert (rec.route, rec.port, rec.method, rec.status, rec.bytes_in) == (
        "traces", proxy.port_of("traces"), "POST", 202, len(payload))
    assert not rec.misrouted


def test_every_data_port_is_listening(proxy):
    for route in ROUTES[1:]:
        assert requests.get(proxy.url_for(route.name) + "/api/v1/validate", timeout=5).status_code == 202
    assert {r.route for r in proxy.records} == {r.name for r in ROUTES[1:]}


def test_wrong_port_is_forwarded_but_flagged_misrouted(proxy, intake):
    r = requests.post(proxy.url_for("metrics") + "/api/v0.2/traces", data=b"x")
    assert r.status_code == 202 and intake[1][-1]["path"] == "/api/v0.2/traces"
    bad = proxy.misrouted()
    assert len(bad) == 1 and bad[0].route == "metrics" and bad[0].expected_routes == ("traces",)
    # logs travel the same path for CWS/compliance: not misrouted there.
    requests.post(proxy.url_for("runtime_security") + "/api/v2/logs", data=b"[]")
    assert len(proxy.misrouted()) == 1


def test_stats_page_in_html_csv_and_json(proxy):
    requests.post(proxy.url_for("metrics") + "/api/v2/series", data=b"abc")
    requests.post(proxy.url_for("metrics") + "/api/v0.2/traces", data=b"abc")
    page = requests.get(proxy.stats_url + "/")
    assert page.status_code == 200 and "Statistics Report" in page.text and "metrics" in page.text
    csv = requests.get(proxy.stats_url + "/;csv").text.splitlines()
    assert csv[0].startswith("# pxname,port,requests")
    metrics_row = next(line for line in csv if line.startswith("metrics,"))
    assert metrics_row.split(",")[2] == "2"
    js = requests.get(proxy.stats_url + "/;json").json()
    row = next(r for r in js["routes"] if r["route"] == "metrics")
    assert row["requests"] == 2 and row["misrouted"] == 1 and row["bytes_in"] == 6
    records = requests.get(proxy.stats_url + "/ecs-lab/records").json()
    assert [r["path"] for r in records] == ["/api/v2/series", "/api/v0.2/traces"]


def test_unreachable_intake_is_a_recorded_503(intake):
    dead_start = find_free_port_range(count=1)
    p = start_proxy(f"http://127.0.0.1:{dead_start}")
    try:
        r = requests.post(p.url_for("logs") + "/api/v2/logs", data=b"[]")
        assert r.status_code == 503 and "unreachable" in r.text
        assert p.records[-1].status == 503 and "unreachable" in p.records[-1].error
    finally:
        p.stop()


def test_non_loopback_address_is_refused_like_the_agent_does():
    with pytest.raises(NonLoopbackFipsAddress, match="non-loopback"):
        FipsProxy("http://127.0.0.1:1", "10.0.0.1", 9803)


def test_stop_frees_every_port(intake):
    p = start_proxy(intake[0])
    start = p.port_range_start
    p.stop()
    again = FipsProxy(intake[0], "127.0.0.1", start).start()
    again.stop()


def test_cli_prints_a_haproxy_config():
    r = subprocess.run([sys.executable, "-m", "lab.cli", "fake", "fips-proxy", "--upstream",
                        "http://127.0.0.1:8091", "--port-range-start", "9803", "--print-haproxy-cfg"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "frontend traces" in r.stdout and "bind 127.0.0.1:9805" in r.stdout
    assert "server intake 127.0.0.1:8091" in r.stdout
    bad = subprocess.run([sys.executable, "-m", "lab.cli", "fake", "fips-proxy", "--upstream",
                          "http://127.0.0.1:8091", "--local-address", "10.1.1.1"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "non-loopback" in bad.stderr


def test_an_earlier_via_entry_is_kept_and_the_proxys_appended(proxy, intake):
    _, seen = intake
    requests.post(proxy.url_for("metrics") + "/api/v2/series", data=b"{}", headers={"Via": "1.1 edge"})
    assert seen[-1]["headers"]["Via"] == "1.1 edge, 1.1 ecs-lab-fips-proxy (metrics)"
    assert via_route(seen[-1]["headers"]["Via"]) == "metrics"


def test_the_intake_shows_which_payloads_a_proxy_relayed():
    from lab.fakes.intake.client import IntakeClient
    from lab.fakes.intake.server import IntakeServer

    with IntakeServer() as srv:
        srv.listen("127.0.0.1", 0)
        p = start_proxy(srv.url)
        try:
            requests.post(p.url_for("metrics") + "/api/v1/check_run", json=[], timeout=10)
            requests.post(srv.url + "/api/v1/check_run", json=[], timeout=10)  # straight to the intake
        finally:
            p.stop()
        rows = IntakeClient(srv.url).payloads("/api/v1/check_run", fmt="raw")
    assert [via_route(r.get("via")) for r in rows] == ["metrics", None]
