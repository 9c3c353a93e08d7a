"""APM bodies (v0.4, v0.5), fuzzed: the receiver's decode-and-build either builds a payload or raises
one of the errors its handler answers 400 to (DecodeError, ValueError, TypeError), never another."""

from __future__ import annotations

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.agent.apm import DecodeError, TracerInfo, decode_and_build

ANSWERED_400 = (DecodeError, ValueError, TypeError)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64 - 1),
                    st.floats(), st.text(max_size=10), st.binary(max_size=10))
ANY = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                    st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                   max_leaves=10)
SPAN_KEYS = ["service", "name", "resource", "trace_id", "span_id", "parent_id", "start", "duration",
             "error", "meta", "metrics", "type", "meta_struct"]


@st.composite
def v04_spans(draw) -> dict:
    keys = draw(st.lists(st.sampled_from(SPAN_KEYS), unique=True, max_size=len(SPAN_KEYS)))
    return {k: draw(ANY) for k in keys}


@st.composite
def v05_bodies(draw) -> list:
    strings = draw(st.lists(st.one_of(st.text(max_size=6), SCALARS), max_size=6))
    span = st.lists(st.one_of(st.integers(min_value=-2, max_value=8), ANY), min_size=12, max_size=12)
    traces = draw(st.one_of(st.lists(st.lists(st.one_of(span, ANY), max_size=3), max_size=3), ANY))
    return [strings, traces]


def _build(version: str, body: bytes) -> None:
    try:
        built = decode_and_build(version, body, TracerInfo(lang="python"), None, "lab")
    except ANSWERED_400:
        return
    assert built.spans >= 0 and isinstance(built.body, bytes)


@given(st.binary(max_size=512), st.sampled_from(["v0.4", "v0.5"]))
def test_any_bytes_build_or_get_a_400(body, version):
    _build(version, body)


@settings(max_examples=60)
@given(st.lists(st.lists(v04_spans(), max_size=3), max_size=3))
def test_v04_traces_of_odd_spans_build_or_get_a_400(traces):
    _build("v0.4", msgpack.packb(traces, use_bin_type=True))


@given(ANY)
def test_v04_any_msgpack_builds_or_gets_a_400(doc):
    _build("v0.4", msgpack.packb(doc, use_bin_type=True))


@settings(max_examples=60)
@given(v05_bodies())
def test_v05_string_tables_and_spans_build_or_get_a_400(doc):
    _build("v0.5", msgpack.packb(doc, use_bin_type=True))
