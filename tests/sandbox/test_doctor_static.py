"""`ecs-lab doctor TASKDEF.json`: each broken field of an agent task definition is named on the hop it
breaks, with the fix; the docs' full definition is clean (exit 0)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lab.ecs.stack_services import agent_task_definition
from lab.sandbox.cli import doctor
from lab.sandbox.doctor import static_findings
from lab.sandbox.target import container, set_env
from lab.stack import Stack


def _good() -> dict:
    td = agent_task_definition(Stack())
    return td


def _drop_host_ports(td):
    for pm in container(td, agent=True)["portMappings"]:
        pm.pop("hostPort")


def _secret_less(td):
    set_env(container(td, agent=True), "DD_API_KEY", None)


BREAKS = {
    "app-apm": _drop_host_ports,
    "app-dogstatsd": lambda td: set_env(container(td, agent=True), "DD_DOGSTATSD_NON_LOCAL_TRAFFIC", "false"),
    "agent-health": lambda td: container(td, agent=True)["healthCheck"].update(command=["CMD-SHELL", "true"]),
    "fips": lambda td: set_env(container(td, agent=True), "DD_FIPS_ENABLED", "true"),
    "agent-intake:processes": lambda td: set_env(
        container(td, agent=True), "DD_PROCESS_AGENT_ENABLED", "false"
    ),
    "agent-task": _secret_less,
    "app-agent-host": lambda td: td.update(networkMode="awsvpc"),
}


def test_the_stacks_own_definition_is_clean(tmp_path):
    path = tmp_path / "td.json"
    path.write_text(json.dumps(_good()))
    result = CliRunner().invoke(doctor, [str(path)])
    # The lab's definition mounts nothing (the local backend reads /proc directly): only mounts remain.
    hops = {h for h, _f in static_findings(_good())}
    assert hops <= {"agent-intake:processes"}, result.output
    assert result.exit_code == (1 if hops else 0)


@pytest.mark.parametrize("hop", list(BREAKS))
def test_each_broken_field_is_named_on_its_hop(tmp_path, hop):
    td = _good()
    BREAKS[hop](td)
    path = tmp_path / "td.json"
    path.write_text(json.dumps(td))
    result = CliRunner().invoke(doctor, [str(path)])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith(f"FAIL  {hop}:")]
    assert lines, result.output


def test_not_a_task_definition_is_a_clear_error(tmp_path):
    path = tmp_path / "td.json"
    path.write_text(json.dumps({"family": "x"}))
    result = CliRunner().invoke(doctor, [str(path)])
    assert result.exit_code != 0 and "no containerDefinitions" in result.output
