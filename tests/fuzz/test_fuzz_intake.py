"""Intake bodies of every route and encoding, fuzzed: a decoder accepts a body or refuses it with
MalformedPayload (the server's 400 with a reason), never another error; the store counts every
refusal and keeps a bounded number of refused bodies under a flood."""

from __future__ import annotations

import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st

from lab.fakes.intake.decode import ROUTES, MalformedPayload, decoder_for
from lab.fakes.intake.samples import compress
from lab.fakes.intake.store import IntakeStore

ENCODINGS = ["gzip", "deflate", "zstd", "identity", ""]
ROUTE = st.sampled_from(sorted(ROUTES))


def _headers(encoding: str) -> dict[str, str]:
    return {"Content-Encoding": encoding} if encoding else {}


def _decode(route: str, body: bytes, encoding: str) -> None:
    try:
        decoder_for(route).decode(body, _headers(encoding))
    except MalformedPayload as exc:
        assert exc.reason, "a refusal must say why"


@given(ROUTE, st.sampled_from(ENCODINGS), st.binary(max_size=600))
def test_any_bytes_with_any_encoding_decode_or_are_refused_with_a_reason(route, encoding, body):
    _decode(route, body, encoding)


@given(ROUTE, st.sampled_from(["gzip", "deflate", "zstd"]), st.binary(max_size=600))
def test_well_compressed_garbage_reaches_the_parser_and_is_refused_cleanly(route, encoding, raw):
    # Compressed for real, so the route's parser (protobuf, msgpack, JSON, process header) sees it.
    _decode(route, compress(raw, encoding), encoding)


JSON_ROUTES = st.sampled_from(["/api/v1/check_run", "/api/v2/logs", "/intake/", "/api/v1/metadata",
                               "/api/v1/series"])
JSONISH = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                                 st.text(max_size=8)),
                       lambda inner: st.one_of(st.lists(inner, max_size=4),
                                               st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                       max_leaves=15)


@given(JSON_ROUTES, JSONISH)
def test_any_json_document_on_json_routes_decodes_or_is_refused(route, doc):
    import json

    _decode(route, json.dumps(doc).encode(), "")


@settings(max_examples=3, deadline=None)
@given(st.integers(min_value=0, max_value=2**16))
def test_a_flood_of_bad_bodies_is_counted_and_memory_stays_bounded(seed):
    store = IntakeStore(max_rejected=100)
    routes = sorted(ROUTES)
    tracemalloc.start()
    try:
        for i in range(3000):
            body = f"bad {seed} {i}".encode() * 20
            store.ingest(routes[i % len(routes)], body, {"Content-Encoding": "zstd"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    totals = store.totals()
    assert totals["rejected"] == 3000 and totals["accepted"] == 0
    assert totals["rejected_kept"] == 100 and totals["rejected_dropped"] == 2900
    assert peak < 16 * 1024 * 1024, f"3000 refused bodies peaked at {peak / 1e6:.1f} MB"
