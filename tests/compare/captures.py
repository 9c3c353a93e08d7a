"""Synthetic capture directories, in the capture plugin's format, for the compare tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lab.compare.capture import capture_dir_name

ECS = ["task_family:web-task", "task_version:1", "ecs_cluster_name:ecs-lab", "ecs_container_name:app",
       "task_arn:arn:aws:ecs:us-east-1:123456789012:task/ecs-lab/0f1e2d3c4b5a69788796a5b4c3d2e1f0"]


def series(metric: str, tags: list[str], mtype: int = 2) -> dict[str, Any]:
    return {"metric": metric, "tags": tags, "type": mtype, "points": [{"value": 1.0, "timestamp": 1}],
            "resources": [{"type": "host", "name": "i-0123456789abcdef0"}]}


def series_payload(*items: dict[str, Any], seq: int = 1) -> dict[str, Any]:
    return {"intake": "http://127.0.0.1:1", "endpoint": "/api/v2/series", "seq": seq,
            "content_type": "application/x-protobuf", "encoding": "zstd", "size": 100, "data": list(items)}


def trace_payload(seq: int = 2, meta: dict[str, str] | None = None) -> dict[str, Any]:
    span = {"service": "web", "name": "flask.request", "resource": "GET /", "trace_id": 1, "span_id": 2,
            "start": 1, "duration": 5, "meta": {"env": "lab", "_dd.p.dm": "-0", **(meta or {})},
            "metrics": {"_dd.top_level": 1.0}, "type": "web"}
    return {"intake": "http://127.0.0.1:1", "endpoint": "/api/v0.2/traces", "seq": seq,
            "content_type": "application/x-protobuf", "encoding": "gzip", "size": 100,
            "data": {"hostName": "i-0123456789abcdef0", "agentVersion": "7.60.0", "tracerPayloads": [
                {"container_id": "c0ffee", "tags": {"_dd.tags.container": ",".join(ECS)},
                 "chunks": [{"priority": 1, "spans": [span]}]}]}}


def process_payload(seq: int = 3) -> dict[str, Any]:
    return {"intake": "http://127.0.0.1:1", "endpoint": "/api/v1/collector", "seq": seq,
            "content_type": "application/x-protobuf", "encoding": "", "size": 100,
            "data": {"header": {"type_name": "process", "encoding_name": "zstd-1.x"},
                     "body": {"hostName": "i-0123456789abcdef0", "processes": [{"pid": 7, "command": {}}],
                              "containers": [{"id": "c0ffee", "tags": ECS[:2]}]}}}


def write_capture(directory: Path, tests: dict[str, tuple[str, list[dict[str, Any]]]],
                  agent: str = "emulated") -> Path:
    """tests: nodeid -> (outcome, payloads)."""
    directory.mkdir(parents=True, exist_ok=True)
    index = {}
    for nodeid, (outcome, payloads) in tests.items():
        name = capture_dir_name(nodeid)
        (directory / name).mkdir()
        (directory / name / "payloads.jsonl").write_text("".join(json.dumps(p) + "\n" for p in payloads))
        index[nodeid] = {"outcome": outcome, "dir": name, "payloads": len(payloads)}
    (directory / "tests.json").write_text(json.dumps({"agent": {"spec": agent}, "tests": index,
                                                      "exit_code": 0}))
    return directory


def standard_run(directory: Path, *, drop_metric: bool = False, drop_tag: bool = False,
                 fail_dsd: bool = False, container_id: str = "aa" * 32, extra_metric: bool = False) -> Path:
    """Two scenarios: dogstatsd (a custom metric with ECS tags, plus the agent's own metric) and apm
    (a trace, a process payload). Options take one thing away, as a broken candidate would."""
    app_tags = [*ECS, "service:web", f"container_id:{container_id}"]
    if drop_tag:
        app_tags = [t for t in app_tags if not t.startswith("task_family:")]
    metrics = [series("datadog.agent.running", ["version:7.60.0"], 3),
               series("container.cpu.usage", [*ECS, f"container_id:{container_id}"], 3)]
    if not drop_metric:
        metrics.append(series("ecs_lab.app.requests", app_tags))
    if extra_metric:
        metrics.append(series("ecs_lab.app.new_metric", app_tags, 3))
    return write_capture(directory, {
        "scenarios/dsd/test_dsd.py::test_custom_metric": ("failed" if fail_dsd else "passed",
                                                          [series_payload(*metrics, seq=1)]),
        "scenarios/apm/test_apm.py::test_trace": ("passed", [trace_payload(2), process_payload(3)]),
    })
