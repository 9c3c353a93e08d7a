"""The intake's decoders read what real encoders produce, and reject what they cannot read."""

from __future__ import annotations

import gzip
import json
import struct
import sys
import threading
import zlib

import msgpack
import pytest
import zstandard

from lab.fakes.intake.decode import (
    apm_stats,
    check_runs,
    compression,
    logs,
    process,
    series,
    sketches,
    traces,
)
from lab.fakes.intake.decode.payload import MalformedPayload
from lab.fakes.intake.samples import (
    check_runs_body,
    series_body,
    sketch_payload,
    stats_body,
    traces_body,
    zstd_frames,
)
from lab.proto import process_agent_pb2 as pa
from lab.proto import process_codec


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "zstd", ""])
def test_compression_round_trips_each_content_encoding(encoding):
    raw = b"payload " * 5000
    body = {"gzip": gzip.compress, "deflate": zlib.compress, "zstd": zstandard.ZstdCompressor().compress,
            "": bytes}[encoding](raw)
    assert compression.decompress(body, encoding) == raw


def test_zstd_with_two_concatenated_frames_without_content_size_decodes_whole():
    raw = b"".join(f"series-{i};".encode() for i in range(20000))
    body = zstd_frames(raw, frames=2)
    with pytest.raises(zstandard.ZstdError):
        zstandard.ZstdDecompressor().decompress(body)  # what a one-shot decoder would do
    assert compression.decompress(body, "zstd") == raw


