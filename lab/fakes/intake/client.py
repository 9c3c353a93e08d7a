"""A Python client of the intake's query API, with the waiting helpers scenarios assert with.

Every `wait_for_*` polls with a `since` cursor (each poll reads only what is new), returns what
matched, and on timeout raises an AssertionError that says what the intake DID see, e.g.::

    no span for service=web in 12.0 s; intake saw 3 payloads on /api/v2/series, 0 on
    /api/v0.2/traces; services seen: ['db', 'worker']

It speaks plain HTTP (requests), so it works against a lab intake in another process or container.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import requests

from lab.fakes.intake.decode import process as process_decoder
from lab.fakes.intake.decode import traces as traces_decoder
from lab.fakes.intake.decode.payload import tags_match

TRACES = "/api/v0.2/traces"
SERIES = "/api/v2/series"
SKETCHES = "/api/beta/sketches"
CHECK_RUNS = "/api/v1/check_run"
LOGS = "/api/v2/logs"
CONNECTIONS = "/api/v1/connections"
PROCESS_ROUTES = ("/api/v1/collector", "/api/v1/container", "/api/v1/discovery")


def _tags(tags: str | Iterable[str] | None) -> list[str]:
    if not tags:
        return []
    if isinstance(tags, str):
        return [t for t in tags.split(",") if t]
    return list(tags)


class IntakeClient:
    def __init__(self, url: str, session: str | None = None, timeout: float = 10.0,
                 poll_interval: float = 0.25) -> None:
        self.url = url.rstrip("/")
        self.session = session
        self.http_timeout = timeout
        self.poll_interval = poll_interval
        self._http = requests.Session()
        # The lab's intake is always local: never route it through a proxy from the environment.
        self._http.trust_env = False

    # --- plumbing ---------------------------------------------------------------------------------

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        resp = self._http.get(self.url + path, params=params, timeout=self.http_timeout)
        if resp.status_code >= 400:
            raise RuntimeError(f"GET {path} -> {resp.status_code}: {resp.text[:500]}")
        return resp.json() if resp.content else None

    def _params(self, extra: Mapping[str, Any]) -> dict[str, Any]:
        params = {k: v for k, v in extra.items() if v not in (None, "", [], ())}
        if "tags" in params:
            params["tags"] = ",".join(_tags(params["tags"]))
        if self.session and "session" not in params:
            params["session"] = self.session
        return params

    # --- reading ----------------------------------------------------------------------------------

    def health(self) -> bool:
        try:
            return self._http.get(self.url + "/fakeintake/health", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def wait_ready(self, timeout: float = 10.0) -> IntakeClient:
        deadline = time.monotonic() + timeout
        while not self.health():
            if time.monotonic() > deadline:
                raise AssertionError(f"intake at {self.url} did not answer /fakeintake/health in {timeout} s")
            time.sleep(0.05)
        return self

    def payloads_page(self, endpoint: str, fmt: str = "json", since: int | None = None,
                      **filters: Any) -> dict[str, Any]:
        """The whole answer: {"payloads": [...], "next_since": cursor, "evicted_after_cursor": bool}."""
        params = self._params({"endpoint": endpoint, "since": since, **filters})
        if fmt == "json":
            params["format"] = "json"
        return self._get("/fakeintake/payloads", params)

    def payloads(self, endpoint: str, fmt: str = "json", since: int | None = None,
                 **filters: Any) -> list[dict[str, Any]]:
        """Payloads of one route; fmt "json" (decoded `data`) or "raw" (`data` as bytes)."""
        items = self.payloads_page(endpoint, fmt, since, **filters)["payloads"]
        if fmt != "json":
            for item in items:
                item["data"] = base64.b64decode(item["data"])
        return items

    def spans(self, service: str | None = None, since: int | None = None, **filters: Any) -> list[dict]:
        """Spans flattened out of the trace payloads, each with its payload's context added:
        `hostname`, `env`, `container_id`, `container_tags`, `tags` (all tags it can be found by)."""
        return self._spans(self.payloads(TRACES, since=since, service=service, **filters),
                           {"service": service, **filters})

    @staticmethod
    def _spans(payloads: Iterable[dict], filters: Mapping[str, Any]) -> list[dict]:
        flt = {k: v for k, v in filters.items() if v}
        if "tags" in flt:
            flt["tags"] = _tags(flt["tags"])
        out = []
        for item in payloads:
            data = item["data"]
            for tp, chunk, span in traces_decoder.iter_spans(data):
                if flt and not traces_decoder.span_matches(data, tp, span, flt):
                    continue
                out.append({
                    **span,
                    "hostname": tp.get("hostname") or data.get("hostName", ""),
                    "env": span["meta"].get("env") or tp.get("env") or data.get("env", ""),
                    "container_id": tp.get("container_id", ""),
                    "container_tags": traces_decoder.container_tags(tp),
                    "tags": traces_decoder.span_tags(data, tp, span),
                    "priority": chunk.get("priority"),
                    "seq": item.get("seq"),
                })
        return out

    def metrics(self, name: str | None = None, tags: str | Iterable[str] | None = None,
                since: int | None = None, **filters: Any) -> list[dict]:
        """Series (v2) matching name and tags, each with `seq` of the payload it came in."""
        items = self.payloads(SERIES, since=since, metric=name, tags=tags, **filters)
        return [{**series, "seq": item["seq"]} for item in items for series in item["data"]]

    def sketches(self, name: str | None = None, tags: str | Iterable[str] | None = None,
                 since: int | None = None) -> list[dict]:
        items = self.payloads(SKETCHES, since=since, metric=name, tags=tags)
        return [{**sk, "seq": item["seq"]} for item in items for sk in item["data"]]

    def check_runs(self, name: str | None = None, since: int | None = None, **filters: Any) -> list[dict]:
        items = self.payloads(CHECK_RUNS, since=since, check=name, **filters)
        return [{**c, "seq": item["seq"]} for item in items for c in item["data"]]

    def logs(self, service: str | None = None, since: int | None = None, **filters: Any) -> list[dict]:
        items = self.payloads(LOGS, since=since, service=service, **filters)
        return [{**e, "seq": item["seq"]} for item in items for e in item["data"]]

    def processes(self, since: int | None = None, endpoint: str = "/api/v1/collector",
                  **filters: Any) -> list[dict]:
        """Processes from process-list payloads, each with `hostName`, `cmdline` and `seq` added."""
        out = []
        for item in self.payloads(endpoint, since=since, **filters):
            host = process_decoder.host_name(item["data"])
            for proc in process_decoder.iter_processes(item["data"]):
                out.append({**proc, "hostName": host, "cmdline": process_decoder.command_line(proc),
                            "seq": item["seq"]})
        return out

    def connections(self, since: int | None = None, **filters: Any) -> list[dict]:
        """Connections from the network payloads (`/api/v1/connections`): each with `laddr`,
        `raddr`, `pid`, `type`, `direction`, byte counters, its decoded `container_tags` and `tags`,
        the payload's `hostName` and `host_tags`, and `seq`. Filters: `container_id`, `pid`, `host`."""
        return [{**c, "host_tags": item["data"].get("host_tags", []), "seq": item["seq"]}
                for item in self.payloads(CONNECTIONS, since=since, **filters)
                for c in item["data"].get("connections", [])]

    def wait_for_connections(self, predicate: Callable[[dict], bool], timeout: float = 60.0,
                             what: str = "no connection matching the predicate",
                             **filters: Any) -> list[dict]:
        """Connections (as `connections()` gives them) that satisfy the predicate."""
        def expand(items: list[dict]) -> list[dict]:
            return [c for c in ({**c, "host_tags": it["data"].get("host_tags", []), "seq": it["seq"]}
                                for it in items for c in it["data"].get("connections", []))
                    if predicate(c)]

        def seen_pairs() -> Iterable[str]:
            return (f"pid {c['pid']} {c['laddr']['ip']}:{c['laddr']['port']}->"
                    f"{c['raddr']['ip']}:{c['raddr']['port']} {c['direction']}" for c in self.connections())

        fetch = self._fetch(CONNECTIONS, expand, **filters)
        return self._wait(fetch, bool, timeout, what, self._seen("connections", seen_pairs), CONNECTIONS)

    def routestats(self) -> dict[str, dict[str, int]]:
        return self._get("/fakeintake/routestats", self._params({}))["routes"]

    def rejected(self, endpoint: str | None = None) -> list[dict]:
        return self._get("/fakeintake/rejected", self._params({"endpoint": endpoint}))["rejected"]

    # --- control ----------------------------------------------------------------------------------

    def flush(self) -> int:
        resp = self._http.get(self.url + "/fakeintake/flushPayloads", params=self._params({}),
                              timeout=self.http_timeout)
        resp.raise_for_status()
        return resp.json().get("flushed", 0)

    def open_session(self, label: str = "") -> IntakeClient:
        """A client bound to a new session: it sees only what arrives from now on (or is tagged
        with its id: send to `<url>/session/<id>` or with header X-Lab-Session)."""
        resp = self._http.post(self.url + "/fakeintake/sessions", json={"label": label},
                               timeout=self.http_timeout)
        resp.raise_for_status()
        return IntakeClient(self.url, resp.json()["id"], self.http_timeout, self.poll_interval)

    # The pytest plugin's `intake` fixture scopes its client with start_session() and ends with close().
    start_session = open_session

    def close_session(self) -> None:
        if self.session:
            self._http.delete(f"{self.url}/fakeintake/sessions/{self.session}", timeout=self.http_timeout)

    def close(self) -> None:
        try:
            self.close_session()
        except requests.RequestException:
            pass
        self._http.close()

    @property
    def session_url(self) -> str:
        """Base URL whose payloads are tagged with this client's session (for DD_DD_URL & co)."""
        if not self.session:
            raise ValueError("this client has no session; use open_session()")
        return f"{self.url}/session/{self.session}"

    def set_override(self, endpoint: str, status_code: int, body: bytes = b"", content_type: str = "",
                     method: str = "POST", store: bool = True) -> None:
        resp = self._http.post(self.url + "/fakeintake/configure/override", json={
            "endpoint": endpoint, "status_code": status_code, "content_type": content_type,
            "method": method, "body": base64.b64encode(body).decode(), "store": store},
            timeout=self.http_timeout)
        resp.raise_for_status()

    def set_valid_keys(self, site: str, keys: list[str] | None) -> dict[str, Any]:
        """Make the intake's listener for Datadog `site` ("" = the lab's own) know only these API
        keys, answering 403 to any other (docs/intake.md#sites-and-api-keys); None: every key again.
        Returns how many keys each site knows and the site listeners' URLs."""
        resp = self._http.post(self.url + "/fakeintake/configure/keys", json={"site": site, "keys": keys},
                               timeout=self.http_timeout)
        if resp.status_code == 400:
            raise ValueError(resp.json()["errors"][0])
        resp.raise_for_status()
        return resp.json()

    def start_outage(self, mode: str, endpoint: str = "*", *, status_code: int | None = None,
                     delay_ms: int | None = None, duration_s: float | None = None) -> dict[str, Any]:
        """Start an outage (docs/intake.md#outages): "status", "slow" or "refuse"; nothing is stored
        meanwhile. A bad spec raises ValueError with the intake's reason."""
        spec: dict[str, Any] = {"mode": mode, "endpoint": endpoint}
        for key, value in (("status_code", status_code), ("delay_ms", delay_ms), ("duration_s", duration_s)):
            if value is not None:
                spec[key] = value
        resp = self._http.post(self.url + "/fakeintake/configure/outage", json=spec,
                               timeout=self.http_timeout)
        if resp.status_code == 400:
            raise ValueError(resp.json()["errors"][0])
        resp.raise_for_status()
        return resp.json()["outage"]

    def outages(self) -> dict[str, Any]:
        """{"outages": [in force], "ended": [recent ones, with how long they lasted]}."""
        return self._get("/fakeintake/configure/outage", {})

    def end_outages(self) -> list[dict[str, Any]]:
        resp = self._http.delete(self.url + "/fakeintake/configure/outage", timeout=self.http_timeout)
        resp.raise_for_status()
        return resp.json()["ended"]

    # --- waiting ----------------------------------------------------------------------------------

    def _wait(self, fetch: Callable[[int | None], tuple[list[dict], int]],
              done: Callable[[list[dict]], bool], timeout: float, what: str,
              seen: Callable[[], str], route: str) -> list[dict]:
        deadline = time.monotonic() + timeout
        started = time.monotonic()
        found: list[dict] = []
        cursor: int | None = None
        while True:
            new, cursor = fetch(cursor)
            found.extend(new)
            if found and done(found):
                return found
            if time.monotonic() >= deadline:
                elapsed = time.monotonic() - started
                extra = seen()
                message = f"{what} in {elapsed:.1f} s; {self.describe(route)}"
                raise AssertionError(message + (f"; {extra}" if extra else ""))
            time.sleep(self.poll_interval)

    def _fetch(self, endpoint: str, expand: Callable[[list[dict]], list[dict]],
               **filters: Any) -> Callable[[int | None], tuple[list[dict], int]]:
        def fetch(since: int | None) -> tuple[list[dict], int]:
            page = self.payloads_page(endpoint, since=since, **filters)
            return expand(page["payloads"]), page["next_since"]
        return fetch

    def describe(self, focus: str | None = None) -> str:
        """"intake saw 3 payloads on /api/v2/series, 0 on /api/v0.2/traces": the routes that got
        something (busiest first), then `focus` (the route waited on) even when it got nothing."""
        try:
            stats = self.routestats()
        except (requests.RequestException, RuntimeError) as exc:
            return f"intake at {self.url} did not answer routestats ({exc})"
        busy = sorted((r for r, st in stats.items() if st.get("count")),
                      key=lambda r: (-stats[r]["count"], r))
        routes = busy + ([focus] if focus and focus not in busy else [])
        if not routes:
            text = "intake saw no payloads at all"
        else:
            parts = [f"{stats.get(r, {}).get('count', 0)} on {r}" for r in routes]
            parts[0] = parts[0].replace(" on ", " payloads on ", 1)
            text = "intake saw " + ", ".join(parts)
        rejected = {r: s.get("rejected", 0) for r, s in stats.items() if s.get("rejected")}
        if rejected:
            text += f"; rejected: {rejected}"
            try:
                last = self.rejected()[-1]
                text += f" (last reason on {last['route']}: {last['reason']})"
            except (IndexError, RuntimeError, requests.RequestException):
                pass
        if self.session:
            text += f" (session {self.session})"
        return text

    def _seen(self, label: str, names: Callable[[], Iterable[str]], limit: int = 20) -> Callable[[], str]:
        def seen() -> str:
            try:
                values = sorted(set(names()))
            except (requests.RequestException, RuntimeError) as exc:
                return f"{label} seen: unknown ({exc})"
            more = f" (+{len(values) - limit} more)" if len(values) > limit else ""
            return f"{label} seen: {values[:limit]}{more}"
        return seen

    def wait_for_spans(self, service: str | None = None, timeout: float = 30.0,
                       predicate: Callable[[dict], bool] | None = None, count: int = 1,
                       **filters: Any) -> list[dict]:
        """Spans matching service/filters (and `predicate`), once at least `count` arrived."""
        flt = {"service": service, **filters}
        what = "no span for " + (", ".join(f"{k}={v}" for k, v in flt.items() if v) or "any service")
        if predicate:
            what += " matching the predicate"
        fetch = self._fetch(TRACES, lambda items: [s for s in self._spans(items, flt)
                                                   if predicate is None or predicate(s)], **flt)
        seen = self._seen("services", lambda: (s["service"] for s in self.spans()))
        return self._wait(fetch, lambda found: len(found) >= count, timeout, what, seen, TRACES)

    def wait_for_logs(self, service: str | None = None, count: int = 1, timeout: float = 30.0,
                      **filters: Any) -> list[dict]:
        """Log entries matching service/filters (message=, message_matching=, tags=, ...), once at
        least `count` arrived."""
        flt = {"service": service, **filters}
        wanted = ", ".join(f"{k}={v}" for k, v in flt.items() if v) or "any"
        what = f"fewer than {count} log(s) for {wanted}"
        fetch = self._fetch(LOGS, lambda items: [{**e, "seq": it["seq"]} for it in items for e in it["data"]],
                            **flt)
        seen = self._seen("services", lambda: (e.get("service", "") for e in self.logs()))
        return self._wait(fetch, lambda found: len(found) >= count, timeout, what, seen, LOGS)

    def wait_for_metric(self, name: str, tags: str | Iterable[str] | None = None, timeout: float = 40.0,
                        predicate: Callable[[dict], bool] | None = None, **filters: Any) -> list[dict]:
        """Series of metric `name` carrying all `tags` (default timeout covers the agent's 15 s flush)."""
        tag_list = _tags(tags)
        what = f"no series for metric={name}" + (f" with tags {tag_list}" if tag_list else "")

        def expand(items: list[dict]) -> list[dict]:
            out = [{**s, "seq": it["seq"]} for it in items for s in it["data"]]
            return [s for s in out if predicate is None or predicate(s)]

        fetch = self._fetch(SERIES, expand, metric=name, tags=tag_list, **filters)

        def names() -> Iterable[str]:
            if tag_list:
                tagged = [f"{s['metric']} {s['tags']}" for s in self.metrics(name)]
                if tagged:
                    return tagged
            return (s["metric"] for s in self.metrics())

        return self._wait(fetch, bool, timeout, what, self._seen("metrics", names), SERIES)

    def wait_for_processes(self, predicate_or_cmdline: str | Callable[[dict], bool], timeout: float = 40.0,
                           endpoint: str = "/api/v1/collector") -> list[dict]:
        """Processes whose command line contains the string (or that satisfy the predicate)."""
        if isinstance(predicate_or_cmdline, str):
            needle = predicate_or_cmdline
            what = f"no process with {needle!r} in its command line"
            filters: dict[str, Any] = {"cmdline": needle}

            def keep(p: dict) -> bool:
                return needle in p["cmdline"]
        else:
            keep = predicate_or_cmdline
            what = "no process matching the predicate"
            filters = {}

        def expand(items: list[dict]) -> list[dict]:
            out = []
            for item in items:
                host = process_decoder.host_name(item["data"])
                for proc in process_decoder.iter_processes(item["data"]):
                    proc = {**proc, "hostName": host, "cmdline": process_decoder.command_line(proc),
                            "seq": item["seq"]}
                    if keep(proc):
                        out.append(proc)
            return out

        fetch = self._fetch(endpoint, expand, **filters)
        seen = self._seen("command lines", lambda: (p["cmdline"] for p in self.processes(endpoint=endpoint)))
        return self._wait(fetch, bool, timeout, what, seen, endpoint)

    def wait_for_check_run(self, name: str, status: int | None = None,
                           tags: str | Iterable[str] | None = None, timeout: float = 40.0) -> list[dict]:
        tag_list = _tags(tags)
        what = f"no check run {name}" + (f" with status {status}" if status is not None else "")
        what += f" with tags {tag_list}" if tag_list else ""

        def expand(items: list[dict]) -> list[dict]:
            return [{**c, "seq": it["seq"]} for it in items for c in it["data"]
                    if status is None or c["status"] == status]

        fetch = self._fetch(CHECK_RUNS, expand, check=name, tags=tag_list)
        seen = self._seen("check runs", lambda: (f"{c['check']}={c['status']}" for c in self.check_runs()))
        return self._wait(fetch, bool, timeout, what, seen, CHECK_RUNS)

    def wait_for_payloads(self, endpoint: str, count: int = 1, timeout: float = 30.0,
                          **filters: Any) -> list[dict]:
        """At least `count` decoded payloads on a route (matching filters)."""
        what = f"fewer than {count} payloads on {endpoint}" + (f" matching {filters}" if filters else "")
        fetch = self._fetch(endpoint, lambda items: items, **filters)
        return self._wait(fetch, lambda found: len(found) >= count, timeout, what, lambda: "", endpoint)

    @staticmethod
    def has_tags(item: Mapping[str, Any], tags: str | Iterable[str]) -> bool:
        return tags_match(_tags(tags), item.get("tags", []))
