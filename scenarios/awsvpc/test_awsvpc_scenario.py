"""awsvpc: app tasks in `awsvpc` network mode on an EC2 container instance, the agent as the Datadog
ECS docs run it (the DAEMON task in bridge mode, 8126/tcp and 8125/udp published on the instance).

What the docs say for awsvpc apps (Datadog "Amazon ECS" docs, "AWSVPC mode"; docs/awsvpc.md): an app
task in awsvpc mode reaches the agent at the instance's private IP, learned from IMDS `local-ipv4`
(the docs' `sh -c` entryPoint line), provided the instance's security group lets the task reach the
agent's ports. What this proves, each with its own task definition registered and run with boto3 as a
user would (`run-task --network-configuration`):

- each awsvpc task has an address of its own (its ENI), neither the instance's nor another task's;
- its traces and DogStatsD metrics reach the intake through the instance's agent, tagged with the
  task's ECS tags (task_arn, task_family, ecs_container_name, container_id);
- `localhost:8126` in an awsvpc task is the task's own network namespace: nothing listens there,
  the tracer says so, and none of its traces arrive;
- IMDS from an awsvpc task is one hop away (the task ENI is attached to the instance, no docker bridge
  between): with `HttpPutResponseHopLimit=1` and tokens required the docs' IMDSv2 line still finds
  the agent there, while in a bridge-mode task it does not;
- with the instance's ECS agent set to `ECS_AWSVPC_BLOCK_IMDS=true` (AWS's advice to keep awsvpc tasks
  off the instance profile's credentials), the docs' IMDS line finds no agent host and the task stops.

Waits: the tracer's flush + the agent's trace writer flush + margin for traces; one metric bucket +
one aggregator flush + margin for DogStatsD (lab.agent_probe, from the agent under test). A task just
started is first sent from until the agent tags its data (the tagger learns a new task on its next
pull of ECS metadata, 5 s on the real agent): only then is the send phase's one request made.
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from lab.agent_probe import waiting_for
from lab.apps import entrypoints
from lab.pytest_plugin import intake_client
from lab.sandbox.target import instance_url
from lab.world import wait_until

# A task is RUNNING once its app listens: ddtrace-run plus Flask start in seconds, more on a loaded
# machine (the lab's readiness bound, LAB_READY_TIMEOUT, is 20 s by default; docker waits 3x).
RUNNING_WITHIN = 90.0
APP_PORT = entrypoints.APP_PORT
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# The sample apps' tracer (ddtrace 4.x) sends /v0.5/traces only.
NEEDS_APP_TRACES = pytest.mark.agent_offers("traces_v05")


def _aws(lab, service: str):
    # What a user's boto3 / aws CLI does against the lab's control plane (dummy credentials).
    return boto3.client(service, endpoint_url=lab.state["control_plane"], region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def _app_definition(family: str, service: str, *, network_mode: str = "awsvpc",
                    agent_host_line: str | None = "imdsv1", agent_host: str | None = None) -> dict:
    """The sample app as a user's task definition: the docs' `sh -c` line finding DD_AGENT_HOST (or a
    fixed DD_AGENT_HOST), the docs' IMDS address (the lab points it at its own IMDS)."""
    env = {"DD_SERVICE": service, "DD_ENV": "lab", "DD_VERSION": "1.0.0",
           entrypoints.METADATA_ENDPOINT_ENV: "http://169.254.169.254"}
    if agent_host is not None:
        env["DD_AGENT_HOST"] = agent_host
    line = (entrypoints.shell_line(agent_host_line) if agent_host_line
            else entrypoints.APP_COMMAND)
    return {"family": family, "networkMode": network_mode, "requiresCompatibilities": ["EC2"],
            "containerDefinitions": [{
                "name": "app", "image": "ecs-agent-lab/lab:latest", "essential": True, "memory": 256,
                "entryPoint": ["sh", "-c", line],
                "portMappings": [{"containerPort": APP_PORT, "protocol": "tcp"}],
                "environment": [{"name": k, "value": v} for k, v in env.items()]}]}


