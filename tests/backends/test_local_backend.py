"""LocalBackend as a TaskRunner: ECS containers become process groups with the env ECS gives them."""

from __future__ import annotations

import json
import os
import time
import urllib.request

import psutil
import pytest

from lab.assembly import EcsLab
from lab.backends.local import UnknownImage
from lab.pytest_plugin import free_subnet
from lab.stack import Ports, Stack
from lab.tasks import LAB_IMAGE, ContainerSpec, HealthCheck
from lab.world import Container, Task, wait_until


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    subnet = free_subnet()
    stack = Stack(subnet=subnet, services_host=f"{subnet}.0.1", ports=Ports.ephemeral(), apps=(),
                  features=frozenset({"apm", "dogstatsd", "apm_non_local", "dogstatsd_non_local"}),
                  run_dir=tmp_path_factory.mktemp("run"), health_interval=0.3)
    with EcsLab(stack, backend="local") as lab:
        yield lab.backend


def _task(name: str, *containers: str) -> Task:
    return Task(family=name, revision=3, containers=[Container(name=c, image=LAB_IMAGE) for c in containers])


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _open(url: str) -> bytes:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=5) as resp:
        return resp.read()


def test_a_container_gets_the_env_ecs_gives_it_and_its_pid_goes_into_the_world(backend, tmp_path):
    out = tmp_path / "env.json"
    inst = backend.world.instance(1)
    task = _task("envdump", "web")
    line = f"python -c 'import json,os; json.dump(dict(os.environ), open(\"{out}\", \"w\"))'; exec sleep 300"
    backend.start_task(inst, task, [ContainerSpec("web", LAB_IMAGE, entry_point=["sh", "-c", line],
                                                  env={"DD_SERVICE": "envdump"})])
    try:
        env = wait_until(lambda: out.exists() and json.loads(out.read_text()), timeout=10, what="env dump")
        container = task.container("web")
        assert container.pid and container.known_status == "RUNNING"
        # A bridge-mode task reaches IMDS one hop further than the instance (docs/imds.md#hop-limit).
        assert env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] == (backend.imds_bridge_urls.get(1)
                                                            if task.network_mode == "bridge"
                                                            else backend.imds_urls[1])
        assert env["DD_SERVICE"] == "envdump"
        assert env["AWS_EXECUTION_ENV"] == "AWS_ECS_EC2"
        assert "HTTPS_PROXY" not in env and "AWS_ACCESS_KEY_ID" not in env
        # The metadata endpoints the env names really describe this container.
        task_md = json.loads(_open(env["ECS_CONTAINER_METADATA_URI_V4"] + "/task"))
        assert task_md["Family"] == "envdump" and task_md["Revision"] == "3"
        own = json.loads(_open(env["ECS_CONTAINER_METADATA_URI_V4"]))
        assert own["DockerId"] == container.docker_id
        meta_file = json.loads(open(env["ECS_CONTAINER_METADATA_FILE"]).read())
        assert meta_file["HostPrivateIPv4Address"] == inst.private_ip
        local_ipv4 = _open(env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] + "/latest/meta-data/local-ipv4").decode()
        assert local_ipv4 == inst.private_ip
    finally:
        backend.stop_task(task.arn)
    assert task.container("web").known_status == "STOPPED"
    assert _gone(container.pid)


