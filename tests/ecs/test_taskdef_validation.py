"""A bad task definition file gets the same error `aws ecs register-task-definition` gives."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lab.ecs import taskdef

# The aws CLI of this very environment (a shell `aws` may belong to another Python and botocore).
AWS_CLI = (sys.executable, "-m", "awscli")

TASKDEFS = Path(__file__).resolve().parents[2] / "lab" / "ecs" / "taskdefs"

BAD_FILES = {
    "unknown_keys": '{"family": "x", "nope": 2, "containerDefinitions": [{"name": "a", "image": "b", '
                    '"memory": 64, "bogus": 1}]}',
    "wrong_types": '{"family": "x", "containerDefinitions": [{"name": "a", "image": "b", "memory": "256", '
                   '"portMappings": [{"containerPort": 8126, "hostPort": "8126"}], '
                   '"environment": [{"name": "DD_APM_ENABLED", "value": true}]}]}',
    "invalid_json": '{"family": "x", "containerDefinitions": [}',
    "missing_family": '{"containerDefinitions": [{"name": "a", "image": "b", "memory": 64}]}',
}


def _cli_error(path: Path, env: dict[str, str]) -> str:
    # The CLI validates before it sends anything; the endpoint is a closed loopback port anyway.
    proc = subprocess.run(
        [*AWS_CLI, "--endpoint-url", "http://127.0.0.1:9", "ecs", "register-task-definition",
         "--cli-input-json", f"file://{path}"], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode != 0, proc.stdout
    return proc.stderr.strip()


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_gets_the_aws_cli_error_text(case, tmp_path, aws_env):
    path = tmp_path / f"{case}.json"
    path.write_text(BAD_FILES[case])
    with pytest.raises(taskdef.TaskDefinitionError) as err:
        taskdef.load(path)
    assert _model_independent(str(err.value).strip()) == _model_independent(_cli_error(path, aws_env))


def _model_independent(text: str) -> str:
    # The list of valid keys grows with the ECS service model, and the aws CLI may carry a newer
    # model than this environment's botocore (awscli >= 1.46 vendors its own): compare the rest.
    return re.sub(r"must be one of: [^\n]*", "must be one of: <the model's keys>", text)


def test_errors_name_every_bad_field(tmp_path):
    path = tmp_path / "td.json"
    path.write_text(BAD_FILES["wrong_types"])
    with pytest.raises(taskdef.TaskDefinitionError) as err:
        taskdef.load(path)
    assert err.value.fields == ["containerDefinitions[0].memory",
                                "containerDefinitions[0].portMappings[0].hostPort",
                                "containerDefinitions[0].environment[0].value"]
    path.write_text(BAD_FILES["unknown_keys"])
    with pytest.raises(taskdef.TaskDefinitionError) as err:
        taskdef.load(path)
    assert err.value.fields == ["nope", "containerDefinitions[0].bogus"]


def test_describe_output_pasted_back_is_refused_with_a_hint(tmp_path):
    td = json.loads((TASKDEFS / "datadog-agent-ecs.json").read_text())
    td.update({"taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/x:1", "revision": 1})
    path = tmp_path / "pasted.json"
    path.write_text(json.dumps(td))
    with pytest.raises(taskdef.TaskDefinitionError, match="describe-task-definition output"):
        taskdef.load(path)


def test_container_without_memory_is_refused_as_ecs_does():
    td = {"family": "x", "containerDefinitions": [{"name": "web", "image": "nginx"}]}
    with pytest.raises(taskdef.TaskDefinitionError,
                       match="At least one of 'memory' or 'memoryReservation' must be specified"):
        taskdef.validate(td)


@pytest.mark.parametrize("name", sorted(p.name for p in TASKDEFS.glob("*.json")))
def test_the_docs_agent_task_definitions_are_valid(name):
    td = taskdef.load(TASKDEFS / name)
    assert td["containerDefinitions"][0]["name"] == "datadog-agent"