class Tasks:
    """The module's tasks on the session lab's cluster: run, waited for, stopped at the end."""

    def __init__(self, lab) -> None:
        if lab.world is None:
            pytest.skip("the awsvpc scenario reads each task's ENI address from the lab's world: it needs "
                        "the lab started by this pytest process, not an attached one")
        self.lab = lab
        self.ecs = _aws(lab, "ecs")
        subnets = _aws(lab, "ec2").describe_subnets(
            Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
        self.subnet = sorted(subnets, key=lambda s: s["AvailabilityZone"])[0]["SubnetId"]
        self.arns: list[str] = []
        self.replies: dict[str, dict] = {}  # run-task's answer, by task

    def run(self, definition: dict) -> str:
        self.ecs.register_task_definition(**definition)
        kwargs = {}
        if definition["networkMode"] == "awsvpc":
            kwargs["networkConfiguration"] = {"awsvpcConfiguration": {"subnets": [self.subnet]}}
        out = self.ecs.run_task(cluster=self.lab.cluster_name, taskDefinition=definition["family"],
                                launchType="EC2", **kwargs)
        assert out["failures"] == [], out["failures"]
        arn = out["tasks"][0]["taskArn"]
        self.arns.append(arn)
        self.replies[arn] = out["tasks"][0]
        return arn

    def status(self, arn: str) -> dict:
        return self.ecs.describe_tasks(cluster=self.lab.cluster_name, tasks=[arn])["tasks"][0]

    def wait(self, arn: str, status: str) -> dict:
        """The task once ECS reports `status` (RUNNING or STOPPED); one that stops on the way to
        RUNNING fails with its reason and its app's output."""
        def reached() -> dict | None:
            task = self.status(arn)
            if task["lastStatus"] == status:
                return task
            if task["lastStatus"] == "STOPPED":
                raise AssertionError(f"task {arn} STOPPED ({task.get('stoppedReason')}):\n{self.logs(arn)}")
            return None

        return wait_until(reached, RUNNING_WITHIN, interval=0.3, what=f"task {arn} {status}")

    def wait_settled(self, arn: str) -> dict:
        """The task once RUNNING or STOPPED, whichever comes."""
        def settled() -> dict | None:
            task = self.status(arn)
            return task if task["lastStatus"] in ("RUNNING", "STOPPED") else None

        return wait_until(settled, RUNNING_WITHIN, interval=0.3, what=f"task {arn} RUNNING or STOPPED")

    def address(self, arn: str) -> str:
        """The task's ENI address (what `describe-network-interfaces` shows on EC2)."""
        found = self.lab.world.find_task(arn)
        assert found is not None, f"the lab's world has no task {arn}"
        return found[1].containers[0].ipv4_addresses[0]

    def docker_id(self, arn: str) -> str:
        return self.lab.world.find_task(arn)[1].container("app").docker_id

    def logs(self, arn: str) -> str:
        try:
            return self.lab.backend.container_logs(arn, "app", lines=200)
        except Exception as exc:  # noqa: BLE001 - only for a failure message
            return f"(no output: {exc})"

    def stop_all(self) -> None:
        for arn in self.arns:
            try:
                self.ecs.stop_task(cluster=self.lab.cluster_name, task=arn, reason="scenario done")
            except Exception:  # noqa: BLE001 - a task that already stopped
                pass


def _low64(trace_id: str) -> int:
    # ddtrace makes 128-bit trace ids; a span's `trace_id` field carries the low 64 bits (the high
    # ones travel in the `_dd.p.tid` tag).
    return int(trace_id) & (2**64 - 1)


def _get(url: str, timeout: float = 10.0) -> dict:
    with _opener.open(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def _until_the_agent_knows(lab, address: str, family: str, service: str, tag: str | None = None) -> None:
    """Send from a task just started until its data arrives with its ECS tags (a trace, else a
    DogStatsD point, carrying `tag`: `task_family:<family>` unless told; `task_arn:<arn>` tells two
    tasks of one family apart).

    The agent's tagger learns a new task on its next pull of ECS metadata (workloadmeta pulls every
    5 s, the emulated agent every 2 s): what the task sends before that arrives without task tags, on
    the real agent as on the emulated one. A user's app sends all the time and the first seconds go
    unnoticed; a scenario that sends once must first let the agent learn the task."""
    probe = lab.agents[0].probe
    intervals = probe.intervals()
    tag = tag or f"task_family:{family}"
    intake = intake_client(lab.intake_url, f"awsvpc-discovery-{family}")
    if probe.offers("traces_v05"):
        wait = intervals.of_new_task(intervals.traces())

        def tagged() -> list | None:
            _get(f"http://{address}:{APP_PORT}/")
            spans = intake.spans(service=service)
            return [s for s in spans if tag in (s.get("container_tags") or [])] or None
    elif probe.offers("dogstatsd_metrics"):
        wait = intervals.of_new_task(intervals.metrics())

        def tagged() -> list | None:
            _get(f"http://{address}:{APP_PORT}/work?ms=1&depth=1")
            wanted = [f"service:{service}", "depth:1", tag]
            return intake.metrics("ecs_lab.app.work.done", tags=wanted) or None
    else:
        return  # neither traces nor DogStatsD: no test of the module looks for the task's tags
    with waiting_for(wait) as timeout:
        wait_until(tagged, timeout, interval=1.0, what=f"the agent to tag {service}'s data with {tag}")


@pytest.fixture(scope="module")
def awsvpc(lab):
    """Two awsvpc tasks on instance 1: `web` finds the agent as the docs say; `localhost` keeps the
    tracer's default host. Once the agent has learnt `web` (its data arrives with its task tags), each
    gets one /work request (the send phase)."""
    tasks = Tasks(lab)
    suffix = uuid.uuid4().hex[:6]
    try:
        web = tasks.run(_app_definition(f"awsvpc-web-{suffix}", "awsvpc-web"))
        local = tasks.run(_app_definition(f"awsvpc-localhost-{suffix}", "awsvpc-localhost",
                                          agent_host_line=None, agent_host="localhost"))
        for arn in (web, local):
            tasks.wait(arn, "RUNNING")
        addresses = {arn: tasks.address(arn) for arn in (web, local)}
        seen = {arn: _get(f"http://{addresses[arn]}:{APP_PORT}/") for arn in (web, local)}
        _until_the_agent_knows(lab, addresses[web], f"awsvpc-web-{suffix}", "awsvpc-web")
        # What the intake receives from now on: this module's traffic, not an earlier run's.
        intake = intake_client(lab.intake_url, "awsvpc")
        sent_at = time.monotonic()
        work = {arn: _get(f"http://{addresses[arn]}:{APP_PORT}/work?ms=5&depth=2") for arn in (web, local)}
        yield {"tasks": tasks, "web": web, "local": local, "addresses": addresses, "seen": seen,
               "work": work, "sent_at": sent_at, "suffix": suffix, "intake": intake}
    finally:
        tasks.stop_all()


def test_each_awsvpc_task_has_an_address_of_its_own_and_finds_the_agent_at_the_private_ip(awsvpc, agent):
    web, local = awsvpc["web"], awsvpc["local"]
    addresses = awsvpc["addresses"]
    assert addresses[web] != addresses[local], "two awsvpc tasks share an address: each has its own ENI"
    assert agent.private_ip not in addresses.values(), (
        f"an awsvpc task has the instance's private IP {agent.private_ip}: its ENI must be its own")
    # One story: the address the task answers at is its ENI's in describe-tasks and in EC2's
    # describe-network-interfaces (the control plane's ENI takes the address the task runs with).
    tasks = awsvpc["tasks"]
    for arn in (web, local):
        # run-task's answer: the ENI is not attached yet, so it shows no address that could change.
        assert _eni(tasks.replies[arn]) == ("PRECREATED", {"subnetId": tasks.subnet}), tasks.replies[arn]
        status, details = _eni(tasks.status(arn))
        assert status == "ATTACHED" and details.get("privateIPv4Address") == addresses[arn], (arn, details)
        eni = _aws(tasks.lab, "ec2").describe_network_interfaces(
            NetworkInterfaceIds=[details["networkInterfaceId"]])["NetworkInterfaces"][0]
        assert eni["PrivateIpAddress"] == addresses[arn], (arn, eni["PrivateIpAddress"])
    seen = awsvpc["seen"][web]
    assert seen["agent_host"] == agent.private_ip, (
        f"the docs' IMDS line in an awsvpc task set DD_AGENT_HOST={seen['agent_host']!r}; expected the "
        f"instance's private IP {agent.private_ip} (IMDS local-ipv4)")


@NEEDS_APP_TRACES
def test_an_awsvpc_tasks_traces_reach_the_intake_with_its_ecs_tags(lab, agent, awsvpc):
    web = awsvpc["web"]
    intake = awsvpc["intake"]
    trace_id = _low64(awsvpc["work"][web]["trace_id"])
    with waiting_for(agent.probe.intervals().traces(), awsvpc["sent_at"]) as timeout:
        spans = intake.wait_for_spans(service="awsvpc-web", timeout=timeout,
                                      predicate=lambda s: int(s.get("trace_id") or 0) == trace_id)
    span = next((s for s in spans if s.get("name") == "work.request"), spans[0])
    assert span["hostname"] == agent.instance_id
    tags = set(span.get("container_tags") or [])
    expected = {f"task_arn:{web}", f"task_family:awsvpc-web-{awsvpc['suffix']}", "ecs_container_name:app",
                f"ecs_cluster_name:{lab.cluster_name}", "region:us-east-1"}
    assert expected <= tags, f"ECS tags missing on the awsvpc task's traces: {sorted(expected - tags)}; " \
                             f"got {sorted(tags)}"
    assert span["container_id"] == awsvpc["tasks"].docker_id(web), \
        "the traces must be attributed to the app's container, not the task's ENI (pause) container"


@pytest.mark.agent_offers("dogstatsd_metrics")
def test_an_awsvpc_tasks_dogstatsd_metrics_reach_the_intake_with_its_ecs_tags(lab, agent, awsvpc):
    intake = awsvpc["intake"]
    with waiting_for(agent.probe.intervals().metrics(), awsvpc["sent_at"]) as timeout:
        series = intake.wait_for_metric("ecs_lab.app.work.done", tags=["service:awsvpc-web", "depth:2"],
                                        timeout=timeout)
    tags = set(series[0]["tags"])
    expected = {f"task_family:awsvpc-web-{awsvpc['suffix']}", "ecs_container_name:app",
                f"ecs_cluster_name:{lab.cluster_name}", "env:lab"}
    assert expected <= tags, f"ECS tags missing on the awsvpc task's metrics: {sorted(expected - tags)}; " \
                             f"got {sorted(tags)}"


@NEEDS_APP_TRACES
def test_localhost_in_an_awsvpc_task_is_the_tasks_own_namespace_where_no_agent_listens(lab, agent, awsvpc):
    tasks, web, local = awsvpc["tasks"], awsvpc["web"], awsvpc["local"]
    host = awsvpc["seen"][local]["agent_host"]
    # Docker: "localhost" as written; the local backend: the task's own address, which stands for it.
    assert host in ("localhost", awsvpc["addresses"][local]), host
    # The tracer's own report: it could not reach an agent at localhost:8126.
    failure = f"{host}:8126/"

    def reported() -> str | None:
        out = tasks.logs(local)
        return next((line for line in out.splitlines() if "failed to send" in line and failure in line), None)

    with waiting_for(agent.probe.intervals().traces(), awsvpc["sent_at"]) as timeout:
        wait_until(reported, timeout, interval=0.5,
                   what=f"the awsvpc task's tracer to report it cannot send to {failure}")
        # The other task's traces of the same moment arrived: the intake was reachable and read.
        web_trace = _low64(awsvpc["work"][web]["trace_id"])
        intake = awsvpc["intake"]
        intake.wait_for_spans(service="awsvpc-web", timeout=timeout,
                              predicate=lambda s: int(s.get("trace_id") or 0) == web_trace)
    assert not intake.spans(service="awsvpc-localhost"), \
        "traces sent to localhost in an awsvpc task reached the intake: localhost is not the instance's"


def _eni(task: dict) -> tuple[str, dict[str, str]]:
    """(attachment status, details) of the task's ENI attachment in describe-tasks."""
    (att,) = [a for a in task.get("attachments") or [] if a["type"] == "ElasticNetworkInterface"]
    return att["status"], {d["name"]: d["value"] for d in att.get("details") or []}


def _eni_listed(ec2, eni_id: str) -> bool:
    try:
        ec2.describe_network_interfaces(NetworkInterfaceIds=[eni_id])
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "InvalidNetworkInterfaceID.NotFound", exc.response
        return False
    return True


@NEEDS_APP_TRACES
def test_an_awsvpc_service_on_ec2_runs_each_task_at_its_own_eni_and_scaling_in_deletes_one(lab, agent):
    """create-service of an awsvpc definition with its network configuration, desiredCount 2: each
    task answers at the ENI address describe-tasks shows (never another one before), finds the agent
    at its instance's private IP, and its traces carry its own task_arn; scaled to 1, the stopped
    task's ENI is deleted."""
    tasks = Tasks(lab)
    ecs, ec2 = tasks.ecs, _aws(lab, "ec2")
    cluster = lab.cluster_name
    suffix = uuid.uuid4().hex[:6]
    family = service = f"awsvpc-svc-{suffix}"
    ecs.register_task_definition(**_app_definition(family, "awsvpc-svc"))
    # ECS refuses an awsvpc service without its network configuration, with RunTask's text.
    with pytest.raises(ClientError) as refused:
        ecs.create_service(cluster=cluster, serviceName=service, taskDefinition=family, desiredCount=2,
                           launchType="EC2")
    assert refused.value.response["Error"]["Message"] == \
        "Network Configuration must be provided when networkMode 'awsvpc' is specified."
    group = ec2.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["default"]}])["SecurityGroups"][0]["GroupId"]
    config = {"subnets": [tasks.subnet], "securityGroups": [group]}
    ecs.create_service(cluster=cluster, serviceName=service, taskDefinition=family, desiredCount=2,
                       launchType="EC2", networkConfiguration={"awsvpcConfiguration": config})
    shown: dict[str, set[str]] = {}  # every ENI address describe-tasks showed, by task

    def described() -> list[dict]:
        arns = ecs.list_tasks(cluster=cluster, serviceName=service, desiredStatus="RUNNING")["taskArns"]
        arns += ecs.list_tasks(cluster=cluster, serviceName=service, desiredStatus="STOPPED")["taskArns"]
        out = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"] if arns else []
        for t in out:
            address = _eni(t)[1].get("privateIPv4Address")
            shown.setdefault(t["taskArn"], set()).update([address] if address else [])
        return out

    def both_running() -> list[dict] | None:
        now = described()
        for t in now:
            if t["lastStatus"] == "STOPPED":
                raise AssertionError(f"service task {t['taskArn']} STOPPED ({t.get('stoppedReason')}):\n"
                                     f"{tasks.logs(t['taskArn'])}")
        return now if len(now) == 2 and all(t["lastStatus"] == "RUNNING" for t in now) else None

    try:
        running = wait_until(both_running, RUNNING_WITHIN, interval=0.2,
                             what="the service's two tasks RUNNING")
        # The deployment carries the network configuration its tasks were launched with.
        deployed = ecs.describe_services(cluster=cluster, services=[service])["services"][0]["deployments"][0]
        vpc = deployed["networkConfiguration"]["awsvpcConfiguration"]
        assert (vpc["subnets"], vpc["securityGroups"]) == ([tasks.subnet], [group]), deployed
        enis = {t["taskArn"]: _eni(t) for t in running}
        addresses = {arn: details["privateIPv4Address"] for arn, (_, details) in enis.items()}
        assert len(set(addresses.values())) == 2, f"the service's two tasks share an ENI address: {addresses}"
        for arn, address in addresses.items():
            status, details = enis[arn]
            assert status == "ATTACHED" and details["subnetId"] == tasks.subnet, (arn, status, details)
            # describe-tasks never showed another address for it (none before it was attached).
            assert shown[arn] == {address}, (arn, shown[arn])
            listed = ec2.describe_network_interfaces(
                NetworkInterfaceIds=[details["networkInterfaceId"]])["NetworkInterfaces"][0]
            assert listed["PrivateIpAddress"] == address and \
                [g["GroupId"] for g in listed["Groups"]] == [group], listed
            # Where describe-tasks says the task is, it answers, and it found its instance's agent.
            instance = lab.world.find_task(arn)[0]
            assert address != instance.private_ip, "an awsvpc task has its own ENI, not the instance's"
            seen = _get(f"http://{address}:{APP_PORT}/")
            assert seen["agent_host"] == instance.private_ip, (arn, seen)
        # Each task sends once below: first the agent learns both (as the awsvpc fixture does).
        for arn, address in addresses.items():
            _until_the_agent_knows(lab, address, family, "awsvpc-svc", tag=f"task_arn:{arn}")
        intake = intake_client(lab.intake_url, "awsvpc-svc")
        sent_at = time.monotonic()
        work = {arn: _low64(_get(f"http://{a}:{APP_PORT}/work?ms=5&depth=2")["trace_id"])
                for arn, a in addresses.items()}
        with waiting_for(agent.probe.intervals().traces(), sent_at) as timeout:
            for arn, trace_id in work.items():
                def of_trace(span: dict, t: int = trace_id) -> bool:
                    return int(span.get("trace_id") or 0) == t

                spans = intake.wait_for_spans(service="awsvpc-svc", timeout=timeout, predicate=of_trace)
                tags = set(spans[0].get("container_tags") or [])
                assert f"task_arn:{arn}" in tags, (arn, sorted(tags))

        ecs.update_service(cluster=cluster, service=service, desiredCount=1)

        def one_stopped() -> tuple[str, str] | None:
            by_status = {t["taskArn"]: t["lastStatus"] for t in described()}
            gone = [a for a in addresses if by_status.get(a) == "STOPPED"]
            return (gone[0], next(a for a in addresses if a != gone[0])) if gone else None

        gone, left = wait_until(one_stopped, RUNNING_WITHIN, interval=0.3, what="one service task STOPPED")
        assert not _eni_listed(ec2, enis[gone][1]["networkInterfaceId"]), \
            "the scaled-in task's ENI is still in describe-network-interfaces: ECS deletes it"
        assert _eni_listed(ec2, enis[left][1]["networkInterfaceId"])
        assert _get(f"http://{addresses[left]}:{APP_PORT}/")["agent_host"]
        assert all(len(v) <= 1 for v in shown.values()), shown
    finally:
        ecs.update_service(cluster=cluster, service=service, desiredCount=0)
        ecs.delete_service(cluster=cluster, service=service, force=True)


