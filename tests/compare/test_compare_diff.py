"""The diff over two capture directories: what is breaking, what is informational, what is ignored."""

from __future__ import annotations

import pytest

from lab.compare.diff import compare
from lab.compare.ignore import IgnoreFileError, parse_ignore
from lab.compare.normalise import normalise_tag
from lab.compare.surface import CaptureError, load_run, surface_of

from .captures import standard_run


def surfaces(tmp_path, **candidate):
    base = surface_of(load_run(standard_run(tmp_path / "baseline")))
    cand = surface_of(load_run(standard_run(tmp_path / "candidate", container_id="bb" * 32, **candidate)))
    return base, cand


def ids(diffs) -> set[str]:
    return {d.id for d in diffs}


def test_same_surface_with_other_container_ids_is_no_change(tmp_path):
    base, cand = surfaces(tmp_path)
    result = compare(base, cand)
    assert result.unchanged, [d.id for d in result.differences]
    # The surface did see the things it compares (not an empty "no change").
    assert "ecs_lab.app.requests" in base["metrics"]
    assert "task_family" in base["metrics"]["ecs_lab.app.requests"]["tag_keys"]
    assert base["ecs_tags"]["traces"] and base["processes"]["process"]["process_fields"]


def test_a_removed_metric_is_breaking(tmp_path):
    result = compare(*surfaces(tmp_path, drop_metric=True))
    assert ids(result.breaking) == {"metric.removed:ecs_lab.app.requests"}


def test_a_removed_tag_is_breaking(tmp_path):
    result = compare(*surfaces(tmp_path, drop_tag=True))
    assert ids(result.breaking) == {"tag.removed:ecs_lab.app.requests#task_family"}


def test_a_newly_failing_scenario_is_breaking(tmp_path):
    result = compare(*surfaces(tmp_path, fail_dsd=True))
    assert ids(result.breaking) == {"scenario.newly_failing:scenarios/dsd/test_dsd.py::test_custom_metric"}


def test_additions_are_informational(tmp_path):
    result = compare(*surfaces(tmp_path, extra_metric=True))
    assert not result.breaking
    assert ids(result.informational) == {"metric.added:ecs_lab.app.new_metric"}


def test_a_fixed_scenario_and_a_removed_metric_the_other_way_round(tmp_path):
    base, cand = surfaces(tmp_path, fail_dsd=True, drop_metric=True)
    result = compare(cand, base)  # the broken run as baseline: its gaps are additions now
    assert not result.breaking
    assert {"scenario.fixed:scenarios/dsd/test_dsd.py::test_custom_metric",
            "metric.added:ecs_lab.app.requests"} <= ids(result.informational)


def test_a_removed_endpoint_and_span_tag_are_breaking(tmp_path):
    base, cand = surfaces(tmp_path)
    del cand["endpoints"]["/api/v1/collector"]
    cand["spans"]["dd_tags"].remove("_dd.p.dm")
    result = compare(base, cand)
    assert {"endpoint.removed:/api/v1/collector", "span_dd_tag.removed:_dd.p.dm"} <= ids(result.breaking)


def test_encoding_change_is_informational(tmp_path):
    base, cand = surfaces(tmp_path)
    cand["endpoints"]["/api/v2/series"]["encodings"] = ["deflate"]
    result = compare(base, cand)
    assert not result.breaking
    [diff] = result.informational
    assert diff.id == "endpoint.encoding_changed:/api/v2/series" and "zstd -> deflate" in diff.detail


def test_ignore_rules_make_known_differences_not_breaking_and_report_unused_rules(tmp_path):
    rules = parse_ignore("# known\nmetric.removed:ecs_lab.app.*   # DogStatsD off on purpose\n"
                         "tag.removed:*#nothing_like_this\n")
    result = compare(*surfaces(tmp_path, drop_metric=True), rules)
    assert not result.breaking
    [ignored] = result.ignored
    assert ignored.id == "metric.removed:ecs_lab.app.requests"
    assert "DogStatsD off on purpose" in ignored.ignored
    assert [r.pattern for r in result.unused_rules] == ["tag.removed:*#nothing_like_this"]


