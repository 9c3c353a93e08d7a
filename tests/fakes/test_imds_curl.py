"""The fake IMDS driven by curl, with the exact lines from Datadog's "Tracing ECS Applications" docs.

Every URL is the fake's (127.0.0.1, port 0): nothing here may reach 169.254.169.254.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from lab.fakes.imds.server import ImdsServer
from lab.world import Container, Task, World

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")

DOCS_HOST = "http://169.254.169.254"
# content/en/containers/amazon_ecs/apm.md, "Launch time variable" (IMDSv1) and "IMDSv2" entryPoints.
DOCS_V1_ENTRYPOINT = (
    "export DD_AGENT_HOST=$(curl http://169.254.169.254/latest/meta-data/local-ipv4); <Startup Command>"
)
DOCS_V2_ENTRYPOINT = (
    'export TOKEN=$(curl -X PUT "http://169.254.169.254/latest/api/token" '
    '-H "X-aws-ec2-metadata-token-ttl-seconds: 21600"); export DD_AGENT_HOST=$(curl -H '
    '"X-aws-ec2-metadata-token: $TOKEN" http://169.254.169.254/latest/meta-data/local-ipv4); '
    "<Startup Command>"
)
# The two-line form from "Configure your application container to find the Agent".
DOCS_V2_LINES = (
    'TOKEN=$(curl -X PUT "http://169.254.169.254/latest/api/token" -H '
    '"X-aws-ec2-metadata-token-ttl-seconds: 21600")\n'
    'curl http://169.254.169.254/latest/meta-data/local-ipv4 -H "X-aws-ec2-metadata-token: $TOKEN"'
)


def run_docs_line(line: str, imds_url: str, startup: str = 'printf %s "$DD_AGENT_HOST"') -> str:
    assert DOCS_HOST in line
    script = line.replace(DOCS_HOST, imds_url).replace("<Startup Command>", startup)
    assert "169.254" not in script
    proc = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=20)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def curl(url: str, *args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    assert "169.254" not in url
    return subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", *args, url],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def world() -> World:
    w = World()
    w.add_instance("127.0.31.1")
    w.add_instance("127.0.31.2", imds_tokens_required=True)
    return w


def test_docs_imdsv1_entrypoint_sets_dd_agent_host(imds, world):
    assert run_docs_line(DOCS_V1_ENTRYPOINT, imds.url(world.instance(1))) == "127.0.31.1"


def test_docs_imdsv2_entrypoint_sets_dd_agent_host_on_a_tokens_required_instance(imds, world):
    assert run_docs_line(DOCS_V2_ENTRYPOINT, imds.url(world.instance(2))) == "127.0.31.2"
    assert imds.model.stats.count(method="PUT", path="/latest/api/token", status=200) == 1
    assert imds.model.stats.count(path="/latest/meta-data/local-ipv4", status=200) == 1


def test_docs_imdsv2_two_lines_print_the_private_ip(imds, world):
    assert run_docs_line(DOCS_V2_LINES, imds.url(world.instance(1)), startup="") == "127.0.31.1"


def test_docs_imdsv1_line_on_tokens_required_instance_yields_the_401_page_not_an_ip(imds, world):
    # What really happens when an app keeps the v1 line after HttpTokens=required: curl exits 0 and
    # DD_AGENT_HOST holds an error page. The lab reproduces it so scenarios can catch it.
    host = run_docs_line(DOCS_V1_ENTRYPOINT, imds.url(world.instance(2)))
    assert "401 - Unauthorized" in host
    assert imds.model.stats.count(path="/latest/meta-data/local-ipv4", status=401) == 1


def test_two_instances_answer_apart(imds, world):
    ids = [
        subprocess.run(
            ["curl", "-s", imds.url(world.instance(1)) + "/latest/meta-data/instance-id"],
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout
    ]
    token = subprocess.run(
        [
            "curl",
            "-s",
            "-X",
            "PUT",
            imds.url(world.instance(2)) + "/latest/api/token",
            "-H",
            "X-aws-ec2-metadata-token-ttl-seconds: 60",
        ],
        capture_output=True,
        text=True,
        timeout=20,
    ).stdout
    ids.append(
        subprocess.run(
            [
                "curl",
                "-s",
                "-H",
                f"X-aws-ec2-metadata-token: {token}",
                imds.url(world.instance(2)) + "/latest/meta-data/instance-id",
            ],
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout
    )
    assert ids == [world.instance(1).instance_id, world.instance(2).instance_id]


@pytest.mark.parametrize(
    "args, path, status",
    [
        (("-X", "PUT"), "/latest/api/token", "400"),
        (("-X", "PUT", "-H", "X-aws-ec2-metadata-token-ttl-seconds: 21601"), "/latest/api/token", "400"),
        (
            ("-X", "PUT", "-H", "X-aws-ec2-metadata-token-ttl-seconds: 5", "-H", "X-Forwarded-For: 10.9.9.9"),
            "/latest/api/token",
            "403",
        ),
        ((), "/latest/api/token", "405"),
        (("-H", "X-aws-ec2-metadata-token: forged"), "/latest/meta-data/local-ipv4", "401"),
        ((), "/latest/meta-data/public-ipv4", "404"),
        ((), "/latest/meta-data/spot/instance-action", "404"),
        ((), "/latest/meta-data/local-ipv4", "200"),
    ],
)
def test_status_codes_over_the_wire(imds, world, args, path, status):
    assert curl(imds.url(world.instance(1)) + path, *args).stdout == status


def test_disabled_endpoint_is_403_over_the_wire(imds, world):
    imds.model.set_policy(world.instance(1).instance_id, enabled=False)
    assert curl(imds.url(world.instance(1)) + "/latest/meta-data/local-ipv4").stdout == "403"


def test_drop_fault_closes_the_connection_without_an_answer(imds, world):
    imds.model.faults.add(path="/latest/meta-data/local-ipv4", drop=True, times=1)
    dropped = curl(imds.url(world.instance(1)) + "/latest/meta-data/local-ipv4")
    assert dropped.returncode == 52, dropped.stderr  # curl: "Empty reply from server"
    assert curl(imds.url(world.instance(1)) + "/latest/meta-data/local-ipv4").stdout == "200"
    assert imds.model.stats.count(path="/latest/meta-data/local-ipv4", status="dropped") == 1


def test_delay_fault_beyond_the_agents_300ms_timeout_makes_a_timed_client_give_up(imds, world):
    imds.model.faults.add(path="/latest/meta-data/instance-id", delay=2.0, times=1)
    slow = curl(imds.url(world.instance(1)) + "/latest/meta-data/instance-id", "--max-time", "0.3")
    assert slow.returncode == 28, slow.stderr  # curl: operation timed out


def test_status_fault_answers_the_injected_status(imds, world):
    imds.model.faults.add(path="/latest/api/token", status=503)
    assert (
        curl(
            imds.url(world.instance(1)) + "/latest/api/token",
            "-X",
            "PUT",
            "-H",
            "X-aws-ec2-metadata-token-ttl-seconds: 60",
        ).stdout
        == "503"
    )


def test_shared_listener_answers_each_caller_as_its_instance_by_source_address():
    w = World()
    one = w.add_instance("127.0.32.1")
    two = w.add_instance("127.0.32.2")
    w.add_task(two, Task("web", 1, [Container("app", "web:1", ipv4_addresses=["127.0.33.2"])]))
    with ImdsServer(w) as server:
        url = server.listen("127.0.0.1", 0).url
        server.model.route("127.0.34.0/24", one)

        def ask(source: str) -> subprocess.CompletedProcess:
            return subprocess.run(
                [
                    "curl",
                    "-s",
                    "--interface",
                    source,
                    "-w",
                    "\n%{http_code}",
                    url + "/latest/meta-data/local-ipv4",
                ],
                capture_output=True,
                text=True,
                timeout=20,
            )

        assert ask("127.0.33.2").stdout == "127.0.32.2\n200"  # a container of instance 2
        assert ask("127.0.32.1").stdout == "127.0.32.1\n200"  # instance 1 itself
        assert ask("127.0.34.9").stdout == "127.0.32.1\n200"  # routed subnet of instance 1
        unknown = ask("127.0.35.5")
        assert unknown.stdout.endswith("\n404")
        assert server.model.stats.count(instance_id=two.instance_id, status=200) == 1


def test_token_from_curl_expires_on_the_servers_clock():
    from lab.fakes.imds.model import ManualClock

    clock = ManualClock()
    w = World()
    inst = w.add_instance("127.0.31.9")
    with ImdsServer(w, clock=clock) as server:
        url = server.listen("127.0.0.1", 0, inst).url
        token = subprocess.run(
            [
                "curl",
                "-s",
                "-X",
                "PUT",
                url + "/latest/api/token",
                "-H",
                "X-aws-ec2-metadata-token-ttl-seconds: 30",
            ],
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout
        with_token = ("-H", f"X-aws-ec2-metadata-token: {token}")
        assert curl(url + "/latest/meta-data/instance-id", *with_token).stdout == "200"
        clock.advance(30)
        assert curl(url + "/latest/meta-data/instance-id", *with_token).stdout == "401"
