"""The `agent_offers` mark's answers asked ahead for a module that takes the docker engine for itself:
a module none of whose tests the agent can serve is skipped before it stops the session lab."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import lab.pytest_plugin as plugin
from lab.agent_probe import Offer


def _request(module_marks: list[list[str]], offered: set[str]):
    asked: list[str] = []

    def offers(name: str) -> Offer:
        asked.append(name)
        why = "" if name in offered else f"not offered by this agent (x, {name})"
        return Offer(name, name in offered, why)

    module = object()
    items = [SimpleNamespace(module=module,
                             iter_markers=lambda _n, names=names: [SimpleNamespace(args=names)])
             for names in module_marks]
    lab = SimpleNamespace(agents=[SimpleNamespace(probe=SimpleNamespace(offers=offers))])
    return SimpleNamespace(session=SimpleNamespace(items=items), module=module,
                           getfixturevalue=lambda name: lab), asked


@pytest.fixture(autouse=True)
def _fresh_answers():
    plugin._OFFERS.clear()
    yield
    plugin._OFFERS.clear()


def test_a_module_the_agent_can_serve_in_part_runs_and_its_answers_are_kept():
    request, asked = _request([["traces_v05"], ["fips_proxy"], []], offered={"traces_v05"})
    plugin._ask_offers_ahead(request)  # no skip: one test needs nothing, one is offered
    assert sorted(asked) == ["fips_proxy", "traces_v05"]
    assert plugin._OFFERS["traces_v05"] and not plugin._OFFERS["fips_proxy"]


def test_a_module_none_of_whose_tests_the_agent_serves_is_skipped_with_every_reason():
    request, _ = _request([["traces_v05"], ["fips_proxy"]], offered=set())
    with pytest.raises(pytest.skip.Exception) as skipped:
        plugin._ask_offers_ahead(request)
    assert "traces_v05: not offered by this agent (x, traces_v05)" in str(skipped.value)
    assert "fips_proxy: not offered by this agent (x, fips_proxy)" in str(skipped.value)
