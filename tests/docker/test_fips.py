"""FIPS proxy mode: Debian's HAProxy beside the agent, in one netns, relaying to the intake."""

from __future__ import annotations

import json
import urllib.request

import pytest

from lab.stack import DEFAULT_FEATURES, Stack
from lab.world import wait_until

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def fips_lab(tmp_path_factory):
    from lab.backends.docker import DockerBackend

    stack = Stack(features=DEFAULT_FEATURES | {"fips"}, apps=("imdsv1",),
                  run_dir=tmp_path_factory.mktemp("docker-fips"))
    with DockerBackend(stack) as backend:
        yield backend


def test_agent_and_proxy_share_the_instance_netns(fips_lab):
    task = fips_lab.agent_tasks[1]
    assert task.network_mode == "host"
    api = fips_lab.client.api
    modes = {c.name: api.inspect_container(c.docker_id)["HostConfig"]["NetworkMode"] for c in task.containers}
    assert modes["datadog-agent"] == modes["fips-proxy"] == f"container:{fips_lab.instance_hosts[1]}"
    env = dict(e.split("=", 1) for e in api.inspect_container(
        task.container("datadog-agent").docker_id)["Config"]["Env"])
    assert env["DD_FIPS_ENABLED"] == "true" and env["DD_FIPS_LOCAL_ADDRESS"] == "127.0.0.1"


def test_traces_go_through_haproxy_on_the_traces_port(fips_lab):
    app = fips_lab.app_tasks["imdsv1"].containers[0]
    code, out = fips_lab.run_in_instance(1, ["sh", "-c", (
        f"for i in $(seq 100); do curl -sf -m 2 http://{app.ipv4_addresses[0]}:8080/ && exit 0; "
        "sleep 0.2; done; exit 1")])
    assert code == 0, out

    def traces() -> list:
        url = f"{fips_lab.intake_url}/fakeintake/payloads?endpoint=/api/v0.2/traces&format=json"
        with urllib.request.urlopen(url, timeout=2) as resp:
            return json.load(resp)["payloads"]

    wait_until(traces, 30, what="a trace at the intake through the FIPS proxy")
    proxy_id = fips_lab.agent_tasks[1].container("fips-proxy").docker_id
    # httplog lines name the frontend, i.e. the port's data type (lab.fakes.fips_proxy.ports).
    wait_until(lambda: " traces traces-intake/intake " in fips_lab.logs(proxy_id, 200), 10,
               what="HAProxy to log a request on the traces frontend")
