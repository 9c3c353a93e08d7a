"""The mistakes ECS users make in the agent's task definition, named with the field and the fix."""

from __future__ import annotations

import json
from pathlib import Path

from lab.ecs.diagnose import agent_findings, secrets_findings

TASKDEFS = Path(__file__).resolve().parents[2] / "lab" / "ecs" / "taskdefs"


def load(name):
    return json.loads((TASKDEFS / name).read_text())


def codes(td, **kw):
    return [f.code for f in agent_findings(td, **kw)]


def test_the_docs_full_definition_is_clean():
    assert codes(load("datadog-agent-ecs-full.json")) == []
    assert codes(load("datadog-agent-ecs-apm.json")) == []
    assert codes(load("datadog-agent-ecs-fips.json")) == []


def test_apm_enabled_without_8126_host_port():
    td = load("datadog-agent-ecs-apm.json")
    td["containerDefinitions"][0]["portMappings"] = [{"containerPort": 8126, "protocol": "tcp"}]
    (finding,) = agent_findings(td)
    assert finding.code == "apm_host_port" and "hostPort 8126/tcp" in finding.message
    assert finding.field.endswith("(datadog-agent).portMappings")


def test_dogstatsd_port_without_non_local_traffic():
    td = load("datadog-agent-ecs-dogstatsd.json")
    env = td["containerDefinitions"][0]["environment"]
    td["containerDefinitions"][0]["environment"] = [e for e in env
                                                    if e["name"] != "DD_DOGSTATSD_NON_LOCAL_TRAFFIC"]
    assert codes(td) == ["dogstatsd_non_local"]
    assert "DD_DOGSTATSD_NON_LOCAL_TRAFFIC=true" in str(agent_findings(td)[0])


def test_fips_sidecar_over_127_0_0_1_in_bridge_mode():
    td = load("datadog-agent-ecs-fips.json")
    del td["networkMode"]  # as the docs' fragment is usually pasted: bridge by default
    (finding,) = agent_findings(td)
    assert finding.code == "fips_bridge"
    assert "own 127.0.0.1" in finding.message and "networkMode host" in finding.message


def test_missing_secret_reason_becomes_a_finding():
    reason = ("ResourceInitializationError: unable to pull secrets or registry auth: execution resource "
              "retrieval failed: unable to retrieve secret from asm: ... ResourceNotFoundException")
    (finding,) = secrets_findings(reason)
    assert finding.code == "secret_missing" and reason in finding.message


def test_a_missing_execution_role_is_named_with_its_fix():
    reason = ("ResourceInitializationError: unable to pull secrets or registry auth: execution resource "
              "retrieval failed: ASM secret resource: unable to find execution role credentials")
    (finding,) = secrets_findings(reason)
    assert finding.code == "execution_role_missing" and finding.field == "executionRoleArn"
    assert "ecs-tasks.amazonaws.com" in finding.message and reason in finding.message
