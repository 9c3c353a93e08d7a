"""The dashboard with the FIPS proxy on: one edge per proxy port the agent's data types use (metrics,
traces, processes), each lit by the payloads that reached the intake through that port (the proxy's
`Via` entry names it), with the port the agent's task definition gives; none on a lab without FIPS."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from lab.fakes.fips_proxy.ports import BY_NAME
from lab.sandbox.dashboard import Dashboard
from lab.stack import DEFAULT_FEATURES


@pytest.fixture(scope="module")
def fips_lab(tmp_path_factory):
    from lab.pytest_plugin import start_lab

    lab = start_lab(
        "local",
        features=DEFAULT_FEATURES | {"fips"},
        apps=("imdsv1",),
        run_dir=tmp_path_factory.mktemp("fips-dashboard-run"),
    )
    try:
        yield lab.ecs_lab
    finally:
        lab.ecs_lab.stop()


def _snapshot(url: str) -> dict:
    with urllib.request.urlopen(url + "/api/snapshot", timeout=5) as resp:
        return json.loads(resp.read())


def test_one_lit_edge_per_fips_port(fips_lab, tmp_path):
    start = fips_lab.stack.ports.fips_start
    wanted = {f"agent-fips:{name}" for name in ("metrics", "traces", "processes")}
    with Dashboard(fips_lab, exercise_state=tmp_path / "exercise.json") as dash:
        deadline = time.monotonic() + 60
        edges: dict = {}
        while time.monotonic() < deadline:
            edges = {e["id"]: e for e in _snapshot(dash.url).get("edges", [])}
            if wanted <= set(edges) and all(edges[e]["ok"] for e in wanted):
                break
            time.sleep(0.5)
        assert wanted <= set(edges), sorted(edges)
        for name in ("metrics", "traces", "processes"):
            edge = edges[f"agent-fips:{name}"]
            assert edge["ok"] and edge["rate"] > 0, edge
            assert f":{start + BY_NAME[name].offset} " in edge["label"], edge
        # The agent's own data still reaches the intake (through the proxy).
        assert edges["agent-intake:series"]["ok"], edges["agent-intake:series"]
