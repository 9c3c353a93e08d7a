"""report.md (for humans), report.json (for tools, with a top-level `breaking` list) and HTML views
(report.html, and junit.html beside each agent's junit.xml), from a `Comparison` and the surfaces."""

from __future__ import annotations

import html
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lab.compare.diff import Comparison, Difference


def verdict(comparison: Comparison) -> str:
    if comparison.breaking:
        return "breaking"
    return "changed" if comparison.informational else "no change"


def report_document(comparison: Comparison, baseline: Mapping[str, Any], candidate: Mapping[str, Any],
                    base_agent: Mapping[str, Any], cand_agent: Mapping[str, Any],
                    runs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """report.json's content."""
    return {
        "verdict": verdict(comparison),
        "breaking": [d.as_dict() for d in comparison.breaking],
        "informational": [d.as_dict() for d in comparison.informational],
        "ignored": [d.as_dict() for d in comparison.ignored],
        "unused_ignore_rules": [{"pattern": r.pattern, "reason": r.reason, "line": r.line}
                                for r in comparison.unused_rules if r.line],  # not the built-in ones
        "agents": {"baseline": dict(base_agent), "candidate": dict(cand_agent)},
        "runs": dict(runs or {}),
        "surfaces": {"baseline": baseline, "candidate": candidate},
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _agent_name(agent: Mapping[str, Any]) -> str:
    return str(agent.get("spec") or agent.get("name") or "?")


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _diff_lines(diffs: list[Difference], with_ignored: bool = False) -> list[str]:
    lines = []
    for d in diffs:
        line = f"- `{d.id}`" + (f": {d.detail}" if d.detail else "")
        if with_ignored and d.ignored:
            line += f" (ignored by `{d.ignored}`)"
        lines.append(line)
    return lines or ["- none"]


def render_markdown(doc: Mapping[str, Any]) -> str:
    base_agent, cand_agent = doc["agents"]["baseline"], doc["agents"]["candidate"]
    base, cand = doc["surfaces"]["baseline"], doc["surfaces"]["candidate"]
    breaking = [Difference(**{k: v for k, v in d.items() if k != "id"}) for d in doc["breaking"]]
    info = [Difference(**{k: v for k, v in d.items() if k != "id"}) for d in doc["informational"]]
    ignored = [Difference(**{k: v for k, v in d.items() if k != "id"}) for d in doc["ignored"]]
    title = f"{_agent_name(base_agent)} -> {_agent_name(cand_agent)}"
    verdict_text = {"breaking": f"**BREAKING**: {len(breaking)} breaking change(s)",
                    "changed": f"changed: {len(info)} informational difference(s), nothing breaking",
                    "no change": "**no change**"}[doc["verdict"]]
    out = [f"# ecs-lab compare: {title}", "", f"Verdict: {verdict_text}.", ""]
    out += ["| | baseline | candidate |", "|---|---|---|"]
    for key, label in (("spec", "agent"), ("env", "extra agent env")):
        out.append(f"| {label} | {_cell(base_agent.get(key) or '-')} | {_cell(cand_agent.get(key) or '-')} |")
    runs = doc.get("runs") or {}
    if runs:
        out.append(f"| pytest exit code | {runs.get('baseline', {}).get('exit_code', '-')} | "
                   f"{runs.get('candidate', {}).get('exit_code', '-')} |")
        out.append(f"| run time (s) | {runs.get('baseline', {}).get('seconds', '-')} | "
                   f"{runs.get('candidate', {}).get('seconds', '-')} |")
    out.append(f"| agent versions seen | {_cell(', '.join(base.get('agent_versions', [])) or '-')} | "
               f"{_cell(', '.join(cand.get('agent_versions', [])) or '-')} |")
    out += ["", "## Scenarios", "", "| scenario | baseline | candidate |", "|---|---|---|"]
    for nodeid in sorted(set(base["scenarios"]) | set(cand["scenarios"])):
        b, c = base["scenarios"].get(nodeid, "-"), cand["scenarios"].get(nodeid, "-")
        mark = " **(newly failing)**" if b == "passed" and c in ("failed", "error") else ""
        b += _skip_reason(base, nodeid, b)
        c += _skip_reason(cand, nodeid, c)
        out.append(f"| `{nodeid}` | {_cell(b)} | {_cell(c)}{mark} |")
    out += ["", f"## Breaking ({len(breaking)})", "", *_diff_lines(breaking)]
    out += ["", f"## Informational ({len(info)})", "", *_diff_lines(info)]
    if ignored:
        out += ["", f"## Ignored ({len(ignored)})", "", *_diff_lines(ignored, with_ignored=True)]
    if doc.get("unused_ignore_rules"):
        out += ["", "Ignore rules that matched nothing: "
                + ", ".join(f"`{r['pattern']}` (line {r['line']})" for r in doc["unused_ignore_rules"])]
    out += ["", "## Intake endpoints", "",
            "| endpoint | baseline payloads | candidate payloads | baseline content type / encoding | "
            "candidate content type / encoding |", "|---|---|---|---|---|"]
    for route in sorted(set(base["endpoints"]) | set(cand["endpoints"])):
        b, c = base["endpoints"].get(route), cand["endpoints"].get(route)
        out.append(f"| `{route}` | {b['count'] if b else 0} | {c['count'] if c else 0} | {_framing(b)} | "
                   f"{_framing(c)} |")
    out += ["", "## Sent outside the lab", "",
            "Connections the agent tried to open to anywhere but the lab's intake; the lab's recording "
            "egress proxy refused each one (nothing left the lab).", "",
            "| destination | baseline attempts | candidate attempts | how |", "|---|---|---|---|"]
    b_out, c_out = base.get("egress", {}), cand.get("egress", {})
    for where in sorted(set(b_out) | set(c_out)):
        b, c = b_out.get(where), c_out.get(where)
        how = ", ".join(sorted({*(b or {}).get("kinds", []), *(c or {}).get("kinds", [])}))
        out.append(f"| `{where}` | {b['count'] if b else 0} | {c['count'] if c else 0} | {_cell(how)} |")
    if not b_out and not c_out:
        out.append("| (none) | 0 | 0 | |")
    out += ["", "## Metrics", "",
            f"{len(base['metrics'])} metric names on the baseline, {len(cand['metrics'])} on the candidate.",
            "",
            "| metric | baseline | candidate |", "|---|---|---|"]
    for name in sorted(set(base["metrics"]) | set(cand["metrics"])):
        b, c = _metric(base["metrics"].get(name)), _metric(cand["metrics"].get(name))
        out.append(f"| `{name}` | {b} | {c} |")
    out += ["", "## ECS tags per data type", "", "| data type | baseline | candidate |", "|---|---|---|"]
    for data_type in sorted(set(base["ecs_tags"]) | set(cand["ecs_tags"])):
        out.append(f"| {data_type} | {', '.join(base['ecs_tags'].get(data_type, [])) or '-'} | "
                   f"{', '.join(cand['ecs_tags'].get(data_type, [])) or '-'} |")
    out += ["", "## Traces, processes, check runs", "", "| | baseline | candidate |", "|---|---|---|"]
    for label, getter in (
            ("agent-added `_dd.*` span tags", lambda s: s.get("spans", {}).get("dd_tags", [])),
            ("span fields", lambda s: s.get("spans", {}).get("span_fields", [])),
            ("APM stats groupings", lambda s: s.get("apm_stats", {}).get("grouping_keys_set", [])),
            ("process-agent messages", lambda s: list(s.get("processes", {}))),
            ("check runs", lambda s: list(s.get("check_runs", {}))),
            ("host metadata payloads", lambda s: list(s.get("host_metadata", {})))):
        b, c = _cell(", ".join(getter(base)) or "-"), _cell(", ".join(getter(cand)) or "-")
        out.append(f"| {label} | {b} | {c} |")
    out.append("")
    return "\n".join(out)


def _skip_reason(surface: Mapping[str, Any], nodeid: str, outcome: str) -> str:
    reason = surface.get("skip_reasons", {}).get(nodeid) if outcome == "skipped" else None
    return f": {reason}" if reason else ""


def _framing(ep: Mapping[str, Any] | None) -> str:
    if not ep:
        return "-"
    parts = [", ".join(ep.get("content_types", [])), ", ".join(ep.get("encodings", []))]
    if ep.get("formats"):
        parts.append(", ".join(ep["formats"]))
    return " / ".join(parts)


def _metric(m: Mapping[str, Any] | None) -> str:
    if not m:
        return "-"
    return f"{'/'.join(m.get('types', []))}; {len(m.get('tag_keys', []))} tag keys"


def render_html(doc: Mapping[str, Any], markdown: str) -> str:
    rows = "".join(
        f"<tr class='{cls}'><td>{html.escape(d['id'])}</td><td>{html.escape(d.get('detail') or '')}</td>"
        f"<td>{cls}</td></tr>"
        for cls, key in (("breaking", "breaking"), ("informational", "informational"), ("ignored", "ignored"))
        for d in doc[key])
    return (
        "<!doctype html><meta charset='utf-8'><title>ecs-lab compare</title><style>"
        "body{font-family:sans-serif;margin:2em}td{padding:2px 8px;vertical-align:top}"
        ".breaking{background:#fdd}.ignored{color:#888}pre{background:#f6f6f6;padding:1em}</style>"
        f"<h1>ecs-lab compare: {html.escape(doc['verdict'])}</h1>"
        f"<table><tr><th>difference</th><th>detail</th><th>class</th></tr>{rows}</table>"
        f"<h2>Full report</h2><pre>{html.escape(markdown)}</pre>")


def junit_html(junit_xml: Path) -> str:
    """A one-page HTML view of a JUnit XML file (pytest's --junitxml)."""
    root = ET.parse(junit_xml).getroot()
    rows = []
    for case in root.iter("testcase"):
        outcome, text = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = {"failure": "failed"}.get(tag, tag)
                text = (node.get("message") or "") + "\n" + (node.text or "")
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        rows.append(f"<tr class='{outcome}'><td>{html.escape(name)}</td><td>{outcome}</td>"
                    f"<td>{html.escape(case.get('time', ''))}</td><td><pre>{html.escape(text.strip()[:4000])}"
                    "</pre></td></tr>")
    return ("<!doctype html><meta charset='utf-8'><title>JUnit</title><style>body{font-family:sans-serif}"
            ".failed,.error{background:#fdd}.skipped{color:#888}"
            "td{vertical-align:top;padding:2px 8px}</style>"
            f"<h1>{html.escape(junit_xml.parent.name)}: {html.escape(str(junit_xml))}</h1>"
            f"<table><tr><th>test</th><th>outcome</th><th>seconds</th><th>detail</th></tr>{''.join(rows)}</table>")


def write_reports(out_dir: Path, doc: Mapping[str, Any]) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = render_markdown(doc)
    paths = {"json": out_dir / "report.json", "md": out_dir / "report.md", "html": out_dir / "report.html"}
    paths["json"].write_text(json.dumps(doc, indent=1, sort_keys=False, default=str) + "\n", encoding="utf-8")
    paths["md"].write_text(markdown, encoding="utf-8")
    paths["html"].write_text(render_html(doc, markdown), encoding="utf-8")
    for label in ("baseline", "candidate"):
        junit = out_dir / label / "junit.xml"
        if junit.exists():
            try:
                (out_dir / label / "junit.html").write_text(junit_html(junit), encoding="utf-8")
            except ET.ParseError:
                pass  # a run killed mid-write: the report says its exit code
    return paths
