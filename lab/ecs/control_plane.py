"""The lab's AWS control plane on :4566: embedded moto (default) or a LocalStack Pro container.

Embedded moto serves ECS, EC2, Secrets Manager, SSM, IAM and STS in this process
(`ThreadedMotoServer`), with `lab.ecs.front.EcsFront` in front of its ECS (placement with
ECS's failure reasons, `SubmitTaskStateChange`) and the ECS service scheduler running beside it.
Task state transitions are pinned (docs/control_plane.md#moto-and-localstack-as-found): by default moto
advances a task one step per describe, which would let a `describe-tasks` loop "stop" a task nobody stopped.

Container instances are registered as the ECS agent registers them: an EC2 instance exists first
(moto's `RegisterContainerInstance` needs the `instanceId` of an instance its EC2 created), then
its instance identity document (the same one the lab's IMDS serves for that instance) is handed to
`RegisterContainerInstance`. So the world instance is built with moto's instance id, and IMDS,
`describe-instances`, `describe-container-instances` and the agent's hostname all agree.

`--control-plane localstack` (or `LOCALSTACK_AUTH_TOKEN` in the environment) runs
`localstack/localstack-pro` (or LAB_LOCALSTACK_IMAGE) through testcontainers' LocalStack module
instead; ECS is a Pro feature, the community image has no ECS at all.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

from lab.ecs.assignments import ASSIGNMENTS
from lab.ecs.client import ControlPlaneClients
from lab.ecs.front import EcsFront
from lab.ecs.moto_model import ECS_LOCK, MotoEcs
from lab.ecs.service_scheduler import ServiceScheduler
from lab.serving import check_free
from lab.world import (
    DEFAULT_CLUSTER,
    DEFAULT_REGION,
    ContainerInstance,
    World,
    default_availability_zone,
    wait_until,
)

DEFAULT_PORT = 4566
LOCALSTACK_IMAGE = "localstack/localstack-pro"
# The ECS agent's answer to "which agent registered this instance" (describe-container-instances).
AGENT_VERSION_INFO = {"agentVersion": "1.89.2", "agentHash": "labc0ffe",
                      "dockerVersion": "DockerVersion: 26.1.5"}
# Pin moto's task lifecycle: tasks change state only when the lab's instance agent reports it.
PINNED_TASK_TRANSITION = {"model_name": "ecs::task",
                          "transition": {"progression": "manual", "times": 1_000_000}}


class ControlPlaneError(RuntimeError):
    pass


def _moto_server_class() -> type:
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        # werkzeug logs every request to stderr; the lab's logs are for what users need to read.
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    class LabMotoServer(ThreadedMotoServer):
        """moto's threaded server with the lab's ECS front wrapped around its app."""

        def __init__(self, ip_address: str, port: int, on_change: Any, on_reset: Any,
                     on_deleted: Any) -> None:
            super().__init__(ip_address=ip_address, port=port, verbose=False)
            self._on_change = on_change
            self._on_reset = on_reset
            self._on_deleted = on_deleted

        def _server_entry(self) -> None:
            app = EcsFront(DomainDispatcherApplication(create_backend_app), on_change=self._on_change,
                           on_reset=self._on_reset, on_deleted=self._on_deleted)
            self._server = make_server(self._ip_address, self._port, app, True,
                                       request_handler=QuietHandler)
            self._server_ready_event.set()
            self._server.serve_forever()

    return LabMotoServer


class ControlPlane:
    """Owner of the control plane. `with ControlPlane(port=0) as cp: cp.endpoint ...`.

    `kind` is "moto" (embedded) or "localstack" (a LocalStack Pro container; needs docker and
    `LOCALSTACK_AUTH_TOKEN`). Port 0 picks a free port (tests); the default is 4566.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT, region: str = DEFAULT_REGION,
                 kind: str | None = None, scheduler_interval: float = 0.25) -> None:
        self.host = host
        self.port = port
        self.region = region
        self.kind = kind or ("localstack" if os.environ.get("LOCALSTACK_AUTH_TOKEN") else "moto")
        if self.kind not in ("moto", "localstack"):
            raise ValueError(f"unknown control plane {self.kind!r}: use 'moto' or 'localstack'")
        self.scheduler_interval = scheduler_interval
        self._server: Any = None
        self._container: Any = None  # the LocalStack testcontainer
        self.service_scheduler: ServiceScheduler | None = None
        self._clients: ControlPlaneClients | None = None
        self._lock = threading.Lock()
        # The lab's own records: clusters it created or registered instances in, and those
        # instances (ARN -> cluster). A `/moto-api/reset` puts these back (see `_before_reset`).
        self._own_clusters: set[str] = set()
        self._own_instances: dict[str, str] = {}
        self.resets = 0

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def clients(self) -> ControlPlaneClients:
        if self._clients is None:
            self._clients = ControlPlaneClients(self.endpoint, self.region)
        return self._clients

    def start(self) -> ControlPlane:
        if self.kind == "localstack":
            self._start_localstack()
        else:
            self._start_moto()
        return self

    def _start_moto(self) -> None:
        check_free(self.host, self.port)
        # moto's EC2 loads thousands of default public AMIs on its first request (~0.7 s of
        # `ecs-lab up`'s start-up); the lab's instances carry the lab's own AMI id, which moto's
        # RunInstances accepts without them. A user who wants them exports the variable as "true".
        os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
        self.service_scheduler = ServiceScheduler(self.region, interval=self.scheduler_interval)
        self._server = _moto_server_class()(self.host, self.port, self.service_scheduler.wake,
                                            self._before_reset, self._forget)
        self._server.start()
        self.port = self._server.get_host_and_port()[1]
        self._post_moto_api("/moto-api/state-manager/set-transition", PINNED_TASK_TRANSITION)
        # ECS's default for accounts today: long ARNs (task/<cluster>/<id>).
        for name in ("taskLongArnFormat", "containerInstanceLongArnFormat", "serviceLongArnFormat"):
            self.clients.ecs.put_account_setting(name=name, value="enabled")
        self.service_scheduler.start()

    def _before_reset(self) -> Callable[[], None]:
        """`/moto-api/reset` (moto's server-mode tests call it before each test, users call it too)
        empties moto, while the lab's instances, their agents and tasks keep running. So the lab's
        own clusters are kept whole: their container instances (and EC2 instances), services,
        tasks, the task definitions those use, and the account settings the task ARNs follow, are
        put back in the fresh backends; everything else is gone, as with moto. With nothing of the
        lab's registered, a reset is exactly moto's. Runs under ECS_LOCK (the front holds it)."""
        from moto.moto_api import state_manager

        self.resets += 1
        model = MotoEcs(self.region)
        snap = model.snapshot(sorted(self._own_clusters))

        def after() -> None:
            # moto's reset keeps its state manager's transitions; pinning again costs nothing and
            # keeps tasks from advancing on describes if a moto version does reset them.
            state_manager.set_transition(model_name=PINNED_TASK_TRANSITION["model_name"],
                                         transition=PINNED_TASK_TRANSITION["transition"])
            if snap["clusters"]:
                model.restore(snap)

        return after

    def _forget(self, action: str, params: dict) -> None:
        ref = str(params.get("cluster") or "default").rsplit("/", 1)[-1]
        if action == "DeleteCluster":
            self._own_clusters.discard(ref)
            if self.service_scheduler:
                # Deleted, the cluster has nothing to schedule: one made later under its name is
                # scheduled from the start, whichever way it is made.
                self.service_scheduler.resume(ref)
            self._own_instances = {a: c for a, c in self._own_instances.items() if c != ref}
        else:
            ci = str(params.get("containerInstance", "")).rsplit("/", 1)[-1]
            self._own_instances = {a: c for a, c in self._own_instances.items()
                                   if not (a.rsplit("/", 1)[-1] == ci and ci)}

    def problems(self) -> list[str]:
        """What keeps this control plane from serving the lab, in words for `ecs-lab status`: empty
        when it is sound. Checks the lab's own clusters and container instances are there and
        ACTIVE, and reports the service scheduler's recent errors."""
        if self._server is None and self._container is None:
            return ["control plane is not running"]
        found: list[str] = []
        try:
            ecs = self.clients.ecs
            for name in sorted(self._own_clusters):
                got = ecs.describe_clusters(clusters=[name])["clusters"]
                if not got or got[0]["status"] != "ACTIVE":
                    found.append(f"cluster {name} is missing from the control plane: its instance agents "
                                 "cannot reach their tasks")
                    continue
                mine = [arn for arn, c in self._own_instances.items() if c == name]
                if mine:
                    seen = {ci["containerInstanceArn"]: ci for ci in ecs.describe_container_instances(
                        cluster=name, containerInstances=mine)["containerInstances"]}
                    for arn in mine:
                        if arn not in seen:
                            found.append(f"container instance {arn} is missing from cluster {name}")
        except Exception as exc:  # noqa: BLE001 - an unreachable control plane is the problem to report
            found.append(f"control plane {self.endpoint} does not answer: {exc}")
        # Another lab's cluster in this process (moto's model is shared) is that lab's problem.
        errors = self.service_scheduler.errors_for(self._own_clusters) if self.service_scheduler else []
        if errors:
            found.append(f"service scheduler: {errors[-1]}")
        return found

    def _post_moto_api(self, path: str, payload: dict) -> None:
        req = urllib.request.Request(self.endpoint + path, data=json.dumps(payload).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - loopback
            resp.read()

    def _start_localstack(self) -> None:
        """LocalStack Pro as a testcontainers `LocalStackContainer`: published on this control plane's
        host only (loopback, never 0.0.0.0), with the docker socket LocalStack runs ECS tasks through,
        and the lab's labels so `ecs-lab down --all` removes it if this process dies."""
        token = os.environ.get("LOCALSTACK_AUTH_TOKEN")
        if not token:
            raise ControlPlaneError("--control-plane localstack needs LOCALSTACK_AUTH_TOKEN: ECS is a "
                                    "LocalStack Pro feature (the community image has no ECS provider)")
        from lab import docker_engine as images
        from lab.docker_engine import LABEL, ROLE_LABEL, RUN_LABEL, ryuk_off_unless_asked

        image = os.environ.get("LAB_LOCALSTACK_IMAGE") or LOCALSTACK_IMAGE
        try:
            client = images.docker_client(timeout=10)
        except images.DockerUnavailable as exc:
            raise ControlPlaneError(f"--control-plane localstack runs the {image} image and needs a docker "
                                    f"engine: {exc} (or use the default, embedded moto)") from None
        if not images.image_exists(client, image):
            try:
                client.images.pull(image)
            except Exception as exc:  # noqa: BLE001 - any pull failure ends in the same advice
                raise ControlPlaneError(
                    f"cannot pull {image}: {exc}. Where no registry is reachable, load the image into this "
                    f"engine yourself (`docker save {image} -o localstack-pro.tar` on a machine that has it, "
                    "then `docker load -i localstack-pro.tar` here), or run without --control-plane "
                    "localstack (the embedded moto control plane needs nothing).") from None
        if self.port:
            check_free(self.host, self.port)
        ryuk_off_unless_asked()
        try:
            from testcontainers.community.localstack import LocalStackContainer
        except ImportError:  # testcontainers before 4.14 kept its modules at the top level
            from testcontainers.localstack import LocalStackContainer

        container = LocalStackContainer(image=image, region_name=self.region)
        container.with_env("LOCALSTACK_AUTH_TOKEN", token)
        container.with_volume_mapping("/var/run/docker.sock", "/var/run/docker.sock", "rw")
        # testcontainers exposes the edge port on every host address; the lab's control plane answers on
        # its own host only (port 0: docker picks one), so the binding names the address.
        container.ports[str(container.edge_port)] = (self.host, self.port or None)
        run_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        container.with_kwargs(labels={LABEL: "1", RUN_LABEL: run_id, ROLE_LABEL: "localstack"})
        self._container = container
        try:
            try:
                container.start(timeout=120)
            except Exception as exc:
                raise ControlPlaneError(f"LocalStack ({image}) did not start: {exc}") from exc
            wrapped = container.get_wrapped_container()
            wrapped.reload()
            self.port = int(wrapped.ports[f"{container.edge_port}/tcp"][0]["HostPort"])

            def ready() -> bool:
                with urllib.request.urlopen(self.endpoint + "/_localstack/health", timeout=1) as r:  # noqa: S310
                    return json.loads(r.read()).get("services", {}).get("ecs") in ("available", "running")

            wait_until(ready, timeout=90, what=f"LocalStack ECS on {self.endpoint}")
        except BaseException:
            # A caller that never gets this control plane cannot stop it: nothing may outlive the failure.
            self._container = None
            container.stop()
            raise

    def stop(self) -> None:
        if self.service_scheduler:
            self.service_scheduler.stop()
            self.service_scheduler = None
        if self._server:
            self._server.stop()
            self._server = None
        if self._container is not None:
            container, self._container = self._container, None
            container.stop()

    def __enter__(self) -> ControlPlane:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- cluster and instances ------------------------------------------------------------------
    def ensure_cluster(self, name: str = DEFAULT_CLUSTER) -> str:
        self._own_clusters.add(name)
        found = self.clients.ecs.describe_clusters(clusters=[name])["clusters"]
        if found and found[0]["status"] == "ACTIVE":
            return found[0]["clusterArn"]
        return self.clients.ecs.create_cluster(clusterName=name)["cluster"]["clusterArn"]

    @staticmethod
    def _security_group(ec2: Any, name: str, vpc: str) -> str:
        """The group's id, created if missing. Two labs of one process boot their instances at the
        same time (a stack started ahead beside the session lab): the one that loses the race to
        create it gets InvalidGroup.Duplicate and uses the winner's."""
        def find() -> list[dict]:
            filters = [{"Name": "group-name", "Values": [name]}, {"Name": "vpc-id", "Values": [vpc]}]
            return ec2.describe_security_groups(Filters=filters)["SecurityGroups"]

        groups = find()
        if groups:
            return groups[0]["GroupId"]
        try:
            return ec2.create_security_group(GroupName=name, Description="ecs-lab container instances",
                                             VpcId=vpc)["GroupId"]
        except ec2.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "InvalidGroup.Duplicate" or not find():
                raise
            return find()[0]["GroupId"]

    def launch_ec2_instance(self, *, instance_type: str = "m5.large", ami_id: str = "ami-0ab1ec5a0000c0ffe",
                            name: str = "ecs-lab-instance", security_group: str = "ecs-lab-instances",
                            instance_profile: str | None = "ecs-lab-instance-role",
                            availability_zone: str | None = None) -> dict:
        """An EC2 instance in the control plane: the thing RegisterContainerInstance vouches for.

        Launched as ECS container instances are (the ECS developer guide's launch steps): in a
        security group of its own and with an instance profile, so DescribeInstances shows the
        group and profile the instance's IMDS serves. The answer carries `ReservationId`."""
        ec2 = self.clients.ec2
        extra: dict[str, Any] = {}
        if availability_zone:
            # The default VPC's subnet in that zone: where EC2 launches an instance asked for a zone.
            subnets = ec2.describe_subnets(Filters=[
                {"Name": "availability-zone", "Values": [availability_zone]},
                {"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
            if not subnets:
                raise ControlPlaneError(
                    f"the control plane's default VPC has no subnet in {availability_zone}")
            extra["SubnetId"] = subnets[0]["SubnetId"]
            vpc = subnets[0]["VpcId"]
        else:
            vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
        group_id = self._security_group(ec2, security_group, vpc)
        if instance_profile:
            iam = self.clients.iam
            try:
                iam.create_instance_profile(InstanceProfileName=instance_profile)
            except iam.exceptions.EntityAlreadyExistsException:
                pass
            extra["IamInstanceProfile"] = {"Name": instance_profile}
        resp = ec2.run_instances(
            ImageId=ami_id, InstanceType=instance_type, MinCount=1, MaxCount=1, SecurityGroupIds=[group_id],
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}],
            **extra)
        return {**resp["Instances"][0], "ReservationId": resp["ReservationId"]}

    def add_instance(self, world: World, private_ip: str, **kwargs: Any) -> ContainerInstance:
        """Launch an EC2 instance, add it to the world with that instance id, and register it.

        The world's cluster is created if needed. The returned instance's `arn` is the control
        plane's container instance ARN.
        """
        self.ensure_cluster(world.cluster.name)
        with self._lock:
            index = len(world.instances) + 1
            ec2 = self.launch_ec2_instance(instance_type=kwargs.get("instance_type", "m5.large"),
                                           ami_id=kwargs.get("ami_id", "ami-0ab1ec5a0000c0ffe"),
                                           name=f"ecs-lab-instance-{index}",
                                           instance_profile=kwargs.get("iam_role", "ecs-lab-instance-role"),
                                           availability_zone=kwargs.get("availability_zone")
                                           or default_availability_zone(world.cluster.region, index))
            inst = world.add_instance(private_ip, instance_id=ec2["InstanceId"], **kwargs)
            inst.take_ec2_identity(ec2, ec2["ReservationId"])
            if self.kind == "moto":
                self._rekey_moto_instance(inst.instance_id, inst)
        self.register_container_instance(world, inst)
        return inst

    def register_container_instance(self, world: World, inst: ContainerInstance) -> str:
        """Register `inst` (whose instance_id moto's EC2 knows) as a container instance of the cluster."""
        self.ensure_cluster(world.cluster.name)
        resp = self.clients.ecs.register_container_instance(
            cluster=world.cluster.name,
            instanceIdentityDocument=json.dumps(inst.identity_document()),
            instanceIdentityDocumentSignature="",
            versionInfo=AGENT_VERSION_INFO,
        )
        arn = resp["containerInstance"]["containerInstanceArn"]
        self._own_instances[arn] = world.cluster.name
        inst.arn = arn
        world.touch()
        return arn

    def adopt_instance(self, world: World, inst: ContainerInstance) -> str:
        """Register an instance a backend already built (and whose IMDS may already serve it).

        Embedded moto: the EC2 instance is launched, then given the world's instance id and private
        IP in moto's own records, so nothing the backend already published changes. LocalStack: the
        world instance takes LocalStack's id (call this before its IMDS serves it). An external (ECS
        Anywhere) instance launches nothing: it registers with its managed instance id
        (`register_external_instance`), as its ECS agent does with ECS_EXTERNAL=true.
        """
        if inst.external:
            _, inst.arn = self.register_external_instance(world.cluster.name, inst.instance_id)
            world.touch()
            return inst.arn
        ec2 = self.launch_ec2_instance(instance_type=inst.instance_type, ami_id=inst.ami_id,
                                       name=inst.tags.get("Name", f"ecs-lab-instance-{inst.index}"),
                                       instance_profile=inst.iam_role,
                                       availability_zone=inst.availability_zone)
        inst.take_ec2_identity(ec2, ec2["ReservationId"])
        if self.kind == "moto":
            self._rekey_moto_instance(ec2["InstanceId"], inst)
        else:
            inst.instance_id = ec2["InstanceId"]
        return self.register_container_instance(world, inst)

    def _rekey_moto_instance(self, moto_id: str, inst: ContainerInstance) -> None:
        from moto.ec2.models import ec2_backends

        with ECS_LOCK:
            ec2 = ec2_backends[inst.account_id][self.region]
            machine = ec2.get_instance(moto_id)
            # The world's ids are stable per address, so a lab that ends and another one at the same
            # addresses in this process (the docker backend's fixed 172.30.N.1, the shared control
            # plane) give the same id again. An instance id names one instance in EC2: the earlier
            # lab's machine, gone with its lab, leaves moto's records (two reservations holding one
            # id made describe-instances fail with moto's IndexError, a 500).
            for rid, reservation in list(ec2.reservations.items()):
                gone = [i for i in reservation.instances if i is not machine and i.id == inst.instance_id]
                for old in gone:
                    for nic in list(getattr(old, "nics", {}).values()):
                        ec2.enis.pop(nic.id, None)  # its network interfaces went with it
                reservation.instances = [i for i in reservation.instances if i not in gone]
                if not reservation.instances:
                    del ec2.reservations[rid]
            machine.id = inst.instance_id
            machine.nics[0].private_ip_address = inst.private_ip

    def register_external_instance(self, cluster: str,
                                   managed_instance_id: str | None = None) -> tuple[str, str]:
        """An ECS Anywhere instance joins `cluster`: (managed instance id, container instance ARN).

        On AWS the host is activated with SSM (`mi-` + 17 hex digits) and its ECS agent registers
        it without an EC2 identity; it has no IMDS. Embedded moto only (LocalStack runs its own
        registration)."""
        if self.kind != "moto":
            raise ControlPlaneError(
                "external instances are registered on the embedded moto control plane only")
        mid = managed_instance_id or "mi-" + uuid.uuid4().hex[:17]
        if not (mid.startswith("mi-") and len(mid) == 20 and all(c in "0123456789abcdef" for c in mid[3:])):
            raise ValueError(f"a managed instance id is 'mi-' and 17 hex digits, not {mid!r}")
        self.ensure_cluster(cluster)
        with ECS_LOCK:
            arn = MotoEcs(self.region).register_external(cluster, mid)
        self._own_instances[arn] = cluster
        return mid, arn

    def deregister_instance(self, world: World, inst: ContainerInstance) -> None:
        self._own_instances.pop(inst.arn or "", None)
        self.clients.ecs.deregister_container_instance(cluster=world.cluster.name,
                                                       containerInstance=inst.arn, force=True)

    def report_health(self, task_arn: str, container_health: dict[str, str], essential: set[str]) -> None:
        """Container health from an instance agent into describe-tasks (embedded moto only: LocalStack
        runs its own tasks)."""
        if self.kind != "moto":
            return
        with ECS_LOCK:
            MotoEcs(self.region).set_health(task_arn, container_health, essential)

    def report_eni_address(self, task_arn: str, address: str) -> None:
        """An awsvpc task's address on its instance, as the backend gave it: the task's ENI is made
        with it and attached (`MotoEcs.attach_eni`; embedded moto only: LocalStack runs its own
        tasks)."""
        if self.kind != "moto":
            return
        with ECS_LOCK:
            MotoEcs(self.region).attach_eni(task_arn, address)

    def on_assignments(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` whenever a task is placed or asked to stop: ECS pushes assignments to
        its agents (ACS), so they act at once. Embedded moto only; LocalStack's pushes do not reach
        the lab, whose instance agents then poll. Returns the unsubscribe callable."""
        if self.kind != "moto":
            return lambda: None
        return ASSIGNMENTS.subscribe(listener)

    def reconcile_services(self) -> None:
        """Run one service-scheduler pass now (tests and benchmarks; the loop runs anyway)."""
        if self.service_scheduler:
            self.service_scheduler.reconcile()


__all__ = ["ControlPlane", "ControlPlaneError", "DEFAULT_PORT", "LOCALSTACK_IMAGE"]
