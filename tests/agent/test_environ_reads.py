"""A container's environment read from /proc while its entryPoint execs.

Linux answers /proc/<pid>/environ with nothing (no error) while the process is in the middle of an
execve, the moment an `sh -c '...; exec app'` entryPoint passes through at its start. The logs
agent read the app's DD_SERVICE at that moment once and sent every line of it under its image name
(`service:lab`); the ECS awareness kept such a read for the process's whole life, so the process
was never mapped to its container. Both now read again later. The empty read is played here by
making psutil's first read of the container's process answer {} (the race itself is a
microseconds-wide window, not something a test can hit on demand).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
import pytest

from lab.agent.config import AgentConfig
from lab.agent.ecs import EcsAwareness, process_environ
from lab.agent.ecs_tags import ContainerTags
from lab.agent.logs import LogsAgent, _container_env

URI = "http://127.0.0.1:9/v4/c1"
DOCKER_ID = "c1" * 32


@pytest.fixture
def container(tmp_path):
    """A real process standing for a container: its stdout is its log file, its environment the
    task definition's."""
    log_path = tmp_path / "app.log"
    env = {"PATH": os.environ["PATH"], "DD_SERVICE": "web", "DD_ENV": "lab",
           "ECS_CONTAINER_METADATA_URI_V4": URI}
    with open(log_path, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _first_read_empty(monkeypatch, pid: int) -> list[int]:
    """psutil's environ() answers {} for `pid` once, as in the middle of an exec; counts the reads."""
    reads = [0]
    real = psutil.Process.environ

    def environ(self):
        if self.pid == pid:
            reads[0] += 1
            if reads[0] == 1:
                return {}
        return real(self)
    monkeypatch.setattr(psutil.Process, "environ", environ)
    return reads


class _Containers:
    def __init__(self, pid: int) -> None:
        self.pid = pid

    def known_containers(self):
        tags = ContainerTags(docker_id=DOCKER_ID, name="app", task_arn="arn:task/1",
                             image="ecs-agent-lab/lab:latest", high=[f"container_id:{DOCKER_ID}"])
        return {DOCKER_ID: (tags, [self.pid])}


def test_an_empty_environment_is_not_an_answer(container, monkeypatch):
    assert process_environ(container.pid)["DD_SERVICE"] == "web"
    _first_read_empty(monkeypatch, container.pid)
    assert process_environ(container.pid) is None
    assert process_environ(container.pid)["DD_SERVICE"] == "web"
    assert process_environ(2 ** 22 + 12345) is None, "no such process"


def test_the_logs_agent_takes_the_service_from_a_later_read_not_the_image_name(container, monkeypatch):
    reads = _first_read_empty(monkeypatch, container.pid)
    agent = LogsAgent(AgentConfig.from_env({"DD_API_KEY": "a" * 32, "DD_LOGS_ENABLED": "true",
                                            "DD_LOGS_CONFIG_CONTAINER_COLLECT_ALL": "true"}),
                      "i-1", _Containers(container.pid))
    deadline = time.monotonic() + 10
    while DOCKER_ID not in agent.tailers and time.monotonic() < deadline:
        agent._schedule()
    assert reads[0] >= 2, "the empty read was not taken as the container's environment"
    tailer = agent.tailers[DOCKER_ID]
    assert tailer.service == "web", "DD_SERVICE names the service, not the image (`lab`)"
    assert "env:lab" in tailer.tags and "service:web" in tailer.tags


def test_a_gone_containers_lines_still_get_the_image_name():
    # Every process of the container is gone: nothing to wait for, the image name decides.
    proc = subprocess.Popen([sys.executable, "-c", "pass"], env={"PATH": os.environ["PATH"]})
    proc.wait()
    assert _container_env([proc.pid]) == {}


def test_the_ecs_awareness_maps_a_process_read_empty_once(container, monkeypatch):
    ecs = EcsAwareness(AgentConfig.from_env({"DD_API_KEY": "a" * 32, "DD_ECS_AGENT_URL": "http://127.0.0.1:9"}))
    monkeypatch.setattr(ecs, "_docker_metadata_uris", lambda: [])
    _first_read_empty(monkeypatch, container.pid)
    first = ecs._container_metadata_uris()
    assert container.pid not in first.get(URI, [])
    second = ecs._container_metadata_uris()
    assert container.pid in second.get(URI, []), "the process is read again, and mapped"
