"""npm: Network Performance Monitoring with the documents' NPM task definition (the agent container
with system-probe's capabilities, the debugfs mount and `DD_SYSTEM_PROBE_ENABLED=true`,
docs/npm.md). A client holds an HTTP connection to the sample app open and the intake's network
payloads (`/api/v1/connections`) show it: the app's address and port, the client's as the peer,
incoming, the app's pid (as the same agent's process payloads know it), its container with the ECS
tags, the instance's hostname. Without the setting no network payload leaves the agent; without
CAP_SYS_ADMIN system-probe does not start and says why, in the container's output and in
`agent status -j`.

Waits: the connections check's interval (`process_config.intervals.connections`, 30 s on the real
agent), from `agent config`; the negative cases wait for as many process payloads as span one
connections interval, so a network payload would have had its chance."""

from __future__ import annotations

import math
import platform
import socket
from contextlib import contextmanager
from urllib.parse import urlsplit

import boto3
import pytest

from lab.agent_probe import waiting_for
from lab.pytest_plugin import intake_client
from lab.stack import AGENT_SERVICE, DEFAULT_FEATURES
from lab.world import wait_until

LAB_WITH = {"features": set(DEFAULT_FEATURES) | {"npm"}, "apps": ("imdsv1",)}
pytestmark = pytest.mark.agent_offers("processes", "agent_status")
DOCUMENTED_CAPABILITIES = {"SYS_ADMIN", "SYS_RESOURCE", "SYS_PTRACE", "NET_ADMIN", "NET_BROADCAST", "NET_RAW",
                           "IPC_LOCK", "CHOWN"}


