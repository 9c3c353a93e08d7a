"""The intake's outages: the ways a real intake fails, none of which keeps the payload.

A real intake that answers 503, that nobody listens on, or that is too slow for the agent's
timeout has not kept the payload, so the agent's retry is the payload's only way in: an outage
here stores nothing, and a retried payload arrives exactly once (docs/intake.md#outages).

Modes (one JSON object, `POST /fakeintake/configure/outage`):
- `status`: every POST to `endpoint` (a route, or `*` for all) is answered `status_code` (default
  503) with nothing stored; counted per route as `outage_answers`.
- `slow`: the answer waits `delay_ms`; if the client is still there it gets the route's usual
  answer (or `status_code`, then nothing is stored) and the payload is stored marked with the
  delay; if the client gave up meanwhile (its timeout), nothing is stored: counted `abandoned`.
- `refuse`: the intake closes its listening sockets and its open connections: connecting is
  refused (ECONNREFUSED), as when the intake is down. Always all endpoints (it is one port), and
  the query API goes with them, so over HTTP it needs `duration_s` to come back by itself.
`duration_s` (any mode) ends the outage after that many seconds; `DELETE` ends all of them.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

MODES = ("status", "slow", "refuse")
ALL_ENDPOINTS = "*"
MAX_DELAY_MS = 600_000
MAX_DURATION_S = 3600.0


class OutageSpecError(ValueError):
    """An outage request the intake cannot carry out (the server answers 400 with this text)."""


@dataclass
class Outage:
    mode: str
    endpoint: str = ALL_ENDPOINTS
    status_code: int | None = None
    delay_ms: int = 0
    duration_s: float | None = None
    id: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def ends_at(self) -> float | None:
        return None if self.duration_s is None else self.started + self.duration_s

    def active(self, now: float) -> bool:
        ends = self.ends_at
        return ends is None or now < ends

    def covers(self, route: str) -> bool:
        return self.endpoint == ALL_ENDPOINTS or self.endpoint == route

    def as_dict(self, now: float | None = None) -> dict[str, Any]:
        now = time.monotonic() if now is None else now
        ends = self.ends_at
        return {"id": self.id, "mode": self.mode, "endpoint": self.endpoint, "status_code": self.status_code,
                "delay_ms": self.delay_ms, "duration_s": self.duration_s,
                "remaining_s": None if ends is None else round(max(0.0, ends - now), 3)}


def _number(spec: dict, key: str, kind: type, default: Any = None) -> Any:
    raw = spec.get(key, default)
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or (kind is int and raw != int(raw)):
        raise OutageSpecError(f"{key} must be {'an integer' if kind is int else 'a number'}, not {raw!r}")
    return kind(raw)


def parse_outage(spec: Any, *, over_http: bool = True) -> Outage:
    """One outage from its JSON form, or OutageSpecError saying what is wrong."""
    if not isinstance(spec, dict):
        raise OutageSpecError("an outage is a JSON object "
                              "{mode, endpoint, status_code, delay_ms, duration_s}")
    unknown = sorted(set(spec) - {"mode", "endpoint", "status_code", "delay_ms", "duration_s"})
    if unknown:
        raise OutageSpecError(f"unknown outage field(s): {', '.join(unknown)}")
    mode = spec.get("mode")
    if mode not in MODES:
        raise OutageSpecError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    endpoint = spec.get("endpoint", ALL_ENDPOINTS)
    if not isinstance(endpoint, str) or not (endpoint == ALL_ENDPOINTS or endpoint.startswith("/")):
        raise OutageSpecError(f"endpoint must be a route such as /api/v2/series or '*', not {endpoint!r}")
    status = _number(spec, "status_code", int)
    if status is not None and not 100 <= status <= 599:
        raise OutageSpecError(f"status_code must be an HTTP status (100-599), not {status}")
    delay = _number(spec, "delay_ms", int, 0)
    if not 0 <= delay <= MAX_DELAY_MS:
        raise OutageSpecError(f"delay_ms must be between 0 and {MAX_DELAY_MS}, not {delay}")
    duration = _number(spec, "duration_s", float)
    if duration is not None and not 0 < duration <= MAX_DURATION_S:
        raise OutageSpecError(f"duration_s must be above 0 and at most {MAX_DURATION_S:g}, not {duration:g}")
    if mode == "status":
        status = 503 if status is None else status
        if 200 <= status < 300:
            raise OutageSpecError("a status outage answers an error; use /fakeintake/configure/override "
                                  "to change a successful answer")
    if mode == "slow" and delay <= 0:
        raise OutageSpecError("a slow outage needs delay_ms above 0")
    if mode == "refuse":
        if endpoint != ALL_ENDPOINTS:
            raise OutageSpecError("refuse closes the intake's port: it applies to every endpoint ('*')")
        if over_http and duration is None:
            raise OutageSpecError("refuse over HTTP needs duration_s: the query API is refused too, "
                                  "so nothing could end it")
    return Outage(mode, endpoint, status, delay, duration)


class OutageBoard:
    """The outages in force. Not thread-safe: used from the intake's event loop only."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self.outages: list[Outage] = []
        self.history: list[dict[str, Any]] = []

    def add(self, outage: Outage) -> Outage:
        outage.id = next(self._ids)
        outage.started = time.monotonic()
        self.outages.append(outage)
        return outage

    def _expire(self, now: float) -> None:
        for outage in [o for o in self.outages if not o.active(now)]:
            self.end(outage)

    def end(self, outage: Outage) -> None:
        if outage in self.outages:
            self.outages.remove(outage)
            self.history.append({**outage.as_dict(), "lasted_s": round(time.monotonic() - outage.started, 3)})

    def end_all(self) -> list[Outage]:
        ended = list(self.outages)
        for outage in ended:
            self.end(outage)
        return ended

    def for_route(self, route: str) -> Outage | None:
        """The outage a POST to `route` meets now (the latest one that covers it), if any."""
        now = time.monotonic()
        self._expire(now)
        for outage in reversed(self.outages):
            if outage.mode != "refuse" and outage.covers(route):
                return outage
        return None

    def refusing(self) -> Outage | None:
        self._expire(time.monotonic())
        return next((o for o in self.outages if o.mode == "refuse"), None)

    def as_dict(self) -> dict[str, Any]:
        now = time.monotonic()
        self._expire(now)
        return {"outages": [o.as_dict(now) for o in self.outages], "ended": self.history[-50:]}
