"""One instance, one task, one story: every surface a real client reads about the same EC2 instance
and the same ECS task agrees on each id, address and version, on both backends.

The surfaces, each read as its real client reads it: the control plane's EC2 API
(`DescribeInstances`, botocore) and ECS API (`DescribeContainerInstances`, `DescribeTasks`,
botocore), from the host; IMDS (`/latest/meta-data/...`, IMDSv2), the ECS container agent's
introspection API (`/v1/metadata`, `/v1/tasks`) and task metadata v4 (`/task`, the container's own
document), from inside the agent task's container, found through its environment (task_client.py):
on the local backend at their loopback listeners, on docker at 169.254.169.254, 169.254.170.2:51678
and 169.254.170.2 in the lab's link-local network. On AWS they are all views of one instance and one
task; a lab where they differ teaches a user's code to trust an id that AWS would never give it.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import boto3
import pytest

from lab.pytest_plugin import Lab, agent_exec, start_lab, stop_lab
from lab.world import wait_until

# Where the task's surfaces are, as a container of the task reaches them: on the local backend every
# listener is on loopback (this host's 169.254.x is someone else's); on docker they sit at their real
# link-local addresses in the lab's own network, which only the lab's containers can reach.
SURFACE_PREFIX = {"local": "127.", "docker": "169.254."}
TASK_CLIENT = (Path(__file__).parent / "task_client.py").read_text()


def read_inside_agent_task(lab: Lab, backend: str) -> dict:
    """IMDS, introspection and task metadata as a client in instance 1's agent task reads them: the
    task client run in the agent's container (`docker exec` on docker; the agent process's own
    environment on the local backend), finding each surface from the container's environment."""
    code, output = agent_exec(lab, 1)(["python3", "-c", TASK_CLIENT, SURFACE_PREFIX[backend]])
    lines = [line for line in output.splitlines() if line.startswith("TASK-CLIENT ")]
    assert code == 0 and lines, f"the task client failed in the agent container (exit {code}):\n{output}"
    return json.loads(lines[-1].removeprefix("TASK-CLIENT "))


@pytest.fixture(scope="module", params=["local", pytest.param("docker", marks=pytest.mark.docker)])
def story(request):
    """A one-instance lab on each backend, and what every surface says about instance 1 and its agent
    task: the EC2 and ECS APIs through botocore from the host, the rest from inside the task."""
    backend = request.param
    lab = start_lab(backend, instances=1, apps=())
    try:
        state = lab.state
        inst = state["instances"][0]
        endpoint = lab.ecs_lab.control_plane.endpoint
        session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test",
                                         region_name="us-east-1")
        ec2 = session.client("ec2", endpoint_url=endpoint)
        ecs = session.client("ecs", endpoint_url=endpoint)
        # The agent's health check has a first verdict (ECS runs it one interval after the start), so
        # every surface read next shows the same, settled health.
        def agent_health() -> str:
            described = ecs.describe_tasks(cluster=state["cluster"], tasks=[inst["agent"]["task_arn"]])
            agent = next(c for c in described["tasks"][0]["containers"] if c["name"] == "datadog-agent")
            return agent.get("healthStatus", "UNKNOWN")

        wait_until(lambda: agent_health() != "UNKNOWN", timeout=90, interval=0.5,
                   what="the agent container's first health verdict in describe-tasks")
        inside = read_inside_agent_task(lab, backend)
        md = inside["md"]
        described_instance = ec2.describe_instances(InstanceIds=[md["instance-id"]])
        reservation = described_instance["Reservations"][0]
        cluster = state["cluster"]
        ci = ecs.describe_container_instances(cluster=cluster,
                                              containerInstances=[inside["intro_meta"]["ContainerInstanceArn"]])
        intro_tasks = inside["intro_tasks"]
        agent_tasks = [t for t in intro_tasks if t["Family"].startswith("datadog-agent")]
        assert agent_tasks, f"no agent task in introspection: {[t['Family'] for t in intro_tasks]}"
        task_arn = agent_tasks[0]["Arn"]
        described_task = ecs.describe_tasks(cluster=cluster, tasks=[task_arn])["tasks"][0]
        definition = ecs.describe_task_definition(taskDefinition=described_task["taskDefinitionArn"])
        yield {
            **inside, "backend": backend, "ec2_reservation": reservation, "ec2": reservation["Instances"][0],
            "ci": ci["containerInstances"][0], "task": described_task, "task_arn": task_arn, "inst": inst,
            "network_mode": definition["taskDefinition"].get("networkMode", "bridge"),
            "definitions": {c["name"]: c for c in definition["taskDefinition"]["containerDefinitions"]},
        }
    finally:
        stop_lab(lab)