def test_zstd_bodies_decoded_on_several_threads_at_once_come_out_whole():
    # Two labs' intakes in one process (a stack started ahead beside the running one) decode on
    # their own threads. With one decompressor shared by all threads, this garbled a few bodies in
    # every 80,000 ("Unknown frame descriptor", or the wrong bytes): a valid series POST answered 400.
    bodies = [(zstandard.ZstdCompressor(level=1).compress(raw), raw)
              for raw in (bytes([i]) * 64 + b"series" * 40 for i in range(8))]
    bad: list[str] = []

    def decode_many(k: int) -> None:
        for n in range(20_000):
            body, raw = bodies[(k + n) % len(bodies)]
            try:
                if compression.decompress(body, "zstd") != raw:
                    bad.append("wrong bytes")
            except MalformedPayload as exc:
                bad.append(exc.reason)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        for _ in range(3):
            threads = [threading.Thread(target=decode_many, args=(k,)) for k in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    finally:
        sys.setswitchinterval(interval)
    assert bad == [], f"{len(bad)} of 240,000 decodes went wrong: {bad[:3]}"


def test_zstd_with_a_truncated_second_frame_is_malformed_not_silently_short():
    body = zstd_frames(b"x" * 100_000 + b"y" * 100_000, frames=2)
    with pytest.raises(MalformedPayload, match="truncated"):
        compression.decompress(body[:-4], "zstd")


def test_raw_deflate_is_accepted_as_well_as_zlib():
    co = zlib.compressobj(wbits=-15)
    body = co.compress(b"hello") + co.flush()
    assert compression.decompress(body, "deflate") == b"hello"


def test_unknown_content_encoding_is_malformed_with_the_encoding_named():
    with pytest.raises(MalformedPayload, match="br"):
        compression.decompress(b"abc", "br")


@pytest.mark.parametrize("encoding", ["gzip", "zstd"])
def test_traces_decode_spans_and_the_containers_ecs_tags(encoding):
    body, headers = traces_body(n_traces=2, encoding=encoding, service="web")
    data = traces.decode(body, headers).data
    assert data["hostName"] == "i-0abc" and data["agentVersion"] == "7.60.0"
    tp = data["tracerPayloads"][0]
    assert tp["container_id"] == "c0ffee" and tp["language_name"] == "python"
    assert "task_family:web" in traces.container_tags(tp)
    spans = [s for _, _, s in traces.iter_spans(data)]
    assert len(spans) == 6
    root = next(s for s in spans if s["parent_id"] == 0)
    assert root["service"] == "web" and root["name"] == "flask.request" and root["resource"] == "GET /hello"
    assert root["meta"]["http.status_code"] == "200" and root["metrics"]["_dd.top_level"] == 1.0
    assert isinstance(root["trace_id"], int) and root["trace_id"] > 0


def test_trace_filter_keeps_whole_traces_with_a_matching_span():
    body, headers = traces_body(n_traces=1, service="web")
    data = traces.decode(body, headers).data
    assert traces.select(data, {"tags": ("task_family:web",)}) is not None
    assert traces.select(data, {"service": "nope"}) is None
    kept = traces.select(data, {"resource": "GET /db"})
    assert len(kept["tracerPayloads"][0]["chunks"][0]["spans"]) == 3


def test_corrupt_trace_protobuf_is_malformed():
    with pytest.raises(MalformedPayload, match="AgentPayload"):
        traces.decode(gzip.compress(b"\xff\xff\xff\xff not protobuf"), {"Content-Encoding": "gzip"})


def test_apm_stats_keep_capitalised_keys_and_base64_the_sketches():
    body, headers = stats_body(service="web", hits=7)
    data = apm_stats.decode(body, headers).data
    (_client, _bucket, grouped), = list(apm_stats.iter_grouped(data))
    assert data["AgentHostname"] == "i-0abc"
    assert grouped["Service"] == "web" and grouped["Hits"] == 7 and isinstance(grouped["OkSummary"], str)
    assert apm_stats.select(data, {"service": "other"}) is None


def test_apm_stats_that_are_not_a_stats_map_are_malformed():
    with pytest.raises(MalformedPayload):
        apm_stats.decode(gzip.compress(msgpack.packb([1, 2, 3])), {"Content-Encoding": "gzip"})


@pytest.mark.parametrize("encoding,frames", [("zstd", 1), ("zstd", 3), ("deflate", 1)])
def test_series_decode_into_fakeintakes_shape(encoding, frames):
    body, headers = series_body(n_series=40, encoding=encoding, frames=frames, metric="app.hits", value=5.0,
                                mtype=1, timestamp=1_700_000_000)
    data = series.decode(body, headers).data
    assert len(data) == 40
    first = data[0]
    assert first["metric"] == "app.hits" and first["type"] == 1
    assert first["points"] == [{"value": 5.0, "timestamp": 1_700_000_000}]
    assert first["resources"] == [{"type": "host", "name": "i-0abc"}]
    matched = series.select(data, {"metric": "app.hits", "tags": ("task_family:web",)})
    assert [m["metric"] for m in matched] == ["app.hits"]
    assert series.select(data, {"metric": "app.hits", "tags": ("task_family:db",)}) is None
    assert series.select(data, {"type": "count", "host": "i-0abc"})


def test_series_sent_as_json_are_read_like_fakeintake_does():
    body = json.dumps({"series": [{"metric": "m", "points": [{"value": 1, "timestamp": 2}], "type": 3}]})
    data = series.decode(body.encode(), {"Content-Type": "application/json"}).data
    assert data[0]["metric"] == "m" and data[0]["type"] == 3


def test_sketches_decode_dogsketch_bins():
    raw = sketch_payload(metric="app.latency").SerializeToString()
    data = sketches.decode(zlib.compress(raw), {"Content-Encoding": "deflate"}).data
    assert data[0]["metric"] == "app.latency" and data[0]["dogsketches"][0]["k"] == [1338, 1383, 1409]


def test_check_runs_decode_and_filter_by_status():
    body, headers = check_runs_body(check="datadog.agent.up", status=0, tags=("task_family:web",))
    data = check_runs.decode(body, headers).data
    assert data[0]["check"] == "datadog.agent.up" and data[0]["host_name"] == "i-0abc"
    assert check_runs.select(data, {"status": "2"}) is None


def test_check_run_body_that_is_not_json_is_malformed():
    with pytest.raises(MalformedPayload, match="not JSON"):
        check_runs.decode(b"{nope", {})


def test_logs_expose_ddtags_as_a_tag_list():
    entries = [{"message": "hi", "status": "info", "hostname": "i-1", "service": "web", "ddsource": "python",
                "ddtags": "env:lab,task_family:web", "timestamp": 1}]
    body = gzip.compress(json.dumps(entries).encode())
    data = logs.decode(body, {"Content-Encoding": "gzip"}).data
    assert data[0]["tags"] == ["env:lab", "task_family:web"]
    assert logs.select(data, {"service": "web", "tags": ("env:lab",)})


@pytest.mark.parametrize("encoding", [0, 1, 4, 5])
def test_process_messages_decode_in_every_readable_encoding(encoding):
    body = pa.CollectorProc(hostName="i-1", groupSize=1, processes=[
        pa.Process(pid=42, createTime=1_700_000_000_000, command=pa.Command(args=["python", "app.py"]),
                   containerId="c0ffee")])
    raw = process_codec.encode_message(process_codec.TYPE_COLLECTOR_PROC, body, encoding)
    decoded = process.decode(raw, {})
    data = decoded.data
    assert decoded.flags == ()
    assert data["header"]["type_name"] == "process" and data["header"]["encoding"] == encoding
    proc = data["body"]["processes"][0]
    assert proc["pid"] == 42 and proc["createTime"] == 1_700_000_000_000
    assert process.command_line(proc) == "python app.py"
    assert process.select(data, {"cmdline": "app.py"}) and process.select(data, {"cmdline": "java"}) is None


def test_process_header_is_16_bytes_little_endian_v3():
    raw = process_codec.encode_message(39, pa.CollectorContainer(hostName="h"), 0, timestamp_ms=1234,
                                       org_id=7)
    assert struct.unpack("<BBBBiq", raw[:16]) == (3, 0, 39, 0, 7, 1234)
    assert process_codec.decode_message(raw).body.hostName == "h"


def test_res_collector_reply_is_type_23():
    msg = process_codec.decode_message(process_codec.res_collector(interval=10, active_clients=1))
    assert msg.header.type == 23 and msg.body.status.activeClients == 1 and msg.body.status.interval == 10


def test_legacy_zstd_process_body_is_kept_raw_with_its_header_and_flagged():
    header = struct.pack("<BBBBiq", 3, 2, 12, 0, 0, 1_700_000_000_000)
    decoded = process.decode(header + b"\x28\xb5\x2f\xfd legacy-bytes", {})
    assert decoded.flags and "pre-1.0" in decoded.flags[0]
    data = decoded.data
    assert data["body"] is None and data["header"]["encoding_name"] == "zstd-pre-1.0"
    assert data["raw_body"] and "pre-1.0" in data["undecoded_reason"]


@pytest.mark.parametrize("raw,reason", [
    (b"\x03\x00", "shorter than the 16-byte"),
    (struct.pack("<BBBBiq", 9, 0, 12, 0, 0, 0) + b"x", "version 9"),
    (struct.pack("<BBBBiq", 3, 4, 12, 0, 0, 0) + b"not zstd", "does not decode"),
])
def test_broken_process_messages_are_malformed(raw, reason):
    with pytest.raises(MalformedPayload, match=reason):
        process.decode(raw, {})
