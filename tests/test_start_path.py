"""One start path: every lab (the session lab, a `lab_with` stack, a docker lab and its agent
redeploy) gets its agent's environment from one module, `lab.ecs.agent_env`, through the control
plane. A redirect added there (here a new intake URL key) reaches the running agent on both backends
and on both kinds of stack, and no package reaches back into another."""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import pytest

from lab.assembly import EcsLab
from lab.ecs import agent_env
from lab.pytest_plugin import free_subnet
from lab.stack import AGENT_SERVICE, DEFAULT_FEATURES, Ports, Stack

NEW_KEY = "DD_SOME_NEW_FORWARDER_DD_URL"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def new_intake_key(monkeypatch):
    monkeypatch.setattr(agent_env, "INTAKE_URL_KEYS", (*agent_env.INTAKE_URL_KEYS, NEW_KEY))
    return NEW_KEY


def _local_stack(tmp_path: Path, **changes) -> Stack:
    subnet = free_subnet()
    return Stack(subnet=subnet, services_host=f"{subnet}.0.1", ports=Ports.ephemeral(), apps=(),
                 cluster=f"start-path-{subnet.replace('.', '-')}", run_dir=tmp_path / subnet, **changes)


def _agent_envs_local(lab: EcsLab) -> list[dict[str, str]]:
    backend = lab.backend
    out = []
    for inst in lab.world.instances:
        task = next(t for t in inst.tasks if t.service_name == AGENT_SERVICE and t.known_status == "RUNNING")
        running = backend.tasks[task.arn]
        out.extend(rc.env for rc in running.containers if rc.spec.name == "datadog-agent")
    return out


def test_a_new_redirect_reaches_the_agent_of_every_local_stack(new_intake_key, tmp_path):
    """The session-like lab and a second stack beside it (a `lab_with` stack: same control plane,
    its own cluster) both run agents whose env carries the new key, pointed at their own intake."""
    with EcsLab(_local_stack(tmp_path), backend="local") as first, \
            EcsLab(_local_stack(tmp_path, features=DEFAULT_FEATURES - {"dogstatsd_non_local"}),
                   backend="local") as second:
        assert first.control_plane is second.control_plane, "labs in one process share one control plane"
        assert first.world.cluster.name != second.world.cluster.name
        for lab in (first, second):
            envs = _agent_envs_local(lab)
            assert envs, "no running agent"
            # Its own intake: the listener standing for the agent's DD_SITE (the docs' datadoghq.com).
            assert {env["DD_SITE"] for env in envs} == {"datadoghq.com"}
            assert {env[new_intake_key] for env in envs} == {lab.backend.site_intake_urls["datadoghq.com"]}
        # Status tells the truth: ready while sound; not ready, saying why, once the control plane's
        # state lost the lab's cluster behind its back (what a wipe of moto's state does).
        assert first.status()["ready"] is True and first.status()["problems"] == []
        from lab.ecs.moto_model import ECS_LOCK, MotoEcs

        with ECS_LOCK:
            MotoEcs().backend.clusters.pop(second.world.cluster.name)
        status = second.status()
        assert status["ready"] is False, status["problems"]
        assert any(second.world.cluster.name in p and "missing" in p for p in status["problems"])
        # The registered task definition never holds the redirects (deploy-time only).
        ecs = first.control_plane.clients.ecs
        td = ecs.describe_task_definition(taskDefinition=first.deployment.agent_task_definition)
        names = {e["name"] for c in td["taskDefinition"]["containerDefinitions"]
                 for e in c.get("environment", [])}
        assert new_intake_key not in names and "DD_DD_URL" not in names


@pytest.mark.docker
def test_a_new_redirect_reaches_the_agent_container_and_its_redeploy_on_docker(new_intake_key, tmp_path):
    with EcsLab(Stack(apps=(), run_dir=tmp_path, ports=Ports.ephemeral()), backend="docker") as lab:
        api = lab.backend.client.api

        def container_env() -> dict[str, str]:
            task = lab.backend.agent_tasks[1]
            info = api.inspect_container(task.container("datadog-agent").docker_id)
            return dict(e.split("=", 1) for e in info["Config"]["Env"])

        # The intake listener standing for the agent's DD_SITE (the docs' datadoghq.com).
        site_url = lab.backend.topo.instance_endpoints(True).site_intake_urls["datadoghq.com"]
        assert container_env()[new_intake_key] == site_url
        # lab_with on docker: the agent service redeployed with other settings keeps the redirect.
        lab.redeploy_agent(replace(lab.stack, agent_env={"DD_ENV": "redeployed"}))
        env = container_env()
        assert env["DD_ENV"] == "redeployed" and env[new_intake_key] == site_url


def _imports(path: Path) -> set[str]:
    """Every `lab.*` module a file imports, lazy imports inside functions included."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lab"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("lab"))
    return found


def test_the_control_plane_and_the_backends_never_import_each_other():
    for package, forbidden in (("ecs", "lab.backends"), ("backends", "lab.ecs")):
        for path in sorted((ROOT / "lab" / package).rglob("*.py")):
            bad = sorted(m for m in _imports(path) if m == forbidden or m.startswith(forbidden + "."))
            assert not bad, f"{path.relative_to(ROOT)} imports {bad}: lab.{package} must not use {forbidden}"
        for path in sorted((ROOT / "lab" / package).rglob("*.py")):
            upward = sorted(m for m in _imports(path)
                            if m in ("lab.assembly", "lab.supervisor", "lab.commands", "lab.pytest_plugin"))
            assert not upward, f"{path.relative_to(ROOT)} imports {upward}, which sit above it"


def _writes_intake_urls(path: Path) -> bool:
    """Whether a file sets an agent intake URL: as a dict key, an env[...] assignment, or a list of
    the keys (reading them, as the emulated agent's config does, is not writing)."""
    keys = {"DD_DD_URL", "DD_APM_DD_URL", "DD_PROCESS_CONFIG_PROCESS_DD_URL"}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Dict) and any(isinstance(k, ast.Constant) and k.value in keys
                                              for k in node.keys):
            return True
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant) \
                        and target.slice.value in keys:
                    return True
        if isinstance(node, ast.Tuple) and len({e.value for e in node.elts if isinstance(e, ast.Constant)}
                                               & keys) >= 2:
            return True
    return False


# The serverless-compat launcher renames the env the lab gave the agent container into the binary's
# own setting names (it reads what agent_env wrote; it redirects nothing itself).
NOT_AGENT_ENV_WRITERS = {"lab/serverless_compat.py"}


def test_only_one_module_writes_the_agents_intake_redirects():
    writers = [p.relative_to(ROOT).as_posix() for p in sorted((ROOT / "lab").rglob("*.py"))
               if _writes_intake_urls(p)]
    assert sorted(set(writers) - NOT_AGENT_ENV_WRITERS) == ["lab/ecs/agent_env.py"], writers
