"""DogStatsD's sockets drained by a process of their own (lab/agent/dogstatsd_drain.py): what a
user reads at the intake is what the in-process reader gives, the sender's origin still reaches
the tags, nothing is left running or holding the port when the agent stops or dies, and a reader
that dies hands its sockets back to the agent's threads."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lab.agent import dogstatsd
from lab.agent.config import AgentConfig, ConfigError
from lab.agent.dogstatsd import MetricAggregator
from lab.agent.dogstatsd_server import DogStatsDServer
from lab.world import wait_until

# Every kind of datagram, repeats among them (runs are framed once with their count).
STREAM = [
    *[b"reqs:1|c|#route:/a"] * 500,
    b"reqs:1|c|#route:/b",
    *[b"reqs:1|c|#route:/a"] * 20,
    b"temp:7.5|g", b"temp:7.5|g", b"temp:3|g",
    b"users:alice|s", b"users:bob|s",
    b"lat:12|h|@0.5", b"lat:3:9|ms",
    b"size:4|d",
    b"two:1|c\nbad-line\nthree:5|g",
    b"_e{2,3}:up|sys|#x:1",
    b"_sc|db|1|#y:2",
    b"\xff\xfe:1|c",
    b"big:1|c|#" + b"t" * 60000,
]


def _run(monkeypatch, reader_process: bool, origin=None) -> tuple[dict, dict, DogStatsDServer]:
    monkeypatch.setattr(dogstatsd.time, "time", lambda: 1_000.0)
    agg = MetricAggregator("h", 10)
    server = DogStatsDServer(agg, ["127.0.0.1"], 0, rcvbuf=4 * 1024 * 1024, origin=origin,
                             reader_process=reader_process).start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
            for datagram in STREAM:
                sock.sendto(datagram, ("127.0.0.1", server.port))
        wait_until(lambda: server.stats.packets == len(STREAM) and not server.queued, 20,
                   what=f"{len(STREAM)} datagrams parsed")
        series, sketches, events, checks = agg.flush(force=True)
        seen = {
            "series": sorted((s.name, tuple(s.tags), s.mtype, tuple(s.points)) for s in series),
            "sketches": sorted((k.name, tuple(k.tags), k.sketch.count, k.sketch.sum) for k in sketches),
            "events": sorted(repr(e) for e in events),
            "checks": sorted(repr(c) for c in checks),
        }
        return seen, server.stats.as_dict(), server
    finally:
        server.stop()


def test_the_reader_process_aggregates_what_the_threads_do(monkeypatch):
    by_process, stats_process, server = _run(monkeypatch, True)
    by_threads, stats_threads, _ = _run(monkeypatch, False)
    assert server.snapshot()["reader"] == "process"
    assert by_process == by_threads
    assert stats_process == stats_threads
    reqs = {s[1]: s[3] for s in by_process["series"] if s[0] == "reqs"}
    assert sum(v for _, v in reqs[("route:/a",)]) * 10 == 520
    assert [s[3][-1][1] for s in by_process["series"] if s[0] == "temp"] == [3.0]  # the last gauge wins
    assert any(s[0] == "big" for s in by_process["series"])  # a 60 KB datagram whole


def test_the_senders_address_reaches_the_origin_resolver(monkeypatch):
    """With origin detection, each datagram is framed with its sender: two sockets sending the
    same datagram are two origins (their runs are not merged across senders)."""
    agg = MetricAggregator("h", 10)
    seen: list[tuple[str, int]] = []

    def origin(ip: str, port: int, container_id: str) -> list[str]:
        seen.append((ip, port))
        return [f"sender:{port}"]

    server = DogStatsDServer(agg, ["127.0.0.1"], 0, origin=origin, reader_process=True).start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, \
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
            for sock, times in ((a, 3), (b, 5), (a, 2)):
                for _ in range(times):
                    sock.sendto(b"hits:1|c", ("127.0.0.1", server.port))
            ports = {a.getsockname()[1]: 5, b.getsockname()[1]: 5}
            wait_until(lambda: server.stats.packets == 10 and not server.queued, 10, what="10 datagrams")
        series = agg.flush(force=True)[0]
        counted = {s.tags[0]: sum(v for _, v in s.points) * 10 for s in series if s.name == "hits"}
        assert counted == {f"sender:{p}": n for p, n in ports.items()}
        assert {ip for ip, _ in seen} == {"127.0.0.1"}
    finally:
        server.stop()


def test_stop_ends_the_reader_and_frees_the_port():
    server = DogStatsDServer(MetricAggregator("h", 10), ["127.0.0.1"], 0, reader_process=True).start()
    drain = server._drain
    assert drain is not None and drain.poll() is None
    port = server.port
    server.stop()
    assert drain.poll() is not None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind(("127.0.0.1", port))


def test_the_reader_gets_a_short_slice_and_the_parse_thread_the_lowest_priority():
    """Who wins a CPU both want: the reader process (a slice of 0.1 ms on kernels that take one,
    6.12 and later; its niceness the agent's) over the agent's parse thread (nice 19)."""
    server = DogStatsDServer(MetricAggregator("h", 10), ["127.0.0.1"], 0, reader_process=True).start()
    try:
        wait_until(lambda: server.parse_thread_id, 10, what="the parse thread to start")
        assert os.getpriority(os.PRIO_PROCESS, server.parse_thread_id) == 19  # a thread id (Linux)
        assert os.getpriority(os.PRIO_PROCESS, server._drain.pid) == os.getpriority(os.PRIO_PROCESS, 0)
        sched = Path(f"/proc/{server._drain.pid}/sched").read_text()
        release = tuple(int(x) for x in re.findall(r"\d+", os.uname().release)[:2])
        if release >= (6, 12):
            assert re.search(r"^se\.slice\s*:\s*100000$", sched, re.M), sched
    finally:
        server.stop()


def test_an_agent_killed_with_sigkill_leaves_no_reader_holding_the_port(tmp_path):
    """kill -9 of the agent (a resilience scenario does it): its reader sees the pipe's read end
    close and ends at once, so a restarted agent can bind DogStatsD's port again."""
    script = textwrap.dedent("""
        import os, sys, time
        from lab.agent.dogstatsd import MetricAggregator
        from lab.agent.dogstatsd_server import DogStatsDServer
        server = DogStatsDServer(MetricAggregator("h", 10), ["127.0.0.1"], 0, reader_process=True).start()
        print(server.port, server._drain.pid, flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        port, reader = (int(x) for x in proc.stdout.readline().split())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

        def reader_gone() -> bool:
            try:
                os.kill(reader, 0)
            except ProcessLookupError:
                return True
            with open(f"/proc/{reader}/stat") as f:  # a zombie of init's is gone too
                return f.read().rsplit(")", 1)[1].split()[0] == "Z"

        wait_until(reader_gone, 5, what="the reader process to end")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
            again.bind(("127.0.0.1", port))
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_a_reader_that_dies_hands_the_sockets_back_to_the_agent():
    agg = MetricAggregator("h", 10)
    server = DogStatsDServer(agg, ["127.0.0.1"], 0, reader_process=True).start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"before:1|c", ("127.0.0.1", server.port))
            wait_until(lambda: server.stats.packets == 1, 10, what="the first datagram")
            server._drain.kill()
            wait_until(lambda: server.snapshot()["reader"] == "threads", 10, what="the threads to take over")
            sock.sendto(b"after:1|c", ("127.0.0.1", server.port))
            wait_until(lambda: server.stats.packets == 2, 10, what="a datagram after the reader died")
        assert server.reader_restarts == 1
        assert {s.name for s in agg.flush(force=True)[0]} == {"before", "after"}
    finally:
        server.stop()


@pytest.mark.parametrize("value, process", [(None, True), ("process", True), ("threads", False),
                                            (" Threads ", False)])
def test_the_reader_is_chosen_by_lab_agent_dogstatsd_reader(value, process):
    env = {"DD_API_KEY": "x" * 32}
    if value is not None:
        env["LAB_AGENT_DOGSTATSD_READER"] = value
    assert AgentConfig.from_env(env).dogstatsd_reader_process is process


def test_a_bad_reader_value_is_a_clear_error():
    with pytest.raises(ConfigError, match="LAB_AGENT_DOGSTATSD_READER='fibers': use process or threads"):
        AgentConfig.from_env({"DD_API_KEY": "x" * 32, "LAB_AGENT_DOGSTATSD_READER": "fibers"})


def test_the_queue_is_the_agents_queue_size_times_its_packet_buffer():
    cfg = AgentConfig.from_env({"DD_API_KEY": "x" * 32, "DD_DOGSTATSD_QUEUE_SIZE": "10",
                                "DD_DOGSTATSD_PACKET_BUFFER_SIZE": "4"})
    assert cfg.dogstatsd_queue_size * cfg.dogstatsd_packet_buffer_size == 40
    assert AgentConfig.from_env({"DD_API_KEY": "x" * 32}).summary()["dogstatsd"]["queue"] == 32768
