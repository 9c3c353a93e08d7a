"""The docker boot's control-plane relay (lab/backends/docker_boot.py), on loopback: what `aws` in
the boot container calls reaches the control plane through it, and it is gone when the boot ends."""

from __future__ import annotations

import http.server
import socket
import threading
import urllib.request

import pytest

from lab.backends.docker_boot import control_plane_relay
from lab.instance_boot import UserDataError

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class _Answer(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"control plane got " + body)

    def log_message(self, *_args) -> None:
        pass


@pytest.fixture
def control_plane():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_relay_passes_requests_to_the_control_plane_and_stops_with_the_boot(control_plane):
    with control_plane_relay("127.0.0.1", control_plane) as url:
        assert url.startswith("http://127.0.0.1:") and url != control_plane
        port = int(url.rsplit(":", 1)[1])
        for n in range(3):  # one connection per request, as the aws CLI's
            with _DIRECT.open(urllib.request.Request(url + "/", data=f"call {n}".encode()), timeout=10) as r:
                assert r.read() == f"control plane got call {n}".encode()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_a_relay_that_cannot_listen_says_where(control_plane):
    # An address this machine does not have (TEST-NET-3): nothing is sent, the bind fails.
    with pytest.raises(UserDataError, match=r"relay the control plane to the instance on 203\.0\.113\.77"):
        with control_plane_relay("203.0.113.77", control_plane):
            pass


def test_a_control_plane_url_without_a_port_is_refused():
    with pytest.raises(ValueError, match="has no host and port"):
        with control_plane_relay("127.0.0.1", "http://127.0.0.1"):
            pass