def test_an_awsvpc_task_has_one_address_of_its_own_and_reaches_imds_unless_blocked(backend, tmp_path):
    """awsvpc on an instance (docs/awsvpc.md#on-the-local-backend): the task's containers share one
    address (its ENI), not the instance's nor another task's; the tracer's default localhost is that
    address; IMDS is one hop away, or unreachable with the ECS agent's ECS_AWSVPC_BLOCK_IMDS=true."""
    inst = backend.world.instance(1)

    def run(name: str) -> tuple[Task, dict[str, dict]]:
        task = Task(family=name, revision=1, network_mode="awsvpc",
                    containers=[Container(name=c, image=LAB_IMAGE) for c in ("a", "b")])
        dump = "python -c 'import json,os,sys; json.dump(dict(os.environ), open(sys.argv[1], \"w\"))'"
        specs = [ContainerSpec(c, LAB_IMAGE, entry_point=["sh", "-c", f"{dump} {tmp_path / name}-{c}.json; "
                                                          "exec sleep 300"]) for c in ("a", "b")]
        backend.start_task(inst, task, specs)
        def dumped(c: str) -> dict | None:
            try:
                return json.loads((tmp_path / f"{name}-{c}.json").read_text())
            except (OSError, ValueError):  # not written yet, or half written
                return None

        envs = {c: wait_until(lambda c=c: dumped(c), timeout=10, what=f"{name}/{c} env") for c in ("a", "b")}
        return task, envs

    first, envs = run("vpc-one")
    try:
        address = first.container("a").ipv4_addresses[0]
        assert first.container("b").ipv4_addresses == [address] and address != inst.private_ip
        assert envs["a"]["LAB_APP_BIND"] == envs["b"]["LAB_APP_BIND"] == address
        assert envs["a"]["DD_AGENT_HOST"] == address, "localhost in the task is the task's own namespace"
        assert envs["a"]["AWS_EC2_METADATA_SERVICE_ENDPOINT"] == backend.imds_urls[1], \
            "one hop from IMDS, as the instance itself"
        inst.awsvpc_block_imds = True
        second, blocked = run("vpc-two")
        try:
            other = second.container("a").ipv4_addresses[0]
            assert other not in (address, inst.private_ip)
            assert blocked["a"]["AWS_EC2_METADATA_SERVICE_ENDPOINT"] == f"http://{other}:9"
            with pytest.raises(OSError):
                _open(blocked["a"]["AWS_EC2_METADATA_SERVICE_ENDPOINT"] + "/latest/meta-data/local-ipv4")
        finally:
            backend.stop_task(second.arn)
    finally:
        inst.awsvpc_block_imds = False
        backend.stop_task(first.arn)


def test_an_unknown_image_is_refused_by_name(backend):
    task = _task("nginx", "web")
    with pytest.raises(UnknownImage, match="image 'nginx:1.27' cannot run on the local backend"):
        backend.start_task(backend.world.instance(1), task, [ContainerSpec("web", "nginx:1.27")])


def test_an_essential_container_exit_stops_the_task(backend):
    task = _task("essential", "main", "sidecar")
    specs = [ContainerSpec("main", LAB_IMAGE, entry_point=["sh", "-c", "exit 7"]),
             ContainerSpec("sidecar", LAB_IMAGE, entry_point=["sh", "-c", "exec sleep 300"], essential=False)]
    backend.start_task(backend.world.instance(1), task, specs)
    sidecar_pid = task.container("sidecar").pid
    wait_until(lambda: task.known_status == "STOPPED", timeout=10, what="the task to stop")
    assert task.container("main").exit_code == 7
    assert task.container("sidecar").known_status == "STOPPED"
    wait_until(lambda: _gone(sidecar_pid), timeout=10, what="the sidecar process to be gone")


def test_health_checks_run_on_their_interval_and_mark_health(backend, tmp_path):
    flag = tmp_path / "healthy"
    task = _task("health", "web")
    hc = HealthCheck(["CMD-SHELL", f"test -e {flag}"], interval=0.2, timeout=2, retries=2)
    backend.start_task(backend.world.instance(1), task,
                       [ContainerSpec("web", LAB_IMAGE, entry_point=["sh", "-c", "exec sleep 300"],
                                      health_check=hc)])
    try:
        container = task.container("web")
        wait_until(lambda: container.health_status == "UNHEALTHY", timeout=10, what="UNHEALTHY")
        flag.touch()
        wait_until(lambda: container.health_status == "HEALTHY", timeout=10, what="HEALTHY")
    finally:
        backend.stop_task(task.arn)


def test_health_checks_follow_docker_timing(backend, tmp_path):
    """As Docker runs ECS's checks: the first one interval after the start, then every interval,
    start period included; failures within the start period do not count towards `retries`."""
    runs = tmp_path / "runs"
    task = _task("timing", "web")
    hc = HealthCheck(["CMD-SHELL", f"date +%s.%N >> {runs}; false"], interval=0.5, timeout=2, retries=1,
                     start_period=5)
    started = time.time()
    backend.start_task(backend.world.instance(1), task,
                       [ContainerSpec("web", LAB_IMAGE, entry_point=["sh", "-c", "exec sleep 300"],
                                      health_check=hc)])
    try:
        container = task.container("web")

        def three_checks() -> list[float] | None:
            times = runs.read_text().split() if runs.exists() else []
            return [float(t) for t in times] if len(times) >= 3 else None

        checks = wait_until(three_checks, timeout=10, what="three health checks")
        assert checks[0] - started >= 0.45, "the first check ran before one interval had passed"
        assert checks[2] - started < 5, "no checks ran during the start period"
        in_start_period = time.time() < started + 5
        status = container.health_status
        if in_start_period:
            assert status == "UNKNOWN", "a failure within the start period counted"
        wait_until(lambda: container.health_status == "UNHEALTHY", timeout=10,
                   what="UNHEALTHY once the start period is over")
        assert time.time() - started >= 5
    finally:
        backend.stop_task(task.arn)


