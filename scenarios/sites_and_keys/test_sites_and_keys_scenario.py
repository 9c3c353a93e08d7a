"""sites_and_keys: DD_SITE and DD_API_KEY as Datadog's intake judges them (docs/intake.md#sites-and-api-keys).

The agent's task definition sets `DD_SITE=datadoghq.eu`: the agent keeps that site (`agent config`
shows it) and every payload reaches the intake listener standing for the EU site, which records the
site and the host the agent would have reached there. The EU site is given its valid API keys:
- with a key it does not know, every POST is answered `403 {"errors": ["Forbidden"]}`: the user
  sees it where the real agent shows it (`agent status -j` forwarderStats: HTTPErrorsByCode 403,
  Dropped, APIKeyStatus "API Key invalid"; the agent's log: "API Key invalid, dropping transaction
  for <url>") and the intake stores nothing from that key;
- with the site's key in the task definition (the fix: a new revision of the agent's task
  definition), data flows and is stored for datadoghq.eu.

Waits: one aggregator flush (and a forwarder attempt) from the moment the keys are set.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from lab.agent_probe import waiting_for
from lab.fakes.intake.client import IntakeClient
from lab.world import wait_until

SITE = "datadoghq.eu"
RIGHT = "e" * 27 + "right"  # a key of the EU organisation (32 characters, as the agent checks)
WRONG = "0" * 27 + "wrong"  # a key the EU site does not know (another site's, a typo)
# No app needed: the agent reports itself every flush (datadog.agent.running, its check runs).
LAB_WITH = {"agent_env": {"DD_SITE": SITE, "DD_API_KEY": WRONG}, "apps": ()}
LAB_WITH_FIXED = {"agent_env": {"DD_SITE": SITE, "DD_API_KEY": RIGHT}, "apps": ()}
ROUTES = ("/api/v2/series", "/api/v1/check_run", "/intake/")
# Read through `agent config` and `agent status -j` forwarderStats; the data is the agent's own checks'.
pytestmark = pytest.mark.agent_offers("agent_config", "forwarder_stats", "check_metrics")


def _forbidden_by_route(intake: IntakeClient) -> dict[str, int]:
    return {route: r.get("forbidden", 0) for route, r in intake.routestats().items()}


def _refused_since(intake: IntakeClient, before: dict[str, int]) -> set[str]:
    """The routes the intake has answered 403 on since `before` (a `_forbidden_by_route` count)."""
    return {route for route, n in _forbidden_by_route(intake).items() if n > before.get(route, 0)}


def _dropped_urls(logs: str) -> list[str]:
    """The URLs the agent's "API Key invalid, dropping transaction for <url>" lines name."""
    marker = "API Key invalid, dropping transaction for"
    return [line.split(marker, 1)[1].split()[0] for line in logs.splitlines() if marker in line]


def _agent_logs(lab) -> str:
    task = lab.backend.agent_tasks[1]
    return lab.backend.container_logs(task.arn, "datadog-agent", 400)


@pytest.fixture(scope="module")
def wrong_key_lab(lab_with):
    lab = lab_with(**LAB_WITH)
    if lab.backend is None:
        pytest.skip("the agent's logs are read through the lab running in this process")
    return lab


def test_a_key_the_site_does_not_know_is_refused_and_the_user_sees_why(wrong_key_lab):
    lab, agent = wrong_key_lab, wrong_key_lab.agents[0]
    intake = IntakeClient(lab.intake_url)
    # Counted before the site learns its keys (no 403 can come before): a transaction sent only
    # once (the host metadata) and refused the moment the keys are set is still counted as refused.
    forbidden_before = _forbidden_by_route(intake)
    assert intake.set_valid_keys(SITE, [RIGHT])["sites"][SITE] == 1
    before = {route: max([r["seq"] for r in intake.payloads(route, fmt="raw")], default=0)
              for route in ROUTES}
    assert agent.probe.config()["site"] == SITE, "the user's DD_SITE is the agent's site"
    intervals = agent.probe.intervals()

    def refused_in_status() -> dict | None:
        fwd = agent.status()["forwarderStats"]
        return fwd if fwd["Transactions"]["HTTPErrorsByCode"].get("403") else None

    with waiting_for(intervals.flush_after()) as timeout:
        wait_until(lambda: _refused_since(intake, forbidden_before), timeout, what="a POST answered 403")
        fwd = wait_until(refused_in_status, timeout, what="403s in agent status -j forwarderStats")
        dropped = wait_until(lambda: _dropped_urls(_agent_logs(lab)) or None, timeout,
                             what="the agent's 'API Key invalid, dropping transaction' log line")
    assert fwd["Transactions"]["Dropped"] >= 1, "a 403 is dropped, not retried"
    assert fwd["APIKeyStatus"] == {"API key ending with wrong": "API Key invalid"}
    # Each line names the transaction the intake refused: whichever payload came first (a series,
    # a check run, the host metadata on /intake/), not a given one.
    refused = _refused_since(intake, forbidden_before)
    named = {urlsplit(url).path for url in dropped}
    assert named <= refused, f"the log names {named}; the intake refused {refused}"
    # Nothing from the refused key was stored after the site learnt its keys.
    for route in ROUTES:
        late = [r for r in intake.payloads(route, fmt="raw") if r["seq"] > before[route]]
        assert not [r for r in late if r["api_key"] == WRONG], f"{route}: a refused payload was stored"


def test_with_the_site_s_key_data_flows_and_is_stored_for_that_site(lab_with):
    lab = lab_with(**LAB_WITH_FIXED)
    agent = lab.agents[0]
    intake = IntakeClient(lab.intake_url)
    intake.set_valid_keys(SITE, [RIGHT])
    session = intake.open_session("sites_and_keys")
    with waiting_for(agent.probe.intervals().flush_after()) as timeout:
        session.wait_for_metric("datadog.agent.running", timeout=timeout)
    rows = session.payloads("/api/v2/series", fmt="raw")
    assert rows and {r["site"] for r in rows} == {SITE} and {r["api_key"] for r in rows} == {RIGHT}
    assert {r["intended_host"] for r in rows} == {f"7-60-0-app.agent.{SITE}"}
    assert agent.status()["forwarderStats"]["APIKeyStatus"] == {"API key ending with right": "API Key valid"}
    intake.set_valid_keys(SITE, None)
