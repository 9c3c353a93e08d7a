"""Payloads encoded the way the agent encodes them, for the intake's tests and benchmarks.

Real encoders only (the lab's protobuf classes, msgpack, zstandard, gzip, zlib); sizes follow
what an agent on a busy ECS instance sends (a series payload of a few hundred series is ~20 KB
of zstd).
"""

from __future__ import annotations

import gzip
import json
import random
import time
import zlib

import msgpack
import zstandard

from lab.proto import agent_payload_pb2, metrics_payload_pb2, span_pb2, tracer_payload_pb2

MP = metrics_payload_pb2.MetricPayload
ECS_TAGS = ("ecs_cluster_name:lab", "task_family:web", "task_version:3", "ecs_container_name:web",
            "region:us-east-1", "image_name:ecs-agent-lab/web", "short_image:web", "image_tag:latest")


def zstd_frames(raw: bytes, frames: int = 1) -> bytes:
    """zstd as the agent's stream compressor writes it: `frames` concatenated frames, without the
    content size in the frame headers (so a one-shot decompress cannot read it)."""
    step = max(1, -(-len(raw) // frames))
    out = b""
    for i in range(0, len(raw), step):
        cobj = zstandard.ZstdCompressor(write_content_size=False).compressobj()
        out += cobj.compress(raw[i:i + step]) + cobj.flush()
    return out


def compress(raw: bytes, encoding: str, frames: int = 1) -> bytes:
    if encoding == "zstd":
        return zstd_frames(raw, frames)
    if encoding == "gzip":
        return gzip.compress(raw)
    if encoding == "deflate":
        return zlib.compress(raw)
    if encoding in ("", "identity"):
        return raw
    raise ValueError(f"unknown encoding {encoding}")


def metric_payload(n_series: int = 1, metric: str = "app.requests", host: str = "i-0abc",
                   tags: tuple[str, ...] = ECS_TAGS, value: float = 1.0, mtype: int = 3,
                   timestamp: int | None = None, seed: int = 0) -> metrics_payload_pb2.MetricPayload:
    ts = int(time.time()) if timestamp is None else timestamp
    rng = random.Random(seed)
    payload = MP()
    for i in range(n_series):
        name = metric if i == 0 else f"{metric}.{i % 50}"
        payload.series.append(MP.MetricSeries(
            resources=[MP.Resource(type="host", name=host)],
            metric=name,
            tags=list(tags) + [f"container_id:{rng.getrandbits(64):016x}", f"series:{i}"],
            points=[MP.MetricPoint(value=value if i == 0 else rng.random() * 100, timestamp=ts)],
            type=mtype,
            interval=10 if mtype != 3 else 0,
            source_type_name="dogstatsd" if i % 2 else "",
        ))
    return payload


def series_body(n_series: int = 1, encoding: str = "zstd", frames: int = 1, **kw) -> tuple[bytes, dict]:
    """(body, headers) of a POST /api/v2/series."""
    raw = metric_payload(n_series, **kw).SerializeToString()
    return compress(raw, encoding, frames), {"Content-Type": "application/x-protobuf",
                                             "Content-Encoding": encoding, "DD-API-KEY": "lab"}


def agent_payload(n_traces: int = 1, spans_per_trace: int = 3, service: str = "web", env: str = "lab",
                  host: str = "i-0abc", container_id: str = "c0ffee",
                  container_tags: tuple[str, ...] = ECS_TAGS,
                  seed: int = 0) -> agent_payload_pb2.AgentPayload:
    rng = random.Random(seed)
    now = time.time_ns()
    chunks = []
    for _ in range(n_traces):
        trace_id = rng.getrandbits(63) or 1
        root_id = rng.getrandbits(63) or 1
        spans = [span_pb2.Span(service=service, name="flask.request", resource="GET /hello", traceID=trace_id,
                               spanID=root_id, parentID=0, start=now, duration=2_000_000, type="web",
                               meta={"env": env, "http.method": "GET", "http.status_code": "200",
                                     "component": "flask", "span.kind": "server"},
                               metrics={"_dd.top_level": 1.0, "_sampling_priority_v1": 1.0})]
        for j in range(1, spans_per_trace):
            spans.append(span_pb2.Span(service=service, name="requests.request", resource="GET /db",
                                       traceID=trace_id, spanID=rng.getrandbits(63) or 1, parentID=root_id,
                                       start=now + j * 1000, duration=500_000, type="http",
                                       meta={"env": env, "out.host": "db"}))
        chunks.append(tracer_payload_pb2.TraceChunk(priority=1, spans=spans))
    tp = tracer_payload_pb2.TracerPayload(
        containerID=container_id, languageName="python", languageVersion="3.11.7", tracerVersion="4.0.0",
        runtimeID="0b4e1c4a-5c1e-4a3a-9d51-52a8e9a4c0de", chunks=chunks, env=env, hostname=host,
        appVersion="1.0", tags={"_dd.tags.container": ",".join(container_tags)})
    return agent_payload_pb2.AgentPayload(hostName=host, env=env, tracerPayloads=[tp], agentVersion="7.60.0",
                                          targetTPS=10, errorTPS=10)


def traces_body(n_traces: int = 1, encoding: str = "gzip", **kw) -> tuple[bytes, dict]:
    raw = agent_payload(n_traces, **kw).SerializeToString()
    return compress(raw, encoding), {"Content-Type": "application/x-protobuf", "Content-Encoding": encoding,
                                     "X-Datadog-Reported-Languages": "python"}


def stats_body(service: str = "web", hits: int = 10, encoding: str = "gzip") -> tuple[bytes, dict]:
    now = time.time_ns()
    payload = {
        "AgentHostname": "i-0abc", "AgentEnv": "lab", "AgentVersion": "7.60.0", "ClientComputed": False,
        "Stats": [{
            "Hostname": "", "Env": "lab", "Version": "1.0", "Lang": "python", "TracerVersion": "4.0.0",
            "Stats": [{
                "Start": now - now % 10_000_000_000, "Duration": 10_000_000_000,
                "Stats": [{"Service": service, "Name": "flask.request", "Resource": "GET /hello",
                           "HTTPStatusCode": 200, "Type": "web", "Hits": hits, "Errors": 0,
                           "Duration": hits * 2_000_000, "OkSummary": b"\x0a\x02\x08\x01",
                           "ErrorSummary": b"", "TopLevelHits": hits}],
            }],
        }],
    }
    return compress(msgpack.packb(payload), encoding), {"Content-Type": "application/msgpack",
                                                        "Content-Encoding": encoding}


def check_runs_body(check: str = "datadog.agent.up", status: int = 0, host: str = "i-0abc",
                    tags: tuple[str, ...] = (), encoding: str = "zstd") -> tuple[bytes, dict]:
    runs = [{"check": check, "host_name": host, "timestamp": int(time.time()), "status": status,
             "message": "", "tags": list(tags)}]
    return compress(json.dumps(runs).encode(), encoding), {"Content-Type": "application/json",
                                                           "Content-Encoding": encoding}


def sketch_payload(metric: str = "app.latency", host: str = "i-0abc",
                   tags: tuple[str, ...] = ECS_TAGS) -> metrics_payload_pb2.SketchPayload:
    SP = metrics_payload_pb2.SketchPayload
    ts = int(time.time())
    return SP(sketches=[SP.Sketch(metric=metric, host=host, tags=list(tags), dogsketches=[
        SP.Sketch.Dogsketch(ts=ts, cnt=3, min=1.0, max=3.0, avg=2.0, sum=6.0, k=[1338, 1383, 1409],
                            n=[1, 1, 1])])])
