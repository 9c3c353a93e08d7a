"""The fake IMDS's owner, control API and CLI, over real sockets."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest

from lab.fakes.imds.server import ImdsServer
from lab.world import World, wait_until


def call(
    url: str, method: str = "GET", body: dict | None = None, headers: dict[str, str] | None = None
) -> tuple[int, str, dict]:
    assert url.startswith("http://127."), url
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


@pytest.fixture
def world() -> World:
    w = World()
    w.add_instance("127.0.51.1")
    w.add_instance("127.0.51.2")
    return w


def test_answers_as_plain_text_from_ec2ws(imds, world):
    status, body, headers = call(imds.url(world.instance(1)) + "/latest/meta-data/instance-id")
    assert (status, body) == (200, world.instance(1).instance_id)
    assert headers["Content-Type"] == "text/plain"
    assert headers["Server"] == "EC2ws"


def test_control_api_adds_lists_and_removes_faults(imds, world):
    base = imds.url(world.instance(1))
    status, body, _ = call(
        base + "/ecs-lab/faults",
        "POST",
        {"path": "/latest/meta-data/*", "status": 500, "instance_id": world.instance(1).instance_id},
    )
    assert status == 201
    fault = json.loads(body)
    assert call(base + "/latest/meta-data/local-ipv4")[0] == 500
    assert call(imds.url(world.instance(2)) + "/latest/meta-data/local-ipv4")[0] == 200
    listed = json.loads(call(base + "/ecs-lab/faults")[1])["faults"]
    assert [f["id"] for f in listed] == [fault["id"]] and listed[0]["hits"] == 1
    assert call(base + f"/ecs-lab/faults/{fault['id']}", "DELETE")[0] == 200
    assert call(base + "/latest/meta-data/local-ipv4")[0] == 200
    call(base + "/ecs-lab/faults", "POST", {"path": "*", "drop": True})
    assert json.loads(call(base + "/ecs-lab/faults", "DELETE")[1]) == {"removed": 1}


def test_control_api_delay_fault_is_applied_by_the_server(imds, world):
    base = imds.url(world.instance(1))
    call(
        base + "/ecs-lab/faults", "POST", {"path": "/latest/meta-data/hostname", "delay_ms": 1500, "times": 1}
    )
    req = urllib.request.Request(base + "/latest/meta-data/hostname")
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        urllib.request.urlopen(req, timeout=0.3)


def test_control_api_rejects_bad_input_with_a_reason_and_counts_it(imds, world):
    base = imds.url(world.instance(1))
    status, body, _ = call(base + "/ecs-lab/faults", "POST", {"path": "*", "status": 9999})
    assert status == 400 and "HTTP status" in json.loads(body)["error"]
    status, body, _ = call(base + "/ecs-lab/instances/i-nope/policy", "POST", {"enabled": False})
    assert status == 400 and "i-nope" in json.loads(body)["error"]
    assert call(base + "/ecs-lab/faults/abc", "DELETE")[0] == 400
    status, body, _ = call(base + "/ecs-lab/whatever")
    assert status == 404 and "/faults" in json.loads(body)["error"]
    stats = json.loads(call(base + "/ecs-lab/stats")[1])
    assert stats["control_rejected"] == {"faults": 2, "policy": 1, "unknown": 1}
    assert stats["total"] == 0  # control calls are not IMDS traffic


def test_policy_switch_at_run_time_requires_tokens_on_the_listeners_instance(imds, world):
    base = imds.url(world.instance(2))
    assert call(base + "/latest/meta-data/local-ipv4")[0] == 200
    status, body, _ = call(
        base + f"/ecs-lab/instances/{world.instance(2).instance_id}/policy",
        "POST",
        {"tokens_required": True},
    )
    assert status == 200 and json.loads(body)["HttpTokens"] == "required"
    assert world.instance(2).imds_tokens_required  # the world is the source of truth
    assert call(base + "/latest/meta-data/local-ipv4")[0] == 401
    assert call(imds.url(world.instance(1)) + "/latest/meta-data/local-ipv4")[0] == 200


def test_spot_notice_through_the_control_api(imds, world):
    base = imds.url(world.instance(1))
    status, body, _ = call(base + "/ecs-lab/spot", "POST", {"action": "terminate", "in_seconds": 90})
    assert status == 201 and json.loads(body)["instance_id"] == world.instance(1).instance_id
    status, body, _ = call(base + "/latest/meta-data/spot/instance-action")
    assert status == 200 and json.loads(body)["action"] == "terminate"
    assert call(imds.url(world.instance(2)) + "/latest/meta-data/spot/instance-action")[0] == 404
    call(base + "/ecs-lab/spot", "DELETE")
    assert call(base + "/latest/meta-data/spot/instance-action")[0] == 404


def test_stats_and_request_log_say_who_asked_what(imds, world):
    base = imds.url(world.instance(1))
    call(base + "/latest/meta-data/local-ipv4")
    call(base + "/latest/meta-data/nope")
    stats = json.loads(call(base + "/ecs-lab/stats")[1])
    iid = world.instance(1).instance_id
    assert stats["by_instance"][iid] == {
        "GET /latest/meta-data/local-ipv4": {"200": 1},
        "GET /latest/meta-data/nope": {"404": 1},
    }
    recent = json.loads(call(base + "/ecs-lab/requests?limit=1")[1])["requests"]
    assert recent[0]["path"] == "/latest/meta-data/nope" and recent[0]["peer"] == "127.0.0.1"
    assert call(base + "/ecs-lab/stats", "DELETE")[0] == 200
    assert json.loads(call(base + "/ecs-lab/stats")[1])["total"] == 0


def test_instances_view_reports_policy_and_that_the_hop_limit_is_not_enforced(imds, world):
    doc = json.loads(call(imds.url(world.instance(1)) + "/ecs-lab/instances")[1])["instances"]
    assert [d["InstanceId"] for d in doc] == [i.instance_id for i in world.instances]
    assert doc[0]["HttpPutResponseHopLimit"] == 2 and doc[0]["HopLimitEnforced"] is False
    assert doc[0]["Listeners"] == [imds.url(world.instance(1))]


def test_a_bridge_listener_holds_the_docs_curl_token_line_to_the_hop_limit(world):
    """The docs' IMDSv2 line, run by curl as a bridge-mode container runs it (through a listener two
    hops from the instance): with hop limit 1 no token comes back, so the GET with tokens required is
    401; with 2 the line yields the instance's IP. The instance's own listener is one hop: unaffected."""
    import shutil

    curl = shutil.which("curl")
    assert curl, "curl is needed (the docs' entryPoint lines use it)"
    inst = world.instance(1)
    line = ('TOKEN=$(curl -s -X PUT "$EP/latest/api/token" -H "X-aws-ec2-metadata-token-ttl-seconds: 60"); '
            'curl -s -H "X-aws-ec2-metadata-token: $TOKEN" "$EP/latest/meta-data/local-ipv4"')
    with ImdsServer(world) as server:
        host = server.listen("127.0.0.1", 0, inst).url
        bridge = server.listen("127.0.0.1", 0, inst, hops=2).url
        server.model.set_policy(inst.instance_id, tokens_required=True, hop_limit=1)

        def run(ep: str) -> str:
            env = {"EP": ep, "PATH": os.environ["PATH"], "NO_PROXY": "*"}
            proc = subprocess.run(["sh", "-c", line], env=env, capture_output=True, text=True, timeout=30)
            return proc.stdout

        assert run(host) == inst.private_ip
        assert run(bridge) != inst.private_ip  # no token: the 401 answer's body, not an address
        doc = json.loads(call(host + "/ecs-lab/instances")[1])["instances"][0]
        assert doc["HopLimitEnforced"] is True and doc["HttpPutResponseHopLimit"] == 1
        server.model.set_policy(inst.instance_id, hop_limit=2)
        assert run(bridge) == inst.private_ip


def test_a_shared_listener_holds_bridge_mode_callers_to_the_hop_limit_by_address(world, tmp_path):
    """The docker backend's IMDS: one listener for every caller, told apart by source address. The
    backend's world file says which link-local addresses are bridge-mode containers (2 hops); their
    token PUT gets no answer under hop limit 1, while a caller on the instance (1 hop) gets a token."""
    import http.client

    from lab.backends.docker_services import WorldFile, write_world_file

    inst = world.instance(1)
    path = tmp_path / "world.json"
    write_world_file(path, world, {"127.0.52.0/24": inst.instance_id}, {"127.0.52.7": 2})
    loaded = WorldFile(path)
    assert loaded.load() and loaded.hops == {"127.0.52.7": 2}

    def token_put(listener_url: str, source: str) -> int | str:
        host, port = listener_url.removeprefix("http://").rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10, source_address=(source, 0))
        try:
            conn.request("PUT", "/latest/api/token", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
            return conn.getresponse().status
        except (http.client.RemoteDisconnected, ConnectionResetError) as exc:
            return type(exc).__name__
        finally:
            conn.close()

    with ImdsServer(world) as server:
        server.model.route("127.0.52.0/24", inst.instance_id)
        server.model.caller_hops = loaded.hops  # what the docker IMDS does on every world load
        url = server.listen("127.0.52.1", 0).url
        server.model.set_policy(inst.instance_id, tokens_required=True, hop_limit=1)
        assert token_put(url, "127.0.52.6") == 200  # one hop: on the instance
        assert token_put(url, "127.0.52.7") == "RemoteDisconnected"  # bridge mode: no answer
        doc = json.loads(call(url + "/ecs-lab/instances")[1])["instances"][0]
        assert doc["HopLimitEnforced"] is True
        server.model.set_policy(inst.instance_id, hop_limit=2)
        assert token_put(url, "127.0.52.7") == 200


def test_stop_closes_every_listener(world):
    server = ImdsServer(world)
    url = server.listen("127.0.0.1", 0, world.instance(1)).url
    assert call(url + "/latest/meta-data/instance-id")[0] == 200
    server.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/latest/meta-data/instance-id", timeout=2)


def _start_cli(*args: str) -> tuple[subprocess.Popen, queue.Queue]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lab.cli", "fake", "imds", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    return proc, lines


def _read_until(lines: queue.Queue, prefix: str, proc: subprocess.Popen) -> list[str]:
    seen: list[str] = []

    def got_it() -> bool:
        while not lines.empty():
            seen.append(lines.get())
        return any(line.startswith(prefix) for line in seen)

    try:
        wait_until(got_it, timeout=15, what=f"a line starting with {prefix!r} from the CLI")
    except TimeoutError:
        proc.kill()
        raise AssertionError(f"CLI printed {seen!r}; stderr: {proc.stderr.read()}") from None
    return seen


def test_cli_serves_one_instance_and_stops_cleanly_on_ctrl_c():
    proc, lines = _start_cli(
        "--listen",
        "127.0.0.1:0",
        "--require-token",
        "--instance-id",
        "i-0123456789abcdef0",
        "--local-ipv4",
        "10.20.30.40",
        "--tag",
        "team=apm",
    )
    try:
        seen = _read_until(lines, "export AWS_EC2_METADATA_SERVICE_ENDPOINT=", proc)
        url = next(line for line in seen if line.startswith("export ")).strip().split("=", 1)[1]
        assert call(url + "/latest/meta-data/local-ipv4")[0] == 401
        token = call(
            url + "/latest/api/token", "PUT", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}
        )[1]
        hdr = {"X-aws-ec2-metadata-token": token}
        assert call(url + "/latest/meta-data/local-ipv4", headers=hdr)[1] == "10.20.30.40"
        assert call(url + "/latest/meta-data/instance-id", headers=hdr)[1] == "i-0123456789abcdef0"
        assert call(url + "/latest/meta-data/tags/instance/team", headers=hdr)[1] == "apm"
    finally:
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=15)
    assert rc == 0
    assert "IMDS stopped." in proc.stderr.read()


def test_cli_serves_several_instances_each_on_its_private_ip():
    proc, lines = _start_cli("--instances", "2", "--subnet", "127.0.52.0/24", "--listen", "127.0.0.1:0")
    try:
        seen = _read_until(lines, "export ", proc)
        urls = [line.rsplit(": ", 1)[1].strip() for line in seen if line.startswith("IMDS for ")]
        assert [u.split(":")[1] for u in urls] == ["//127.0.52.1", "//127.0.52.2"]
        assert [call(u + "/latest/meta-data/local-ipv4")[1] for u in urls] == ["127.0.52.1", "127.0.52.2"]
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=15)
    assert rc == 0


def test_turning_imds_off_through_the_control_api_makes_every_path_403(imds, world):
    base = imds.url(world.instance(1))
    status, body, _ = call(base + "/ecs-lab/policy", "POST", {"enabled": False})
    assert status == 200 and json.loads(body)["HttpEndpoint"] == "disabled"
    assert call(base + "/latest/meta-data/local-ipv4")[0] == 403
    assert (
        call(base + "/latest/api/token", "PUT", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})[0]
        == 403
    )
    assert call(imds.url(world.instance(2)) + "/latest/meta-data/local-ipv4")[0] == 200
    call(base + "/ecs-lab/policy", "POST", {"enabled": True})
    assert call(base + "/latest/meta-data/local-ipv4")[0] == 200


def _read_answer(sock) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 answer off a raw socket (Content-Length framed, as IMDS frames them)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        assert chunk, f"connection closed before a full header: {buf!r}"
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        body += sock.recv(4096)
    return int(lines[0].split()[1]), headers, body


def test_an_error_answer_closes_the_connection_as_ec2_does(imds, world):
    """EC2 keeps a connection alive after a 200 but answers 404 (and every error) with
    `Connection: close` and closes it: a keep-alive client (the AWS SDK for JavaScript) would
    otherwise hold the socket and its process would never exit."""
    import socket
    from urllib.parse import urlsplit

    where = urlsplit(imds.url(world.instance(1)))
    host = f"{where.hostname}:{where.port}"
    with socket.create_connection((where.hostname, where.port), timeout=5) as sock:
        sock.sendall(f"GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        status, headers, body = _read_answer(sock)
        assert (status, body.decode()) == (200, world.instance(1).instance_id)
        assert headers.get("connection", "keep-alive").lower() != "close"
        # The same socket still works (kept alive), and the 404 on it ends it.
        sock.sendall(f"GET /latest/user-data HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        status, headers, _ = _read_answer(sock)
        assert status == 404
        assert headers.get("connection", "").lower() == "close"
        try:
            assert sock.recv(1) == b"", "IMDS sent more after its 404"
        except TimeoutError:
            pytest.fail("IMDS kept the connection open after a 404 (EC2 closes it)")
