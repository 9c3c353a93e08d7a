"""Large trace requests decoded in worker processes: same payloads, errors, and no process left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import msgpack
import psutil
import pytest

from lab.world import wait_until

from .conftest import agent_env
from .test_apm import _trace, decode_agent_payload

DECODER_ENV = {"LAB_AGENT_APM_DECODER_PROCESSES": "2", "LAB_AGENT_APM_DECODER_MIN_BYTES": "2048"}


def post(port: int, body: bytes, path: str = "/v0.4/traces") -> tuple[int, str]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=body, method="PUT",
        headers={"Content-Type": "application/msgpack", "Datadog-Meta-Lang": "python"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def big_request(first_trace: int, traces: int = 20) -> bytes:
    return msgpack.packb([_trace(first_trace + k, 5, env="prod") for k in range(traces)])


def workers_of(parent: psutil.Process) -> list[psutil.Process]:
    """The decoder processes under `parent` (multiprocessing's spawned workers, not its resource
    tracker)."""
    return [p for p in parent.children(recursive=True) if "spawn_main" in " ".join(p.cmdline())]


def decoders_of(agent) -> dict:
    return agent.status()["apm"]["decoders"]


def spans_at_intake(intake) -> dict[int, int]:
    """trace id -> spans, over every AgentPayload the agent forwarded."""
    out: dict[int, int] = {}
    for cap in intake.payloads("/api/v0.2/traces"):
        for tp in decode_agent_payload(cap.body).tracerPayloads:
            for chunk in tp.chunks:
                for span in chunk.spans:
                    out[span.traceID] = out.get(span.traceID, 0) + 1
    return out


def test_large_requests_go_to_worker_processes_and_every_span_arrives(start_agent, intake):
    agent = start_agent(**DECODER_ENV)
    assert post(agent.ports.apm, big_request(1000))[0] == 200  # decoded here; starts the workers
    wait_until(lambda: decoders_of(agent)["ready"], 30, what="2 decoder processes")
    assert len(workers_of(psutil.Process())) == 2
    for k in range(1, 6):
        assert post(agent.ports.apm, big_request(1000 + k * 100))[0] == 200
    assert decoders_of(agent)["requests_handed_off"] == 5
    # A small request is decoded in the agent process.
    assert post(agent.ports.apm, msgpack.packb([_trace(7)]))[0] == 200
    assert decoders_of(agent)["requests_handed_off"] == 5
    expected = {1000 + k * 100 + t: 5 for k in range(6) for t in range(20)} | {7: 2}
    wait_until(lambda: spans_at_intake(intake) == expected, 20,
               what="every span of the 7 requests at the intake")
    assert agent.traces.stats.spans_received == 6 * 100 + 2


def test_a_malformed_large_request_is_refused_with_the_workers_reason(start_agent):
    agent = start_agent(**DECODER_ENV)
    post(agent.ports.apm, big_request(1))
    wait_until(lambda: decoders_of(agent)["ready"], 30, what="2 decoder processes")
    bad = msgpack.packb([[{"service": "s"}, "not a span" * 500]])
    status, text = post(agent.ports.apm, bad)
    assert status == 400 and "span is a str, not a map" in text
    status, text = post(agent.ports.apm, b"\xc1" * 4096)
    assert status == 400 and "invalid msgpack" in text
    assert agent.traces.stats.decode_errors == 2
    assert decoders_of(agent)["requests_handed_off"] == 2 and decoders_of(agent)["broken"] is None


def test_a_dead_worker_loses_no_request_and_says_why(start_agent, intake):
    agent = start_agent(**DECODER_ENV)
    post(agent.ports.apm, big_request(1))
    wait_until(lambda: decoders_of(agent)["ready"], 30, what="2 decoder processes")
    (victim, *_) = workers_of(psutil.Process())
    victim.kill()
    victim.wait(10)
    for k in range(1, 4):
        assert post(agent.ports.apm, big_request(k * 100))[0] == 200
    assert "a decoder process died" in decoders_of(agent)["broken"]
    sent = [k * 100 + t for k in range(1, 4) for t in range(20)]
    wait_until(lambda: all(spans_at_intake(intake).get(t) == 5 for t in sent), 20,
               what="the spans of the requests sent after a worker died")


def test_stopping_the_agent_stops_its_workers(start_agent):
    agent = start_agent(**DECODER_ENV)
    post(agent.ports.apm, big_request(1))
    wait_until(lambda: decoders_of(agent)["ready"], 30, what="2 decoder processes")
    workers = workers_of(psutil.Process())
    assert len(workers) >= 2
    agent.stop()
    gone, alive = psutil.wait_procs(workers, timeout=15)
    assert not alive, f"decoder processes left running: {[p.pid for p in alive]}"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_workers_do_not_outlive_an_agent_killed_or_interrupted(intake, tmp_path, sig):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DD_")},
           **agent_env(intake.url, **DECODER_ENV)}
    log = tmp_path / "agent.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "lab.agent", "run"], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        ready = wait_until(lambda: next((json.loads(line) for line in log.read_text().splitlines()
                                         if line.startswith('{"event": "ready"')), None), 30,
                           what="the agent's ready line")
        post(int(ready["ports"]["apm"]), big_request(1))
        parent = psutil.Process(proc.pid)
        # The pool starts one process per task no idle worker takes: both appear, not at once.
        def both() -> list[psutil.Process] | None:
            found = workers_of(parent)
            return found if len(found) == 2 else None

        workers = wait_until(both, 30, what="the agent's 2 decoder processes")
        proc.send_signal(sig)
        proc.wait(30)
        gone, alive = psutil.wait_procs(workers, timeout=15)
        assert not alive, f"decoder processes outlived the agent ({sig.name}): {[p.pid for p in alive]}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
