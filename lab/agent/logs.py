"""Container log collection, as the agent's logs agent does it on ECS EC2
(docs/logs.md#the-agents-container-logs).

What decides which containers are collected (pkg/logs/schedulers, comp/core/autodiscovery):
- `logs_enabled` (DD_LOGS_ENABLED) turns the logs agent on; nothing is collected without it;
- `logs_config.container_collect_all` (DD_LOGS_CONFIG_CONTAINER_COLLECT_ALL) collects every container;
- a container with the docker label `com.datadoghq.ad.logs` (a task definition's `dockerLabels`) is
  collected anyway, with that label's `source`, `service` and `tags`.
Without a label, `source` and `service` are the container's short image name (agent 6.8+), and the
service is the container's `DD_SERVICE` where it has one (unified service tagging).

Each log is one JSON object `{message, status, timestamp (ms), hostname, service, ddsource, ddtags}`
(pkg/logs/processor/json.go); `ddtags` are the container's tags at high cardinality (task_arn,
container_id, ...) plus the label's tags. Batches are sent every `logs_config.batch_wait` (5 s), or
sooner at `batch_max_size` (1000) entries or `batch_max_content_size` (5 MB), to `/api/v2/logs` with the
headers of pkg/logs/client/http/destination.go; zstd by default (`compression_kind`), gzip optional,
none with `use_compression: false`. A batch the intake refuses with 5xx or a connection error is
retried with backoff and never dropped (the logs pipeline blocks instead); 400/401/403/413 drop it.

Where the lines come from: on the local backend each container is a process group whose stdout and
stderr go to one file (the backend's own json-file); the agent finds it through the container's
processes (`/proc/<pid>/fd/1`) and reads from the container's start line on. Both streams share the
file, so every line is `status: info` here (docker gives stderr lines `error`).
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import zstandard

from lab.agent.config import AGENT_VERSION, AgentConfig
from lab.agent.ecs import process_environ
from lab.agent.ecs_tags import ContainerTags, parse_image

log = logging.getLogger("lab.agent.logs")

ROUTE = "/api/v2/logs"
AD_LOGS_LABEL = "com.datadoghq.ad.logs"
# The local backend writes this line before each run of a process into its log file, naming the
# container (lab/backends/process.py START_LINE_PREFIX and lab/backends/local.py CONTAINER_NOTE).
RUN_START_PREFIX = b"--- ecs-lab: starting "
DROP_STATUSES = frozenset({400, 401, 403, 413})
TAIL_PERIOD = 0.2  # how often a tailer reads its file
BACKOFF_BASE, BACKOFF_MAX = 1.0, 120.0  # DefaultLogsSenderBackoffBase / Max (s)

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class LabelError(ValueError):
    """A `com.datadoghq.ad.logs` label the agent cannot parse (it logs the error and skips it)."""


def parse_logs_label(raw: str) -> dict[str, Any]:
    """The label's JSON: a list with one config object (`[{"source": "python", "service": "web"}]`)."""
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise LabelError(f"{AD_LOGS_LABEL}: invalid JSON: {exc}") from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not value or not isinstance(value[0], dict):
        raise LabelError(f"{AD_LOGS_LABEL}: expected a list of objects, got {raw!r}")
    return value[0]


@dataclass
class Tailer:
    docker_id: str
    path: Path
    source: str
    service: str
    tags: list[str]
    offset: int = -1  # -1: the container's start line is not found yet
    pending: bytes = b""
    lines: int = 0

    def read(self) -> list[tuple[str, str]]:
        """New complete lines as (status, line): one file holds both streams, so all are info."""
        try:
            with open(self.path, "rb") as fh:
                if self.offset < 0:
                    self.offset = _run_start(fh, self.docker_id)
                    if self.offset < 0:
                        return []
                fh.seek(self.offset)
                data = fh.read(4 << 20)
        except OSError:
            return []
        self.offset += len(data)
        self.pending += data
        *complete, self.pending = self.pending.split(b"\n")
        out = []
        for raw in complete:
            if raw.startswith(RUN_START_PREFIX):
                # Another run of the file (a replacement container of the same name): not ours.
                self.offset = 1 << 62
                break
            if raw:
                out.append(("info", raw.decode("utf-8", "replace")))
        self.lines += len(out)
        return out

    def close(self) -> None:
        pass


