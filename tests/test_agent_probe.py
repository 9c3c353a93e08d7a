"""AgentProbe: parsers of the real agent's outputs, intervals, offers, and the probe over a running lab.

The samples are written from the formats in the agent's source: `agent health` prints
(pkg/cli/subcommands/health/command.go) `Agent health: PASS|FAIL`, `=== N healthy components ===`
and a `, `-joined sorted list, then the unhealthy ones, and returns an error (exit 1) when any is
unhealthy; `/info` is pkg/trace/api/info.go's infoPayload, marshalled with tab indents.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lab.agent_probe import (
    DOCUMENTED_DEFAULTS,
    AgentProbe,
    AgentProbeError,
    AgentStatus,
    NotOffered,
    Wait,
    intervals_from,
    parse_config,
    parse_health,
    parse_status,
    waiting_for,
)

HEALTH_PASS = """Agent health: PASS
=== 9 healthy components ===
ad-config-provider-docker, ad-servicelistening, aggregator, collector-queue, dogstatsd-main, forwarder, \
healthcheck, metadata-host, tagger-store
"""

# On a terminal the agent colours PASS/FAIL and the counts (fatih/color); the error from RunE
# follows on stderr, which `docker exec` merges into the same output.
HEALTH_FAIL = """Agent health: \x1b[31mFAIL\x1b[0m
=== \x1b[32m2\x1b[0m healthy components ===
forwarder, healthcheck
=== \x1b[31m2\x1b[0m unhealthy components ===
aggregator, dogstatsd-main
Error: found 2 unhealthy components
"""

HEALTH_UNREACHABLE = (
    'Error: could not reach agent: Get "https://localhost:5001/agent/status/health": dial tcp '
    "[::1]:5001: connect: connection refused \nMake sure the agent is running before requesting the "
    "status and contact support if you continue having issues\n")

STATUS = {
    "version": "7.60.0", "flavor": "agent", "conf_file": "/etc/datadog-agent/datadog.yaml", "pid": 371,
    "go_version": "go1.22.8", "agent_start_nano": 1733400000000000000, "build_arch": "x64",
    "time_nano": 1733400120000000000, "python_version": "3.12.6",
    "forwarderStats": {"Transactions": {"Success": 14, "Errors": 0, "Dropped": 0,
                                        "SuccessByEndpoint": {"series_v2": 8, "check_run_v1": 6},
                                        "HTTPErrors": 0, "HTTPErrorsByCode": {}}},
    "apmStats": {"pid": 402, "uptime": 118,
                 "receiver": [{"Lang": "python", "LangVersion": "3.12.6", "Interpreter": "CPython",
                               "LangVendor": "", "TracerVersion": "2.14.0", "EndpointVersion": "v0.5",
                               "Service": "web-imdsv1", "TracesReceived": 3, "SpansReceived": 9},
                              {"Lang": "python", "LangVersion": "3.12.6", "Interpreter": "CPython",
                               "LangVendor": "", "TracerVersion": "2.14.0", "EndpointVersion": "v0.5",
                               "Service": "web-imdsv2", "TracesReceived": 2, "SpansReceived": 4}]},
    "aggregatorStats": {"Flush": {}, "FlushCount": {"Series": {"LastFlush": 12}}},
    "dogstatsdStats": {"MetricPackets": 42, "UdpPackets": 40},
    "processAgentStatus": {"core": {"version": "7.60.0"}, "expvars": {"process_agent": {}}},
    "runnerStats": {"Runs": 20, "Checks": {}},
    "logsStats": {"is_running": False, "endpoints": None, "integrations": None},
    "otlp": {"otlpStatus": False, "otlpCollectorStatus": "Not running", "otlpCollectorStatusErr": ""},
}

INFO = {
    "version": "7.60.0", "git_commit": "a1b2c3d",
    "endpoints": [
        "/v0.3/traces", "/v0.3/services", "/v0.4/traces", "/v0.4/services", "/v0.5/traces", "/v0.7/traces",
        "/profiling/v1/input", "/telemetry/proxy/", "/v0.6/stats", "/v0.1/pipeline_stats",
        "/openlineage/api/v1/lineage", "/evp_proxy/v1/", "/evp_proxy/v2/", "/evp_proxy/v3/", "/evp_proxy/v4/",
        "/debugger/v1/input", "/debugger/v1/diagnostics", "/symdb/v1/input", "/dogstatsd/v1/proxy",
        "/dogstatsd/v2/proxy", "/tracer_flare/v1", "/v0.7/config"],
    "client_drop_p0s": True, "span_meta_structs": True, "long_running_spans": True, "span_events": True,
    "evp_proxy_allowed_headers": ["Content-Type", "Accept-Encoding"],
    "config": {"default_env": "none", "target_tps": 10, "max_eps": 200, "receiver_port": 8126,
               "receiver_socket": "", "connection_limit": 0, "receiver_timeout": 0,
               "max_request_bytes": 26214400, "statsd_port": 8125, "max_memory": 0, "max_cpu": 0,
               "analyzed_spans_by_service": {}, "obfuscation": {"elastic_search": True, "mongo": True}},
    "peer_tags": None, "span_kinds_stats_computed": ["server", "consumer", "client", "producer"],
    "obfuscation_version": 1,
}

CONFIG_YAML = """api_key: '***************************a1b2'
apm_config:
  apm_non_local_traffic: true
  bucket_size_seconds: 10
  receiver_port: 8126
cmd_port: 5001
dogstatsd_non_local_traffic: true
dogstatsd_port: 8125
process_config:
  container_collection:
    enabled: true
  intervals:
    container: 10
    container_realtime: 2
    process: 10
    process_realtime: 2
  process_collection:
    enabled: true
"""


# -- parsers -----------------------------------------------------------------------------------------


def test_health_pass_lists_the_healthy_components():
    h = parse_health(HEALTH_PASS, 0)
    assert h and h.passed
    assert h.healthy[:3] == ("ad-config-provider-docker", "ad-servicelistening", "aggregator")
    assert len(h.healthy) == 9 and h.unhealthy == ()


def test_health_fail_with_colours_names_the_unhealthy_components():
    h = parse_health(HEALTH_FAIL, 1)
    assert not h and not h.passed
    assert h.healthy == ("forwarder", "healthcheck")
    assert h.unhealthy == ("aggregator", "dogstatsd-main")


def test_health_of_an_unreachable_agent_is_an_error_quoting_it():
    with pytest.raises(AgentProbeError, match="could not reach agent"):
        parse_health(HEALTH_UNREACHABLE, 1)


def test_health_whose_count_disagrees_with_its_list_is_an_error():
    with pytest.raises(AgentProbeError, match="announced 3 healthy components and listed 2"):
        parse_health("Agent health: PASS\n=== 3 healthy components ===\nforwarder, aggregator\n", 0)


def test_status_readers_use_the_real_provider_keys():
    status = AgentStatus(parse_status(json.dumps(STATUS, indent=2)))
    assert status.version == "7.60.0"
    assert status.traces_received("web-imdsv1") == 3
    assert status.traces_received("web-imdsv2") == 2
    assert status.traces_received("web-other") == 0
    assert status.traces_received() == 5
    assert status.transactions_succeeded() == 14


def test_status_without_apm_reports_no_receiver_stats():
    status = AgentStatus({k: v for k, v in STATUS.items() if k != "apmStats"})
    assert status.receiver_stats() is None and status.traces_received() is None


def test_status_that_is_not_json_is_an_error():
    with pytest.raises(AgentProbeError, match="printed no JSON object"):
        parse_status("Error: could not reach agent: connection refused")
    with pytest.raises(AgentProbeError, match="invalid JSON"):
        parse_status('{"version": ')


def test_config_yaml_and_a_non_mapping_answer():
    config = parse_config(CONFIG_YAML)
    assert config["process_config"]["intervals"]["process"] == 10
    with pytest.raises(AgentProbeError, match="no settings mapping"):
        parse_config("Error: unable to get config\n")


# -- intervals ---------------------------------------------------------------------------------------


def test_intervals_without_settings_are_the_documented_defaults_and_say_so():
    iv = intervals_from({}, "7.60.0")
    assert (iv.metric_flush, iv.metric_bucket, iv.trace_flush, iv.apm_stats_bucket) == (15, 10, 5, 10)
    assert (iv.process_check, iv.container_check, iv.core_check) == (10, 10, 15)
    assert iv.process_first_run_skipped
    assert iv.source["trace_flush"] == "documented default for agent 7.60.0"
    wait = iv.metrics()
    assert wait.seconds == 10 + 15 + iv.margin
    assert "one metric bucket (10 s) + one aggregator flush (15 s)" in wait.what
    assert iv.processes().seconds == 2 * 10 + iv.margin, "the first process check run sends nothing"


def test_intervals_reported_in_agent_config_win():
    config = parse_config(CONFIG_YAML.replace("process: 10", "process: 3").replace(
        "bucket_size_seconds: 10", "bucket_size_seconds: 2\n  trace_writer:\n    flush_period_seconds: 0.5"))
    iv = intervals_from(config, "7.60.0")
    assert iv.process_check == 3 and iv.apm_stats_bucket == 2 and iv.trace_flush == 0.5
    assert iv.source["trace_flush"] == "agent config apm_config.trace_writer.flush_period_seconds"
    assert iv.metric_flush == DOCUMENTED_DEFAULTS["metric_flush"], "the aggregator flush has no setting"


def test_intervals_with_a_setting_that_is_not_a_number_is_an_error():
    with pytest.raises(AgentProbeError, match="bucket_size_seconds='ten'"):
        intervals_from({"apm_config": {"bucket_size_seconds": "ten"}}, "7.60.0")


def test_a_wait_that_times_out_names_the_interval_it_waited_for():
    wait = Wait(25.0, "one metric bucket (10 s) + one aggregator flush (15 s)")
    with pytest.raises(AssertionError, match=r"no metric x .*\[waited for one metric bucket .* = 25 s\]"):
        with waiting_for(wait) as left:
            assert 24 < left <= 25
            raise AssertionError("no metric x in 25.0 s")


# -- the probe over a fake container and a real HTTP /info -----------------------------------------


@pytest.fixture
def info_server():
    doc = {"body": json.dumps(INFO, indent="\t").encode()}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            if self.path != "/info":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(doc["body"])

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", doc
    server.shutdown()
    server.server_close()


def _container(outputs: dict[str, tuple[int, str]], calls: list[list[str]]):
    def exec_fn(argv: list[str]) -> tuple[int, str]:
        calls.append(argv)
        return outputs[" ".join(argv)]
    return exec_fn


def test_probe_runs_the_agent_s_own_commands_in_its_container(info_server):
    url, _ = info_server
    calls: list[list[str]] = []
    probe = AgentProbe(_container({"agent status --json": (0, json.dumps(STATUS)),
                                   "agent health": (1, HEALTH_FAIL),
                                   "agent config": (0, CONFIG_YAML)}, calls), url)
    assert probe.status()["forwarderStats"]["Transactions"]["Success"] == 14
    assert probe.health().unhealthy == ("aggregator", "dogstatsd-main")
    assert probe.info()["config"]["receiver_port"] == 8126
    assert probe.version == "7.60.0"
    iv = probe.intervals()
    assert iv.version == "7.60.0"
    assert iv.source["process_check"] == "agent config process_config.intervals.process"
    assert calls == [["agent", "status", "--json"], ["agent", "health"], ["agent", "config"]]


def test_offers_by_info_endpoints_and_the_reason_when_not(info_server):
    url, doc = info_server
    probe = AgentProbe(_container({"agent status --json": (0, json.dumps(STATUS))}, []), url)
    assert probe.offers("client_stats") and probe.offers("dogstatsd_proxy") and probe.offers("/v0.7/config")
    assert probe.offers("apm_receiver_stats")
    old = {**INFO, "version": "7.17.0", "endpoints": ["/v0.4/traces", "/v0.5/traces"]}
    doc["body"] = json.dumps(old).encode()
    offer = probe.offers("dogstatsd_proxy")
    assert not offer
    assert offer.reason == ("not offered by this agent (7.17.0, endpoints from /info: /v0.4/traces, "
                            "/v0.5/traces)")
    with pytest.raises(ValueError, match="unknown offer 'tracez'"):
        probe.offers("tracez")


def test_a_failing_command_is_an_error_naming_it():
    unreachable = (1, "Error: could not reach agent")
    outputs = {"agent status --json": unreachable, "agent config": unreachable, "agent version": unreachable}
    probe = AgentProbe(_container(outputs, []), None)
    with pytest.raises(AgentProbeError, match=r"`agent status --json` exited 1: 'Error: could not reach"):
        probe.status()
    with pytest.raises(AgentProbeError, match="no trace-agent URL"):
        probe.info()
    assert probe.version.startswith("unknown version (no trace-agent URL")
    assert "could not reach" in probe.intervals().version, "intervals say whose defaults they are, and why"


def test_wait_healthy_asks_until_the_api_answers_pass_and_names_the_last_answer_on_timeout():
    """After a deploy: refused while the agent's API does not listen yet, FAIL before every component
    pinged, then PASS; the wait ends on the PASS. An agent that never passes: the timeout quotes it."""
    answers = [(1, "Error: could not reach agent: [Errno 111] Connection refused"), (1, HEALTH_FAIL),
               (0, HEALTH_PASS)]
    calls: list[list[str]] = []

    def exec_fn(argv: list[str]) -> tuple[int, str]:
        calls.append(argv)
        return answers[min(len(calls), len(answers)) - 1]

    health = AgentProbe(exec_fn, None).wait_healthy(10)
    assert health and "forwarder" in health.healthy
    assert calls == [["agent", "health"]] * 3
    stuck = AgentProbe(lambda argv: (1, HEALTH_FAIL), None)
    with pytest.raises(TimeoutError, match=r"`agent health` to pass; its last answer: Agent health: .*FAIL"):
        stuck.wait_healthy(1.2)


def test_wait_healthy_on_an_agent_without_agent_health_says_not_offered_at_once():
    calls: list[list[str]] = []

    def exec_fn(argv: list[str]) -> tuple[int, str]:
        calls.append(argv)
        return 127, "health: not offered by this agent"

    with pytest.raises(NotOffered, match="not offered by this agent"):
        AgentProbe(exec_fn, None).wait_healthy(30)
    assert len(calls) == 1


def test_a_command_the_container_lacks_is_not_offered_and_says_so(info_server):
    url, info_doc = info_server
    missing = (127, "status: not offered by this agent (datadog-serverless-compat 0.19.0, endpoints from "
                    "/info: /v0.4/traces)")
    lacking = {"agent status --json": missing, "agent health": missing, "agent config": missing,
               "agent version": (0, "datadog-serverless-compat 0.19.0\n")}
    probe = AgentProbe(_container(lacking, []), url)
    offer = probe.offers("forwarder_stats")
    assert not offer and offer.reason.endswith("`agent status --json` exited 127 (no such command)")
    with pytest.raises(NotOffered, match="not offered by this agent"):
        probe.health()
    # Data types by the status providers that run them, and the CLI's commands: the reason names the
    # version (`agent version`, as /info reports none here) and the /info endpoints.
    no_info_version = {**INFO, "endpoints": ["/v0.4/traces", "/info"]}
    no_info_version.pop("version")
    info_doc["body"] = json.dumps(no_info_version).encode()
    for what in ("processes", "dogstatsd_metrics", "check_metrics", "agent_status", "agent_health",
                 "agent_config", "logs", "otlp"):
        offer = probe.offers(what)
        assert not offer, what
        assert offer.reason.startswith("not offered by this agent (datadog-serverless-compat 0.19.0, "
                                       "endpoints from /info: /v0.4/traces, /info)"), offer.reason
    assert probe.offers("traces") and not probe.offers("traces_v05")


def test_status_providers_decide_the_data_types_offered(info_server):
    url, _ = info_server
    full = AgentProbe(_container({"agent status --json": (0, json.dumps(STATUS)),
                                  "agent health": (0, HEALTH_PASS)}, []), url)
    # The logs agent and the OTLP ingest have their status sections even when they are off: the
    # agent can run them (the scenario turns them on).
    for what in ("processes", "dogstatsd_metrics", "check_metrics", "agent_status", "agent_health", "logs",
                 "otlp"):
        assert full.offers(what), what
    no_process = {k: v for k, v in STATUS.items() if k != "processAgentStatus"}
    partial = AgentProbe(_container({"agent status --json": (0, json.dumps(no_process))}, []), url)
    offer = partial.offers("processes")
    assert not offer
    assert offer.reason.endswith("`agent status --json` has no processAgentStatus"), offer.reason
    assert partial.offers("dogstatsd_metrics")


def test_intervals_fall_back_to_defaults_when_agent_config_fails_and_say_why(info_server):
    url, _ = info_server
    probe = AgentProbe(_container({"agent config": (1, "Error: unknown command \"config\"")}, []), url)
    iv = probe.intervals()
    assert iv.trace_flush == 5.0
    assert "agent config unavailable" in iv.source["trace_flush"]
    assert "unknown command" in iv.source["trace_flush"]


# -- the probe over a running local lab ------------------------------------------------------------


@pytest.fixture(scope="module")
def local_lab():
    from lab.pytest_plugin import start_lab, stop_lab

    lab = start_lab("local", features={"apm", "apm_non_local", "dogstatsd", "dogstatsd_non_local"}, apps=())
    yield lab
    stop_lab(lab)


def test_exec_in_container_runs_the_agent_cli_with_the_container_s_environment(local_lab):
    backend = local_lab.backend
    task = backend.agent_tasks[1]
    code, out = backend.exec_in_container(task.arn, task.containers[0].name,
                                          ["sh", "-c", "echo $AWS_EC2_METADATA_SERVICE_ENDPOINT"])
    # The agent task is in bridge mode: it reaches IMDS as a bridge-mode container does, one hop
    # further than the instance (docs/imds.md#hop-limit).
    inst = local_lab.refresh().state["instances"][0]
    assert code == 0 and out.strip() == (inst.get("imds_bridge_url") or local_lab.imds_url(1))
    with pytest.raises(LookupError, match="container 'nope' of task"):
        backend.exec_in_container(task.arn, "nope", ["true"])


def test_the_lab_s_agent_probe_reads_health_status_and_info(local_lab):
    agent = local_lab.agents[0]
    from lab.world import wait_until

    health = wait_until(lambda: agent.probe.health() or None, 30, what="`agent health` to PASS")
    assert health.exit_code == 0 and "forwarder" in health.healthy
    assert agent.probe.status()  # a JSON document
    assert "/v0.4/traces" in agent.probe.info()["endpoints"]
    assert agent.probe.offers("traces")


def test_data_of_a_task_started_just_now_waits_for_the_tagger_to_learn_it_first():
    # The tagger learns a new ECS task on workloadmeta's next pull (5 s, no setting): a scenario that
    # needs a new task's data with its task tags waits that long more than for the data alone.
    iv = intervals_from(None, "7.60.0")
    assert iv.task_discovery == 5.0
    assert iv.source["task_discovery"] == "documented default for agent 7.60.0"
    wait = iv.of_new_task(iv.traces())
    assert wait.seconds == 5.0 + iv.traces().seconds
    assert wait.what.startswith("the agent learning the new task (5 s) + the tracer's flush"), wait.what
    assert "task_discovery=5s" in iv.describe()
