"""The rendered HAProxy config, checked and run by Debian's real haproxy when it is installed."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest
import requests
from aiohttp import web

from lab.fakes.fips_proxy.haproxy import render_haproxy_cfg
from lab.fakes.fips_proxy.ports import ROUTES, NonLoopbackFipsAddress, port_for
from lab.fakes.fips_proxy.proxy import find_free_port_range
from lab.serving import ServerThread
from lab.world import wait_until

HAPROXY = shutil.which("haproxy")
needs_haproxy = pytest.mark.skipif(HAPROXY is None,
                                   reason="haproxy is not installed (apt-get install haproxy)")


def test_config_has_a_frontend_and_backend_per_data_type():
    cfg = render_haproxy_cfg("127.0.0.1", 8091, bind_address="127.0.2.1", port_range_start=9803)
    for route in ROUTES[1:]:
        assert f"frontend {route.name}\n    bind 127.0.2.1:{port_for(route.name)}" in cfg
        assert (f"backend {route.name}-intake\n    http-request add-header Via \"1.1 ecs-lab-fips-proxy "
                f"({route.name})\"\n    server intake 127.0.0.1:8091") in cfg
    assert "bind 127.0.2.1:9803\n    stats enable" in cfg
    assert "option httplog" in cfg


def test_config_refuses_a_non_loopback_bind():
    with pytest.raises(NonLoopbackFipsAddress):
        render_haproxy_cfg("127.0.0.1", 8091, bind_address="0.0.0.0", port_range_start=9803)


@needs_haproxy
def test_debian_haproxy_accepts_the_config(tmp_path):
    cfg = tmp_path / "datadog-fips-proxy.cfg"
    cfg.write_text(render_haproxy_cfg("127.0.0.1", 8091, bind_address="127.0.0.1", port_range_start=9803))
    r = subprocess.run([HAPROXY, "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Configuration file is valid" in r.stdout + r.stderr
    assert "WARNING" not in r.stdout + r.stderr


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def _haproxy(cfg: Path, start: int):
    """Debian's haproxy on `cfg` until the block ends; yields its log lines (stdout, -db)."""
    proc = subprocess.Popen([HAPROXY, "-db", "-f", str(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    log: list[str] = []
    reader = threading.Thread(target=lambda: log.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        wait_until(lambda: _port_open(start + 2) or proc.poll() is not None, timeout=15,
                   what="haproxy to bind the traces port")
        assert proc.poll() is None, "".join(log)
        yield log
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@needs_haproxy
def test_real_haproxy_relays_to_the_intake_and_logs_the_data_type(tmp_path):
    seen: list[tuple[str, bytes]] = []
    vias: list[str | None] = []

    async def receive(request: web.Request) -> web.Response:
        seen.append((request.raw_path, await request.read()))
        vias.append(request.headers.get("Via"))
        return web.json_response({"errors": []}, status=202)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", receive)
    with ServerThread("haproxy-upstream") as srv:
        upstream = srv.add_app(app, "127.0.0.1", 0, auto_decompress=False)
        start = find_free_port_range()
        cfg = tmp_path / "fips.cfg"
        cfg.write_text(render_haproxy_cfg("127.0.0.1", upstream.bound_port, bind_address="127.0.0.1",
                                          port_range_start=start))
        with _haproxy(cfg, start) as log:
            r = requests.post(f"http://127.0.0.1:{start + 2}/api/v0.2/traces", data=b"\x1f\x8bpayload",
                              headers={"Content-Encoding": "gzip"}, timeout=10)
            assert r.status_code == 202
            assert seen == [("/api/v0.2/traces", b"\x1f\x8bpayload")]
            assert vias == ["1.1 ecs-lab-fips-proxy (traces)"]
            stats = requests.get(f"http://127.0.0.1:{start}/", timeout=10)
            assert stats.status_code == 200 and "Statistics Report" in stats.text
            wait_until(lambda: any(" traces traces-intake/intake " in line for line in log), timeout=10,
                       what="haproxy's httplog line naming the traces frontend")


@needs_haproxy
def test_the_intake_sees_haproxys_via_after_the_agents_own(tmp_path):
    """The trace-agent's relays carry `Via: trace-agent <version>`; HAProxy adds its entry as a
    second `Via` field. The intake reads both (one list), so a relayed telemetry payload shows the
    route it came on, as one from the in-process proxy does."""
    from lab.fakes.fips_proxy.ports import via_route
    from lab.fakes.intake.client import IntakeClient
    from lab.fakes.intake.server import IntakeServer

    with IntakeServer() as intake:
        intake.listen("127.0.0.1", 0)
        port = int(intake.url.rsplit(":", 1)[1])
        start = find_free_port_range()
        cfg = tmp_path / "fips.cfg"
        cfg.write_text(render_haproxy_cfg("127.0.0.1", port, bind_address="127.0.0.1",
                                          port_range_start=start))
        telemetry = f"http://127.0.0.1:{port_for('instrumentation_telemetry', start)}"
        with _haproxy(cfg, start):
            r = requests.post(telemetry + "/api/v2/apmtelemetry",
                              json={"request_type": "app-heartbeat"}, timeout=10,
                              headers={"Via": "trace-agent 7.60.0", "DD-API-KEY": "x" * 32})
            assert r.status_code < 300, r.text
        rows = IntakeClient(intake.url).payloads("/api/v2/apmtelemetry", fmt="raw")
    assert len(rows) == 1
    assert rows[0]["via"] == "trace-agent 7.60.0, 1.1 ecs-lab-fips-proxy (instrumentation_telemetry)"
    assert via_route(rows[0]["via"]) == "instrumentation_telemetry"