class DockerTailer:
    """A container's logs from the docker API (`GET /containers/<id>/logs?follow=1`), one stream per
    thread, as the agent reads them through the mounted socket: stdout lines are `info`, stderr
    lines `error` (pkg/logs/tailers/docker)."""

    def __init__(self, docker_id: str, socket_path: str, source: str, service: str, tags: list[str],
                 api: Any = None) -> None:
        self.docker_id, self.source, self.service, self.tags = docker_id, source, service, tags
        self.path = Path(f"docker://{docker_id[:12]}")
        self.lines = 0
        self._queue: deque[tuple[str, str]] = deque()
        if api is None:
            import docker  # only where a docker socket is mounted

            api = docker.APIClient(base_url=f"unix://{socket_path}", timeout=None)
        self._api = api
        self._threads = [threading.Thread(target=self._follow, args=(stream, status), daemon=True,
                                          name=f"logs-docker-{docker_id[:12]}-{stream}")
                         for stream, status in (("stdout", "info"), ("stderr", "error"))]
        for t in self._threads:
            t.start()

    def _follow(self, stream: str, status: str) -> None:
        pending = b""
        try:
            for chunk in self._api.logs(self.docker_id, stdout=stream == "stdout", stderr=stream == "stderr",
                                        stream=True, follow=True):
                pending += chunk
                *complete, pending = pending.split(b"\n")
                self._queue.extend((status, raw.decode("utf-8", "replace")) for raw in complete if raw)
        except Exception as exc:  # noqa: BLE001 - a removed container ends its stream
            log.info("logs: docker stream %s of %s ended: %r", stream, self.docker_id[:12], exc)
        if pending:
            self._queue.append((status, pending.decode("utf-8", "replace")))

    def read(self) -> list[tuple[str, str]]:
        out = []
        while self._queue:
            out.append(self._queue.popleft())
        self.lines += len(out)
        return out

    def close(self) -> None:
        pass  # the streams end with their containers; the threads are daemons


def _run_start(fh, docker_id: str) -> int:
    """The offset just after the start line naming `docker_id`; -1 when there is none yet."""
    needle = f"(container {docker_id})".encode()
    pos = 0
    for raw in fh:
        pos += len(raw)
        if raw.startswith(RUN_START_PREFIX) and needle in raw:
            return pos
    return -1


def container_log_path(pids: list[int], procfs: str = "/proc") -> Path | None:
    """Where a container's stdout goes: the regular file its processes' fd 1 points at."""
    for pid in pids:
        try:
            target = os.readlink(f"{procfs}/{pid}/fd/1")
        except OSError:
            continue
        path = Path(target)
        if path.is_absolute() and path.is_file():
            return path
    return None


def _container_env(pids: list[int]) -> dict[str, str] | None:
    """The container's environment (DD_SERVICE & co.) from the first of its processes that can be
    read; {} when every one is gone (the image name decides), None when one lives but none can be
    read now (in the middle of an exec: the next scan reads it)."""
    for pid in pids:
        env = process_environ(pid)
        if env is not None:
            return env
    return None if any(psutil.pid_exists(pid) for pid in pids) else {}