def test_the_agent_task_passes_the_docs_health_check(backend):
    agent = backend.agent_tasks[1].containers[0]
    wait_until(lambda: agent.health_status == "HEALTHY", timeout=20,
               what="the agent container's `agent health` check to pass")


def test_depends_on_healthy_waits_for_the_dependency(backend, tmp_path):
    order = tmp_path / "order"
    task = _task("deps", "proxy", "app")
    specs = [
        ContainerSpec("app", LAB_IMAGE, entry_point=["sh", "-c", f"echo app >> {order}; exec sleep 300"],
                      depends_on=[("proxy", "HEALTHY")]),
        ContainerSpec("proxy", LAB_IMAGE, entry_point=["sh", "-c", f"echo proxy >> {order}; exec sleep 300"],
                      health_check=HealthCheck(["CMD-SHELL", "true"], interval=0.2, timeout=2, retries=1)),
    ]
    backend.start_task(backend.world.instance(1), task, specs)
    try:
        wait_until(lambda: order.exists() and len(order.read_text().split()) == 2, timeout=10, what="both")
        assert order.read_text().split() == ["proxy", "app"]
        assert task.container("proxy").health_status == "HEALTHY"
    finally:
        backend.stop_task(task.arn)


def test_a_containers_temp_dir_is_its_own_and_goes_with_it(backend, tmp_path):
    """ddtrace leaves a file per traced process in its temp dir and never removes it: on the host's
    /tmp that is hundreds of files a day of scenarios. A container's temp dir is private to it and is
    removed when its task stops, as a container's /tmp goes with the container."""
    out = tmp_path / "tmp.json"
    inst = backend.world.instance(1)
    task = _task("tmpdir", "web")
    line = (f"python -c 'import json, os, tempfile, ddtrace; d = tempfile.gettempdir(); "
            f"json.dump({{\"tmp\": d, \"files\": os.listdir(d)}}, open(\"{out}\", \"w\"))'; exec sleep 300")
    backend.start_task(inst, task, [ContainerSpec("web", LAB_IMAGE, entry_point=["sh", "-c", line])])
    try:
        seen = wait_until(lambda: out.exists() and json.loads(out.read_text()), timeout=30, what="temp dir")
        tmp = seen["tmp"]
        assert tmp.startswith(str(backend.run_dir)), f"{tmp} is not the lab's"
        assert task.container("web").docker_id[:12] in tmp
        # What ddtrace's import left (its remote-config shared file) is there, not on the host's /tmp.
        assert seen["files"], f"ddtrace wrote nothing in {tmp}: this test no longer sees its litter"
        assert all(os.path.exists(os.path.join(tmp, f)) for f in seen["files"])
        code, env = backend.exec_in_container(task.arn, "web", ["sh", "-c", "echo $TMPDIR"])
        assert code == 0 and env.strip() == tmp, "docker exec runs in the container's temp dir too"
    finally:
        backend.stop_task(task.arn)
    assert not os.path.exists(tmp), f"{tmp} outlived its task"


def test_a_task_definitions_own_tmpdir_wins(backend, tmp_path):
    out = tmp_path / "tmpdir.txt"
    mine = tmp_path / "mine"
    mine.mkdir()
    inst = backend.world.instance(1)
    task = _task("owntmp", "web")
    script = f"echo $TMPDIR > {out}; exec sleep 300"
    backend.start_task(inst, task, [ContainerSpec("web", LAB_IMAGE, env={"TMPDIR": str(mine)},
                                                  entry_point=["sh", "-c", script])])
    try:
        seen = wait_until(lambda: out.exists() and out.read_text().strip(), timeout=10, what="TMPDIR")
        assert seen == str(mine)
    finally:
        backend.stop_task(task.arn)
    assert mine.is_dir(), "the lab removed a temp dir it did not make"
