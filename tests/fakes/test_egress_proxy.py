"""The recording egress proxy: every attempt is recorded and refused; nothing leaves."""

from __future__ import annotations

import asyncio
import json
import subprocess

import aiohttp
import pytest
import requests

from lab.fakes.egress_proxy import EgressProxy


@pytest.fixture
def proxy():
    with EgressProxy() as p:
        yield p


def curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", "-m", "10", *args], capture_output=True, text=True)


def test_curl_https_through_the_proxy_is_refused_and_recorded(proxy):
    r = curl("--proxy", proxy.url, "https://api.datadoghq.invalid/api/v1/validate")
    assert r.returncode != 0 and "403" in r.stderr
    [a] = proxy.attempts
    assert (a.kind, a.method, a.host, a.port) == ("connect", "CONNECT", "api.datadoghq.invalid", 443)
    assert a.user_agent.startswith("curl/")


def test_curl_plain_http_gets_a_403_with_a_reason(proxy):
    r = curl("--proxy", proxy.url, "-w", "\n%{http_code}", "-d", "payload=1", "http://intake.invalid:8080/x?y=1")
    body, _, code = r.stdout.rpartition("\n")
    assert code == "403" and "not allowed" in json.loads(body)["error"]
    [a] = proxy.attempts
    assert (a.kind, a.method, a.host, a.port, a.target) == (
        "forward", "POST", "intake.invalid", 8080, "http://intake.invalid:8080/x?y=1")


def test_requests_with_proxies_never_reach_the_host(proxy):
    proxies = {"http": proxy.url, "https": proxy.url}
    assert requests.get("http://app.invalid/", proxies=proxies, timeout=10).status_code == 403
    with pytest.raises(requests.exceptions.ProxyError):
        requests.post("https://trace.agent.datadoghq.invalid/api/v0.2/traces", data=b"x" * 100_000,
                      proxies=proxies, timeout=10)
    assert [(a.host, a.port) for a in proxy.attempts] == [("app.invalid", 80),
                                                          ("trace.agent.datadoghq.invalid", 443)]


def test_aiohttp_through_the_proxy(proxy):
    async def go() -> int:
        async with aiohttp.ClientSession() as s:
            async with s.get("http://metrics.invalid/api/v2/series", proxy=proxy.url) as r:
                status = r.status
            with pytest.raises(aiohttp.ClientHttpProxyError):
                await s.get("https://logs.invalid/api/v2/logs", proxy=proxy.url)
            return status

    assert asyncio.run(go()) == 403
    assert {a.host for a in proxy.attempts} == {"metrics.invalid", "logs.invalid"}


def test_attempts_page_and_unknown_filter(proxy):
    curl("--proxy", proxy.url, "https://known.invalid/")
    curl("--proxy", proxy.url, "https://surprise.datadoghq.com/")
    page = requests.get(proxy.url + "/ecs-lab/attempts", timeout=10).json()
    assert page["count"] == 2 and {a["host"] for a in page["attempts"]} == {"known.invalid",
                                                                          "surprise.datadoghq.com"}
    assert [a.host for a in proxy.unknown_attempts({"known.invalid"})] == ["surprise.datadoghq.com"]
    proxy.clear()
    assert proxy.attempts == []


def test_agent_env_points_at_the_proxy(proxy):
    env = proxy.agent_env()
    assert env["DD_PROXY_HTTPS"] == env["DD_PROXY_HTTP"] == proxy.url


def test_garbage_is_rejected_and_counted(proxy):
    import socket

    with socket.create_connection(("127.0.0.1", proxy.bound_port), timeout=5) as s:
        s.sendall(b"NONSENSE\r\n\r\n")
        reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.1 400") and proxy.malformed == 1 and proxy.attempts == []
