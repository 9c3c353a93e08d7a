"""One decoder per payload kind, and the table saying which route carries which kind.

Routes and bodies: docs/agent_contract.md#intake-routes-and-payloads (the agent's intake traffic). A route
missing here is still accepted and kept raw (fakeintake catches every POST too); it just has no decoded view.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lab.fakes.intake.decode import (
    apm_stats,
    check_runs,
    json_payloads,
    logs,
    process,
    series,
    sketches,
    tracer_relays,
    traces,
)
from lab.fakes.intake.decode.payload import DecodedPayload, MalformedPayload

__all__ = ["DecodedPayload", "MalformedPayload", "RouteDecoder", "ROUTES", "decoder_for"]


@dataclass(frozen=True)
class RouteDecoder:
    kind: str
    decode: Callable[[bytes, Mapping[str, str] | None], DecodedPayload]
    # select(data, filters) -> the matching part of `data`, or None when nothing matches.
    select: Callable[[Any, Mapping[str, Any]], Any]
    filters: frozenset[str]
    # The fast ingest path's cheaper validation (compression + top-level framing), where the
    # full decode is costly; None means the full decode is the check.
    check: Callable[[bytes, Mapping[str, str] | None], None] | None = None
    # select on the parsed message, rendering only what matches (for kinds with big payloads).
    select_native: Callable[[Any, Mapping[str, Any]], Any] | None = None


_PROCESS = RouteDecoder(process.KIND, process.decode, process.select, process.FILTERS)
_OBJECT = RouteDecoder("json", json_payloads.decode_object, json_payloads.select_object,
                       json_payloads.OBJECT_FILTERS)

ROUTES: dict[str, RouteDecoder] = {
    "/api/v0.2/traces": RouteDecoder(traces.KIND, traces.decode, traces.select, traces.FILTERS, traces.check),
    "/api/v0.2/stats": RouteDecoder(apm_stats.KIND, apm_stats.decode, apm_stats.select, apm_stats.FILTERS),
    "/api/v2/series": RouteDecoder(series.KIND, series.decode, series.select, series.FILTERS, series.check,
                                   series.select_native),
    "/api/v1/series": RouteDecoder("series_v1", json_payloads.decode_series_v1,
                                   json_payloads.select_series_v1, json_payloads.SERIES_V1_FILTERS),
    "/api/beta/sketches": RouteDecoder(sketches.KIND, sketches.decode, sketches.select, sketches.FILTERS,
                                       sketches.check),
    "/api/v1/check_run": RouteDecoder(check_runs.KIND, check_runs.decode, check_runs.select,
                                      check_runs.FILTERS),
    "/api/v1/collector": _PROCESS,
    "/api/v1/container": _PROCESS,
    "/api/v1/discovery": _PROCESS,
    "/api/v1/connections": _PROCESS,
    "/api/v2/logs": RouteDecoder(logs.KIND, logs.decode, logs.select, logs.FILTERS),
    "/intake/": _OBJECT,
    "/api/v1/metadata": _OBJECT,
    # Relayed by the trace-agent for tracers (docs/tracer_surface.md).
    "/api/v2/apmtelemetry": RouteDecoder("telemetry", tracer_relays.decode_telemetry,
                                         tracer_relays.select_telemetry, tracer_relays.TELEMETRY_FILTERS),
    "/api/v2/profile": RouteDecoder("profile", tracer_relays.decode_profile, tracer_relays.select_profile,
                                    tracer_relays.PROFILE_FILTERS),
}


def decoder_for(route: str) -> RouteDecoder | None:
    return ROUTES.get(route)
