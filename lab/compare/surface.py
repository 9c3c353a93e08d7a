"""One agent's observable surface: what its captured intake payloads show a Datadog user.

`load_run(dir)` reads a capture directory written by the capture plugin (`capture.py`) and
`surface_of(run)` reduces it to plain JSON: per endpoint the payload count, content types and
encodings; per metric its types, the endpoints it came on and its normalised tags; the ECS tag keys
per data type; span fields, `meta`/`metrics` keys and the agent-added `_dd.*` tags; APM stats
grouping keys; process and container payload fields; check runs; host metadata keys; agent
versions. Payload counts depend on how long each scenario ran, so the diff compares counts only
as "some" against "none"; everything else is compared as sets.

Pure functions over files: nothing here talks to an intake or an agent.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.compare.normalise import ECS_TAG_KEYS, normalise_tag, split_tag, tag_key

TESTS_FILE = "tests.json"
PAYLOADS_FILE = "payloads.jsonl"
EGRESS_FILE = "egress.jsonl"  # attempts the lab's recording egress proxy refused during the test

SERIES_V2 = "/api/v2/series"
SERIES_V1 = "/api/v1/series"
SKETCHES = "/api/beta/sketches"
TRACES = "/api/v0.2/traces"
STATS = "/api/v0.2/stats"
CHECK_RUNS = "/api/v1/check_run"
LOGS = "/api/v2/logs"
METADATA_ROUTES = ("/api/v1/metadata", "/intake/")
PROCESS_ROUTES = ("/api/v1/collector", "/api/v1/container", "/api/v1/discovery", "/api/v1/connections")

# MetricPayload.MetricType (agent-payload's proto): the v2 series type enum.
SERIES_TYPES = {0: "unspecified", 1: "count", 2: "rate", 3: "gauge"}
# APM stats: the counters and summaries of a group; every other key of a group is a grouping key.
STATS_MEASURES = frozenset({"Hits", "Errors", "Duration", "OkSummary", "ErrorSummary", "TopLevelHits"})


@dataclass
class ScenarioResult:
    nodeid: str
    outcome: str  # passed, failed, error, skipped
    duration: float = 0.0
    dir: str = ""
    longrepr: str = ""
    reason: str = ""  # why it was skipped


@dataclass
class Run:
    """One agent's capture directory, loaded."""

    path: Path
    agent: dict[str, Any] = field(default_factory=dict)
    tests: dict[str, ScenarioResult] = field(default_factory=dict)
    exit_code: int | None = None

    def payloads(self, nodeid: str | None = None, file: str = PAYLOADS_FILE) -> Iterator[dict[str, Any]]:
        """Every captured payload (of one test, or of all), in capture order; `file=EGRESS_FILE`:
        the egress proxy's attempts instead."""
        records = [self.tests[nodeid]] if nodeid else list(self.tests.values())
        for rec in records:
            if not rec.dir:
                continue
            path = self.path / rec.dir / file
            if not path.exists():
                continue
            with path.open(encoding="utf-8") as fh:
                for line in fh:
                    if line.strip():
                        yield json.loads(line)


class CaptureError(ValueError):
    """A capture directory that is not one (missing or unreadable tests.json)."""


def load_run(path: Path | str) -> Run:
    path = Path(path)
    index = path / TESTS_FILE
    if not index.exists():
        raise CaptureError(f"{path} is not a capture directory: it has no {TESTS_FILE} (written by "
                           f"`pytest -p lab.compare.capture --capture-dir {path}`)")
    try:
        doc = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CaptureError(f"{index} cannot be read: {exc}") from None
    tests = {nodeid: ScenarioResult(nodeid=nodeid, outcome=t.get("outcome", "unknown"),
                                duration=float(t.get("duration") or 0.0), dir=t.get("dir", ""),
                                longrepr=t.get("longrepr", ""), reason=t.get("reason", ""))
             for nodeid, t in doc.get("tests", {}).items()}
    return Run(path=path, agent=doc.get("agent", {}), tests=tests, exit_code=doc.get("exit_code"))


# -- the surface ------------------------------------------------------------------------------------


def _sets() -> defaultdict[str, set]:
    return defaultdict(set)


@dataclass
class _Builder:
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics: dict[str, defaultdict[str, set]] = field(default_factory=lambda: defaultdict(_sets))
    ecs_tags: defaultdict[str, set] = field(default_factory=_sets)
    spans: defaultdict[str, set] = field(default_factory=_sets)
    apm_stats: defaultdict[str, set] = field(default_factory=_sets)
    processes: dict[str, defaultdict[str, set]] = field(default_factory=lambda: defaultdict(_sets))
    check_runs: dict[str, defaultdict[str, set]] = field(default_factory=lambda: defaultdict(_sets))
    host_metadata: defaultdict[str, set] = field(default_factory=_sets)
    logs: defaultdict[str, set] = field(default_factory=_sets)
    agent_versions: set = field(default_factory=set)

    def endpoint(self, item: Mapping[str, Any]) -> None:
        ep = self.endpoints.setdefault(item["endpoint"], {"count": 0, "content_types": set(),
                                                          "encodings": set(), "formats": set()})
        ep["count"] += 1
        ep["content_types"].add(_media_type(item.get("content_type") or ""))
        ep["encodings"].add(item.get("encoding") or "identity")
        fmt = payload_format(item)
        if fmt:
            ep["formats"].add(fmt)

    def ecs(self, data_type: str, tags: Iterable[str]) -> None:
        self.ecs_tags[data_type].update(k for k in map(tag_key, tags) if k in ECS_TAG_KEYS)


