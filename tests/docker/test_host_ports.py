"""Host ports of bridge-mode tasks on the docker backend: a dynamic port is one this host does not
hold, as the ECS agent checks it (docs/docker_backend.md#dynamic-host-ports)."""

from __future__ import annotations

import contextlib
import socket
import urllib.request
import uuid

import pytest

from lab.backends import images
from lab.stack import Stack
from lab.world import wait_until

pytestmark = pytest.mark.docker

INSTANCE_IP = "172.30.1.1"


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    from lab.backends.docker import DockerBackend

    backend = DockerBackend(Stack(run_dir=tmp_path_factory.mktemp("host-ports"), instances=1, apps=()))
    try:
        backend.start()
        yield backend
    finally:
        backend.stop()


def _web_task(host_port: int | None = None):
    """A bridge task whose container serves HTTP on 8080, published on `host_port` (None: dynamic)."""
    from lab.tasks import LAB_IMAGE, ContainerSpec, PortSpec
    from lab.world import Container, Task

    spec = ContainerSpec(name="web", image=LAB_IMAGE, entry_point=[],
                         command=["python", "-m", "http.server", "8080"],
                         ports=[PortSpec(container_port=8080, host_port=host_port)])
    task = Task(family=f"web-{uuid.uuid4().hex[:6]}", revision=1, network_mode="bridge",
                containers=[Container(name="web", image=LAB_IMAGE)])
    return task, [spec]


def _served(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{INSTANCE_IP}:{port}/", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def _forwarders(task) -> list[dict]:
    labels = [f"com.amazonaws.ecs.task-arn={task.arn}", "ecs-agent-lab.role=host-ports"]
    return images.docker_client().api.containers(all=True, filters={"label": labels})


def _next_free(backend, count: int) -> list[int]:
    """The next `count` dynamic ports the backend would give on instance 1 as things stand (a port
    an earlier test left in TIME_WAIT is skipped); the counter is moved to the first of them."""
    from lab.backends.docker import host_port_free

    port, found = backend._next_host_port.get(1, 32768), []
    while len(found) < count:
        if host_port_free(INSTANCE_IP, port, "tcp"):
            found.append(port)
        port += 1
    backend._next_host_port[1] = found[0]
    return found


@contextlib.contextmanager
def _held(port: int, how: str):
    """This host holding INSTANCE_IP:port: a listener, or a connection it closed (TIME_WAIT)."""
    with socket.create_server((INSTANCE_IP, 0)) as server:
        if how == "listener":
            with socket.create_server((INSTANCE_IP, port)):
                yield
            return
        client = socket.socket()
        client.bind((INSTANCE_IP, port))
        client.connect(server.getsockname())
        accepted, _ = server.accept()
        client.close()  # the client side closes first: its port stays in TIME_WAIT for 60 s
        accepted.close()
        yield


def test_a_dynamic_host_port_skips_the_ports_this_host_holds(backend):
    """The CI failure: the next dynamic port was the source port of one of this host's own
    connections, still in TIME_WAIT; the forwarder could not bind it and the task failed."""
    first, second = _next_free(backend, 2)
    task, specs = _web_task()
    with _held(first, "time_wait"), _held(second, "listener"):
        backend.start_task(backend.world.instance(1), task, specs)
    try:
        (mapping,) = task.container("web").ports
        assert mapping.host_port not in (first, second)
        assert 32768 <= mapping.host_port <= 60999
        assert (mapping.host_ip, mapping.container_port) == (INSTANCE_IP, 8080)
        wait_until(lambda: _served(mapping.host_port), 30, interval=0.2,
                   what=f"the web container through {INSTANCE_IP}:{mapping.host_port}")
    finally:
        backend.stop_task(task.arn)


def test_a_dynamic_port_taken_after_its_check_gets_a_new_forwarder(backend, monkeypatch):
    """Another socket can take the port between the check and the forwarder's bind: the forwarder
    says so, is removed, and the task's ports are picked again."""
    import lab.backends.docker as docker_backend

    checked: list[int] = []

    def check_says_free(ip, port, proto):  # the check passes: the race lost afterwards
        checked.append(port)
        return True

    (first,) = _next_free(backend, 1)
    monkeypatch.setattr(docker_backend, "host_port_free", check_says_free)
    task, specs = _web_task()
    with _held(first, "listener"):
        backend.start_task(backend.world.instance(1), task, specs)
        try:
            (mapping,) = task.container("web").ports
            assert checked[0] == first  # then the forwarder found it taken, and the next was picked
            assert len(checked) >= 2 and mapping.host_port == checked[-1] != first
            assert len(_forwarders(task)) == 1  # the one that lost the race is gone
            wait_until(lambda: _served(mapping.host_port), 30, interval=0.2,
                       what=f"the web container through {INSTANCE_IP}:{mapping.host_port}")
        finally:
            backend.stop_task(task.arn)
    assert _forwarders(task) == []


def test_a_fixed_host_port_held_elsewhere_fails_the_task_saying_so(backend):
    task, specs = _web_task(host_port=18181)
    with _held(18181, "listener"), pytest.raises(Exception) as failed:
        backend.start_task(backend.world.instance(1), task, specs)
    assert f"host port {INSTANCE_IP}:18181/tcp is in use" in str(failed.value)
    assert task.known_status == "STOPPED"
    assert _forwarders(task) == []
    assert images.docker_client().api.containers(
        all=True, filters={"label": f"com.amazonaws.ecs.task-arn={task.arn}"}) == []
