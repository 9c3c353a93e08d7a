"""Scenario lint: scenarios see the agent under test only through what the real Datadog Agent offers,
and wait on its own intervals.

A scenario must run unchanged against the real agent image, so nothing in scenarios/ may use what
only the emulated agent serves (its plain-HTTP `/agent/status`, the lab's `agent_cmd_url`, its
`LAB_AGENT_*` knobs, its modules under `lab.agent`), and every wait on the intake takes its timeout
from the agent's intervals (`lab.agent_probe`), never a number of seconds written in the test.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"

# (pattern, why it is not allowed in a scenario)
FORBIDDEN = [
    (re.compile(r"/agent/status"), "the emulated agent's plain-HTTP status API (the real one is HTTPS "
                                   "with a token): run `agent status --json` through AgentInfo.probe"),
    (re.compile(r"\bagent_cmd_url\b|\bcmd_url\b"), "the emulated agent's IPC address: use AgentInfo.probe"),
    (re.compile(r"\bLAB_AGENT_\w*"), "an emulated-agent setting: the agent under test may not have it"),
    (re.compile(r"\bipc_address\b"), "the emulated agent's IPC address: use AgentInfo.probe"),
    (re.compile(r"^\s*(from\s+lab\.agent(\.|\s)|import\s+lab\.agent\b)", re.M),
     "the emulated agent's own modules (lab.agent_probe is the scenario's door)"),
    (re.compile("FACTS" + r"\.md|design\.md"),
     "a file outside the repository: cite docs/ or the upstream source"),
    (re.compile(r"\btime\.sleep\("), "a fixed sleep: wait on a condition with a timeout"),
]

INTAKE_WAITS = re.compile(r"^wait_for_(spans|metric|processes|payloads|check_run|logs|connections)$")


def violations(path: Path, text: str) -> list[str]:
    """What in one scenario file breaks the black-box rule, one line each."""
    found = []
    for pattern, why in FORBIDDEN:
        for m in pattern.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            found.append(f"{path.name}:{line}: {m.group(0).strip()!r}: {why}")
    for node in ast.walk(ast.parse(text)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and INTAKE_WAITS.match(node.func.attr)):
            continue
        for kw in node.keywords:
            if kw.arg == "timeout" and isinstance(kw.value, ast.Constant):
                found.append(f"{path.name}:{node.lineno}: {node.func.attr}(timeout={kw.value.value!r}): "
                             "a wait on the agent's data must come from its intervals (lab.agent_probe)")
    return found


def scenario_files() -> list[Path]:
    return sorted(SCENARIOS.rglob("*.py"))


def test_there_are_scenarios_to_lint():
    names = {p.name for p in scenario_files()}
    assert {"conftest.py", "test_apm_bridge_scenario.py", "test_dogstatsd_scenario.py"} <= names, names


@pytest.mark.parametrize("path", scenario_files(), ids=lambda p: str(p.relative_to(SCENARIOS)))
def test_scenario_uses_only_what_the_real_agent_offers(path):
    found = violations(path, path.read_text())
    assert not found, "scenario breaks the black-box rule:\n" + "\n".join(found)


@pytest.mark.parametrize("snippet, expected", [
    ('requests.get(f"http://{host}:{port}/agent/status")', "plain-HTTP status API"),
    ("url = lab.instance(1)['agent_cmd_url']", "IPC address"),
    ('env["LAB_AGENT_FLUSH_INTERVAL"] = "15"', "emulated-agent setting"),
    ("from lab.agent.config import ipc_address", "emulated agent's own modules"),
    ("import time\ntime.sleep(15)", "fixed sleep"),
    ("intake.wait_for_metric('x', timeout=20)", "must come from its intervals"),
    ("intake.wait_for_spans(service='web',\n    timeout=30.0)", "must come from its intervals"),
    ('"""see ' + "FACTS" + '.md section 2"""', "outside the repository"),
])
def test_the_lint_catches_each_forbidden_use(snippet, expected):
    found = violations(Path("test_sample.py"), snippet)
    assert any(expected in f for f in found), found


def test_the_lint_accepts_the_probe_and_derived_waits():
    ok = ("from lab.agent_probe import waiting_for\n"
          "LAB_WITH = {'apps': ('imdsv1',)}\n"
          "with send_phase.wait('metrics') as timeout:\n"
          "    intake.wait_for_metric('x', timeout=timeout)\n"
          "status = agent.probe.status()\n")
    assert violations(Path("test_sample.py"), ok) == []
