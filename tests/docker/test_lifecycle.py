"""Ownership: what the backend creates carries lab labels and is gone after exit."""

from __future__ import annotations

import contextlib
import threading

import pytest

from lab.backends import images
from lab.stack import Stack
from lab.world import wait_until

pytestmark = pytest.mark.docker


def test_missing_engine_fails_with_a_way_to_get_one(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(images.DockerUnavailable, match="docker-engine.sh"):
        images.docker_client(timeout=2)


def test_exit_removes_every_container_and_network(tmp_path):
    from lab.backends.docker import DockerBackend

    client = images.docker_client()
    with DockerBackend(Stack(run_dir=tmp_path)) as backend:
        run = f"ecs-agent-lab.run={backend.run_id}"
        assert client.api.containers(filters={"label": run})
        assert client.api.networks(filters={"label": run})
        # The networks and the services are testcontainers objects, which keep the lab's labels.
        testcontainers_made = [run, "org.testcontainers=true"]
        services = {c["Labels"]["ecs-agent-lab.role"]
                    for c in client.api.containers(filters={"label": testcontainers_made})}
        assert {"imds", "services"} <= services, services
        networks = {n["Name"] for n in client.api.networks(filters={"label": testcontainers_made})}
        assert {"ecs-lab-linklocal", "ecs-lab-lab", "ecs-lab-instance1"} <= networks, networks
    assert client.api.containers(all=True, filters={"label": run}) == []
    assert client.api.networks(filters={"label": run}) == []


def test_failure_during_start_leaves_nothing(tmp_path):
    from lab.backends.docker import DockerBackend

    client = images.docker_client()
    backend = DockerBackend(Stack(run_dir=tmp_path, apps=()), agent_image="ecs-lab-test/no-such-agent:0",
                            pull=False)
    with pytest.raises(images.ImageBuildError, match="docker load"):
        backend.__enter__()
    assert client.api.containers(all=True, filters={"label": f"ecs-agent-lab.run={backend.run_id}"}) == []


def _ecs_lab(*args: str, env: dict):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "lab.cli", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def test_down_all_sweeps_what_a_crashed_docker_run_left(tmp_path):
    import os
    import socket

    from lab.backends.docker_topology import LABEL, RUN_LABEL

    client = images.docker_client()
    crashed = f"{socket.gethostname()}-{2**22 + 7}-dead00"  # an owner pid that cannot exist
    net = client.networks.create(f"ecs-lab-crashed-{os.getpid()}", internal=True,
                                 labels={LABEL: "1", RUN_LABEL: crashed})
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
        env["LAB_HOME"] = str(tmp_path / "home")
        out = _ecs_lab("down", "--all", env=env)
        assert out.returncode == 0, out.stderr
        assert client.api.networks(filters={"label": f"{RUN_LABEL}={crashed}"}) == [], out.stdout
        assert "left by crashed runs" in out.stdout
    finally:
        with contextlib.suppress(Exception):
            net.remove()


def test_down_all_without_a_docker_engine_still_succeeds(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
    env.update(LAB_HOME=str(tmp_path / "home"), DOCKER_HOST=f"unix://{tmp_path}/no-engine.sock")
    out = _ecs_lab("down", "--all", env=env)
    assert out.returncode == 0, out.stderr
    assert "no lab is running" in out.stdout


OWNER = """
import sys, time
from pathlib import Path
from lab.backends.docker import DockerBackend
from lab.stack import Stack

backend = DockerBackend(Stack(run_dir=Path(sys.argv[1]), apps=())).start()
Path(sys.argv[2]).write_text(backend.run_id)
time.sleep(600)  # until the test kills this owner
"""


def test_an_owner_killed_with_sigkill_leaves_no_container_or_network(tmp_path):
    """No teardown runs in an owner killed with SIGKILL (or cut by xdist's os._exit): its watcher
    removes the run's containers and networks (lab/reaper.py), not the next lab's start."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from lab.world import wait_until

    client = images.docker_client()
    script, out = tmp_path / "owner.py", tmp_path / "run_id"
    script.write_text(OWNER)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")])
    owner = subprocess.Popen([sys.executable, str(script), str(tmp_path / "run"), str(out)], env=env)
    try:
        wait_until(lambda: out.exists() and out.read_text().strip() or owner.poll() is not None, timeout=300,
                   what="the owner's docker lab")
        assert owner.poll() is None, f"the owner's lab did not start (exit {owner.returncode})"
        run = f"ecs-agent-lab.run={out.read_text().strip()}"
        assert client.api.containers(filters={"label": run}), "the lab runs before its owner dies"
        owner.kill()
        owner.wait(10)
        wait_until(lambda: not client.api.containers(all=True, filters={"label": run})
                   and not client.api.networks(filters={"label": run}),
                   timeout=90, what=f"the watcher to remove {run}'s containers and networks")
    finally:
        owner.kill()
        owner.wait(10)


def test_a_task_start_in_flight_when_the_backend_stops_leaves_nothing(tmp_path, monkeypatch):
    """Ctrl-C during a lab's deploy: the instance agents' task starts run on their own threads and
    can still be creating containers while the backend stops. Here one start is held just before it
    creates its host port forwarder (a host-network container, so no removed network stops it) until
    the backend's stop has begun; the stop must not leave that start's containers behind, and the
    start must fail saying why."""
    from lab.backends.docker import DockerBackend
    from lab.tasks import LAB_IMAGE, ContainerSpec, PortSpec
    from lab.world import Container, Task
    from tests.backends.held_start import start_across_stop

    client = images.docker_client()
    backend = DockerBackend(Stack(run_dir=tmp_path, instances=1, apps=()))
    run = f"ecs-agent-lab.run={backend.run_id}"
    reached, go = threading.Event(), threading.Event()
    publish_ports = DockerBackend._publish_ports

    def held(self, running, specs):
        reached.set()
        go.wait(120)
        return publish_ports(self, running, specs)

    monkeypatch.setattr(DockerBackend, "_publish_ports", held)
    try:
        backend.start()
        spec = ContainerSpec(name="web", image=LAB_IMAGE, entry_point=[], command=["sleep", "600"],
                             ports=[PortSpec(container_port=8080, host_port=18080)])
        task = Task(family="held", revision=1, network_mode="bridge",
                    containers=[Container(name="web", image=LAB_IMAGE)])

        error = start_across_stop(backend,
                                  lambda: backend.start_task(backend.world.instance(1), task, [spec]),
                                  backend.stop, reached=reached, go=go, held_at="its port forwarder",
                                  timeout=120, stop_timeout=120)
        assert client.api.containers(all=True, filters={"label": run}) == []
        assert client.api.networks(filters={"label": run}) == []
        assert "the lab is stopping" in str(error), error
    finally:
        go.set()
        from lab.backends.docker import sweep

        sweep(client, run_id=backend.run_id)


def test_an_interrupt_during_the_deploy_leaves_no_container_or_network(tmp_path, monkeypatch):
    """Ctrl-C while the lab deploys (what `ecs-lab up` or a pytest session gets): the interrupt ends
    the wait for the tasks while the agent's and the app's starts are still held on their instance
    agent's threads, slow as on a loaded machine; the lab stops, and once everything has settled no
    container or network of its run is left, and no start counts as a task that failed to start."""
    from lab.assembly import EcsLab
    from lab.backends.docker import DockerBackend

    client = images.docker_client()
    reached = threading.Event()
    publish_ports = DockerBackend._publish_ports

    def held(self, running, specs):
        reached.set()
        # Until the lab stops, or for longer than the instance agents wait for their starts (30 s
        # each) and the backend takes to stop, for a lab that never says it is stopping.
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: getattr(self, "stopping", False), 100, what="the lab to stop")
        return publish_ports(self, running, specs)

    agents: list = []

    def interrupted(self, *args, **kwargs):
        assert reached.wait(300), "no task start reached its port forwarder"
        agents.extend(self.cluster.agents.values())
        raise KeyboardInterrupt

    monkeypatch.setattr(DockerBackend, "_publish_ports", held)
    monkeypatch.setattr(EcsLab, "wait_deployed", interrupted)
    lab = EcsLab(Stack(run_dir=tmp_path, instances=1, apps=("imdsv1",)), backend="docker")
    run = f"ecs-agent-lab.run={lab.backend.run_id}"
    try:
        with pytest.raises(KeyboardInterrupt):
            lab.__enter__()
        # The instance agents' start threads are daemons: what they still do is waited for here.
        wait_until(lambda: not [t for t in threading.enumerate() if t.name.startswith("ecs-instance-agent")],
                   180, what="the instance agents' threads to end")
        assert client.api.containers(all=True, filters={"label": run}) == []
        assert client.api.networks(filters={"label": run}) == []
        assert agents and not [f for agent in agents for f in agent.failures]
    finally:
        from lab.backends.docker import sweep

        sweep(client, run_id=lab.backend.run_id)
