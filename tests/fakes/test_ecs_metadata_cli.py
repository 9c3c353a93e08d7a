"""`ecs-lab fake ecs` as a user runs it: a process that serves until interrupted."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys

from lab.world import wait_until


def test_fake_ecs_cli_serves_demo_tasks_until_ctrl_c(tmp_path):
    tasks = tmp_path / "tasks.json"
    tasks.write_text(json.dumps({"tasks": [{"family": "web", "revision": 2, "service": "web",
                                            "containers": [{"name": "app", "image": "my/app:1",
                                                            "ports": [{"containerPort": 8080}]}]}]}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "lab.cli", "fake", "ecs", "--introspection", "127.0.0.1:0",
         "--task-metadata", "127.0.0.1:0", "--private-ip", "127.0.23.1", "--tasks-file", str(tasks)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        def serving() -> bool:
            lines.append(proc.stdout.readline())
            return "serving" in lines[-1] or proc.poll() is not None

        wait_until(serving, timeout=20, what="the CLI to start serving")
        out = "".join(lines)
        assert proc.poll() is None, out
        intro = re.search(r"ECS introspection of \S+: (http://\S+)", out).group(1)
        v4 = re.search(r"ECS_CONTAINER_METADATA_URI_V4=(\S+)", out).group(1)
        tasks_json = json.loads(subprocess.run(["curl", "-s", intro + "/v1/tasks"], capture_output=True,
                                               text=True, check=True).stdout)
        assert tasks_json["Tasks"][0]["Family"] == "web"
        task = json.loads(subprocess.run(["curl", "-s", v4 + "/task"], capture_output=True, text=True,
                                         check=True).stdout)
        assert task["ServiceName"] == "web" and task["Containers"][0]["Ports"][0]["ContainerPort"] == 8080
        creds_url = re.search(r"AWS_CONTAINER_CREDENTIALS_FULL_URI=(\S+)", out).group(1)
        creds = json.loads(subprocess.run(["curl", "-s", creds_url], capture_output=True, text=True,
                                          check=True).stdout)
        assert creds["AccessKeyId"].startswith("ASIA")
    finally:
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=15)
    assert rc == 0


def test_fake_ecs_cli_rejects_a_bad_tasks_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"family": "web"}]))
    r = subprocess.run([sys.executable, "-m", "lab.cli", "fake", "ecs", "--introspection", "127.0.0.1:0",
                        "--task-metadata", "127.0.0.1:0", "--tasks-file", str(bad)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "task #0" in r.stderr and "containers" in r.stderr