@dataclass
class LogsStats:
    processed: int = 0
    sent: int = 0
    bytes_sent: int = 0
    encoded_bytes_sent: int = 0
    payloads: int = 0
    retries: int = 0
    dropped: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class LogsAgent:
    """Finds the containers to collect, tails them and sends their lines in batches (one thread)."""

    def __init__(self, config: AgentConfig, hostname: str, containers: Any) -> None:
        self.config = config
        self.hostname = hostname
        self.containers = containers  # lab.agent.ecs.EcsAwareness: known_containers()
        self.url = config.endpoints.logs.rstrip("/") + ROUTE
        self.tailers: dict[str, Tailer | DockerTailer] = {}
        self.skipped: dict[str, str] = {}  # docker id -> why it is not collected
        self._retired: dict[str, Tailer | DockerTailer] = {}  # tailers of containers no longer seen
        self.stats = LogsStats()
        self._batch: list[dict[str, Any]] = []
        self._batch_bytes = 0
        self._batch_started = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> LogsAgent:
        self._thread = threading.Thread(target=self._run, name="logs-agent", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Read what the tailers have left, send it, stop (the logs agent flushes on stop)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)

    def _run(self) -> None:
        next_scan = 0.0
        while True:
            stopping = self._stop.is_set()
            now = time.monotonic()
            if now >= next_scan:
                try:
                    self._schedule()
                except Exception as exc:  # noqa: BLE001 - one failed scan must not end collection
                    log.warning("logs: container scan failed: %r", exc)
                next_scan = now + 1.0
            for tailer in list(self.tailers.values()):
                for status, line in tailer.read():
                    self._add(tailer, line, status)
            waited = time.monotonic() - self._batch_started
            if self._batch and (stopping or waited >= self.config.logs_batch_wait):
                self._send()
            if stopping:
                return
            self._stop.wait(TAIL_PERIOD)

    # -- scheduling -------------------------------------------------------------------------------
    def _schedule(self) -> None:
        known = self.containers.known_containers()
        for docker_id in [d for d in self.tailers if d not in known]:
            # The container is gone from the instance's tasks: read what it left, then stop tailing
            # (the launcher removes a stopped container's tailer once it has read to the end).
            tailer = self.tailers.pop(docker_id)
            for status, line in tailer.read():
                self._add(tailer, line, status)
            # Kept with its position: a container that shows up again (a metadata refresh that
            # missed it) resumes where it was instead of being sent twice.
            self._retired[docker_id] = tailer
            if len(self._retired) > 1024:
                self._retired.pop(next(iter(self._retired))).close()
        for docker_id, (tags, pids) in known.items():
            if docker_id in self.tailers or docker_id in self.skipped:
                continue
            if docker_id in self._retired:
                self.tailers[docker_id] = self._retired.pop(docker_id)
                continue
            tailer = self._tailer_for(docker_id, tags, pids)
            if tailer is not None:
                self.tailers[docker_id] = tailer
                log.info("logs: collecting container %s (%s) from %s", tags.name, docker_id[:12], tailer.path)

    def _tailer_for(self, docker_id: str, tags: ContainerTags, pids: list[int]) -> Tailer | None:
        label = tags.labels.get(AD_LOGS_LABEL)
        cfg: dict[str, Any] = {}
        if label:
            try:
                cfg = parse_logs_label(label)
            except LabelError as exc:
                self.skipped[docker_id] = str(exc)
                self.stats.errors.append(str(exc))
                return None
        elif not self.config.logs_container_collect_all:
            self.skipped[docker_id] = "no com.datadoghq.ad.logs label and container_collect_all is off"
            return None
        path = container_log_path(pids, self.config.procfs_path) if pids else None
        docker_socket = self.config.docker_socket
        if path is None and not (docker_socket and os.path.exists(docker_socket)):
            return None  # its processes are not mapped yet: the next scan tries again
        env = _container_env(pids) if pids else self._docker_env(docker_id)
        if env is None:
            return None  # its processes cannot be read this instant: the next scan tries again
        short = parse_image(tags.image)[1] if tags.image else tags.name
        service = cfg.get("service") or env.get("DD_SERVICE") or short
        source = cfg.get("source") or short
        extra = cfg.get("tags") or []
        if isinstance(extra, str):
            extra = [t for t in extra.split(",") if t]
        unified = [f"{k}:{env[e]}" for k, e in (("env", "DD_ENV"), ("version", "DD_VERSION"),
                                                 ("service", "DD_SERVICE")) if env.get(e)]
        all_tags = [*tags.at("high"), *unified, *map(str, extra)]
        if path is None:
            return DockerTailer(docker_id, docker_socket, source, service, all_tags)
        return Tailer(docker_id, path, source, service, all_tags)

    def _docker_env(self, docker_id: str) -> dict[str, str]:
        """The container's environment from `docker inspect` (Config.Env), for DD_SERVICE & co."""
        try:
            import docker

            api = docker.APIClient(base_url=f"unix://{self.config.docker_socket}", timeout=5)
            pairs = api.inspect_container(docker_id)["Config"].get("Env") or []
        except Exception:  # noqa: BLE001 - no environment: the image name decides
            return {}
        return dict(kv.split("=", 1) for kv in pairs if "=" in kv)

    # -- sending ----------------------------------------------------------------------------------
    def _add(self, tailer: Tailer | DockerTailer, line: str, status: str = "info") -> None:
        entry = {"message": line, "status": status, "timestamp": int(time.time() * 1000),
                 "hostname": self.hostname, "service": tailer.service, "ddsource": tailer.source,
                 "ddtags": ",".join(tailer.tags)}
        size = len(line) + 200
        if self._batch and (len(self._batch) >= self.config.logs_batch_max_size
                            or self._batch_bytes + size > self.config.logs_batch_max_content_size):
            self._send()
        if not self._batch:
            self._batch_started = time.monotonic()
        self._batch.append(entry)
        self._batch_bytes += size
        self.stats.processed += 1

    def encode(self, entries: list[dict[str, Any]]) -> tuple[bytes, dict[str, str], int]:
        body = json.dumps(entries, separators=(",", ":")).encode()
        now_ms = int(time.time() * 1000)
        headers = {
            "DD-API-KEY": self.config.api_key, "Content-Type": "application/json",
            "User-Agent": f"datadog-agent/{AGENT_VERSION}", "DD-PROTOCOL": "agent-json",
            "DD-EVP-ORIGIN": "agent", "DD-EVP-ORIGIN-VERSION": AGENT_VERSION,
            "dd-message-timestamp": str(entries[-1]["timestamp"]) if entries else "-1",
            "dd-current-timestamp": str(now_ms),
        }
        raw_size = len(body)
        if self.config.logs_use_compression:
            if self.config.logs_compression_kind == "gzip":
                body = gzip.compress(body, compresslevel=self.config.logs_compression_level)
                headers["Content-Encoding"] = "gzip"
            else:
                body = zstandard.ZstdCompressor(level=self.config.logs_compression_level).compress(body)
                headers["Content-Encoding"] = "zstd"
        return body, headers, raw_size

    def _send(self) -> None:
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        body, headers, raw_size = self.encode(batch)
        backoff = BACKOFF_BASE
        attempts = 0
        while True:
            attempts += 1
            req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with _opener.open(req, timeout=10) as resp:
                    resp.read()
                    status = resp.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except OSError as exc:
                status = 0
                self._note_error(f"could not send payload: {exc}")
            if 200 <= status < 300:
                s = self.stats
                s.sent += len(batch)
                s.payloads += 1
                s.bytes_sent += raw_size
                s.encoded_bytes_sent += len(body)
                return
            if status in DROP_STATUSES:
                self.stats.dropped += len(batch)
                self._note_error(f"failed to post http payload. code={status}: dropped")
                return
            if status:
                self._note_error(f"failed to post http payload. code={status}")
            # Retried until it goes through; the pipeline waits meanwhile (a stop ends the wait).
            self.stats.retries += 1
            if self._stop.wait(backoff) and attempts >= 3:
                # Stopping: a few tries, then what could not be sent is lost, as with the agent.
                self.stats.dropped += len(batch)
                return
            backoff = min(backoff * 2, BACKOFF_MAX)

    def _note_error(self, text: str) -> None:
        log.warning("logs: %s", text)
        self.stats.errors = (self.stats.errors + [text])[-10:]

    def status(self) -> dict[str, Any]:
        """`logsStats` of `agent status -j` (pkg/logs/status)."""
        s = self.stats
        url = self.config.endpoints.logs
        compressed = "compressed " if self.config.logs_use_compression else ""
        return {
            "is_running": True,
            "use_http": True,
            "endpoints": [f"Reliable: Sending {compressed}logs in HTTP to {url} on route {ROUTE}"],
            "metrics": {"LogsProcessed": s.processed, "LogsSent": s.sent, "BytesSent": s.bytes_sent,
                        "EncodedBytesSent": s.encoded_bytes_sent, "RetryCount": s.retries,
                        "LogsDropped": s.dropped},
            "integrations": [
                {"name": f"container_id:{t.docker_id}",
                 "sources": [{"type": "docker", "status": "OK", "inputs": [str(t.path)],
                              "info": {"lines": t.lines}, "configuration": {"source": t.source,
                                                                              "service": t.service}}]}
                for t in self.tailers.values()],
            "errors": list(s.errors),
            "warnings": list(s.warnings),
        }
