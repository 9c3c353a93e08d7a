"""Code written with datadog-api-client runs unchanged against the intake's public API subset."""

from __future__ import annotations

import time

import pytest
import requests
from datadog_api_client import ApiClient, Configuration
from datadog_api_client.exceptions import ApiException
from datadog_api_client.v1.api.authentication_api import AuthenticationApi
from datadog_api_client.v1.api.metrics_api import MetricsApi
from datadog_api_client.v2.api.spans_api import SpansApi
from datadog_api_client.v2.model.spans_list_request import SpansListRequest
from datadog_api_client.v2.model.spans_list_request_attributes import SpansListRequestAttributes
from datadog_api_client.v2.model.spans_list_request_data import SpansListRequestData
from datadog_api_client.v2.model.spans_list_request_page import SpansListRequestPage
from datadog_api_client.v2.model.spans_list_request_type import SpansListRequestType
from datadog_api_client.v2.model.spans_query_filter import SpansQueryFilter
from datadog_api_client.v2.model.spans_sort import SpansSort

from lab.fakes.intake.samples import series_body, traces_body


@pytest.fixture
def api(intake):
    config = Configuration(host=intake.url)
    config.api_key["apiKeyAuth"] = "lab-api-key"
    config.api_key["appKeyAuth"] = "lab-app-key"
    with ApiClient(config) as client:
        yield client


def _post(url: str, route: str, body_headers: tuple[bytes, dict]) -> None:
    body, headers = body_headers
    with requests.Session() as s:
        s.trust_env = False
        assert s.post(url + route, data=body, headers=headers).status_code == 202


def test_validate(api):
    assert AuthenticationApi(api).validate().valid is True


def test_query_metrics_averages_matching_series_per_group(intake, api):
    now = int(time.time())
    for host, value in (("i-1", 10.0), ("i-2", 20.0), ("i-3", 99.0)):
        tags = ("env:lab", "task_family:web") if host != "i-3" else ("env:prod",)
        _post(intake.url, "/api/v2/series",
              series_body(metric="app.latency", host=host, value=value, tags=tags, timestamp=now - 30))
    result = MetricsApi(api).query_metrics(_from=now - 300, to=now, query="avg:app.latency{env:lab}")
    (series,) = result.series
    assert series.metric == "app.latency" and series.aggr == "avg"
    assert [p.value for p in series.pointlist] == [[(now - 30) * 1000.0, 15.0]]
    by_host = MetricsApi(api).query_metrics(_from=now - 300, to=now,
                                            query="max:app.latency{task_family:web} by {host}")
    assert sorted((s.tag_set[0], s.pointlist[0].value[1]) for s in by_host.series) == [
        ("host:i-1", 10.0), ("host:i-2", 20.0)]
    empty = MetricsApi(api).query_metrics(_from=now - 300, to=now - 100, query="avg:app.latency{*}")
    assert empty.series == []


def test_a_query_the_subset_cannot_parse_is_a_400(api):
    with pytest.raises(ApiException) as err:
        MetricsApi(api).query_metrics(_from=0, to=1, query="this is not a query")
    assert err.value.status == 400


def test_list_spans_filters_by_service_env_and_ecs_tags(intake, api):
    _post(intake.url, "/api/v0.2/traces", traces_body(n_traces=2, service="web", encoding="zstd"))
    _post(intake.url, "/api/v0.2/traces", traces_body(service="worker", env="prod"))
    body = SpansListRequest(data=SpansListRequestData(
        type=SpansListRequestType.SEARCH_REQUEST,
        attributes=SpansListRequestAttributes(
            filter=SpansQueryFilter(query="service:web env:lab task_family:web", _from="now-15m", to="now"),
            page=SpansListRequestPage(limit=4), sort=SpansSort.TIMESTAMP_ASCENDING)))
    response = SpansApi(api).list_spans(body=body)
    assert len(response.data) == 4 and response.meta.page.after == "4"
    first = response.data[0].attributes
    assert first.service == "web" and first.env == "lab" and "task_family:web" in first.tags
    assert first.start_timestamp.year >= 2024
    roots = SpansApi(api).list_spans_get(filter_query="service:web operation_name:flask.request",
                                         filter_from="now-15m", filter_to="now")
    assert {s.attributes.resource_name for s in roots.data} == {"GET /hello"} and len(roots.data) == 2
    none = SpansApi(api).list_spans_get(filter_query="service:web -env:lab", filter_from="now-15m")
    assert none.data == []
