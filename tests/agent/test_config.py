"""The DD_* contract: defaults, site-derived URLs, overrides, FIPS routing and refusal."""

from __future__ import annotations

import logging

import pytest

from lab.agent.config import AGENT_VERSION, AgentConfig, ConfigError, add_agent_version_to_domain

V = AGENT_VERSION.replace(".", "-")


def test_missing_api_key_refuses_to_start():
    with pytest.raises(ConfigError, match="API key"):
        AgentConfig.from_env({})


@pytest.mark.parametrize(
    "site, metrics, traces, processes",
    [
        (
            "datadoghq.com",
            f"https://{V}-app.agent.datadoghq.com",
            "https://trace.agent.datadoghq.com",
            "https://process.datadoghq.com",
        ),
        (
            "us3.datadoghq.com",
            f"https://{V}-app.agent.us3.datadoghq.com",
            "https://trace.agent.us3.datadoghq.com",
            "https://process.us3.datadoghq.com",
        ),
        (
            "datadoghq.eu",
            f"https://{V}-app.agent.datadoghq.eu",
            "https://trace.agent.datadoghq.eu",
            "https://process.datadoghq.eu",
        ),
        # Not a Datadog host: no version prefix (custom domains are used as given).
        (
            "lab.invalid",
            "https://app.lab.invalid",
            "https://trace.agent.lab.invalid",
            "https://process.lab.invalid",
        ),
    ],
)
def test_site_derives_every_endpoint(site, metrics, traces, processes):
    cfg = AgentConfig.from_env({"DD_API_KEY": "k", "DD_SITE": site})
    assert (cfg.endpoints.metrics, cfg.endpoints.traces, cfg.endpoints.processes) == (
        metrics,
        traces,
        processes,
    )
    assert cfg.endpoints.profiling.endswith("/api/v2/profile")


def test_default_site_is_datadoghq_com():
    assert AgentConfig.from_env({"DD_API_KEY": "k"}).site == "datadoghq.com"


def test_custom_urls_are_used_as_given():
    env = {
        "DD_API_KEY": "k",
        "DD_DD_URL": "http://127.0.0.1:8091",
        "DD_APM_DD_URL": "http://127.0.0.1:8091/",
        "DD_PROCESS_CONFIG_PROCESS_DD_URL": "http://127.0.0.1:8092",
        "DD_LOGS_CONFIG_LOGS_DD_URL": "127.0.0.1:8093",
        "DD_ORCHESTRATOR_EXPLORER_ORCHESTRATOR_DD_URL": "http://127.0.0.1:8094",
        "DD_APM_PROFILING_DD_URL": "http://127.0.0.1:8095/api/v2/profile",
        "DD_APM_TELEMETRY_DD_URL": "http://127.0.0.1:8096",
    }
    e = AgentConfig.from_env(env).endpoints
    assert e.metrics == "http://127.0.0.1:8091"
    assert e.traces == "http://127.0.0.1:8091"
    assert e.processes == "http://127.0.0.1:8092"
    assert e.logs == "https://127.0.0.1:8093"
    assert e.orchestrator == "http://127.0.0.1:8094"
    assert e.profiling == "http://127.0.0.1:8095/api/v2/profile"
    assert e.telemetry == "http://127.0.0.1:8096"


def test_real_app_host_in_dd_url_gets_version_prefix():
    assert add_agent_version_to_domain("https://app.datadoghq.com") == f"https://{V}-app.agent.datadoghq.com"
    assert add_agent_version_to_domain("https://app.example.com") == "https://app.example.com"


def test_defaults_match_the_agent_image():
    cfg = AgentConfig.from_env({"DD_API_KEY": "k"})
    assert cfg.apm_receiver_port == 8126 and cfg.dogstatsd_port == 8125
    assert cfg.apm_non_local_traffic is True  # the image's datadog-docker.yaml
    assert cfg.dogstatsd_non_local_traffic is False
    assert cfg.cmd_port == 5001 and cfg.expvar_port == 5000
    assert cfg.process_collection_enabled is False
    assert cfg.dogstatsd_tag_cardinality == "low" and cfg.checks_tag_cardinality == "low"
    assert cfg.remote_configuration_enabled is True
    assert cfg.fips is None


@pytest.mark.parametrize("raw, tags", [("a:b c:d", ["a:b", "c:d"]), ("a:b,c:d", ["a:b", "c:d"]), ("", [])])
def test_dd_tags_space_or_comma_separated(raw, tags):
    assert list(AgentConfig.from_env({"DD_API_KEY": "k", "DD_TAGS": raw}).tags) == tags


@pytest.mark.parametrize("var", ["DD_PROCESS_AGENT_ENABLED", "DD_PROCESS_CONFIG_PROCESS_COLLECTION_ENABLED"])
def test_process_collection_switches(var):
    assert AgentConfig.from_env({"DD_API_KEY": "k", var: "true"}).process_collection_enabled