def test_instance_identity_agrees_between_ec2_imds_and_ecs(story):
    md, ec2, ci = story["md"], story["ec2"], story["ci"]
    assert md["instance-id"] == ec2["InstanceId"] == ci["ec2InstanceId"] == story["inst"]["instance_id"]
    assert md["local-ipv4"] == ec2["PrivateIpAddress"] == story["inst"]["private_ip"]
    assert md["placement/availability-zone"] == ec2["Placement"]["AvailabilityZone"]
    assert md["reservation-id"] == story["ec2_reservation"]["ReservationId"]
    assert md["net/owner-id"] == story["ec2_reservation"]["OwnerId"]


def test_imds_closes_the_connection_after_an_error_and_keeps_it_after_an_answer(story):
    """EC2's IMDS sends `Connection: close` with an error and hangs up (a keep-alive client such as
    the AWS SDK for JavaScript's would otherwise hold its socket); a found path keeps the connection."""
    missing, found = story["imds_missing"], story["imds_found"]
    assert missing["statuses"][:1] == [404], missing
    assert missing["connection"][0] == "close" and missing["closed_by_server"], missing
    assert found["statuses"] == [200, 200], found
    assert "close" not in found["connection"] and not found["closed_by_server"], found


def test_network_identity_agrees_between_ec2_and_imds(story):
    md, ec2 = story["md"], story["ec2"]
    eni = ec2["NetworkInterfaces"][0]
    assert md["net/vpc-id"] == ec2["VpcId"] == eni["VpcId"]
    assert md["net/subnet-id"] == ec2["SubnetId"] == eni["SubnetId"]
    assert md["mac"] == eni["MacAddress"]
    assert md["net/interface-id"] == eni["NetworkInterfaceId"]
    assert md["security-groups"].split("\n") == [g["GroupName"] for g in ec2["SecurityGroups"]]
    assert md["net/security-group-ids"].split("\n") == [g["GroupId"] for g in ec2["SecurityGroups"]]
    profile = json.loads(md["iam/info"])["InstanceProfileArn"]
    assert ec2.get("IamInstanceProfile", {}).get("Arn") == profile


def test_container_instance_agrees_between_ecs_api_and_introspection(story):
    ci, intro = story["ci"], story["intro_meta"]
    assert ci["containerInstanceArn"] == intro["ContainerInstanceArn"]
    assert intro["Cluster"] in (story["task"]["clusterArn"], story["task"]["clusterArn"].rsplit("/", 1)[-1])
    # Introspection's Version is "Amazon ECS Agent - v1.89.2 (<hash>)".
    assert f"v{ci['versionInfo']['agentVersion']} " in intro["Version"], (ci["versionInfo"], intro["Version"])
    assert f"({ci['versionInfo']['agentHash']})" in intro["Version"]


def test_registered_ports_are_counted_once_per_protocol(story):
    remaining = {r["name"]: r for r in story["ci"]["remainingResources"]}
    tcp = remaining["PORTS"]["stringSetValue"]
    udp = remaining.get("PORTS_UDP", {}).get("stringSetValue", [])
    assert len(tcp) == len(set(tcp)), f"PORTS lists a port twice: {tcp}"
    assert "8125" in udp and "8125" not in tcp, (tcp, udp)  # the agent's DogStatsD port is UDP
    assert "8126" in tcp


