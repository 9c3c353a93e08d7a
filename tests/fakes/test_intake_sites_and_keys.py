"""The intake's Datadog sites and API keys: one listener per site records the site (and the host the
agent would have reached) on what it stores; a site given its valid keys answers 403 like
Datadog's intake to any other key and stores nothing."""

from __future__ import annotations

import pytest
import requests

from lab.datadog_sites import SITES, intended_host, site_hosts
from lab.fakes.intake.client import IntakeClient
from lab.fakes.intake.server import IntakeServer


@pytest.fixture
def intake():
    with IntakeServer() as server:
        server.listen("127.0.0.1", 0)
        eu = server.listen("127.0.0.1", 0, site="datadoghq.eu").url
        client = IntakeClient(server.url, timeout=5)
        yield server, client, eu
        client.close()


def _post(url: str, key: str, route: str = "/api/v1/check_run", body: bytes = b"[]") -> requests.Response:
    headers = {"DD-API-KEY": key, "Content-Type": "application/json"}
    return requests.post(url + route, data=body, headers=headers, timeout=5)


def test_a_site_with_keys_refuses_any_other_key_with_403_and_stores_nothing(intake):
    server, client, eu = intake
    assert client.set_valid_keys("datadoghq.eu", ["a" * 32])["sites"] == {"datadoghq.eu": 1}
    refused = _post(eu, "b" * 32)
    assert refused.status_code == 403 and refused.json() == {"errors": ["Forbidden"]}
    validate = requests.get(eu + "/api/v1/validate", headers={"DD-API-KEY": "b" * 32}, timeout=5)
    assert validate.status_code == 403
    assert not client.payloads("/api/v1/check_run")
    assert client.routestats()["/api/v1/check_run"]["forbidden"] == 1
    accepted = _post(eu, "a" * 32)
    assert accepted.status_code == 202
    (row,) = client.payloads("/api/v1/check_run")
    assert row["site"] == "datadoghq.eu" and row["api_key"] == "a" * 32
    assert row["intended_host"] == "7-60-0-app.agent.datadoghq.eu"
    assert requests.get(eu + "/api/v1/validate", headers={"DD-API-KEY": "a" * 32},
                        timeout=5).json() == {"valid": True}


def test_keys_are_per_site_and_a_site_without_keys_accepts_every_key(intake):
    server, client, eu = intake
    client.set_valid_keys("datadoghq.eu", ["a" * 32])
    assert _post(server.url, "anything").status_code == 202, "the lab's own listener has no keys set"
    (row,) = client.payloads("/api/v1/check_run")
    assert "site" not in row, "a payload from the lab's own listener is meant for no site"
    client.set_valid_keys("datadoghq.eu", None)
    assert _post(eu, "b" * 32).status_code == 202, "keys cleared: every key accepted again"


def test_the_process_agent_s_key_header_counts_too(intake):
    server, client, eu = intake
    client.set_valid_keys("datadoghq.eu", ["a" * 32])
    r = requests.post(eu + "/api/v2/logs", data=b"[]", headers={"X-Dd-APIKey": "a" * 32}, timeout=5)
    assert r.status_code == 202
    assert client.payloads("/api/v2/logs")[0]["intended_host"] == "agent-http-intake.logs.datadoghq.eu"


@pytest.mark.parametrize("spec", [{"site": "datadoghq.eu", "keys": "abc"}, {"site": 3, "keys": []},
                                  {"site": "datadoghq.eu", "keys": [""]}])
def test_a_bad_keys_spec_is_refused_with_the_expected_shape(intake, spec):
    server, client, eu = intake
    r = requests.post(server.url + "/fakeintake/configure/keys", json=spec, timeout=5)
    assert r.status_code == 400 and "expected" in r.json()["errors"][0]


def test_every_documented_site_derives_the_agent_s_hosts():
    assert SITES == ("datadoghq.com", "us3.datadoghq.com", "us5.datadoghq.com", "datadoghq.eu",
                     "ddog-gov.com", "ap1.datadoghq.com", "ap2.datadoghq.com")
    for site in SITES:
        hosts = site_hosts(site, "7.60.0")
        assert hosts["dd_url"] == f"7-60-0-app.agent.{site}"
        assert intended_host(site, "/api/v2/series", "7.60.0") == hosts["dd_url"]
        assert intended_host(site, "/api/v0.2/traces", "7.60.0") == f"trace.agent.{site}"
        assert intended_host(site, "/api/v1/collector", "7.60.0") == f"process.{site}"
        assert intended_host(site, "/api/v2/logs", "7.60.0") == f"agent-http-intake.logs.{site}"
