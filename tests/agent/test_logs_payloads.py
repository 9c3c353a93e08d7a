"""The agent's logs payloads and settings without a lab: the body and headers of the logs destination,
each compression choice, the label's shape, and the wait scenarios derive from `agent config`."""

from __future__ import annotations

import gzip
import io
import json

import pytest
import zstandard

from lab.agent.config import AgentConfig, runtime_settings
from lab.agent.logs import LabelError, LogsAgent, parse_logs_label
from lab.agent_probe import intervals_from

ENV = {"DD_API_KEY": "a" * 32, "DD_LOGS_ENABLED": "true",
       "DD_LOGS_CONFIG_LOGS_DD_URL": "http://127.0.0.1:9/"}
ENTRIES = [{"message": "hello", "status": "info", "timestamp": 1700000000123, "hostname": "i-1",
            "service": "web", "ddsource": "python", "ddtags": "task_family:web"}]


def _agent(**env: str) -> LogsAgent:
    return LogsAgent(AgentConfig.from_env({**ENV, **env}), "i-1", containers=None)


def test_zstd_is_the_default_with_the_destinations_headers():
    agent = _agent()
    assert agent.url == "http://127.0.0.1:9/api/v2/logs"
    body, headers, raw = agent.encode(ENTRIES)
    decoded = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body)).read()
    assert json.loads(decoded) == ENTRIES and raw == len(decoded)
    assert headers["Content-Encoding"] == "zstd"
    assert headers["DD-PROTOCOL"] == "agent-json" and headers["DD-EVP-ORIGIN"] == "agent"
    assert headers["DD-API-KEY"] == "a" * 32 and headers["Content-Type"] == "application/json"
    assert headers["dd-message-timestamp"] == "1700000000123"
    assert headers["User-Agent"].startswith("datadog-agent/")


@pytest.mark.parametrize("env,encoding", [
    ({"DD_LOGS_CONFIG_COMPRESSION_KIND": "gzip"}, "gzip"),
    ({"DD_LOGS_CONFIG_USE_COMPRESSION": "false"}, None),
])
def test_gzip_or_no_compression_on_request(env, encoding):
    body, headers, _ = _agent(**env).encode(ENTRIES)
    assert headers.get("Content-Encoding") == encoding
    plain = gzip.decompress(body) if encoding == "gzip" else body
    assert json.loads(plain) == ENTRIES


def test_agent_config_reports_the_logs_settings_and_the_probe_reads_the_batch_wait():
    cfg = AgentConfig.from_env({**ENV, "LAB_AGENT_PROFILE": "real-timing"})
    settings = runtime_settings(cfg)
    assert settings["logs_enabled"] is True
    assert settings["logs_config"]["compression_kind"] == "zstd"
    assert settings["logs_config"]["batch_wait"] == 5.0, "the agent's DefaultBatchWait"
    intervals = intervals_from({"logs_config": {"batch_wait": 2}}, "7.60.0")
    assert intervals.logs_batch_wait == 2.0
    assert intervals.source["logs_batch_wait"] == "agent config logs_config.batch_wait"
    assert intervals_from(None, "7.60.0").logs_batch_wait == 5.0, "documented default"
    assert intervals.logs().seconds == 1.0 + 2.0 + intervals.margin


def test_the_logs_label_takes_the_docs_shape_and_refuses_others():
    assert parse_logs_label('[{"source": "python", "service": "web"}]') == {"source": "python",
                                                                            "service": "web"}
    with pytest.raises(LabelError, match="invalid JSON"):
        parse_logs_label("[{source: python}]")
    with pytest.raises(LabelError, match="list of objects"):
        parse_logs_label('["python"]')


class _FakeDockerLogs:
    """The docker API's `logs(..., stream=True, follow=True)`: chunks that split lines anywhere."""

    def __init__(self, stdout: list[bytes], stderr: list[bytes]) -> None:
        self.streams = {"stdout": stdout, "stderr": stderr}

    def logs(self, container, stdout=True, stderr=True, stream=False, follow=False):
        assert stream and follow and stdout != stderr, "one stream per follower, followed"
        return iter(self.streams["stdout" if stdout else "stderr"])


def test_a_docker_tailer_keeps_lines_whole_and_marks_stderr_as_error():
    from lab.agent.logs import DockerTailer
    from lab.world import wait_until

    api = _FakeDockerLogs([b"GET / 2", b"00\nGET /x 404\npartial"], [b"Traceback\n"])
    tailer = DockerTailer("c" * 64, "/var/run/docker.sock", "python", "web", [], api=api)
    got: list[tuple[str, str]] = []
    wait_until(lambda: got.extend(tailer.read()) or len(got) >= 4, 5, what="4 lines from the streams")
    assert sorted(got) == sorted([("info", "GET / 200"), ("info", "GET /x 404"), ("info", "partial"),
                                  ("error", "Traceback")])