def test_task_agrees_between_describe_tasks_introspection_and_task_metadata(story):
    task, v4, v4c = story["task"], story["v4_task"], story["v4_container"]
    assert task["taskArn"] == v4["TaskARN"] == story["task_arn"]
    intro = next(t for t in story["intro_tasks"] if t["Arn"] == story["task_arn"])
    assert intro["KnownStatus"] == task["lastStatus"] == v4["KnownStatus"] == "RUNNING"
    by_name = {c["name"]: c for c in task["containers"]}
    assert v4c["ContainerARN"] == by_name[v4c["Name"]]["containerArn"]
    for c in v4["Containers"]:
        assert c["ContainerARN"] == by_name[c["Name"]]["containerArn"]
    assert task["availabilityZone"] == v4["AvailabilityZone"] == story["md"]["placement/availability-zone"]
    assert task["launchType"] == v4["LaunchType"] == "EC2"
    assert v4["VPCID"] == story["md"]["net/vpc-id"]
    for field in ("createdAt", "startedAt", "connectivityAt", "pullStartedAt"):
        assert field in task, f"describe-tasks lacks {field}: {sorted(task)}"
    assert task["containerInstanceArn"] == story["ci"]["containerInstanceArn"]


def test_empty_task_tags_are_left_out_like_the_ecs_agent_does(story):
    # The agent service is created without tags: the ECS agent omits TaskTags then (omitempty).
    assert not story["task"].get("tags")
    assert "TaskTags" not in story["v4_tags"], story["v4_tags"].get("TaskTags")
    assert story["v4_tags"]["ContainerInstanceTags"]


def test_host_ports_agree_between_describe_tasks_and_task_metadata(story):
    """The agent's published ports: describe-tasks `networkBindings` (what the ECS agent reported
    Docker published) and task metadata `Ports` name the same ports on the same address."""
    by_name = {c["name"]: c for c in story["task"]["containers"]}
    for c in story["v4_task"]["Containers"]:
        ports = {(p["ContainerPort"], p["HostPort"], p["Protocol"], p["HostIp"]) for p in c.get("Ports", [])}
        bindings = {(b["containerPort"], b["hostPort"], b["protocol"], b["bindIP"])
                    for b in by_name[c["Name"]].get("networkBindings", [])}
        assert bindings == ports, (c["Name"], bindings, ports)
    agent_ports = {(b["hostPort"], b["protocol"]) for c in story["task"]["containers"]
                   for b in c.get("networkBindings", [])}
    assert {(8126, "tcp"), (8125, "udp")} <= agent_ports, agent_ports


def test_volumes_and_fault_injection_as_the_ecs_agent_writes_them(story):
    """Task metadata v4 lists each container's host volumes (the documents' agent has three:
    docker.sock, /proc, cgroup) and always writes `FaultInjectionEnabled`, false included."""
    v4 = story["v4_task"]
    assert v4["FaultInjectionEnabled"] is False
    agent = next(c for c in v4["Containers"] if c["Name"] == "datadog-agent")
    volumes = {v["Destination"]: v["Source"] for v in agent.get("Volumes", [])}
    assert volumes.get("/var/run/docker.sock") == "/var/run/docker.sock", agent.get("Volumes")
    assert volumes.get("/host/proc") == "/proc/", agent.get("Volumes")
    assert any(dest.startswith("/host/sys/fs/cgroup") for dest in volumes), agent.get("Volumes")


def test_instance_names_and_kind_agree_between_ec2_imds_and_ecs(story):
    """The instance's DNS name, type, AMI, region and account: IMDS (meta-data and the identity
    document the ECS agent registers with), `describe-instances` and the container instance's
    `ecs.*` attributes."""
    md, ec2, identity = story["md"], story["ec2"], story["md"]["identity"]
    attributes = {a["name"]: a.get("value") for a in story["ci"]["attributes"]}
    assert md["local-hostname"] == md["hostname"] == md["net/local-hostname"] == ec2["PrivateDnsName"]
    assert md["net/local-ipv4s"].split("\n")[0] == md["local-ipv4"]
    assert ec2["NetworkInterfaces"][0]["PrivateIpAddress"] == md["local-ipv4"]
    assert md["instance-type"] == ec2["InstanceType"] == attributes["ecs.instance-type"]
    assert md["instance-type"] == identity["instanceType"]
    assert md["ami-id"] == ec2["ImageId"] == attributes["ecs.ami-id"] == identity["imageId"]
    zone = md["placement/availability-zone"]
    assert attributes["ecs.availability-zone"] == zone == identity["availabilityZone"]
    assert identity["instanceId"] == md["instance-id"] and identity["privateIp"] == md["local-ipv4"]
    region = story["task_arn"].split(":")[3]
    assert md["placement/region"] == identity["region"] == region
    assert identity["accountId"] == story["ec2_reservation"]["OwnerId"] == story["task_arn"].split(":")[4]