def test_processes_are_read_from_the_host_proc_mount_when_there(tmp_path):
    host_proc = tmp_path / "host-proc"
    env = {"DD_API_KEY": "k", "LAB_AGENT_HOST_PROC": str(host_proc)}
    assert AgentConfig.from_env(env).procfs_path == "/proc"  # not mounted: the agent's own
    host_proc.mkdir()
    assert AgentConfig.from_env(env).procfs_path == "/proc"  # a directory, but no procfs (no pid 1)
    (host_proc / "1").mkdir()
    assert AgentConfig.from_env(env).procfs_path == str(host_proc)


def test_non_local_traffic_binds_all_lab_addresses_else_localhost():
    env = {"DD_API_KEY": "k", "LAB_AGENT_LOCALHOST": "127.0.2.1", "LAB_AGENT_HOST_ADDRESSES": "127.0.1.1"}
    cfg = AgentConfig.from_env(env)
    assert cfg.bind_addresses(False) == ["127.0.2.1"]
    assert cfg.bind_addresses(True) == ["127.0.2.1", "127.0.1.1"]
    assert AgentConfig.from_env({"DD_API_KEY": "k"}).bind_addresses(True) == ["0.0.0.0"]


def test_invalid_boolean_is_a_clear_error():
    with pytest.raises(ConfigError, match="DD_APM_ENABLED"):
        AgentConfig.from_env({"DD_API_KEY": "k", "DD_APM_ENABLED": "maybe"})


FIPS_ENV = {
    "DD_API_KEY": "k",
    "DD_FIPS_ENABLED": "true",
    "DD_FIPS_PORT_RANGE_START": "9803",
    "DD_FIPS_LOCAL_ADDRESS": "127.0.0.1",
    "DD_FIPS_HTTPS": "false",
    "DD_DD_URL": "http://127.0.0.1:8091",
    "DD_APM_DD_URL": "http://127.0.0.1:8091",
    "DD_PROXY_HTTPS": "http://127.0.0.1:3128",
    "DD_REMOTE_CONFIGURATION_ENABLED": "true",
}


def test_fips_routes_each_data_type_to_its_port():
    cfg = AgentConfig.from_env(FIPS_ENV)
    e = cfg.endpoints
    assert e.metrics == "http://127.0.0.1:9804"
    assert e.traces == "http://127.0.0.1:9805"
    assert e.profiling == "http://127.0.0.1:9806/api/v2/profile"
    assert e.processes == "http://127.0.0.1:9807"
    assert e.logs == "http://127.0.0.1:9808"
    assert e.telemetry == "http://127.0.0.1:9813"
    assert e.orchestrator == "http://127.0.0.1:9815"


def test_fips_disables_proxies_and_remote_config():
    cfg = AgentConfig.from_env(FIPS_ENV)
    assert cfg.proxy_https == "" and cfg.proxy_for("https://x.invalid") is None
    assert cfg.remote_configuration_enabled is False


def test_fips_https_default_is_true_and_port_start_moves_everything():
    env = {**FIPS_ENV, "DD_FIPS_PORT_RANGE_START": "19803"}
    env.pop("DD_FIPS_HTTPS")
    cfg = AgentConfig.from_env(env)
    assert cfg.endpoints.metrics == "https://127.0.0.1:19804"


@pytest.mark.parametrize(
    "address, message",
    [
        ("10.0.0.5", "fips.local_address: address was set to a non-loopback IP address: 10.0.0.5"),
        ("172.30.1.1", "fips.local_address: address was set to a non-loopback IP address: 172.30.1.1"),
        ("fips-proxy", "fips.local_address: address was set to an invalid IP address: fips-proxy"),
    ],
)
def test_fips_refuses_non_loopback_address_like_the_agent(address, message):
    with pytest.raises(ConfigError) as exc:
        AgentConfig.from_env({**FIPS_ENV, "DD_FIPS_LOCAL_ADDRESS": address})
    assert str(exc.value) == message


@pytest.mark.parametrize("address", ["localhost", "127.0.2.7", "::1"])
def test_fips_accepts_loopback_addresses(address):
    assert AgentConfig.from_env({**FIPS_ENV, "DD_FIPS_LOCAL_ADDRESS": address}).fips is not None


def test_fips_log_line_is_the_agents(start_agent, caplog, intake):
    with caplog.at_level(logging.WARNING, logger="lab.agent"):
        start_agent(
            DD_FIPS_ENABLED="true",
            DD_FIPS_LOCAL_ADDRESS="127.0.0.1",
            DD_FIPS_PORT_RANGE_START="29803",
            DD_FIPS_HTTPS="false",
        )
    assert (
        "FIPS mode is enabled! All communication to DataDog will be routed to the local FIPS proxy on "
        "'127.0.0.1' starting from port 29803"
    ) in caplog.text


def test_proxy_https_used_for_https_targets_except_no_proxy():
    cfg = AgentConfig.from_env(
        {"DD_API_KEY": "k", "DD_PROXY_HTTPS": "http://127.0.0.1:3128", "DD_PROXY_NO_PROXY": "skip.invalid"}
    )
    assert cfg.proxy_for("https://app.lab.invalid/api") == "http://127.0.0.1:3128"
    assert cfg.proxy_for("http://127.0.0.1:8091") is None
    assert cfg.proxy_for("https://skip.invalid/x") is None
