"""`ecs-lab compare --reuse` over synthetic captures: exit codes and the reports' content."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lab.cli import main

from .captures import standard_run


def run_compare(out, *extra):
    result = CliRunner().invoke(main, ["compare", "--baseline", "emulated", "--candidate", "emulated",
                                       "--reuse", "--out", str(out), *extra])
    return result


@pytest.mark.parametrize("change, breaking_id", [
    ({"drop_metric": True}, "metric.removed:ecs_lab.app.requests"),
    ({"drop_tag": True}, "tag.removed:ecs_lab.app.requests#task_family"),
    ({"fail_dsd": True}, "scenario.newly_failing:scenarios/dsd/test_dsd.py::test_custom_metric"),
])
def test_removed_metric_removed_tag_and_newly_failing_scenario_each_exit_1(tmp_path, change, breaking_id):
    standard_run(tmp_path / "baseline")
    standard_run(tmp_path / "candidate", container_id="cd" * 32, **change)
    result = run_compare(tmp_path)
    assert result.exit_code == 1, result.output
    assert f"BREAKING {breaking_id}" in result.output
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["verdict"] == "breaking"
    assert breaking_id in [d["id"] for d in doc["breaking"]]
    markdown = (tmp_path / "report.md").read_text()
    assert "**BREAKING**" in markdown and f"`{breaking_id}`" in markdown
    assert breaking_id in (tmp_path / "report.html").read_text()


def test_identical_runs_exit_0_and_say_no_change(tmp_path):
    standard_run(tmp_path / "baseline")
    standard_run(tmp_path / "candidate", container_id="cd" * 32)
    result = run_compare(tmp_path)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("no change")
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["verdict"] == "no change" and doc["breaking"] == []
    assert doc["surfaces"]["baseline"]["endpoints"]["/api/v2/series"]["count"] == 1
    assert "Verdict: **no change**" in (tmp_path / "report.md").read_text()


def test_an_ignore_file_turns_a_known_removal_into_exit_0(tmp_path):
    standard_run(tmp_path / "baseline")
    standard_run(tmp_path / "candidate", drop_metric=True)
    ignore = tmp_path / "known.txt"
    ignore.write_text("metric.removed:ecs_lab.app.requests  # moved to OpenTelemetry\n")
    result = run_compare(tmp_path, "--ignore", str(ignore))
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "report.json").read_text())
    assert [d["id"] for d in doc["ignored"]] == ["metric.removed:ecs_lab.app.requests"]


@pytest.mark.parametrize("args, message", [
    (["--baseline", "emulated:fast", "--candidate", "emulated"], "unknown emulated agent profile 'fast'"),
    (["--baseline", "Not An Image", "--candidate", "emulated"], "is not an agent"),
    (["--baseline", "emulated", "--candidate", "emulated", "--candidate-env", "DD_X"], "is not KEY=VALUE"),
    (["--baseline", "emulated", "--candidate", "emulated", "no/such/scenarios"], "does not exist"),
])
def test_bad_arguments_are_clear_usage_errors(tmp_path, args, message):
    result = CliRunner().invoke(main, ["compare", "--out", str(tmp_path), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_reuse_without_captures_exits_2(tmp_path):
    result = run_compare(tmp_path)
    assert result.exit_code == 2
    assert "is not a capture directory" in result.output


def test_matrix_agents_come_from_lab_agent_images_comma_separated():
    from lab.compare.matrix import agent_list, dir_label

    assert agent_list(" emulated, emulated:real-timing ,public.ecr.aws/datadog/agent:7.60.0,") == [
        "emulated", "emulated:real-timing", "public.ecr.aws/datadog/agent:7.60.0"]
    assert dir_label("public.ecr.aws/datadog/agent:7.60.0") == "public.ecr.aws_datadog_agent_7.60.0"


def test_matrix_without_agents_is_a_usage_error(monkeypatch):
    from lab.compare.matrix import matrix

    monkeypatch.delenv("LAB_AGENT_IMAGES", raising=False)
    result = CliRunner().invoke(matrix, [])
    assert result.exit_code == 2 and "set LAB_AGENT_IMAGES" in result.output
