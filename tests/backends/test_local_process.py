"""ManagedProcess: a process group the lab owns, probed for readiness, stopped with everything it forked."""

from __future__ import annotations

import os
import socket
import sys

import psutil
import pytest

from lab.backends.process import (
    ManagedProcess,
    ProcessExited,
    file_probe,
    group_alive,
    http_probe,
    tcp_probe,
    udp_probe,
)
from lab.world import wait_until

PY = sys.executable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ready_when_the_http_server_answers_and_logs_go_to_the_component_file(tmp_path):
    port = _free_port()
    argv = [PY, "-m", "http.server", "--bind", "127.0.0.1", str(port)]
    with ManagedProcess("web", argv, log_dir=tmp_path,
                        ready=http_probe(f"http://127.0.0.1:{port}/")) as proc:
        assert proc.running
        assert http_probe(f"http://127.0.0.1:{port}/")()
        pid = proc.pid
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert (tmp_path / "web.log").exists()
    assert "GET / HTTP" in (tmp_path / "web.log").read_text()


def test_stop_kills_every_process_an_sh_c_entrypoint_forked(tmp_path):
    marker = tmp_path / "children-started"
    line = f"sleep 300 & sleep 301 & touch {marker}; wait"
    proc = ManagedProcess("task", ["sh", "-c", line], log_dir=tmp_path, ready=file_probe(marker)).start()
    proc.wait_ready(10)
    children = psutil.Process(proc.pid).children(recursive=True)
    assert len(children) >= 2
    proc.stop()
    assert not group_alive(proc.pid)
    for child in children:
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE


def test_a_process_that_ignores_sigterm_is_killed_after_the_timeout(tmp_path):
    code = "import signal,time,pathlib; signal.signal(signal.SIGTERM, signal.SIG_IGN); " \
           f"pathlib.Path({str(tmp_path / 'up')!r}).touch(); time.sleep(300)"
    proc = ManagedProcess("stubborn", [PY, "-c", code], log_dir=tmp_path, ready=file_probe(tmp_path / "up"),
                          stop_timeout=0.5)
    with proc:
        pass
    assert proc.returncode == -9


def test_exit_before_ready_fails_with_the_last_log_lines(tmp_path):
    argv = [PY, "-c", "import sys; print('config error: DD_API_KEY missing'); sys.exit(3)"]
    proc = ManagedProcess("agent-1", argv, log_dir=tmp_path, ready=tcp_probe("127.0.0.1", _free_port()))
    with pytest.raises(ProcessExited) as err:
        with proc:
            pass
    msg = str(err.value)
    assert "agent-1 exited with code 3" in msg
    assert "DD_API_KEY missing" in msg


def test_never_ready_times_out_naming_the_probe(tmp_path):
    port = _free_port()
    proc = ManagedProcess("sleeper", [PY, "-c", "import time; print('warming up'); time.sleep(60)"],
                          log_dir=tmp_path, ready=tcp_probe("127.0.0.1", port), ready_timeout=0.5)
    with pytest.raises(ProcessExited) as err:
        with proc:
            pass
    assert f"TCP connect 127.0.0.1:{port}" in str(err.value)
    assert not proc.running


def test_udp_probe_sees_a_bound_datagram_socket(tmp_path):
    port = _free_port()
    assert not udp_probe("127.0.0.1", port)()
    code = f"import socket,time; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); " \
           f"s.bind(('127.0.0.1', {port})); time.sleep(60)"
    with ManagedProcess("statsd", [PY, "-c", code], log_dir=tmp_path, ready=udp_probe("127.0.0.1", port)):
        assert udp_probe("127.0.0.1", port)()


def test_an_unknown_executable_is_a_clear_error(tmp_path):
    with pytest.raises(ProcessExited, match="cannot start 'no-such-agent-binary'"):
        ManagedProcess("x", ["no-such-agent-binary"], log_dir=tmp_path).start()


def test_env_is_exactly_what_was_given(tmp_path):
    out = tmp_path / "env"
    env = {"PATH": os.environ["PATH"], "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.1.1:1338"}
    proc = ManagedProcess("env", ["sh", "-c", f"env > {out}"], env=env, log_dir=tmp_path).start()
    wait_until(lambda: proc.returncode is not None, timeout=5, what="env to exit")
    text = out.read_text()
    assert "AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.1.1:1338" in text
    assert "HTTPS_PROXY" not in text
