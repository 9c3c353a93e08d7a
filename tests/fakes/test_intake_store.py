"""The intake's store without sockets: cursors, sessions, counted eviction, rejected payloads."""

from __future__ import annotations

import pytest

from lab.fakes.intake.samples import check_runs_body, series_body, traces_body
from lab.fakes.intake.store import IntakeStore, UnknownSession, UnsupportedFilter

SERIES = "/api/v2/series"
TRACES = "/api/v0.2/traces"


def _series(store: IntakeStore, metric: str = "m", session: str | None = None, **kw):
    body, headers = series_body(metric=metric, **kw)
    return store.ingest(SERIES, body, headers, session=session)


def test_sequence_numbers_grow_and_since_returns_only_newer_payloads():
    store = IntakeStore()
    seqs = [_series(store, f"m{i}").seq for i in range(5)]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    newer = store.payloads(SERIES, since=seqs[2])
    assert [p.seq for p in newer] == seqs[3:]
    selection = store.select(SERIES, since=seqs[2])
    assert [d[0]["metric"] for _, d in selection.items] == ["m3", "m4"]
    assert selection.cursor == seqs[-1]
    assert store.payloads(SERIES, since=selection.cursor) == []


def test_filters_narrow_data_to_matching_series_and_skip_payloads_without_any():
    store = IntakeStore()
    _series(store, "app.hits", n_series=5)
    _series(store, "other")
    items = store.select(SERIES, filters={"metric": "app.hits", "tags": ("task_family:web",)}).items
    assert len(items) == 1 and [s["metric"] for s in items[0][1]] == ["app.hits"]


def test_a_filter_the_route_cannot_apply_is_refused_with_the_supported_ones():
    store = IntakeStore()
    with pytest.raises(UnsupportedFilter, match="supported: .*metric"):
        store.select(SERIES, filters={"service": "web"})


def test_a_session_sees_what_arrived_after_it_opened_and_what_was_tagged_for_it():
    store = IntakeStore()
    _series(store, "before")
    mine = store.open_session("test-a")
    other = store.open_session("test-b")
    _series(store, "untagged-after")
    _series(store, "tagged-mine", session=mine.id)
    _series(store, "tagged-other", session=other.id)
    seen = [d[0]["metric"] for _, d in store.select(SERIES, session=mine.id).items]
    assert seen == ["untagged-after", "tagged-mine"]
    store.close_session(mine.id)
    _series(store, "after-close")
    assert [d[0]["metric"] for _, d in store.select(SERIES, session=mine.id).items] == seen
    assert "after-close" in [d[0]["metric"] for _, d in store.select(SERIES, session=other.id).items]
    with pytest.raises(UnknownSession):
        store.payloads(SERIES, session="nope")


def test_eviction_by_count_is_oldest_first_and_counted_per_route():
    store = IntakeStore(max_payloads=3)
    for i in range(4):
        _series(store, f"m{i}")
    tbody, theaders = traces_body()
    store.ingest(TRACES, tbody, theaders)
    assert len(store) == 3
    assert [d[0]["metric"] for _, d in store.select(SERIES).items] == ["m2", "m3"]
    stats = store.route_stats()
    assert stats[SERIES]["evicted"] == 2 and stats[SERIES]["count"] == 2 and stats[SERIES]["accepted"] == 4
    assert stats[TRACES]["evicted"] == 0
    assert store.totals()["evicted"] == 2


def test_eviction_by_bytes_keeps_the_store_under_its_budget_and_flags_a_lagging_cursor():
    body, headers = series_body(n_series=50)
    store = IntakeStore(max_bytes=len(body) * 3 + 3000)
    results = [store.ingest(SERIES, body, headers) for _ in range(10)]
    assert all(r.accepted for r in results)
    assert store.stored_bytes <= store.max_bytes
    stats = store.route_stats()[SERIES]
    assert stats["evicted"] + stats["count"] == 10 and stats["evicted"] >= 6
    assert store.select(SERIES, since=results[0].seq).evicted_after_cursor
    assert not store.select(SERIES, since=results[-2].seq).evicted_after_cursor


def test_malformed_payloads_are_rejected_counted_and_kept_aside_in_a_bounded_list():
    store = IntakeStore(max_rejected=2)
    for i in range(3):
        result = store.ingest(SERIES, b"not zstd %d" % i, {"Content-Encoding": "zstd"})
        assert not result.accepted and "zstd" in result.reason
    assert len(store) == 0
    assert store.route_stats()[SERIES]["rejected"] == 3
    kept = store.rejected(SERIES)
    assert [r.body for r in kept] == [b"not zstd 1", b"not zstd 2"]
    assert store.rejected_dropped == 1


def test_unknown_routes_are_kept_raw():
    store = IntakeStore()
    result = store.ingest("/api/v2/orch", b"\x00\x01", {})
    assert result.accepted and store.payloads("/api/v2/orch")[0].kind == "raw"
    with pytest.raises(UnsupportedFilter, match="raw"):
        store.select("/api/v2/orch")


def test_flush_forgets_payloads_but_keeps_counting():
    store = IntakeStore()
    _series(store)
    body, headers = check_runs_body()
    store.ingest("/api/v1/check_run", body, headers)
    assert store.flush() == 2
    assert len(store) == 0 and store.stored_bytes == 0
    stats = store.route_stats()[SERIES]
    assert stats == {**stats, "count": 0, "accepted": 1, "flushed": 1}
    assert _series(store).seq == 3  # cursors stay valid across a flush


def test_flushing_a_session_leaves_other_payloads():
    store = IntakeStore()
    _series(store, "keep")
    sess = store.open_session()
    _series(store, "drop", session=sess.id)
    assert store.flush(sess.id) == 1
    assert [d[0]["metric"] for _, d in store.select(SERIES).items] == ["keep"]


def test_limit_pages_through_payloads_with_the_cursor():
    store = IntakeStore()
    seqs = [_series(store, f"m{i}").seq for i in range(7)]
    seen, cursor = [], None
    while True:
        page, cursor = store.snapshot(SERIES, since=cursor, limit=3)
        if not page:
            break
        seen.extend(p.seq for p in page)
    assert seen == seqs and cursor == seqs[-1]


def test_fast_ingest_checks_framing_on_arrival_and_flags_a_nested_decode_error_on_query():
    from lab.fakes.intake.samples import compress
    from lab.proto import frames_pb2

    frame = frames_pb2.MetricPayloadFrame(series=[b"\xff\xff\xff"])
    nested_garbage = compress(frame.SerializeToString(), "zstd")
    headers = {"Content-Encoding": "zstd"}
    assert not IntakeStore().ingest(SERIES, nested_garbage, headers).accepted  # full decode refuses it
    store = IntakeStore(ingest="fast")
    assert not store.ingest(SERIES, compress(b"\xff\xff\xff\xff", "zstd"), headers).accepted
    assert store.ingest(SERIES, nested_garbage, headers).accepted
    good = _series(store, "ok")
    (bad_item, good_item) = store.select(SERIES).items
    assert bad_item[1] is None
    assert bad_item[0].flags[0].startswith("decode error: body is not a MetricPayload")
    assert good_item[0].seq == good.seq and good_item[1][0]["metric"] == "ok"
    assert [rec.seq for rec, _ in store.select(SERIES, filters={"metric": "ok"}).items] == [good.seq]
    stats = store.route_stats()[SERIES]
    assert (stats["accepted"], stats["rejected"], stats["decode_errors"]) == (2, 1, 1)