def _media_type(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower() or "(none)"


def payload_format(item: Mapping[str, Any]) -> str:
    """How the payload is framed, in the words of the agent's changelogs: "series v2 protobuf",
    "process zstd 1.x"..., or "" when the route says it all."""
    route, data = item["endpoint"], item.get("data")
    if route == SERIES_V2:
        return "series v2 protobuf" if "protobuf" in (item.get("content_type") or "") else "series v2 json"
    if "series" in route and "v3" in route:
        return "series v3"
    if route == SERIES_V1:
        return "series v1 json"
    if route in PROCESS_ROUTES and isinstance(data, Mapping):
        hdr = data.get("header") or {}
        return f"process encoding {hdr.get('encoding_name', hdr.get('encoding', '?'))}"
    return ""


def surface_of(run: Run) -> dict[str, Any]:
    """The run's surface as JSON-ready dicts of sorted lists (see the module docstring)."""
    b = _Builder()
    for item in run.payloads():
        b.endpoint(item)
        data = item.get("data")
        if data is None:
            continue
        route = item["endpoint"]
        if route in (SERIES_V2, SERIES_V1) or ("series" in route and "v3" in route):
            _series(b, route, data)
        elif route == SKETCHES:
            _sketches(b, data)
        elif route == TRACES:
            _traces(b, data)
        elif route == STATS:
            _stats(b, data)
        elif route == CHECK_RUNS:
            _check_runs(b, data)
        elif route in PROCESS_ROUTES:
            _process(b, data)
        elif route in METADATA_ROUTES:
            _metadata(b, route, data)
        elif route == LOGS:
            _logs(b, data)
    egress: dict[str, dict[str, Any]] = {}
    for attempt in run.payloads(file=EGRESS_FILE):
        where = f"{attempt.get('host')}:{attempt.get('port')}"
        seen = egress.setdefault(where, {"count": 0, "kinds": set(), "targets": set()})
        seen["count"] += 1
        seen["kinds"].add(f"{attempt.get('method', '')} ({attempt.get('kind', '')})".strip())
        seen["targets"].add(str(attempt.get("target", ""))[:200])
    return {
        "scenarios": {t.nodeid: t.outcome for t in run.tests.values()},
        "skip_reasons": {t.nodeid: t.reason for t in run.tests.values()
                         if t.outcome == "skipped" and t.reason},
        "egress": {w: _plain(v) for w, v in sorted(egress.items())},
        "endpoints": {r: _plain(ep) for r, ep in sorted(b.endpoints.items())},
        "metrics": {m: _plain(v) for m, v in sorted(b.metrics.items())},
        "ecs_tags": _plain(b.ecs_tags),
        "spans": _plain(b.spans),
        "apm_stats": _plain(b.apm_stats),
        "processes": {k: _plain(v) for k, v in sorted(b.processes.items())},
        "check_runs": {k: _plain(v) for k, v in sorted(b.check_runs.items())},
        "host_metadata": _plain(b.host_metadata),
        "logs": _plain(b.logs),
        "agent_versions": sorted(b.agent_versions),
    }


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, set):
        return sorted(value, key=str)
    return value


def _list(data: Any) -> list:
    return data if isinstance(data, list) else []


def _series(b: _Builder, route: str, data: Any) -> None:
    for s in _list(data):
        name = s.get("metric")
        if not name:
            continue
        m = b.metrics[name]
        m["endpoints"].add(route)
        kind = s.get("type")
        m["types"].add(SERIES_TYPES.get(kind, str(kind)) if isinstance(kind, int) else str(kind or "gauge"))
        tags = list(s.get("tags") or [])
        m["tags"].update(normalise_tag(t) for t in tags)
        m["tag_keys"].update(tag_key(t) for t in tags)
        m["resources"].update(r.get("type", "") for r in s.get("resources") or [])
        b.ecs("metrics", tags)


def _sketches(b: _Builder, data: Any) -> None:
    for s in _list(data):
        name = s.get("metric")
        if not name:
            continue
        m = b.metrics[name]
        m["endpoints"].add(SKETCHES)
        m["types"].add("distribution")
        tags = list(s.get("tags") or [])
        m["tags"].update(normalise_tag(t) for t in tags)
        m["tag_keys"].update(tag_key(t) for t in tags)
        b.ecs("distributions", tags)


