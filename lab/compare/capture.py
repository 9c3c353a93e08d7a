"""pytest plugin: keep every intake payload each test caused, for `ecs-lab compare`.

Load it with `-p lab.compare.capture --capture-dir DIR`. After each test (before its fixtures are
torn down, so a module's `lab_with` stacks are still up) it reads, from every lab intake it knows
of, the payloads that arrived since the previous capture, through the intake's fakeintake query
API: raw (for the content type) and `format=json` (decoded). It writes them to
`DIR/<test id>/payloads.jsonl` (one JSON object per line: intake, endpoint, seq, timestamp,
content_type, encoding, size, data) and each test's outcome to `DIR/tests.json`. Captures follow
each other without gap or overlap (a cursor per intake), so a payload that arrives between two
tests is kept with the second.

Intakes are found in the test's fixtures (a `Lab` has `intake_url`, an `IntakeClient` a `url`),
among the stacks `lab.pytest_plugin.start_lab` started (it is wrapped for that), and in
`--capture-intake URL` (repeatable) for a lab this run did not start.

`LAB_AGENT_ENV` (a JSON object, or `KEY=VALUE` pairs separated by newlines) adds environment to
every agent the run's stacks start (`start_lab`'s `agent_env`; a scenario's own `agent_env` wins):
`ecs-lab compare --candidate-env` passes the candidate's extra settings this way.
Without `--capture-dir` the plugin does nothing.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from lab.compare.surface import EGRESS_FILE, PAYLOADS_FILE, TESTS_FILE

AGENT_ENV_VAR = "LAB_AGENT_ENV"
AGENT_INFO_VAR = "LAB_COMPARE_AGENT"  # JSON describing the agent, written into tests.json
RAW_KEEP_LIMIT = 64 * 1024  # undecodable bodies up to this size are kept (base64) for a human to read


def pytest_addoption(parser) -> None:
    group = parser.getgroup("ecs-lab compare")
    group.addoption("--capture-dir", action="store", default=None,
                    help="keep every intake payload of each test under this directory (ecs-lab compare)")
    group.addoption("--capture-intake", action="append", default=[],
                    help="also capture from this intake URL (repeatable)")


def parse_agent_env(text: str) -> dict[str, str]:
    """LAB_AGENT_ENV: a JSON object of strings, or `KEY=VALUE` lines."""
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{AGENT_ENV_VAR} is not valid JSON: {exc}") from None
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise ValueError(f"{AGENT_ENV_VAR} must map names to string values: {text}")
        return value
    env = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if not line.strip():
            continue
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"{AGENT_ENV_VAR}: {line.strip()!r} is not KEY=VALUE")
        env[key] = value
    return env


def capture_dir_name(nodeid: str) -> str:
    """A directory name for a test id: readable, and distinct for distinct ids."""
    import hashlib

    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", nodeid.replace("::", "__").replace("/", "__")).strip("_")
    return f"{readable[:120]}-{hashlib.sha1(nodeid.encode()).hexdigest()[:8]}"


class PayloadCapture:
    """The capture state of one pytest run."""

    def __init__(self, directory: Path, intakes: list[str]) -> None:
        import requests

        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cursors: dict[str, int | None] = {url.rstrip("/"): None for url in intakes}
        # Labs whose recording egress proxy is read after each test -> attempts seen so far.
        self.egress_seen: dict[int, int] = {}
        self.egress_labs: dict[int, Any] = {}
        self.gone: set[str] = set()
        self.tests: dict[str, dict[str, Any]] = {}
        self.warnings: list[str] = []
        self.agent = json.loads(os.environ.get(AGENT_INFO_VAR) or "{}")
        self.exit_code: int | None = None
        self.http = requests.Session()
        self.http.trust_env = False  # the lab's intakes are local: never through a proxy

    def know(self, url: str | None) -> None:
        if url and url.rstrip("/") not in self.gone:
            self.cursors.setdefault(url.rstrip("/"), None)

    def discover(self, item) -> None:
        for value in getattr(item, "funcargs", {}).values():
            if type(value).__name__ in ("Lab", "AgentLab") or hasattr(type(value), "intake_url"):
                self.know(_intake_url(value))
                self.know_egress(value)
            if type(value).__name__ == "IntakeClient":
                self.know(getattr(value, "url", None))
        session_lab = getattr(__import__("sys").modules.get("lab.pytest_plugin"), "_SESSION_LAB", None)
        if session_lab is not None:
            self.know(_intake_url(session_lab))
            self.know_egress(session_lab)

    def know_egress(self, lab: Any) -> None:
        if _egress_attempts(lab) is not None:
            self.egress_labs.setdefault(id(lab), lab)
            self.egress_seen.setdefault(id(lab), 0)

    def _read_egress(self, nodeid: str) -> list[dict[str, Any]]:
        """Attempts the labs' recording egress proxies saw since the last capture: where data the
        agent did not send to the intake went (each attempt was refused; nothing left the lab)."""
        out: list[dict[str, Any]] = []
        for key, lab in list(self.egress_labs.items()):
            attempts = _egress_attempts(lab)
            if attempts is None:  # the lab stopped: its proxy's records went with it
                del self.egress_labs[key]
                continue
            seen = self.egress_seen.get(key, 0)
            if len(attempts) < seen:  # the records were cleared (a scenario's own reset)
                seen = 0
            out.extend(attempts[seen:])
            self.egress_seen[key] = len(attempts)
        return out

    def capture(self, nodeid: str) -> int:
        """Write what every known intake received since the last capture; returns the count."""
        records: list[dict[str, Any]] = []
        for url in list(self.cursors):
            try:
                records.extend(self._read(url))
            except Exception as exc:  # noqa: BLE001 - a stopped stack's intake: stop asking it
                self.gone.add(url)
                del self.cursors[url]
                if not _is_connection_error(exc):
                    self.warnings.append(f"{nodeid}: intake {url} could not be read: {exc}")
        entry = self.tests.setdefault(nodeid, {"outcome": "unknown"})
        entry["dir"] = capture_dir_name(nodeid)
        entry["payloads"] = len(records)
        path = self.dir / entry["dir"]
        path.mkdir(parents=True, exist_ok=True)
        with (path / PAYLOADS_FILE).open("w", encoding="utf-8") as fh:
            for rec in records:
                fh.write(json.dumps(rec, sort_keys=True) + "\n")
        egress = self._read_egress(nodeid)
        entry["egress_attempts"] = len(egress)
        if egress:
            with (path / EGRESS_FILE).open("w", encoding="utf-8") as fh:
                for attempt in egress:
                    fh.write(json.dumps(attempt, sort_keys=True) + "\n")
        return len(records)

    def _get(self, url: str, path: str, **params: Any) -> dict[str, Any]:
        query = {k: v for k, v in params.items() if v is not None}
        resp = self.http.get(url + path, params=query, timeout=60)
        if resp.status_code >= 400:
            raise RuntimeError(f"GET {path} {params} -> {resp.status_code}: {resp.text[:300]}")
        return resp.json()

    def _read(self, url: str) -> list[dict[str, Any]]:
        since = self.cursors[url]
        stats = self._get(url, "/fakeintake/routestats")
        upto = int(stats.get("last_seq") or stats.get("totals", {}).get("last_seq") or 0)
        out = []
        for route in sorted(stats.get("routes", {})):
            raw = self._get(url, "/fakeintake/payloads", endpoint=route, since=since)
            if raw.get("evicted_after_cursor"):
                self.warnings.append(f"intake {url} evicted payloads of {route} before they were captured")
            kept = [p for p in raw["payloads"] if p["seq"] <= upto]
            if not kept:
                continue
            try:
                decoded = {p["seq"]: p for p in self._get(url, "/fakeintake/payloads", endpoint=route,
                                                          since=since, format="json")["payloads"]}
            except RuntimeError:
                decoded = {}  # a route the intake keeps raw (no decoded view)
            for p in kept:
                body = base64.b64decode(p["data"])
                dec = decoded.get(p["seq"])
                rec = {"intake": url, "endpoint": route, "seq": p["seq"], "timestamp": p.get("timestamp"),
                       "content_type": p.get("content_type", ""), "encoding": p.get("encoding", ""),
                       "size": len(body), "data": dec["data"] if dec else None}
                if p.get("flags"):
                    rec["flags"] = p["flags"]
                if dec is None and len(body) <= RAW_KEEP_LIMIT:
                    rec["raw_b64"] = p["data"]
                out.append(rec)
        self.cursors[url] = upto
        return sorted(out, key=lambda r: r["seq"])

    def record_report(self, report) -> None:
        entry = self.tests.setdefault(report.nodeid, {"outcome": "unknown"})
        if report.when == "call":
            entry["duration"] = round(report.duration, 3)
        if report.skipped and entry["outcome"] in ("unknown", "passed"):
            entry["outcome"] = "skipped"
            longrepr = report.longrepr
            # pytest's skip report: (file, line, "Skipped: <reason>")
            reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
            entry["reason"] = str(reason).removeprefix("Skipped: ")[:1000]
        elif report.failed:
            entry["outcome"] = "failed" if report.when == "call" else "error"
            entry["longrepr"] = str(report.longrepr)[-2000:]
        elif report.passed and report.when == "call":
            entry["outcome"] = "passed"

    def write_index(self) -> None:
        doc = {"agent": self.agent, "tests": self.tests, "warnings": self.warnings,
               "exit_code": self.exit_code, "written_at": time.time()}
        tmp = self.dir / (TESTS_FILE + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True), encoding="utf-8")
        tmp.replace(self.dir / TESTS_FILE)


def _intake_url(lab: Any) -> str | None:
    try:
        return lab.intake_url
    except (KeyError, AttributeError, TypeError):
        return None


def _egress_attempts(lab: Any) -> list[dict[str, Any]] | None:
    """What a lab's recording egress proxy saw ({host, port, kind, method, target, at, ...} each), or
    None when this process cannot read it (no proxy, an attached lab, or the lab has stopped)."""
    backend = getattr(getattr(lab, "ecs_lab", None), "backend", None)
    if backend is None:
        return None
    try:
        if hasattr(backend, "egress_attempts"):  # docker: the services container's page
            if not getattr(backend, "egress_proxy_url", None):
                return None
            return list(backend.egress_attempts().get("attempts", []))
        proxy = getattr(backend, "egress_proxy", None)  # local: the proxy runs in this process
        return [a.as_json() for a in proxy.attempts] if proxy is not None else None
    except Exception:  # noqa: BLE001 - a stopped lab's proxy: nothing more to read from it
        return None


def _is_connection_error(exc: Exception) -> bool:
    import requests

    return isinstance(exc, requests.ConnectionError)


_CAPTURE_KEY = pytest.StashKey[PayloadCapture]()


def _wrap_start_lab(capture: PayloadCapture, extra_env: dict[str, str]) -> None:
    """Every stack the run starts is known to the capture, and gets LAB_AGENT_ENV's settings."""
    try:
        import lab.pytest_plugin as plugin
    except ImportError:
        return
    original = plugin.start_lab
    if getattr(original, "_compare_wrapped", False):
        return

    @functools.wraps(original)
    def start_lab(*args: Any, **kwargs: Any):
        if extra_env:
            kwargs["agent_env"] = {**extra_env, **(kwargs.get("agent_env") or {})}
        started = original(*args, **kwargs)
        capture.know(_intake_url(started))
        return started

    start_lab._compare_wrapped = True  # type: ignore[attr-defined]
    plugin.start_lab = start_lab


