"""`ecs-lab fake intake` runs standalone, answers the agent's routes, and stops cleanly."""

from __future__ import annotations

import signal
import subprocess
import sys

import requests

from lab.fakes.intake.samples import series_body
from lab.world import wait_until


def test_fake_intake_cli_serves_and_stops_on_sigterm():
    cmd = [sys.executable, "-m", "lab.cli", "fake", "intake", "--listen", "127.0.0.1:0",
           "--max-payloads", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith("intake: http://127.0.0.1:"), first + proc.stderr.read()
        url = first.split(" ", 1)[1].strip()
        with requests.Session() as http:
            http.trust_env = False
            for metric in ("a", "b", "c"):
                body, headers = series_body(metric=metric)
                assert http.post(url + "/api/v2/series", data=body, headers=headers).status_code == 202
            stats = http.get(url + "/fakeintake/routestats").json()["routes"]["/api/v2/series"]
            assert (stats["count"], stats["evicted"], stats["accepted"]) == (2, 1, 3)
        proc.send_signal(signal.SIGTERM)
        wait_until(lambda: proc.poll() is not None, timeout=10, what="intake CLI to exit")
        assert proc.returncode == 0
        assert "intake stopped." in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=5)