def _nonempty_keys(obj: Mapping[str, Any]) -> set[str]:
    return {k for k, v in obj.items() if v not in (None, "", 0, [], {}, False)}


def _traces(b: _Builder, data: Mapping[str, Any]) -> None:
    b.spans["payload_fields"].update(_nonempty_keys(data))
    if data.get("agentVersion"):
        b.agent_versions.add(str(data["agentVersion"]))
    for tp in data.get("tracerPayloads") or []:
        b.spans["tracer_payload_fields"].update(_nonempty_keys(tp))
        tp_tags = tp.get("tags") or {}
        b.spans["tracer_payload_tags"].update(tp_tags)
        container = [t for t in str(tp_tags.get("_dd.tags.container", "")).split(",") if t]
        b.ecs("traces", container)
        for chunk in tp.get("chunks") or []:
            b.spans["chunk_fields"].update(_nonempty_keys(chunk))
            for span in chunk.get("spans") or []:
                b.spans["span_fields"].update(_nonempty_keys(span))
                meta, metrics = span.get("meta") or {}, span.get("metrics") or {}
                b.spans["meta_keys"].update(meta)
                b.spans["metrics_keys"].update(metrics)
                b.spans["dd_tags"].update(k for k in [*meta, *metrics] if k.startswith("_dd."))
                b.ecs("traces", (f"{k}:{v}" for k, v in meta.items()))


def _stats(b: _Builder, data: Mapping[str, Any]) -> None:
    b.apm_stats["payload_fields"].update(_nonempty_keys(data))
    if data.get("AgentVersion"):
        b.agent_versions.add(str(data["AgentVersion"]))
    for client in data.get("Stats") or []:
        b.apm_stats["client_fields"].update(_nonempty_keys(client))
        for bucket in client.get("Stats") or []:
            for grouped in bucket.get("Stats") or []:
                keys = set(grouped) - STATS_MEASURES
                b.apm_stats["grouping_keys"].update(keys)
                b.apm_stats["grouping_keys_set"].update(
                    k for k in keys if grouped[k] not in (None, "", 0, []))
                b.apm_stats["measures"].update(set(grouped) & STATS_MEASURES)


def _check_runs(b: _Builder, data: Any) -> None:
    for run in _list(data):
        name = run.get("check")
        if not name:
            continue
        c = b.check_runs[name]
        c["statuses"].add(run.get("status"))
        tags = list(run.get("tags") or [])
        c["tag_keys"].update(tag_key(t) for t in tags)
        b.ecs("check_runs", tags)


def _process(b: _Builder, data: Mapping[str, Any]) -> None:
    hdr, body = data.get("header") or {}, data.get("body")
    kind = str(hdr.get("type_name") or hdr.get("type") or "unknown")
    p = b.processes[kind]
    p["encodings"].add(str(hdr.get("encoding_name", hdr.get("encoding", ""))))
    if not isinstance(body, Mapping):
        p["undecoded"].add(str(data.get("undecoded_reason", "body not decoded")))
        return
    p["message_fields"].update(_nonempty_keys(body))
    for proc in body.get("processes") or []:
        p["process_fields"].update(_nonempty_keys(proc))
    for ctr in body.get("containers") or []:
        p["container_fields"].update(_nonempty_keys(ctr))
        b.ecs("containers", ctr.get("tags") or [])
    for stat in body.get("stats") or []:
        p["stat_fields"].update(_nonempty_keys(stat) if isinstance(stat, Mapping) else ())
    # Container tags of a process-list message come per container id in `containerHostType`/tags maps.
    for key in ("containerIdToTags", "tags"):
        value = body.get(key)
        if isinstance(value, Mapping):
            for tags in value.values():
                if isinstance(tags, Mapping):
                    tags = tags.get("tags", [])
                b.ecs("processes", tags if isinstance(tags, list) else [])


def _metadata(b: _Builder, route: str, data: Any) -> None:
    if not isinstance(data, Mapping):
        return
    b.host_metadata[route].update(data)
    for key, value in data.items():
        if isinstance(value, Mapping):
            b.host_metadata[route].update(f"{key}.{k}" for k in value)
    for key in ("agentVersion", "agent_version"):
        if isinstance(data.get(key), str):
            b.agent_versions.add(data[key])
    meta = data.get("meta")
    if isinstance(meta, Mapping) and isinstance(meta.get("agent_version"), str):
        b.agent_versions.add(meta["agent_version"])


def _logs(b: _Builder, data: Any) -> None:
    for entry in _list(data):
        if isinstance(entry, Mapping):
            b.logs["fields"].update(_nonempty_keys(entry))
            tags = entry.get("tags") or []
            b.logs["tag_keys"].update(split_tag(t)[0] for t in tags)
            b.ecs("logs", tags)
