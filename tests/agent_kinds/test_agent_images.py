"""Agent kinds by image name, what each offers, and the serverless-compat env mapping (no process)."""

from __future__ import annotations

import pytest

from lab.agent_images import (
    DATADOG,
    SERVERLESS_COMPAT,
    agent_kind,
    not_offered_reason,
    offers,
    serverless_compat_image,
    serverless_compat_version,
)
from lab.serverless_compat import APP_NAME_VAR, LaunchError, binary_env
from lab.tasks import is_agent_image


def test_kinds_by_image():
    assert agent_kind(serverless_compat_image()) == SERVERLESS_COMPAT
    assert serverless_compat_image() == f"ecs-agent-lab/agent-serverless-compat:{serverless_compat_version()}"
    assert agent_kind("ecs-agent-lab/agent-serverless-compat@sha256:" + "0" * 64) == SERVERLESS_COMPAT
    assert agent_kind("public.ecr.aws/datadog/agent:7") == DATADOG
    assert agent_kind("localhost:5000/ecs-agent-lab/agent-serverless-compat:1") is None  # another registry
    assert agent_kind("ecs-agent-lab/lab:latest") is None and not is_agent_image("nginx:1")


def test_what_serverless_compat_offers_and_the_reported_sentence():
    image = "ecs-agent-lab/agent-serverless-compat:0.19.0"
    assert offers(SERVERLESS_COMPAT, "traces.v0.4") and not offers(SERVERLESS_COMPAT, "processes")
    assert offers(DATADOG, "processes") and offers(None, "agent.health")
    assert not_offered_reason(image, "traces.v0.4") is None
    reason = not_offered_reason(image, "processes", {"endpoints": ["/v0.4/traces", "/info"]})
    assert reason == ("processes: not offered by this agent (datadog-serverless-compat 0.19.0, "
                      "endpoints from /info: /v0.4/traces, /info)")
    with pytest.raises(ValueError, match="unknown agent feature"):
        offers(SERVERLESS_COMPAT, "teleport")


def test_binary_env_maps_the_agent_settings():
    env = binary_env({"DD_API_KEY": "k", "DD_DD_URL": "http://10.0.0.1:80/", "HTTPS_PROXY": "http://p:3128",
                      "DD_LOG_LEVEL": "WARNING", "DD_LOGS_ENABLED": "true", "K_SERVICE": "x",
                      "FUNCTION_TARGET": "y", "DD_SERVICE": "web"},
                     apm_port=18126, dogstatsd_port=18125, version="0.19.0")
    assert env["DD_APM_DD_URL"] == "http://10.0.0.1:80"  # the main intake when no APM URL is given
    assert env["DD_PROXY_HTTPS"] == "http://p:3128" and env["DD_LOG_LEVEL"] == "warn"
    assert "K_SERVICE" not in env and "FUNCTION_TARGET" not in env  # never the Google (metadata) mode
    assert env[APP_NAME_VAR] == "web" and "DD_LOGS_ENABLED" not in env
    assert (env["DD_APM_RECEIVER_PORT"], env["DD_DOGSTATSD_PORT"]) == ("18126", "18125")
    assert env["DD_SERVERLESS_COMPAT_VERSION"] == "0.19.0"
    explicit = binary_env({"DD_API_KEY": "k", "DD_DD_URL": "http://a", "DD_APM_DD_URL": "http://b"},
                          apm_port=1, dogstatsd_port=2)
    assert explicit["DD_APM_DD_URL"] == "http://b"


def test_binary_env_turns_the_agents_profiling_url_into_the_binarys_prefix():
    """The agent's DD_APM_PROFILING_DD_URL names the whole intake URL; the binary appends the route."""
    agent_style = binary_env({"DD_API_KEY": "k", "DD_APM_PROFILING_DD_URL": "http://10.0.0.1:80/api/v2/profile"},
                             apm_port=1, dogstatsd_port=2)
    assert agent_style["DD_APM_PROFILING_DD_URL"] == "http://10.0.0.1:80"
    prefix_style = binary_env({"DD_API_KEY": "k", "DD_APM_PROFILING_DD_URL": "http://10.0.0.1:80/"},
                              apm_port=1, dogstatsd_port=2)
    assert prefix_style["DD_APM_PROFILING_DD_URL"] == "http://10.0.0.1:80"


def test_binary_env_refuses_without_api_key():
    with pytest.raises(LaunchError, match="DD_API_KEY is not set"):
        binary_env({}, apm_port=1, dogstatsd_port=2)


def test_the_stack_health_checks_serverless_compat_by_its_trace_receiver(monkeypatch):
    """It has no `agent health` (127): the stack's agent task definition checks what it offers, its
    trace receiver, so a lab of it can become healthy; every other agent keeps the docs' check."""
    from lab.ecs.stack_services import agent_task_definition
    from lab.stack import Stack

    monkeypatch.delenv("LAB_AGENT_IMAGE", raising=False)
    default = agent_task_definition(Stack())["containerDefinitions"][0]["healthCheck"]
    assert default["command"] == ["CMD-SHELL", "agent health"]
    monkeypatch.setenv("LAB_AGENT_IMAGE", serverless_compat_image())
    check = agent_task_definition(Stack())["containerDefinitions"][0]["healthCheck"]
    assert check["command"][0] == "CMD-SHELL" and "agent health" not in check["command"][1]
    assert "create_connection(('127.0.0.1', 8126)" in check["command"][1]