def test_a_bad_ignore_line_is_a_clear_error():
    with pytest.raises(IgnoreFileError, match=r"known.txt:2: 'ecs_lab\.app\.requests' is not a rule"):
        parse_ignore("metric.removed:x\necs_lab.app.requests\n", "known.txt")


def test_a_directory_without_captures_is_a_clear_error(tmp_path):
    with pytest.raises(CaptureError, match="is not a capture directory"):
        load_run(tmp_path)


@pytest.mark.parametrize("tag, expected", [
    ("task_arn:arn:aws:ecs:us-east-1:123456789012:task/ecs-lab/0f1e2d3c", "task_arn:<task_arn>"),
    ("container_id:" + "ab" * 32, "container_id:<container_id>"),
    ("docker_image:ecs-web-task-1-app-e8a4c1b2d3f4a5b6c7d8", "docker_image:ecs-web-task-1-app-<hex>"),
    ("ecs_task_arn:arn:aws:ecs:us-east-1:123456789012:task/x/1", "ecs_task_arn:<arn>"),
    ("source_ip:127.104.1.1", "source_ip:<ip>"),
    ("instance:i-0123456789abcdef0", "instance:<instance-id>"),
    ("started:2026-01-02T03:04:05Z", "started:<time>"),
    ("runtime:0b4e1c4a-5c1e-4a3a-9d51-52a8e9a4c0de", "runtime:<uuid>"),
    ("task_family:web-imdsv1-task", "task_family:web-imdsv1-task"),
    ("task_version:1", "task_version:1"),
    ("depth:2", "depth:2"),
    ("env:lab", "env:lab"),
])
def test_volatile_tag_values_are_normalised_and_stable_ones_kept(tag, expected):
    assert normalise_tag(tag) == expected


def test_where_the_candidate_s_data_went_and_why_it_skipped_are_in_the_report(tmp_path):
    """An agent whose metrics cannot reach the lab's intake: its flush shows up as an attempt the
    egress proxy refused, and a scenario it cannot serve as skipped with the agent's reason."""
    import json

    from lab.compare.report import render_markdown, report_document

    base_dir = standard_run(tmp_path / "baseline")
    cand_dir = standard_run(tmp_path / "candidate", drop_metric=True)
    index = json.loads((cand_dir / "tests.json").read_text())
    dsd = index["tests"]["scenarios/dsd/test_dsd.py::test_custom_metric"]
    dsd.update(outcome="skipped",
               reason="dogstatsd_metrics: not offered by this agent (datadog-serverless-compat 0.19.0, "
                      "endpoints from /info: /v0.4/traces)")
    (cand_dir / "tests.json").write_text(json.dumps(index))
    attempt = {"kind": "connect", "method": "CONNECT", "host": "api.lab.invalid", "port": 443,
               "target": "api.lab.invalid:443", "client": "172.30.1.2:40000", "user_agent": "", "at": 1.0}
    (cand_dir / dsd["dir"] / "egress.jsonl").write_text(json.dumps(attempt) + "\n")

    base, cand = surface_of(load_run(base_dir)), surface_of(load_run(cand_dir))
    assert cand["egress"] == {"api.lab.invalid:443": {"count": 1, "kinds": ["CONNECT (connect)"],
                                                      "targets": ["api.lab.invalid:443"]}}
    assert not base["egress"]
    result = compare(base, cand)
    assert "egress.added:api.lab.invalid:443" in ids(result.informational)
    [skip] = [d for d in result.informational if d.kind == "scenario.not_offered"]
    assert skip.subject == "scenarios/dsd/test_dsd.py::test_custom_metric"
    assert "skipped on the candidate: dogstatsd_metrics: not offered by this agent" in skip.detail
    assert "metric.removed:ecs_lab.app.requests" in ids(result.breaking)
    doc = report_document(result, base, cand, {"spec": "emulated"}, {"spec": "serverless"})
    text = render_markdown(doc)
    assert "| `api.lab.invalid:443` | 0 | 1 | CONNECT (connect) |" in text
    assert "skipped: dogstatsd_metrics: not offered by this agent (datadog-serverless-compat 0.19.0" in text