def pytest_configure(config) -> None:
    directory = config.getoption("--capture-dir", default=None)
    if not directory:
        return
    try:
        extra_env = parse_agent_env(os.environ.get(AGENT_ENV_VAR, ""))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    capture = PayloadCapture(Path(directory), config.getoption("--capture-intake") or [])
    config.stash[_CAPTURE_KEY] = capture
    _wrap_start_lab(capture, extra_env)


def _capture_of(config) -> PayloadCapture | None:
    return config.stash.get(_CAPTURE_KEY, None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    capture = _capture_of(item.config)
    if capture is not None:
        capture.discover(item)
        capture.capture(item.nodeid)
    return (yield)


def pytest_runtest_logreport(report) -> None:
    # The report hook has no config argument in every pytest version: reach it through the plugin's
    # module-level reference set at session start.
    capture = _CURRENT.get("capture")
    if capture is not None:
        capture.record_report(report)
        if report.when == "teardown":
            capture.write_index()


_CURRENT: dict[str, PayloadCapture] = {}


def pytest_sessionstart(session) -> None:
    capture = _capture_of(session.config)
    if capture is not None:
        _CURRENT["capture"] = capture
        capture.write_index()


def pytest_sessionfinish(session, exitstatus) -> None:
    capture = _CURRENT.pop("capture", None)
    if capture is not None:
        capture.exit_code = int(exitstatus)
        capture.write_index()
        capture.http.close()
