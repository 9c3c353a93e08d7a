"""The serverless-compat agent image: built here, run as an ECS agent container, forwarding to the lab.

The container sits on an internal docker network (docker drops whatever is addressed beyond its
subnet), with the intake and the recording egress proxy on the host side of that network. A tracer's
v0.4 trace goes to the container's own address on 8126 (as a published port delivers it in bridge
mode) and must reach the intake; a DogStatsD metric on 8125 is flushed by the binary only to
https://api.<DD_SITE> (no override exists), so its flush must end at the egress proxy, refused.
"""

from __future__ import annotations

import ipaddress
import json
import time
import urllib.request

import pytest

from lab.backends import images
from lab.fakes.egress_proxy import EgressProxy
from lab.fakes.intake.client import IntakeClient
from lab.fakes.intake.server import IntakeServer
from lab.world import wait_until
from tests.agent_kinds.traffic import METRICS_HOST, SITE, send_metric, send_trace

pytestmark = pytest.mark.docker
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _free_subnet(client) -> ipaddress.IPv4Network:
    """A /24 no docker network uses (docker refuses overlaps; other developers' labs use 172.30/16)."""
    taken = [ipaddress.ip_network(c["Subnet"]) for n in client.api.networks()
             for c in ((n.get("IPAM") or {}).get("Config") or []) if ":" not in c.get("Subnet", ":")]
    for third in range(40, 250):
        candidate = ipaddress.ip_network(f"10.213.{third}.0/24")
        if not any(candidate.overlaps(t) for t in taken):
            return candidate
    raise RuntimeError("no free 10.213.x.0/24 subnet for the test network")


@pytest.fixture(scope="module")
def image():
    client = images.docker_client()
    images.ensure_base_image(client)
    first = images.build_serverless_compat_image(client)
    # Cached by content: asking again reuses the tag without building.
    again = images.build_serverless_compat_image(client)
    assert not again.built and again.image_id == first.image_id
    return first


@pytest.fixture(scope="module")
def lab_net():
    client = images.docker_client()
    subnet = _free_subnet(client)
    gateway = str(subnet.network_address + 1)
    name = f"ecs-lab-sc-test-{subnet.network_address}".replace(".", "-")
    ipam = {"Config": [{"Subnet": str(subnet), "Gateway": gateway}]}
    net = client.networks.create(name, driver="bridge", internal=True, ipam=ipam,
                                 labels={"ecs-agent-lab.test": "serverless-compat-image"})
    try:
        yield client, net, gateway
    finally:
        net.remove()


@pytest.fixture
def agent(image, lab_net):
    client, net, gateway = lab_net
    intake = IntakeServer()
    intake.listen(gateway, 0)
    egress = EgressProxy(gateway, 0).start()
    env = {
        "DD_API_KEY": "lab00000000000000000000000000000",
        "DD_SITE": SITE,
        "DD_DD_URL": intake.url,
        "DD_APM_DD_URL": intake.url,
        "DD_APM_PROFILING_DD_URL": intake.url,
        "DD_APM_NON_LOCAL_TRAFFIC": "true",
        "DD_DOGSTATSD_NON_LOCAL_TRAFFIC": "true",
        **egress.agent_env(),
    }
    container = client.containers.create(image.tag, environment=env, network=net.name,
                                         labels={"ecs-agent-lab.test": "serverless-compat-image"})
    try:
        container.start()
        container.reload()
        address = container.attrs["NetworkSettings"]["Networks"][net.name]["IPAddress"]

        def ready() -> dict | None:
            container.reload()
            if container.status == "exited":
                raise AssertionError(f"agent container exited:\n{container.logs().decode()}")
            for line in container.logs().decode(errors="replace").splitlines():
                if line.startswith('{"event": "ready"'):
                    return json.loads(line)
            return None

        ready_line = wait_until(ready, 60, what="the agent container's ready line")
        yield container, address, ready_line, intake, egress
    finally:
        container.remove(force=True)
        egress.stop()
        intake.stop()


def test_trace_reaches_the_intake_and_nothing_else_leaves(agent, lab_net):
    container, address, ready, intake, egress = agent
    _client, net, _gateway = lab_net
    net.reload()
    assert net.attrs["Internal"] is True  # docker drops every packet addressed beyond the lab's subnet
    assert ready["ports"] == {"apm": 8126, "dogstatsd": 8125} and ready["relayed_on"] == [address]

    with NO_PROXY.open(f"http://{address}:8126/info", timeout=5) as resp:
        info = json.load(resp)
    assert "/v0.4/traces" in info["endpoints"] and info["config"]["receiver_port"] == 8126

    trace_id = send_trace(address, 8126, "sc-docker-web")
    client = IntakeClient(intake.url)
    spans = wait_until(lambda: [s for s in client.spans(service="sc-docker-web")
                                if s["trace_id"] == trace_id], 30, what="the container's trace at the intake")
    assert {s["name"] for s in spans} == {"web.request", "db.query"}
    assert egress.attempts == []  # no metric yet: the metric flusher had nothing to send

    send_metric(address, 8125, b"sc.docker.requests:5|c|#env:lab")
    attempts = wait_until(lambda: egress.attempts, 40, what="the metric flush at the egress proxy")
    assert {(a.method, a.host, a.port) for a in attempts} == {("CONNECT", METRICS_HOST, 443)}
    assert {a.client.split(":")[0] for a in attempts} == {address}
    assert set(client.routestats()) <= {"/api/v0.2/traces", "/api/v0.2/stats"}


def test_agent_command_says_what_is_not_offered(agent):
    container = agent[0]
    for cmd in (["agent", "health"], ["sh", "-c", "agent health"], ["agent", "status", "-j"]):
        code, out = container.exec_run(cmd)
        text = out.decode()
        assert code == 127, (cmd, code, text)
        assert "not offered by this agent (datadog-serverless-compat " in text and "/v0.4/traces" in text
        assert "PASS" not in text
    code, out = container.exec_run(["agent", "version"])
    assert code == 0 and out.decode().startswith("datadog-serverless-compat ")


def test_container_stops_cleanly_on_sigterm(agent):
    container = agent[0]
    started = time.monotonic()
    container.stop(timeout=20)
    container.reload()
    assert container.attrs["State"]["ExitCode"] == 0
    assert time.monotonic() - started < 15  # ended by SIGTERM, not by docker's SIGKILL after the timeout
