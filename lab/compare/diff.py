"""Two agents' surfaces compared: the list of differences, each breaking or informational.

Pure functions: `compare(baseline, candidate, rules)` takes two surfaces (`surface.surface_of`) and
the ignore rules, and returns a `Comparison`. Breaking, as the issue defines it: a scenario that
passes on the baseline and fails on the candidate, a removed endpoint, a removed metric (service
checks count as metrics), a removed tag key (on a metric, a check run, a span, or an ECS tag of a
data type). Everything else (additions, changed content types or encodings, type changes, moved
metrics, removed fields, a new agent version) is informational.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from lab.compare.ignore import IgnoreRule
from lab.compare.normalise import split_tag

FAILED = ("failed", "error")


@dataclass
class Difference:
    kind: str  # "<area>.<change>", e.g. metric.removed
    subject: str
    detail: str = ""
    breaking: bool = False
    ignored: str | None = None  # the matching ignore rule's pattern (and reason), when ignored

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.subject}"

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, **asdict(self)}


@dataclass
class Comparison:
    differences: list[Difference] = field(default_factory=list)
    unused_rules: list[IgnoreRule] = field(default_factory=list)

    @property
    def breaking(self) -> list[Difference]:
        return [d for d in self.differences if d.breaking and not d.ignored]

    @property
    def informational(self) -> list[Difference]:
        return [d for d in self.differences if not d.breaking and not d.ignored]

    @property
    def ignored(self) -> list[Difference]:
        return [d for d in self.differences if d.ignored]

    @property
    def unchanged(self) -> bool:
        return not self.breaking and not self.informational


def _short(values: Iterable[Any], limit: int = 8) -> str:
    values = sorted(values, key=str)
    text = ", ".join(str(v) for v in values[:limit])
    return text + (f" (+{len(values) - limit} more)" if len(values) > limit else "")


class _Collector:
    def __init__(self) -> None:
        self.out: list[Difference] = []

    def add(self, kind: str, subject: str, detail: str = "", breaking: bool = False) -> None:
        self.out.append(Difference(kind, subject, detail, breaking))

    def sets(self, area: str, subject_prefix: str, base: Iterable[Any], cand: Iterable[Any], *,
             removed_breaking: bool, what: str) -> None:
        """`<area>.removed` / `<area>.added` for each element only one side has."""
        b, c = set(base), set(cand)
        for value in sorted(b - c, key=str):
            self.add(f"{area}.removed", f"{subject_prefix}{value}", f"{what} {value!s} no longer sent",
                     removed_breaking)
        for value in sorted(c - b, key=str):
            self.add(f"{area}.added", f"{subject_prefix}{value}", f"new {what} {value!s}")


def compare(baseline: Mapping[str, Any], candidate: Mapping[str, Any],
            rules: Iterable[IgnoreRule] = ()) -> Comparison:
    col = _Collector()
    _scenarios(col, baseline.get("scenarios", {}), candidate.get("scenarios", {}),
               candidate.get("skip_reasons", {}))
    _endpoints(col, baseline.get("endpoints", {}), candidate.get("endpoints", {}))
    _metrics(col, baseline.get("metrics", {}), candidate.get("metrics", {}))
    b_ecs, c_ecs = baseline.get("ecs_tags", {}), candidate.get("ecs_tags", {})
    for data_type in sorted(set(b_ecs) | set(c_ecs)):
        if b_ecs.get(data_type) and not c_ecs.get(data_type):
            # The whole data type is gone (its endpoint or metrics say why): one line, not one per key.
            col.add("ecs_tag.removed", f"{data_type}#*",
                    f"no ECS tag at all on {data_type} (baseline: {_short(b_ecs[data_type], 20)})", True)
            continue
        col.sets("ecs_tag", f"{data_type}#", baseline.get("ecs_tags", {}).get(data_type, ()),
                 candidate.get("ecs_tags", {}).get(data_type, ()), removed_breaking=True,
                 what=f"ECS tag on {data_type}:")
    _spans(col, baseline.get("spans", {}), candidate.get("spans", {}))
    _apm_stats(col, baseline.get("apm_stats", {}), candidate.get("apm_stats", {}))
    _processes(col, baseline.get("processes", {}), candidate.get("processes", {}))
    _check_runs(col, baseline.get("check_runs", {}), candidate.get("check_runs", {}))
    b_meta, c_meta = baseline.get("host_metadata", {}), candidate.get("host_metadata", {})
    for route in sorted(set(b_meta) & set(c_meta)):
        col.sets("host_metadata", f"{route}#", b_meta[route], c_meta[route], removed_breaking=False,
                 what=f"host metadata key on {route}:")
    b_logs, c_logs = baseline.get("logs", {}), candidate.get("logs", {})
    if b_logs and c_logs:
        col.sets("log_tag", "", b_logs.get("tag_keys", ()), c_logs.get("tag_keys", ()),
                 removed_breaking=True, what="log tag key")
    # Data sent to somewhere other than the lab's intake (the recording egress proxy refused it):
    # where the intake's missing data went. Informational: a real deployment may send there.
    b_out, c_out = baseline.get("egress", {}), candidate.get("egress", {})
    for where in sorted(set(c_out) - set(b_out)):
        col.add("egress.added", where, f"{c_out[where]['count']} attempt(s) outside the lab on the candidate "
                f"({_short(c_out[where].get('kinds', ()))}), none on the baseline")
    for where in sorted(set(b_out) - set(c_out)):
        col.add("egress.removed", where, f"{b_out[where]['count']} attempt(s) outside the lab on the "
                "baseline, none on the candidate")
    b_ver, c_ver = set(baseline.get("agent_versions", ())), set(candidate.get("agent_versions", ()))
    if b_ver != c_ver:
        col.add("agent.version_changed", f"{_short(b_ver) or '?'} -> {_short(c_ver) or '?'}",
                "the agent version its payloads report")
    return _apply_rules(col.out, list(rules))


def _apply_rules(differences: list[Difference], rules: list[IgnoreRule]) -> Comparison:
    used: set[int] = set()
    for diff in differences:
        for index, rule in enumerate(rules):
            if rule.matches(diff.id):
                diff.ignored = rule.pattern + (f" ({rule.reason})" if rule.reason else "")
                used.add(index)
                break
    return Comparison(differences, [r for i, r in enumerate(rules) if i not in used])


def _scenarios(col: _Collector, base: Mapping[str, str], cand: Mapping[str, str],
               cand_skips: Mapping[str, str] | None = None) -> None:
    for nodeid in sorted(set(base) | set(cand)):
        b, c = base.get(nodeid), cand.get(nodeid)
        if b is None:
            col.add("scenario.added", nodeid, f"only run on the candidate ({c})")
        elif c is None:
            col.add("scenario.missing", nodeid, f"not run on the candidate (baseline: {b})")
        elif b == "passed" and c in FAILED:
            col.add("scenario.newly_failing", nodeid, f"passed on the baseline, {c} on the candidate", True)
        elif b == "passed" and c == "skipped":
            # What the candidate does not offer: informational here; the data it no longer sends
            # is breaking on its own (endpoints, metrics, tags removed).
            why = (cand_skips or {}).get(nodeid) or "no reason given"
            col.add("scenario.not_offered", nodeid,
                    f"passed on the baseline, skipped on the candidate: {why}")
        elif b in FAILED and c == "passed":
            col.add("scenario.fixed", nodeid, f"{b} on the baseline, passed on the candidate")
        elif b != c:
            col.add("scenario.outcome_changed", nodeid, f"{b} on the baseline, {c} on the candidate")


def _endpoints(col: _Collector, base: Mapping[str, Any], cand: Mapping[str, Any]) -> None:
    for route in sorted(set(base) - set(cand)):
        col.add("endpoint.removed", route,
                f"{base[route]['count']} payloads on the baseline, none on the candidate", True)
    for route in sorted(set(cand) - set(base)):
        col.add("endpoint.added", route,
                f"{cand[route]['count']} payloads on the candidate, none on the baseline")
    for route in sorted(set(base) & set(cand)):
        for key, label in (("content_types", "content type"), ("encodings", "encoding"),
                           ("formats", "format")):
            b, c = set(base[route].get(key, ())), set(cand[route].get(key, ()))
            if b != c:
                col.add(f"endpoint.{key.rstrip('s')}_changed", route,
                        f"{label}: {_short(b) or '-'} -> {_short(c) or '-'}")


def _metrics(col: _Collector, base: Mapping[str, Any], cand: Mapping[str, Any]) -> None:
    for name in sorted(set(base) - set(cand)):
        b = base[name]
        col.add("metric.removed", name,
                f"{'/'.join(b.get('types', ()))} on {', '.join(b.get('endpoints', ()))} on the baseline; "
                "the candidate sent it on no endpoint", True)
    for name in sorted(set(cand) - set(base)):
        c = cand[name]
        col.add("metric.added", name,
                f"{'/'.join(c.get('types', ()))} on {', '.join(c.get('endpoints', ()))}")
    for name in sorted(set(base) & set(cand)):
        b, c = base[name], cand[name]
        if set(b.get("endpoints", ())) != set(c.get("endpoints", ())):
            col.add("metric.moved", name,
                    f"{_short(b.get('endpoints', ()))} -> {_short(c.get('endpoints', ()))}")
        if set(b.get("types", ())) != set(c.get("types", ())):
            col.add("metric.type_changed", name,
                    f"{_short(b.get('types', ()))} -> {_short(c.get('types', ()))}")
        b_keys, c_keys = set(b.get("tag_keys", ())), set(c.get("tag_keys", ()))
        col.sets("tag", f"{name}#", b_keys, c_keys, removed_breaking=True, what=f"tag key on {name}:")
        b_vals, c_vals = _values_by_key(b.get("tags", ())), _values_by_key(c.get("tags", ()))
        for key in sorted(b_keys & c_keys):
            if b_vals.get(key, set()) != c_vals.get(key, set()):
                gone, new = b_vals[key] - c_vals[key], c_vals[key] - b_vals[key]
                parts = [f"gone: {_short(gone)}" if gone else "", f"new: {_short(new)}" if new else ""]
                col.add("tag.values_changed", f"{name}#{key}",
                        "normalised values " + "; ".join(p for p in parts if p))


def _values_by_key(tags: Iterable[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for tag in tags:
        key, value = split_tag(tag)
        out.setdefault(key, set()).add(value)
    return out


SPAN_TAG_SETS = {"meta_keys": "span_meta", "metrics_keys": "span_metric", "dd_tags": "span_dd_tag"}
SPAN_FIELD_SETS = {"span_fields": "span_field", "chunk_fields": "trace_chunk_field",
                   "tracer_payload_fields": "tracer_payload_field",
                   "tracer_payload_tags": "tracer_payload_tag",
                   "payload_fields": "trace_payload_field"}


def _spans(col: _Collector, base: Mapping[str, Any], cand: Mapping[str, Any]) -> None:
    if not base or not cand:
        return  # no traces on one side: the endpoint's removal or addition says it once
    for key, area in SPAN_TAG_SETS.items():
        b, c = set(base.get(key, ())), set(cand.get(key, ()))
        if key != "dd_tags":  # agent-added _dd.* tags are reported once, under span_dd_tag
            b, c = {k for k in b if not k.startswith("_dd.")}, {k for k in c if not k.startswith("_dd.")}
        col.sets(area, "", b, c, removed_breaking=True, what=area.replace("_", " "))
    for key, area in SPAN_FIELD_SETS.items():
        col.sets(area, "", base.get(key, ()), cand.get(key, ()), removed_breaking=False,
                 what=area.replace("_", " "))


def _apm_stats(col: _Collector, base: Mapping[str, Any], cand: Mapping[str, Any]) -> None:
    if not base or not cand:
        return
    col.sets("apm_stats_grouping", "", base.get("grouping_keys_set", ()), cand.get("grouping_keys_set", ()),
             removed_breaking=False, what="APM stats grouping")
    col.sets("apm_stats_field", "", base.get("grouping_keys", ()), cand.get("grouping_keys", ()),
             removed_breaking=False, what="APM stats group field")


def _processes(col: _Collector, base: Mapping[str, Any], cand: Mapping[str, Any]) -> None:
    col.sets("process_message", "", base, cand, removed_breaking=False, what="process-agent message type")
    for kind in sorted(set(base) & set(cand)):
        for key in sorted(set(base[kind]) | set(cand[kind])):
            col.sets("process_field", f"{kind}.{key}.", base[kind].get(key, ()), cand[kind].get(key, ()),
                     removed_breaking=False, what=f"{kind} {key.replace('_', ' ')}:")


def _check_runs(col: _Collector, base: Mapping[str, Any], cand: Mapping[str, Any]) -> None:
    col.sets("check_run", "", base, cand, removed_breaking=True, what="check run")
    for name in sorted(set(base) & set(cand)):
        col.sets("check_run_tag", f"{name}#", base[name].get("tag_keys", ()), cand[name].get("tag_keys", ()),
                 removed_breaking=True, what=f"tag key on check run {name}:")