def _ecs(lab):
    # What a user's boto3 / aws CLI does against the lab's control plane (dummy credentials).
    return boto3.client("ecs", endpoint_url=lab.state["control_plane"], region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def _status(agent) -> dict:
    return agent.probe.status()


def _process_payloads_spanning_a_connections_run(agent) -> int:
    """How many process payloads take at least one connections interval (plus one)."""
    iv = agent.probe.intervals()
    return math.ceil(iv.connections_check / iv.process_check) + 1


def _no_connections_while_processes_arrive(intake, agent) -> None:
    count = _process_payloads_spanning_a_connections_run(agent)
    iv = agent.probe.intervals()
    with waiting_for(iv.processes()) as first:
        intake.wait_for_payloads("/api/v1/collector", timeout=first + count * iv.process_check,
                                 count=count, host=agent.instance_id)
    sent = [c for c in intake.connections() if c["hostName"] == agent.instance_id]
    assert sent == [], f"{len(sent)} connections from {agent.instance_id}, first {sent[:1]}"


def test_without_the_setting_no_network_payload_leaves_the_agent(lab):
    """The session lab's agent (the documents' task definition without the NPM additions)."""
    if "npm" in lab.features:
        pytest.skip("the session lab runs with NPM on")
    agent = lab.agents[0]
    intake = intake_client(lab.intake_url, "no-npm")
    status = _status(agent)
    assert "systemProbeStats" not in status, "system-probe is off: its status section is absent"
    checks = status["processAgentStatus"]["expvars"]["process_agent"]["enabled_checks"]
    assert "connections" not in checks, checks
    _no_connections_while_processes_arrive(intake, agent)


def _refused_capabilities(lab) -> dict[str, str]:
    """On docker, the documents' capabilities this engine cannot grant (capability -> its answer):
    an engine lacking one in its bounding set cannot start such a container ("unable to apply
    caps"), on ECS as here. Each is asked of a throwaway container, removed at once."""
    import docker

    backend = lab.backend
    image = backend.lab_image_ref or "ecs-agent-lab/lab:latest"
    refused = {}
    for cap in sorted(DOCUMENTED_CAPABILITIES):
        container = backend.client.containers.create(image, ["true"], cap_add=[cap], network_mode="none")
        try:
            container.start()
            container.wait(timeout=30)
        except docker.errors.APIError as exc:
            if "unable to apply caps" not in str(exc):
                raise
            refused[cap] = str(exc)
        finally:
            container.remove(force=True)
    return refused


def _kernel_charges_ebpf_to_cgroups() -> bool:
    """Linux 5.11+: eBPF memory is charged to the cgroup, so system-probe needs no CAP_SYS_RESOURCE
    to raise its memlock rlimit (cilium/ebpf rlimit.RemoveMemlock does nothing)."""
    major, minor = (int("".join(c for c in x if c.isdigit()) or 0) for x in platform.release().split(".")[:2])
    return (major, minor) >= (5, 11)


@contextmanager
def _npm_on_this_engine(lab, without: set[str]):
    """The session docker lab's agent service moved to the documents' NPM additions, less the
    capabilities this engine cannot grant (a new revision and `update-service`, as a user would),
    and moved back at the end."""
    from lab.ecs.stack_services import add_npm

    ecs = _ecs(lab)
    original = _agent_task_definition(lab)
    td = {k: original[k] for k in ("family", "containerDefinitions", "volumes", "networkMode",
                                   "requiresCompatibilities", "taskRoleArn", "executionRoleArn",
                                   "pidMode", "ipcMode") if original.get(k)}
    add_npm(td)
    for c in td["containerDefinitions"]:
        caps = c.get("linuxParameters", {}).get("capabilities", {})
        caps["add"] = [x for x in caps.get("add", []) if x not in without]
    arn = ecs.register_task_definition(**td)["taskDefinition"]["taskDefinitionArn"]
    ecs.update_service(cluster=lab.cluster_name, service=AGENT_SERVICE, taskDefinition=arn)
    try:
        lab.ecs_lab.wait_deployed(agent_task_definition=arn)
        yield lab
    finally:
        ecs.update_service(cluster=lab.cluster_name, service=AGENT_SERVICE,
                           taskDefinition=original["taskDefinitionArn"])
        lab.ecs_lab.wait_deployed(agent_task_definition=original["taskDefinitionArn"])


@pytest.fixture(scope="module")
def npm_lab(lab, lab_with):
    if lab.state.get("backend", "local") != "docker":
        yield lab_with(**LAB_WITH)
        return
    refused = _refused_capabilities(lab)
    if not refused:
        yield lab_with(**LAB_WITH)
        return
    if set(refused) != {"SYS_RESOURCE"} or not _kernel_charges_ebpf_to_cgroups():
        answer = next(iter(refused.values()))
        pytest.skip("this machine's Docker engine cannot grant the NPM task definition's "
                    f"{', '.join(sorted(refused))} (outside its capability bounding set), which "
                    f"system-probe needs on this kernel ({platform.release()}): {answer}")
    # What a user on such a host does: the documents' definition without CAP_SYS_RESOURCE, which
    # this kernel does not need (docs/npm.md#when-a-requirement-is-missing).
    with _npm_on_this_engine(lab, without=set(refused)) as adapted:
        adapted._extra["npm_without_capabilities"] = set(refused)
        yield adapted
        adapted._extra.pop("npm_without_capabilities", None)


def _agent_task_definition(lab) -> dict:
    ecs = _ecs(lab)
    service = ecs.describe_services(cluster=lab.cluster_name, services=[AGENT_SERVICE])["services"][0]
    return ecs.describe_task_definition(taskDefinition=service["taskDefinition"])["taskDefinition"]


def test_the_agent_runs_the_documents_npm_task_definition_with_system_probe_up(npm_lab):
    td = _agent_task_definition(npm_lab)
    (agent_def,) = [c for c in td["containerDefinitions"] if c["name"] == "datadog-agent"]
    dropped = npm_lab._extra.get("npm_without_capabilities", set())  # docker on a restricted engine
    assert DOCUMENTED_CAPABILITIES - dropped <= set(agent_def["linuxParameters"]["capabilities"]["add"])
    assert any(m["containerPath"] == "/sys/kernel/debug" for m in agent_def["mountPoints"])
    env = {e["name"]: e["value"] for e in agent_def["environment"]}
    assert env.get("DD_SYSTEM_PROBE_ENABLED") == "true"
    status = _status(npm_lab.agents[0])
    sysprobe = status.get("systemProbeStats")
    assert sysprobe and not sysprobe.get("Errors"), f"system-probe should be up: {sysprobe}"
    assert "connections" in status["processAgentStatus"]["expvars"]["process_agent"]["enabled_checks"]


def test_a_connection_to_the_app_arrives_with_its_pid_container_and_ecs_tags(npm_lab):
    agent = npm_lab.agents[0]
    app = npm_lab.apps["imdsv1"]
    intake = intake_client(npm_lab.intake_url, "npm")
    iv = agent.probe.intervals()
    address = urlsplit(app.url)
    local = npm_lab.state.get("backend", "local") == "local"
    # A slow client: the request's head sent but not finished, so the app holds the connection
    # open while it waits for the rest (the check sees open sockets; docs/npm.md#what-it-cannot-do).
    head = f"GET /healthz HTTP/1.1\r\nHost: {address.netloc}\r\n".encode()
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(head)
        client_ip, client_port = sock.getsockname()[:2]

        def ours(c: dict) -> bool:
            if local:
                return c["raddr"] == {"ip": client_ip, "port": client_port} and c["type"] == "tcp"
            # docker: the client reaches the app through the instance's published port, so the app
            # sees Docker's proxy as its peer; the app's only open incoming connection is ours.
            return (c["type"] == "tcp" and c["direction"] == "incoming"
                    and c["laddr"].get("container_id") == app.docker_id)

        with waiting_for(iv.connections(runs=2)) as timeout:
            found = intake.wait_for_connections(ours, timeout=timeout,
                                                what=f"no connection from {client_ip}:{client_port}")
        sock.sendall(b"Connection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    # The app's own process, as the same agent's process check reports it in the app's container.
    with waiting_for(iv.processes()) as timeout:
        procs = intake.wait_for_processes(
            lambda p: p.get("containerId") == app.docker_id and "lab.apps" in p["cmdline"], timeout=timeout)
    c = found[0]
    if local:
        assert c["laddr"]["ip"] == address.hostname and c["laddr"]["port"] == address.port, c["laddr"]
    assert c["direction"] == "incoming", c
    assert c["hostName"] == agent.instance_id
    assert c["pid"] in {p["pid"] for p in procs}, (c["pid"], [(p["pid"], p["cmdline"]) for p in procs])
    assert c["laddr"].get("container_id") == app.docker_id
    tags = set(c["container_tags"])
    # The tagger's high-cardinality container tags (net.go getContainerTagsCallback).
    assert {f"task_arn:{app.task_arn}", "ecs_container_name:app", f"task_family:{app.service}-task",
            f"ecs_cluster_name:{npm_lab.cluster_name}", f"container_id:{app.docker_id}"} <= tags, sorted(tags)
    # Relative counters: over the connection's payloads while it was open, the request's head in.
    received = sum(x["bytes_received"] for x in intake.connections() if ours(x))
    assert received >= len(head), (received, len(head))


def test_the_apps_dogstatsd_flow_is_outgoing_to_the_agent(npm_lab):
    """The sample app's DogStatsD client (a connected UDP socket) towards the agent's 8125."""
    agent = npm_lab.agents[0]
    app = npm_lab.apps["imdsv1"]
    intake = intake_client(npm_lab.intake_url, "npm-udp")
    app.get("/")  # the app counts each request on DogStatsD
    port = agent.dogstatsd[1]
    with waiting_for(agent.probe.intervals().connections(runs=2)) as timeout:
        found = intake.wait_for_connections(
            lambda c: c["type"] == "udp" and c["raddr"]["port"] == port
            and c["laddr"].get("container_id") == app.docker_id, timeout=timeout,
            what=f"no UDP flow from the app's container to port {port}")
    assert found[0]["direction"] == "outgoing"


def test_without_cap_sys_admin_system_probe_does_not_start_and_says_why(npm_lab):
    """A new revision of the agent's task definition without SYS_ADMIN, deployed with
    `update-service`, as a user would break it."""
    ecs = _ecs(npm_lab)
    td = _agent_task_definition(npm_lab)
    for c in td["containerDefinitions"]:
        caps = c.get("linuxParameters", {}).get("capabilities", {})
        if "add" in caps:
            caps["add"] = [x for x in caps["add"] if x != "SYS_ADMIN"]
    keep = ("family", "containerDefinitions", "volumes", "networkMode", "requiresCompatibilities",
            "taskRoleArn", "executionRoleArn", "cpu", "memory", "pidMode", "ipcMode")
    arn = ecs.register_task_definition(**{k: td[k] for k in keep if td.get(k)})["taskDefinition"][
        "taskDefinitionArn"]
    ecs.update_service(cluster=npm_lab.cluster_name, service=AGENT_SERVICE, taskDefinition=arn)
    npm_lab.ecs_lab.wait_deployed(agent_task_definition=arn)

    def only_the_new_agent() -> str | None:
        arns = ecs.list_tasks(cluster=npm_lab.cluster_name, serviceName=AGENT_SERVICE)["taskArns"]
        tasks = ecs.describe_tasks(cluster=npm_lab.cluster_name, tasks=arns)["tasks"] if arns else []
        running = [t for t in tasks if t["lastStatus"] != "STOPPED"]
        new = [t for t in running if t["taskDefinitionArn"] == arn and t["lastStatus"] == "RUNNING"]
        assert not new or new[0].get("healthStatus") != "UNHEALTHY", "the new agent's health check failed"
        healthy = new and new[0].get("healthStatus") == "HEALTHY"
        return new[0]["taskArn"] if len(running) == 1 and healthy else None

    # The old agent's last payloads must not count: the session opens once it is gone. The new one is
    # asked for its status only once its task definition's health check (`agent health`) passed, as
    # a user waits for a deployment: RUNNING says only that the container started, and the agent's
    # API (which `agent status` asks) listens some time after its first log lines. HEALTHY comes on
    # the first passing check; a failing one counts only after the start period.
    hc = next(c for c in td["containerDefinitions"] if c["name"] == "datadog-agent")["healthCheck"]
    healthy_within = hc.get("startPeriod", 0) + (hc.get("retries", 3) + 1) * (hc["interval"] + hc["timeout"])
    task_arn = wait_until(only_the_new_agent, 60 + healthy_within, interval=0.5,
                          what="the old agent replaced by the new revision, HEALTHY")
    agent = npm_lab.agents[0]
    intake = intake_client(npm_lab.intake_url, "npm-no-sys-admin")
    expected = "failed to create system probe: no module could be loaded"
    log = wait_until(lambda: (lambda text: text if expected in text else None)(
        npm_lab.backend.container_logs(task_arn, "datadog-agent", 200)),
        30, interval=0.5, what=f"{expected!r} in the agent container's output")
    assert "error creating module network_tracer" in log and "CAP_SYS_ADMIN" in log, log[-2000:]
    assert "system-probe exited with code 1" in log
    sysprobe = _status(agent).get("systemProbeStats") or {}
    assert str(sysprobe.get("Errors", "")).startswith("issue querying stats from system probe"), sysprobe
    _no_connections_while_processes_arrive(intake, agent)
