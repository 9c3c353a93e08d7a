"""FireLens with fluent-bit, through the lab's stand-in: the configuration ECS generates, the
forward protocol in, and exactly what fluent-bit's Datadog output posts, at the lab's intake."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest
import requests
from fluent import sender as fluent_sender

from lab.fakes.intake.client import IntakeClient
from lab.fakes.intake.server import IntakeServer
from lab.log_router import config, firelens
from lab.log_router.datadog_output import DatadogOutputConfig, format_record, timestamp_ms
from lab.log_router.driver import FluentdLogDriver
from lab.log_router.router import LogRouter

TASK_ARN = "arn:aws:ecs:us-east-1:123456789012:task/lab/0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def seed_like_taskdef(**router_options: str) -> dict:
    """The shape Datadog's ECS logs docs and their users write: an app on awsfirelens, a log router,
    and the agent (Fargate, awsvpc)."""
    return {
        "family": "singsong",
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "1024",
        "memory": "2048",
        "containerDefinitions": [
            {"name": "app", "image": "app:latest", "essential": True,
             "logConfiguration": {"logDriver": "awsfirelens", "options": {
                 "Name": "datadog", "dd_message_key": "log", "apikey": "lab-api-key",
                 "dd_service": "singsong", "dd_source": "httpd", "dd_tags": "env:prod", "provider": "ecs",
                 "Host": "http-intake.logs.datadoghq.com", "TLS": "on", "compress": "gzip"}}},
            {"name": "log-router", "image": "amazon/aws-for-fluent-bit:latest", "essential": True,
             "firelensConfiguration": {"type": "fluentbit",
                                       "options": {"enable-ecs-log-metadata": "true", **router_options}}},
            {"name": "datadog-agent", "image": "public.ecr.aws/datadog/agent:latest", "essential": True,
             "environment": [{"name": "ECS_FARGATE", "value": "true"}]},
        ],
    }


TASK = firelens.TaskIdentity(cluster="lab", task_arn=TASK_ARN, family="singsong", revision=3)


def test_generated_config_has_firelens_inputs_metadata_and_one_output_per_app():
    text = firelens.generate(seed_like_taskdef(), TASK)
    sections = config.parse(text)
    assert [(s.kind, s.name) for s in sections] == [
        ("INPUT", "forward"), ("INPUT", "forward"), ("FILTER", "record_modifier"), ("OUTPUT", "datadog")]
    assert sections[0].get("unix_path") == "/var/run/fluent.sock"
    assert (sections[1].get("listen"), sections[1].get("port")) == ("0.0.0.0", "24224")
    assert [v for _, v in sections[2].repeated] == [
        # no EC2 instance id on Fargate
        "ecs_cluster lab", f"ecs_task_arn {TASK_ARN}", "ecs_task_definition singsong:3"]
    out = sections[3]
    assert out.get("match") == "app-firelens*"
    assert (out.get("host"), out.get("tls"), out.get("dd_message_key"), out.get("provider")) == (
        "http-intake.logs.datadoghq.com", "on", "log", "ecs")


def test_on_ec2_the_instance_id_is_recorded_and_a_redirect_points_outputs_at_the_lab():
    task = firelens.TaskIdentity("lab", TASK_ARN, "singsong", 3, ec2_instance_id="i-0abc")
    sections = config.parse(firelens.generate(seed_like_taskdef(), task,
                                              redirect=firelens.Redirect("127.0.0.1", 8091)))
    assert sections[2].repeated[0] == ("record", "ec2_instance_id i-0abc")
    out = sections[3]
    assert (out.get("host"), out.get("port"), out.get("tls")) == ("127.0.0.1", "8091", "off")


def test_without_ecs_metadata_there_is_no_record_modifier():
    taskdef = seed_like_taskdef(**{"enable-ecs-log-metadata": "false"})
    sections = config.parse(firelens.generate(taskdef, TASK))
    assert "record_modifier" not in [s.name for s in sections]


@pytest.mark.parametrize("mutate, reason", [
    (lambda td: td["containerDefinitions"].pop(1), "no container has a firelensConfiguration"),
    (lambda td: td["containerDefinitions"][1]["firelensConfiguration"].update(type="fluentd"), "fluentd"),
    (lambda td: td["containerDefinitions"][1]["firelensConfiguration"]["options"].update(
        {"config-file-type": "s3", "config-file-value": "arn:aws:s3:::b/x.conf"}), "config-file-type 's3'"),
])
def test_firelens_settings_ecs_would_not_run_are_refused_by_name(mutate, reason):
    td = seed_like_taskdef()
    mutate(td)
    with pytest.raises(firelens.FirelensError, match=reason):
        firelens.generate(td, TASK)


def test_a_record_is_formatted_as_fluent_bits_datadog_output_formats_it():
    section = config.parse(firelens.generate(seed_like_taskdef(), TASK))[-1]
    cfg = DatadogOutputConfig.from_section(section)
    record = {"container_id": "c0ffee", "container_name": "/app", "source": "stdout", "log": "GET / 200",
              "ecs_cluster": "lab", "ecs_task_arn": TASK_ARN, "ecs_task_definition": "singsong:3"}
    out = format_record(cfg, "app-firelens-x", 1_700_000_000.0126, record)
    assert list(out) == ["timestamp", "ddsource", "service", "source", "message", "ddtags"]
    assert out["timestamp"] == 1_700_000_000_013  # ms, half up
    assert out["message"] == "GET / 200" and out["ddsource"] == "httpd" and out["service"] == "singsong"
    # fluent-bit's task_id is everything after "task/": with today's long ARN format that includes
    # the cluster name, and the stand-in keeps that quirk.
    assert out["ddtags"].split(",") == [
        "container_id:c0ffee", "container_name:app", "cluster_name:lab", f"task_arn:{TASK_ARN}",
        "region:us-east-1", "task_id:lab/0f1e2d3c4b5a69788796a5b4c3d2e1f0", "task_family:singsong",
        "task_version:3", "env:prod"]


def test_timestamp_rounding_matches_fluent_bit():
    assert timestamp_ms(1.0004999) == 1000 and timestamp_ms(1.0005) == 1001


def test_a_router_whose_output_points_outside_the_lab_is_refused():
    with pytest.raises(config.ConfigError, match="outside the lab"):
        LogRouter(firelens.generate(seed_like_taskdef(), TASK))


def test_an_output_plugin_the_stand_in_lacks_is_refused_not_ignored():
    text = "[INPUT]\n    Name forward\n    Port 0\n[OUTPUT]\n    Name cloudwatch_logs\n    Match *\n"
    with pytest.raises(config.ConfigError, match="cloudwatch_logs is not supported"):
        LogRouter(text)


@pytest.fixture
def intake():
    with IntakeServer() as server:
        server.listen("127.0.0.1", 0)
        yield server


@pytest.fixture
def router(intake, tmp_path):
    lab_intake = firelens.Redirect("127.0.0.1", urlsplit(intake.url).port)
    text = firelens.generate(seed_like_taskdef(), TASK, redirect=lab_intake,
                             forward_listen="127.0.0.1", forward_port=0,
                             unix_path=str(tmp_path / "fluent.sock"))
    with LogRouter(text) as r:
        yield r


def test_a_containers_stdout_and_stderr_reach_the_intake_as_fluent_bit_sends_them(intake, router, tmp_path):
    app = subprocess.Popen([sys.executable, "-c",
                            "import sys\nprint('GET /health 200', flush=True)\n"
                            "print('disk full', file=sys.stderr, flush=True)"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with FluentdLogDriver(str(tmp_path / "fluent.sock"), "app", "c0ffee", TASK.task_id) as driver:
        driver.pump(app.stdout, "stdout")
        driver.pump(app.stderr, "stderr")
    assert app.wait(timeout=10) == 0

    logs = IntakeClient(intake.url).wait_for_logs("singsong", count=2, timeout=15)
    by_message = {e["message"]: e for e in logs}
    assert set(by_message) == {"GET /health 200", "disk full"}
    assert by_message["disk full"]["source"] == "stderr" and by_message["disk full"]["ddsource"] == "httpd"
    tags = by_message["GET /health 200"]["tags"]
    for tag in ("task_family:singsong", "task_version:3", "cluster_name:lab", "container_name:app",
                "container_id:c0ffee", "region:us-east-1", f"task_arn:{TASK_ARN}", "env:prod"):
        assert tag in tags
    assert "ecs_task_arn" not in by_message["disk full"] and "log" not in by_message["disk full"]

    records, _ = intake.store.snapshot("/api/v2/logs")
    assert records and all(r.header("DD-EVP-ORIGIN") == "Fluent-Bit" and r.api_key == "lab-api-key"
                           and r.encoding == "gzip" for r in records)
    assert isinstance(json.loads(gzip.decompress(records[0].body)), list)


def test_fluent_logger_in_app_code_reaches_the_router_over_tcp(intake, router):
    # The fluent-logger libraries send to 24224 with their own tag: a tag the generated outputs
    # do not match goes nowhere (as in fluent-bit); the app's FireLens tag is routed.
    (port,) = router.ports
    logger = fluent_sender.FluentSender(firelens.tag_for("app", TASK.task_id), host="127.0.0.1", port=port)
    try:
        sent = logger.emit_with_time(None, 1_700_000_000, {"log": "from code", "user": "u-1"})
        assert sent, logger.last_error
        other = fluent_sender.FluentSender("elsewhere", host="127.0.0.1", port=port)
        assert other.emit(None, {"log": "unrouted"})
        other.close()
    finally:
        logger.close()
    (entry,) = IntakeClient(intake.url).wait_for_logs("singsong", message="from code", timeout=15)
    assert entry["user"] == "u-1" and entry["timestamp"] == 1_700_000_000_000
    assert IntakeClient(intake.url).logs(message="unrouted") == []
    assert router.stats()["unmatched"] == 1


def test_an_intake_error_is_retried_retry_limit_times_then_the_batch_is_dropped(intake, router):
    requests.post(intake.url + "/fakeintake/configure/override",
                  json={"endpoint": "/api/v2/logs", "status_code": 500, "content_type": "application/json",
                        "body": "{}"}, timeout=5).raise_for_status()
    with FluentdLogDriver(("127.0.0.1", router.ports[0]), "app", "c0ffee", TASK.task_id) as driver:
        driver.send("lost line")
    deadline = time.monotonic() + 15
    while (stats := router.stats()["outputs"][0])["dropped_records"] == 0:
        assert time.monotonic() < deadline, f"the batch was never given up: {stats}"
        time.sleep(0.1)
    assert (stats["requests"], stats["retries"], stats["sent_records"]) == (2, 1, 0)
    assert stats["last_error"] == "HTTP status=500"
