"""A lab stopped while a task start is in flight (Ctrl-C during the deploy: the instance agents
start each task on a thread of their own): the start gives up, saying why, and nothing it made
outlives the lab."""

from __future__ import annotations

import threading

import psutil
import pytest

from lab.assembly import EcsLab
from lab.pytest_plugin import free_subnet
from lab.stack import Ports, Stack
from lab.tasks import LAB_IMAGE, ContainerSpec, LabStopping, StartGate
from lab.world import Container, Task
from tests.backends.held_start import start_across_stop


def test_a_closed_gate_refuses_a_start_and_a_start_in_flight_fails_at_its_next_check():
    gate = StartGate()
    with gate.starting("task a"):
        assert gate.in_flight == 1
        gate.close()
        with pytest.raises(LabStopping, match="task a: the lab is stopping"):
            gate.check("task a")
    assert gate.in_flight == 0
    with pytest.raises(LabStopping, match="task b: the lab is stopping"):
        with gate.starting("task b"):
            pass


def test_what_a_start_meets_once_the_lab_stops_is_the_stop_not_its_failure():
    gate = StartGate()
    with pytest.raises(RuntimeError, match="no such container") as raised:
        with gate.starting("task a"):
            raise RuntimeError("no such container")
    assert not isinstance(raised.value, LabStopping)  # the gate open: the task's own failure
    with pytest.raises(LabStopping, match=r"task a: the lab is stopping \(no such container\)"):
        with gate.starting("task a"):
            gate.close()
            raise RuntimeError("no such container")


def test_drain_waits_for_the_starts_in_flight_and_says_how_many_outlived_it():
    gate = StartGate()
    entered, leave = threading.Event(), threading.Event()

    def start() -> None:
        with gate.starting("task a"):
            entered.set()
            leave.wait(30)

    t = threading.Thread(target=start, daemon=True)
    t.start()
    assert entered.wait(10)
    assert gate.drain(timeout=0.05) == 1 and gate.closed
    leave.set()
    assert gate.drain(timeout=10) == 0
    t.join(10)


def test_a_local_start_in_flight_when_the_backend_stops_starts_no_process(tmp_path, monkeypatch):
    """Held before its first container until the backend's stop has begun (the stop's look at its
    tasks cannot see it yet): the start must not run a process afterwards, which nothing would stop."""
    import lab.backends.local as local

    subnet = free_subnet()
    stack = Stack(subnet=subnet, services_host=f"{subnet}.0.1", ports=Ports.ephemeral(), apps=(),
                  run_dir=tmp_path / "run", deploy=False)
    reached, go = threading.Event(), threading.Event()
    dependency_order = local._dependency_order

    def held(specs):
        reached.set()
        go.wait(60)
        return dependency_order(specs)

    monkeypatch.setattr(local, "_dependency_order", held)
    lab = EcsLab(stack, backend="local")
    task = Task(family="held", revision=1, containers=[Container(name="web", image=LAB_IMAGE)])
    try:
        lab.start()
        backend = lab.backend
        spec = ContainerSpec("web", LAB_IMAGE, entry_point=["sh", "-c", "exec sleep 300"])
        error = start_across_stop(backend,
                                  lambda: backend.start_task(backend.world.instance(1), task, [spec]),
                                  lab.stop, reached=reached, go=go, held_at="its first container",
                                  timeout=60, stop_timeout=90)
        pid = task.container("web").pid
        alive = pid is not None and psutil.pid_exists(pid) and \
            psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        assert not alive, f"the task's process {pid} outlived its lab"
        assert isinstance(error, LabStopping), error
        assert "the lab is stopping" in str(error)
    finally:
        go.set()
        pid = task.container("web").pid
        if pid and psutil.pid_exists(pid):
            psutil.Process(pid).kill()
        lab.stop()