def test_containers_agree_between_describe_tasks_introspection_and_task_metadata(story):
    """Each container of the agent task: docker id, docker name, image and ECS labels, and the
    task's definition and service, on every surface that shows them."""
    task, v4 = story["task"], story["v4_task"]
    intro = next(t for t in story["intro_tasks"] if t["Arn"] == story["task_arn"])
    intro_by_name = {c["Name"]: c for c in intro["Containers"]}
    described_by_name = {c["name"]: c for c in task["containers"]}
    assert set(intro_by_name) == set(described_by_name) == {c["Name"] for c in v4["Containers"]}
    assert task["taskDefinitionArn"].endswith(f":task-definition/{v4['Family']}:{v4['Revision']}")
    assert intro["Family"] == v4["Family"] and intro["Version"] == v4["Revision"]
    assert task["group"] == f"service:{v4['ServiceName']}", (task["group"], v4.get("ServiceName"))
    for c in v4["Containers"]:
        described = described_by_name[c["Name"]]
        assert c["DockerId"] == intro_by_name[c["Name"]]["DockerId"] == described["runtimeId"]
        assert c["DockerName"] == intro_by_name[c["Name"]]["DockerName"]
        assert c["Image"] == described["image"]
        assert c["KnownStatus"] == described["lastStatus"] == "RUNNING"
        labels = c["Labels"]
        assert labels["com.amazonaws.ecs.task-arn"] == story["task_arn"]
        assert labels["com.amazonaws.ecs.container-name"] == c["Name"]
        assert labels["com.amazonaws.ecs.task-definition-family"] == v4["Family"]
        assert labels["com.amazonaws.ecs.task-definition-version"] == v4["Revision"]
        assert labels["com.amazonaws.ecs.cluster"] in (task["clusterArn"], task["clusterArn"].split("/")[1])


def test_the_container_knows_itself_as_the_others_know_it(story):
    """Inside the agent's container: its hostname is its short docker id (as Docker sets it), and
    the ECS container metadata file names the same container, task, container instance and host."""
    own = story["v4_container"]
    assert story["environment"]["HOSTNAME"] == own["DockerId"][:12]
    assert story["environment"]["AWS_EXECUTION_ENV"] == "AWS_ECS_EC2"
    meta = story["metadata_file"]
    assert meta is not None, "the agent container has no ECS_CONTAINER_METADATA_FILE"
    assert meta["ContainerID"] == own["DockerId"] and meta["ContainerName"] == own["Name"]
    # The file keeps docker's own form of the name, with its leading slash (the ECS developer guide's
    # container metadata file example); task metadata drops it.
    assert meta["DockerContainerName"] == "/" + own["DockerName"]
    assert meta["TaskARN"] == story["task_arn"]
    assert meta["ContainerInstanceARN"] == story["ci"]["containerInstanceArn"]
    cluster_arn = story["task"]["clusterArn"]
    assert meta["Cluster"] in (cluster_arn, cluster_arn.rsplit("/", 1)[1])
    assert meta["HostPrivateIPv4Address"] == story["md"]["local-ipv4"]
    assert meta["AvailabilityZone"] == story["md"]["placement/availability-zone"]
    assert meta["TaskDefinitionFamily"] == story["v4_task"]["Family"]
    assert meta["TaskDefinitionRevision"] == story["v4_task"]["Revision"]


