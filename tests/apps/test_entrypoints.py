"""The DD_AGENT_HOST lines are the docs' lines (one change: the metadata host), the task definition
files are what `register-task-definition` accepts and what the code generates, and the in-code
resolution behaves like the SDKs (token first, tokenless fallback, clear errors)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import botocore.session
import pytest
from botocore.validate import validate_parameters
from click.testing import CliRunner

import lab.apps.entrypoints as ep
from lab.apps.cli import app as app_cli
from lab.tasks import LAB_IMAGE

TASKDEFS = Path(ep.__file__).parent / "taskdefs"

# The docs' lines (docs.datadoghq.com/containers/amazon_ecs/apm, the task definition examples),
# JSON string escapes removed, up to the start command placeholder.
DOCS_LINES = {
    "imdsv1": "export DD_AGENT_HOST=$(curl http://169.254.169.254/latest/meta-data/local-ipv4);",
    "imdsv2": ('export TOKEN=$(curl -X PUT "http://169.254.169.254/latest/api/token" -H '
               '"X-aws-ec2-metadata-token-ttl-seconds: 21600"); export DD_AGENT_HOST=$(curl -H '
               '"X-aws-ec2-metadata-token: $TOKEN" http://169.254.169.254/latest/meta-data/local-ipv4);'),
    "metadata_file": "cat $ECS_CONTAINER_METADATA_FILE | jq -r .HostPrivateIPv4Address",
}


@pytest.mark.parametrize("variant", ["imdsv1", "imdsv2"])
def test_imds_lines_are_the_docs_lines_with_only_the_metadata_host_changed(variant):
    line = ep.shell_line(variant)
    assert "169.254" not in line, "the lab's lines never name the real metadata address"
    on_ec2 = line.replace("$AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://169.254.169.254")
    assert on_ec2 == f"{DOCS_LINES[variant]} {ep.APP_COMMAND}"


def test_metadata_file_line_exports_the_docs_command():
    assert ep.shell_line("metadata_file") == (
        f"export DD_AGENT_HOST=$({DOCS_LINES['metadata_file']}); {ep.APP_COMMAND}")


def test_entry_points_are_sh_c_and_in_code_has_only_a_command():
    for variant in ("imdsv1", "imdsv2", "metadata_file"):
        assert ep.entry_point(variant) == ["sh", "-c", ep.shell_line(variant)]
        assert ep.container_command(variant) is None
    assert ep.entry_point("in_code") is None
    assert ep.container_command("in_code") == ["python", "-m", "lab.apps", "web", "--agent-host-from", "imds"]
    with pytest.raises(ValueError, match="known: imdsv1"):
        ep.entry_point("imdsv3")


@pytest.mark.parametrize("variant", ep.VARIANTS)
def test_task_definition_file_is_valid_register_task_definition_input(variant):
    doc = json.loads((TASKDEFS / f"{variant}.json").read_text())
    shape = botocore.session.get_session().get_service_model("ecs") \
        .operation_model("RegisterTaskDefinition").input_shape
    validate_parameters(doc, shape)  # raises ParamValidationError listing every problem
    (container,) = doc["containerDefinitions"]
    assert container["image"] == LAB_IMAGE
    env = {e["name"]: e["value"] for e in container["environment"]}
    assert {"DD_SERVICE", "DD_ENV", "DD_VERSION", "AWS_EC2_METADATA_SERVICE_ENDPOINT"} <= set(env)
    assert container["portMappings"] == [{"containerPort": ep.APP_PORT, "protocol": "tcp"}]
    assert container.get("entryPoint") == ep.entry_point(variant)
    assert container.get("command") == ep.container_command(variant)


def test_task_definition_files_are_what_the_code_generates():
    # The files are for users to copy; the code is the source. `ecs-lab app taskdef V > file` rewrites.
    assert sorted(p.stem for p in TASKDEFS.glob("*.json")) == sorted(ep.VARIANTS)
    for variant in ep.VARIANTS:
        assert (TASKDEFS / f"{variant}.json").read_text() == ep.task_definition_json(variant), variant


def test_bad_task_definition_is_caught_by_the_validator():
    # Proves the validation above can fail: a misspelt key is rejected.
    doc = ep.task_definition("imdsv1")
    doc["containerDefinitions"][0]["entrypoint"] = doc["containerDefinitions"][0].pop("entryPoint")
    shape = botocore.session.get_session().get_service_model("ecs") \
        .operation_model("RegisterTaskDefinition").input_shape
    with pytest.raises(Exception, match="entrypoint"):
        validate_parameters(doc, shape)


def test_cli_shows_the_lines_and_task_definitions():
    runner = CliRunner()
    res = runner.invoke(app_cli, ["entrypoint", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["imdsv2"]["entryPoint"] == ep.entry_point("imdsv2")
    res = runner.invoke(app_cli, ["entrypoint", "imdsv1"])
    assert res.output.strip() == ep.shell_line("imdsv1")
    res = runner.invoke(app_cli, ["taskdef", "in_code"])
    assert res.output == ep.task_definition_json("in_code")


def test_missing_metadata_endpoint_is_refused_with_the_reason():
    with pytest.raises(ep.AgentHostError, match="never falls back to http://169.254.169.254"):
        ep.require_metadata_endpoint({})
    assert ep.require_metadata_endpoint({ep.METADATA_ENDPOINT_ENV: "http://127.0.1.1:1338/"}) == \
        "http://127.0.1.1:1338"


@pytest.mark.parametrize("value", ["", "null"])
def test_empty_agent_host_after_the_line_is_an_error_naming_the_inputs(value, monkeypatch):
    monkeypatch.setattr(ep.shutil, "which", lambda tool: None if tool == "jq" else "/usr/bin/" + tool)
    env = {ep.METADATA_ENDPOINT_ENV: "http://127.0.1.1:1338", "DD_AGENT_HOST": value,
           ep.METADATA_FILE_ENV: "/nowhere.json"}
    with pytest.raises(ep.AgentHostError, match=r"/nowhere\.json.*not installed here: jq"):
        ep.require_agent_host(env)


def _imds_instance(instance):
    return instance.world.instance(1)


def test_in_code_fetch_uses_a_token(instance):
    instance.imds.model.set_policy(_imds_instance(instance).instance_id, tokens_required=True)
    assert ep.fetch_local_ipv4(instance.imds_url) == instance.private_ip
    assert instance.imds.model.stats.count(path="/latest/api/token", method="PUT", status=200) == 1


def test_in_code_fetch_falls_back_to_v1_when_the_token_call_is_refused(instance):
    instance.imds.model.faults.add(path="/latest/api/token", method="PUT", status=404)
    assert ep.fetch_local_ipv4(instance.imds_url) == instance.private_ip
    assert instance.imds.model.stats.count(path="/latest/meta-data/local-ipv4", status=200) == 1


def test_in_code_fetch_reports_a_failing_imds(instance):
    instance.imds.model.faults.add(path="/latest/api/token", status=500)
    with pytest.raises(ep.AgentHostError, match="HTTP 500"):
        ep.fetch_local_ipv4(instance.imds_url)


def test_in_code_fetch_reports_an_unreachable_imds():
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ep.AgentHostError, match="unreachable"):
        ep.fetch_local_ipv4(f"http://127.0.0.1:{port}")


@pytest.mark.parametrize("override", ["DD_TRACE_AGENT_URL", "DD_DOGSTATSD_URL"])
def test_an_agent_url_that_would_bypass_the_variant_is_refused(override, monkeypatch):
    from lab.apps.web import resolve_agent_host

    monkeypatch.setenv(ep.METADATA_ENDPOINT_ENV, "http://127.0.1.1:1338")
    monkeypatch.setenv("DD_AGENT_HOST", "127.0.1.1")
    monkeypatch.setenv(override, "http://127.0.0.1:8126")
    with pytest.raises(ep.AgentHostError, match=f"{override} is set"):
        resolve_agent_host("env")
    monkeypatch.delenv(override)
    assert resolve_agent_host("env") == "127.0.1.1"


def test_on_fargate_an_unset_agent_host_is_the_sidecar_on_localhost():
    """Datadog's ECS Fargate docs set no DD_AGENT_HOST: the tracer's default, localhost, is the agent
    sidecar in the task's namespace; and a Fargate task has no IMDS endpoint to require."""
    assert ep.require_agent_host({"AWS_EXECUTION_ENV": "AWS_ECS_FARGATE"}) == "localhost"
    # Elsewhere the same environment is still refused (bridge mode: localhost is the app itself).
    with pytest.raises(ep.AgentHostError):
        ep.require_agent_host({"AWS_EXECUTION_ENV": "AWS_ECS_EC2"})
