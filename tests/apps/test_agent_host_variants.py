"""Each DD_AGENT_HOST variant, run as the real process its task definition starts, reaches the agent
at the instance's private IP with traces (right service/env/version) and DogStatsD metrics; and none
of them ever falls back to 169.254.169.254."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from lab.apps import entrypoints
from lab.apps.sample_app import SampleApp
from lab.world import wait_until


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _env_for(variant: str, instance, tmp_path) -> dict:
    env = dict(instance.env)
    if variant == "metadata_file":
        # What the ECS agent writes when ECS_ENABLE_CONTAINER_METADATA=true (docs/ecs_metadata.md).
        meta = tmp_path / "ecs-container-metadata.json"
        meta.write_text(json.dumps({
            "Cluster": "ecs-lab", "ContainerName": "web", "MetadataFileStatus": "READY",
            "HostPrivateIPv4Address": instance.private_ip, "HostPublicIPv4Address": "",
        }))
        env["ECS_CONTAINER_METADATA_FILE"] = str(meta)
    if variant == "imdsv1":
        # The v0.4 path of the tracer gets exercised too (docs/agent_contract.md#tracers: receivers take
        # both).
        env["DD_TRACE_API_VERSION"] = "v0.4"
    return env


@pytest.mark.parametrize("variant", entrypoints.VARIANTS)
def test_variant_sends_traces_and_metrics_to_the_instance_private_ip(variant, instance, tmp_path):
    if variant == "imdsv2":
        # Tokens required: a v1 GET would get 401, so traffic at the capture proves the token flow.
        instance.imds.model.set_policy(instance.world.instance(1).instance_id, tokens_required=True)
    capture = instance.capture
    app = SampleApp(variant, env=_env_for(variant, instance, tmp_path))
    with app:
        status, body = _get(app.url + "/")
        assert status == 200, body
        info = json.loads(body)
        assert info["agent_host"] == instance.private_ip, app.output()
        assert info["agent_host_from"] == ("imds" if variant == "in_code" else "env")

        assert _get(app.url + "/healthz") == (200, b"ok\n")
        assert _get(app.url + "/work?ms=3&depth=3")[0] == 200
        assert _get(app.url + "/error")[0] == 500
        assert _get(app.url + "/work?ms=lots")[0] == 400
        wait_until(lambda: capture.metric_lines("ecs_lab.app.request.duration_ms"), 10,
                   what=f"DogStatsD metrics at {instance.private_ip} ({capture.describe()})")
    # Stopped as ECS stops a task (SIGTERM to the entryPoint's process): a clean exit, spans flushed.
    assert app.proc.returncode == 0
    wait_until(lambda: capture.spans_named("work.step") and capture.spans_named("flask.request")
               and any(s.error for s in capture.spans_named("flask.request")),
               15, what=f"work and error traces at the capture ({capture.describe()})")

    requests = [s for s in capture.spans_named("flask.request")]
    for span in requests:
        assert span.service == "ecs-lab-web-test"
        assert span.meta.get("env") == "apps-test"
        assert span.meta.get("version") == "9.8.7"
        assert span.agent_address == instance.private_ip
    steps = capture.spans_named("work.step")
    assert len({s.resource for s in steps}) == 3, "three nested steps"
    assert {s.trace_id for s in steps} <= {s.trace_id for s in requests}
    if variant == "imdsv1":
        assert set(capture.trace_requests) == {"/v0.4/traces"}

    lines = capture.metric_lines("ecs_lab.app.")
    kinds = {re.match(r"[^:]+:[^|]+\|(\w+)", line).group(1) for line in lines}
    assert {"c", "h", "d", "g"} <= kinds, lines
    assert not [line for line in lines if "route:/healthz" in line], "health checks are not counted"
    work = [line for line in lines if line.startswith("ecs_lab.app.requests:") and "route:/work" in line
            and "status_code:200" in line]
    assert work, lines
    for tag in ("env:apps-test", "service:ecs-lab-web-test", "version:9.8.7", "method:GET"):
        assert tag in work[0], work[0]
    assert any("route:/work" in line and "status_code:400" in line for line in lines), "bad input counted"

    stats = instance.imds.model.stats
    if variant == "imdsv2":
        assert stats.count(path="/latest/api/token", method="PUT", status=200) >= 1
        assert stats.count(path="/latest/meta-data/local-ipv4", status=200) >= 1
    elif variant == "metadata_file":
        assert stats.count(path="/latest/meta-data/*") == 0, "the file variant never asks IMDS"
    else:
        assert stats.count(path="/latest/meta-data/local-ipv4", status=200) >= 1


needs_strace = pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")


def _connects(trace_file) -> list[str]:
    return [line for line in trace_file.read_text().splitlines() if "connect(" in line]


@needs_strace
def test_strace_sees_the_connects_it_would_have_to_catch(instance, tmp_path):
    # The control for the test below: a connect from a curl in an `sh -c` child shows up.
    out = tmp_path / "strace.txt"
    subprocess.run(["strace", "-f", "-e", "trace=connect", "-o", str(out), "sh", "-c",
                    f"curl -s {instance.imds_url}/latest/meta-data/local-ipv4"], check=True,
                   capture_output=True, timeout=20)
    assert any("127.0.0.1" in line for line in _connects(out))


@needs_strace
@pytest.mark.parametrize("variant", entrypoints.VARIANTS)
def test_variant_without_metadata_endpoint_exits_and_never_touches_169_254(variant, instance, tmp_path):
    env = _env_for(variant, instance, tmp_path)
    del env["AWS_EC2_METADATA_SERVICE_ENDPOINT"]
    trace = tmp_path / "strace.txt"
    app = SampleApp(variant, env=env, wrapper=["strace", "-f", "-e", "trace=connect", "-o", str(trace)])
    try:
        app.launch()
        code = app.wait_exit(20)
    finally:
        app.stop()
    output = app.output()
    assert code != 0, output
    assert "AWS_EC2_METADATA_SERVICE_ENDPOINT is not set" in output
    assert "169.254.169.254" in output, "the message says what the lab refused to fall back to"
    connects = _connects(trace)
    assert not [c for c in connects if "169.254." in c], connects
    # Under ddtrace-run the tracer starts before the app can refuse, and may knock on its default
    # localhost agent; anything beyond loopback would be a leak.
    inet = [c for c in connects if "AF_INET" in c]
    assert all('inet_addr("127.' in c for c in inet), inet
    if variant == "in_code":
        assert not inet, "the in-code variant refuses before ddtrace or any socket starts"
    assert app.port is None and not app.port_file.exists()


def test_metadata_file_variant_without_jq_stops_naming_jq(instance, tmp_path):
    # An image without jq: the docs' line exports an empty host; the app must say why, not send to
    # localhost. PATH holds only what the line and the app need, minus jq.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    pybin = Path(sys.executable).parent
    for name, target in {"sh": shutil.which("sh"), "cat": shutil.which("cat"), "curl": shutil.which("curl"),
                         "ddtrace-run": str(pybin / "ddtrace-run")}.items():
        (bindir / name).symlink_to(target)
    # `python` is a script that runs this interpreter by its own path, not a symlink to it: a venv's
    # interpreter finds its site-packages (ddtrace, the lab) through the pyvenv.cfg beside the path
    # it was started by, and a symlink in another directory has none, so it would be the base Python.
    (bindir / "python").write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
    (bindir / "python").chmod(0o755)
    env = {**_env_for("metadata_file", instance, tmp_path), "PATH": str(bindir)}
    app = SampleApp("metadata_file", env=env)
    try:
        app.launch()
        code = app.wait_exit(20)
    finally:
        app.stop()
    assert code == 2, app.output()
    assert re.search(r"jq: (command )?not found", app.output()), "the shell's own error is kept"
    assert "not installed here: jq" in app.output()
    assert not instance.capture.spans and not instance.capture.datagrams
