"""Logs at the intake: `/api/v2/logs` in every encoding a sender uses, queried with fakeintake's log
filters (server-side) and through the public API's log search (`datadog-api-client` LogsApi)."""

from __future__ import annotations

import gzip
import json
import time
import zlib

import pytest
import requests
import zstandard
from datadog_api_client import ApiClient, Configuration
from datadog_api_client.v2.api.logs_api import LogsApi
from datadog_api_client.v2.model.logs_list_request import LogsListRequest
from datadog_api_client.v2.model.logs_list_request_page import LogsListRequestPage
from datadog_api_client.v2.model.logs_query_filter import LogsQueryFilter
from datadog_api_client.v2.model.logs_sort import LogsSort

from lab.fakes.intake.client import IntakeClient

ENCODERS = {
    "": lambda b: b,
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    # Two frames, as the agent's stream compressor may write them.
    "zstd": lambda b: (zstandard.ZstdCompressor().compress(b[: len(b) // 2])
                       + zstandard.ZstdCompressor().compress(b[len(b) // 2:])),
}



def _entry(message: str, service: str = "web", status: str = "info", tags: str = "env:lab,task_family:web",
           **extra) -> dict:
    return {"message": message, "status": status, "timestamp": int(time.time() * 1000), "hostname": "i-0abc",
            "service": service, "ddsource": "python", "ddtags": tags, **extra}


def _send(url: str, entries: list[dict], encoding: str = "gzip") -> requests.Response:
    body = ENCODERS[encoding](json.dumps(entries).encode())
    headers = {"Content-Type": "application/json", "DD-API-KEY": "lab-key"}
    if encoding:
        headers["Content-Encoding"] = encoding
    with requests.Session() as s:
        s.trust_env = False
        return s.post(url + "/api/v2/logs", data=body, headers=headers, timeout=5)


@pytest.mark.parametrize("encoding", list(ENCODERS))
def test_logs_decode_from_every_encoding(intake, encoding):
    resp = _send(intake.url, [_entry(f"hello over {encoding or 'plain'}")], encoding)
    assert resp.status_code == 202
    (log,) = IntakeClient(intake.url).logs()
    assert log["message"] == f"hello over {encoding or 'plain'}"
    assert log["tags"] == ["env:lab", "task_family:web"] and log["ddsource"] == "python"


def test_a_logs_body_that_does_not_match_its_encoding_is_refused(intake):
    with requests.Session() as s:
        s.trust_env = False
        resp = s.post(intake.url + "/api/v2/logs", data=b"not zstd",
                      headers={"Content-Encoding": "zstd"}, timeout=5)
    assert resp.status_code == 400 and "zstd" in resp.text


def test_fakeintake_log_filters_service_message_and_tags(intake):
    _send(intake.url, [_entry("GET /health 200"), _entry("disk full", status="error"),
                       _entry("job done", service="worker", tags="env:prod")], "zstd")
    client = IntakeClient(intake.url)
    assert [e["message"] for e in client.logs("web")] == ["GET /health 200", "disk full"]
    assert [e["message"] for e in client.logs(message="disk")] == ["disk full"]
    assert [e["message"] for e in client.logs(message_matching=r"^GET /\w+ 2\d\d$")] == ["GET /health 200"]
    assert [e["message"] for e in client.logs(tags="env:prod")] == ["job done"]
    assert [e["message"] for e in client.logs("web", status="error")] == ["disk full"]
    assert client.logs("web", message="nowhere") == []


def test_a_bad_message_pattern_is_a_clear_400(intake):
    _send(intake.url, [_entry("x")])
    resp = requests.get(intake.url + "/fakeintake/payloads",
                        params={"endpoint": "/api/v2/logs", "format": "json",
                                "message_matching": "(unclosed"}, timeout=5)
    assert resp.status_code == 400 and "regular expression" in resp.text


@pytest.fixture
def logs_api(intake):
    config = Configuration(host=intake.url)
    config.api_key["apiKeyAuth"] = "lab-api-key"
    config.api_key["appKeyAuth"] = "lab-app-key"
    with ApiClient(config) as client:
        yield LogsApi(client)


def test_list_logs_searches_service_tags_status_and_free_text(intake, logs_api):
    _send(intake.url, [_entry("GET /health 200"), _entry("disk full on /data", status="error"),
                       _entry("job done", service="worker", tags="env:prod", job={"id": "j-7"})], "zstd")
    body = LogsListRequest(filter=LogsQueryFilter(query="service:web env:lab", _from="now-5m", to="now"),
                           page=LogsListRequestPage(limit=10), sort=LogsSort.TIMESTAMP_ASCENDING)
    found = logs_api.list_logs(body=body)
    assert [log.attributes.message for log in found.data] == ["GET /health 200", "disk full on /data"]
    assert found.data[0].attributes.host == "i-0abc" and "task_family:web" in found.data[0].attributes.tags

    query = LogsQueryFilter(query='status:error "disk full"')
    errors = logs_api.list_logs(body=LogsListRequest(filter=query))
    assert [log.attributes.status for log in errors.data] == ["error"]
    by_attr = logs_api.list_logs_get(filter_query="@job.id:j-7 -service:web")
    assert [log.attributes.service for log in by_attr.data] == ["worker"]
    assert logs_api.list_logs_get(filter_query="service:nobody").data == []


def test_list_logs_pages_with_a_cursor(intake, logs_api):
    _send(intake.url, [_entry(f"line {i}") for i in range(5)])
    first = logs_api.list_logs(body=LogsListRequest(page=LogsListRequestPage(limit=3),
                                                    sort=LogsSort.TIMESTAMP_ASCENDING))
    assert len(first.data) == 3 and first.meta.page.after
    page = LogsListRequestPage(limit=3, cursor=first.meta.page.after)
    rest = logs_api.list_logs(body=LogsListRequest(page=page, sort=LogsSort.TIMESTAMP_ASCENDING))
    assert [log.attributes.message for log in first.data + rest.data] == [f"line {i}" for i in range(5)]


@pytest.mark.parametrize("params, reason", [
    ({"filter[from]": "yesterday-ish"}, "yesterday-ish"),
    ({"page[limit]": "5001"}, "1..5000"),  # the API's largest page
])
def test_a_log_search_the_api_would_refuse_is_a_400(intake, params, reason):
    # The typed client refuses these before sending; a hand-written request gets the intake's 400.
    resp = requests.get(intake.url + "/api/v2/logs/events", params=params, timeout=5)
    assert resp.status_code == 400 and reason in resp.text