# Task metadata v4 as the ECS agent writes it (aws/amazon-ecs-agent, the v2 TaskResponse and
# ContainerResponse its v4 responses embed, agent/handlers/v2/response.go and
# ecs-agent/tmds/handlers/v4/state/response.go): the keys without `omitempty` are always there.
V4_TASK_KEYS = ("Cluster", "TaskARN", "Family", "Revision", "DesiredStatus", "KnownStatus",
                "FaultInjectionEnabled")
V4_CONTAINER_KEYS = ("DockerId", "Name", "DockerName", "Image", "ImageID", "DesiredStatus", "KnownStatus",
                     "Limits", "Type")


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_task_metadata_keys_follow_the_ecs_agents_presence_rules(story):
    """Always-written keys are there; a running container has CreatedAt and StartedAt and no
    ExitCode or FinishedAt; a container with a health check reports its Health, the status
    describe-tasks shows; the network mode is the task definition's."""
    v4, task = story["v4_task"], story["task"]
    missing = [k for k in V4_TASK_KEYS if k not in v4]
    assert not missing, f"task metadata lacks {missing}: {sorted(v4)}"
    described = {c["name"]: c for c in task["containers"]}
    for c in v4["Containers"]:
        missing = [k for k in V4_CONTAINER_KEYS if k not in c]
        assert not missing, f"{c['Name']} lacks {missing}: {sorted(c)}"
        assert c["Type"] == "NORMAL" and set(c["Limits"]) >= {"CPU", "Memory"}, (c["Type"], c["Limits"])
        assert "ExitCode" not in c and "FinishedAt" not in c, c
        assert _instant(c["CreatedAt"]) <= _instant(c["StartedAt"]), (c["CreatedAt"], c["StartedAt"])
        assert [n["NetworkMode"] for n in c["Networks"]] == [story["network_mode"]], c["Networks"]
        assert c["Networks"][0]["IPv4Addresses"], c["Networks"]
        # The ECS agent writes Health for a container with a health check (UNKNOWN included).
        checked = bool(story["definitions"][c["Name"]].get("healthCheck"))
        assert ("Health" in c) == checked, (c["Name"], checked, c.get("Health"))
        if checked:
            assert c["Health"]["status"] == described[c["Name"]]["healthStatus"], (c["Health"], described)
    agent = next(c for c in v4["Containers"] if c["Name"] == "datadog-agent")
    assert agent["Health"]["status"] == "HEALTHY" == task["healthStatus"], (agent["Health"], task)
    # The ECS agent reports the pull times it writes into task metadata with the task's state change
    # (whole seconds on the wire, hence the second of slack).
    for field, key in (("pullStartedAt", "PullStartedAt"), ("pullStoppedAt", "PullStoppedAt")):
        assert key in v4 and field in task, (key, sorted(v4), field, sorted(task))
        skew = abs((_instant(v4[key]) - task[field]).total_seconds())
        assert skew < 1, (field, task[field], v4[key])


def test_introspection_and_the_metadata_file_carry_what_their_readers_parse(story):
    """Introspection `/v1/metadata` and `/v1/tasks` with the keys the Datadog agent's ECS detection
    and tagger read, and the container metadata file READY with the same image and ports task
    metadata shows (the ECS developer guide's container metadata file fields)."""
    assert set(story["intro_meta"]) >= {"Cluster", "ContainerInstanceArn", "Version"}, story["intro_meta"]
    intro = next(t for t in story["intro_tasks"] if t["Arn"] == story["task_arn"])
    assert set(intro) >= {"Arn", "DesiredStatus", "KnownStatus", "Family", "Version", "Containers"}, intro
    for c in intro["Containers"]:
        assert set(c) >= {"DockerId", "DockerName", "Name"}, c
    meta, own = story["metadata_file"], story["v4_container"]
    assert meta["MetadataFileStatus"] == "READY", meta
    assert meta["ImageID"] == own["ImageID"] and meta["ImageName"] == own["Image"], meta
    mapped = {(p["ContainerPort"], p["HostPort"], p["Protocol"], p["BindIp"]) for p in meta["PortMappings"]}
    ports = {(p["ContainerPort"], p["HostPort"], p["Protocol"], p["HostIp"]) for p in own.get("Ports", [])}
    assert mapped == ports and ports, (mapped, ports)