def _instance_control(lab, kind: str, path: str, payload: dict) -> None:
    """A lab control call on instance 1's IMDS (`kind` "imds") or ECS agent ("ecs"), at the address
    this machine may call."""
    url = instance_url(lab.instance(1), kind)
    req = urllib.request.Request(f"{url}{path}", data=json.dumps(payload).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with _opener.open(req, timeout=10) as resp:
        assert resp.status == 200


def _imds_policy(lab, **policy) -> None:
    _instance_control(lab, "imds", "/ecs-lab/policy", policy)


def _ecs_config(lab, **settings: str) -> None:
    _instance_control(lab, "ecs", "/ecs-lab/config", settings)


def test_with_hop_limit_1_an_awsvpc_task_gets_an_imds_token_and_a_bridge_task_does_not(lab, agent, awsvpc):
    tasks, suffix = awsvpc["tasks"], awsvpc["suffix"]
    # Tokens required: a caller that gets no token cannot fall back to a tokenless GET.
    _imds_policy(lab, hop_limit=1, tokens_required=True)
    try:
        vpc = tasks.run(_app_definition(f"awsvpc-imdsv2-{suffix}", "awsvpc-imdsv2", agent_host_line="imdsv2"))
        bridge = tasks.run(_app_definition(f"bridge-imdsv2-{suffix}", "bridge-imdsv2", network_mode="bridge",
                                           agent_host_line="imdsv2"))
        tasks.wait(vpc, "RUNNING")
        seen = _get(f"http://{tasks.address(vpc)}:{APP_PORT}/")
        assert seen["agent_host"] == agent.private_ip, seen
        # The bridge-mode task is one hop further: its token PUT's answer never arrives (curl: "Empty
        # reply from server"), the docs' line's GET is refused (401) and DD_AGENT_HOST is not the
        # agent's address: the app fails to start (ddtrace refuses the error page as a host) or runs
        # pointed elsewhere.
        described = tasks.wait_settled(bridge)
        out = tasks.logs(bridge)
        assert "Empty reply from server" in out, out
        if described["lastStatus"] == "RUNNING":
            other = _get(f"http://{tasks.address(bridge)}:{APP_PORT}/")
            assert other["agent_host"] != agent.private_ip, other
    finally:
        _imds_policy(lab, hop_limit=2, tokens_required=False)


def test_with_ecs_awsvpc_block_imds_the_docs_line_finds_no_agent_host(lab, awsvpc):
    tasks = awsvpc["tasks"]
    _ecs_config(lab, ECS_AWSVPC_BLOCK_IMDS="true")
    try:
        # The definition that found the agent above, run again on the same instance.
        arn = tasks.run(_app_definition(f"awsvpc-web-{awsvpc['suffix']}", "awsvpc-web"))
        stopped = tasks.wait(arn, "STOPPED")
        out = tasks.logs(arn)
        assert "DD_AGENT_HOST is empty" in out, (stopped.get("stoppedReason"), out)
    finally:
        _ecs_config(lab, ECS_AWSVPC_BLOCK_IMDS="false")
