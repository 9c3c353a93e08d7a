"""resilience / intake outage: the intake answers 503, then refuses connections, for a while; every
span, DogStatsD point and process payload the agent got meanwhile arrives after recovery, exactly
once, as the agent's retry queues promise. A longer outage with a small trace queue drops the
oldest payloads first, and the count of what is missing is what was dropped.
(docs/resilience.md#the-agents-retry-queues, docs/intake.md#outages)

The agent is observed only as the real one offers: its receivers (8126, 8125), `agent status -j`
and `agent config` by exec, and the intake's payloads.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
import uuid

import pytest

from lab.fakes.intake.client import IntakeClient
from lab.pytest_plugin import intake_client
from lab.world import wait_until

from .traffic import (
    FORWARDER_BACKOFF_MAX,
    METRICS_FLUSH,
    TRACE_BACKOFF_MAX,
    TRACE_FLUSH,
    CountSender,
    SpanSender,
    agent_status,
    counted,
    own_token_env,
    process_interval,
    process_timestamps,
    span_ids,
    wait_healthy,
)

LAB_WITH = {"apps": ("imdsv1",), "agent_env": own_token_env("outage")}
# Counted at the intake (spans, DogStatsD points, process payloads) and in the agent's own forwarder
# stats; read through its CLI (health, status, config).
pytestmark = pytest.mark.agent_offers("agent_health", "forwarder_stats", "traces", "dogstatsd_metrics",
                                      "processes", "agent_config")
SMALL_TRACE_QUEUE = 3
SMALL_QUEUE_ENV = {"DD_APM_TRACE_WRITER_QUEUE_SIZE": str(SMALL_TRACE_QUEUE), **own_token_env("long-outage")}
TRACES = "/api/v0.2/traces"
# After recovery a payload waits at most its sender's backoff cap, then one more flush.
RECOVERY = FORWARDER_BACKOFF_MAX + 2 * METRICS_FLUSH + 10
TRACE_RECOVERY = TRACE_BACKOFF_MAX + 2 * TRACE_FLUSH + 10


def _answered_not_stored(lab, route: str) -> int:
    """The intake's own count (all sessions): POSTs to `route` it answered an error, storing nothing."""
    return IntakeClient(lab.intake_url).routestats().get(route, {}).get("answered_not_stored", 0)


def _transactions(status: dict) -> dict:
    return status["forwarderStats"]["Transactions"]


@pytest.mark.parametrize("mode", ["status", "refuse"])
def test_nothing_sent_during_an_outage_is_lost_or_doubled(lab_with, mode, record_property):
    lab = lab_with(**LAB_WITH)
    wait_healthy(lab)
    agent = lab.agents[0]
    run = uuid.uuid4().hex[:8]
    intake = intake_client(lab.intake_url, f"outage-{mode}-{run}")
    spans = SpanSender(agent.apm_url, f"resilience-{mode}-{run}")
    points = CountSender(agent.dogstatsd, "ecs_lab.resilience.sent", f"run:{run}")
    interval = process_interval(lab)

    # The path works before the outage (no test passes on "no data").
    first = spans.send(1)
    points.send(1)
    wait_until(lambda: span_ids(intake, spans.service) == first, TRACE_FLUSH * 2 + 5, what="the control span")
    wait_until(lambda: counted(intake, points.metric, points.tag) == 1, 2 * METRICS_FLUSH + 10,
               what="the control point")
    tx_before = _transactions(agent_status(lab))
    unstored_before = _answered_not_stored(lab, TRACES)
    errors_before = tx_before["Errors"]

    # Long enough for two process check runs, several trace flushes and a metrics flush or more.
    duration = max(3 * interval, 6.0)
    if mode == "status":
        intake.start_outage("status", status_code=503)
    else:
        intake.start_outage("refuse", duration_s=duration)
    started = time.time()
    deadline = time.monotonic() + duration - 1.0
    pace = threading.Event()  # never set: its timed wait paces the sender (a rate, not a wait for a result)
    while time.monotonic() < deadline:
        spans.send(2)
        points.send(2)
        pace.wait(0.25)
    status = agent_status(lab)
    tx = _transactions(status)
    assert tx["Errors"] > errors_before, f"the agent saw no failed send during the {mode} outage: {tx}"
    if mode == "status":
        assert tx["HTTPErrorsByCode"].get("503", 0) >= 1, tx
        wait_until(lambda: time.time() - started >= duration, duration + 5, what="the outage's length")
        intake.end_outages()
    ended = time.time()
    # The refused port comes back by itself when duration_s is up.
    wait_until(lambda: intake.outages()["outages"] == [], duration + 10, what="the intake back")

    wait_until(lambda: len(span_ids(intake, spans.service)) >= spans.sent, TRACE_RECOVERY,
               what=f"{spans.sent} spans after the {mode} outage")
    wait_until(lambda: counted(intake, points.metric, points.tag) >= points.sent, RECOVERY,
               what=f"{points.sent} DogStatsD points after the {mode} outage")
    ids = span_ids(intake, spans.service)
    assert sorted(ids) == list(range(first[0], spans.next_id)), (
        f"spans lost or doubled: sent {spans.sent}, arrived {len(ids)} ({len(set(ids))} distinct)")
    # One more metrics flush: a doubled payload would show now.
    wait_until(lambda: any(s["seq"] > intake.metrics(points.metric, tags=[points.tag])[-1]["seq"]
                           for s in intake.metrics("datadog.agent.running")), 2 * METRICS_FLUSH + 10,
               what="a later agent flush")
    assert counted(intake, points.metric, points.tag) == points.sent

    stamps = sorted(t / 1000 for t in process_timestamps(intake, agent.hostname))
    # The check runs every `interval` unless a run takes longer (the next one then starts late, as
    # the real agent's check runner does): on a loaded machine the agent's own cadence, seen in the
    # payloads made before the outage, is what a lost payload would stand out against.
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False) if b < started]
    cadence = max(interval, statistics.median(gaps[-5:])) if gaps else interval
    expected = int((ended - started) // cadence) - 1

    def made_during() -> list[float]:
        return [t / 1000 for t in process_timestamps(intake, agent.hostname) if started <= t / 1000 <= ended]

    # Process payloads retry on the forwarder's own backoff, not with the spans or points: wait for
    # them as for the points (the backoff cap, then flushes), returning as soon as they are there.
    try:
        wait_until(lambda: len(made_during()) >= expected, RECOVERY,
                   what=f"{expected} process payloads made during the {mode} outage")
    except TimeoutError:
        pass  # the assertion below says what did arrive, and when each was made
    stamps = [t / 1000 for t in process_timestamps(intake, agent.hostname)]
    during = made_during()
    assert len(stamps) == len(set(stamps)), "a process payload arrived twice"
    # The runs around the outage: a lost payload is a gap of two cadences among evenly spaced runs; a
    # check slowed by the machine spaces every run out instead.
    around = [round(t - started, 1) for t in stamps if started - 3 * cadence <= t <= ended + 3 * cadence]
    assert len(during) >= expected, (
        f"process payloads made during the {ended - started:.1f} s outage: {len(during)} arrived, "
        f"at least {expected} expected at one per {cadence:.1f} s (interval {interval} s); "
        f"payloads made around it (s from the outage's start): {around}; "
        f"load average {os.getloadavg()[0]:.1f}")
    tx_after = _transactions(agent_status(lab))
    assert tx_after["Dropped"] == tx_before["Dropped"], (
        f"the agent counts dropped transactions after a short outage: {tx_after['DroppedByEndpoint']}")
    unstored = _answered_not_stored(lab, TRACES) - unstored_before
    summary = {"mode": mode, "outage_s": round(ended - started, 1), "spans_sent": spans.sent,
               "spans_arrived": len(ids), "points_sent": points.sent,
               "points_arrived": counted(intake, points.metric, points.tag),
               "process_payloads_during_outage": len(during), "trace_posts_answered_503": unstored,
               "agent_errors": tx_after["Errors"] - errors_before,
               "agent_dropped": tx_after["Dropped"] - tx_before["Dropped"]}
    record_property("counts", summary)
    print(f"\nresilience outage counts: {summary}")


def test_a_long_outage_drops_the_oldest_traces_first_and_counts_them(lab_with, record_property):
    lab = lab_with(apps=("imdsv1",), agent_env=SMALL_QUEUE_ENV)
    wait_healthy(lab)
    agent = lab.agents[0]
    run = uuid.uuid4().hex[:8]
    intake = intake_client(lab.intake_url, f"long-outage-{run}")
    spans = SpanSender(agent.apm_url, f"resilience-long-{run}")
    control = spans.send(1)
    wait_until(lambda: span_ids(intake, spans.service) == control, TRACE_FLUSH * 2 + 5,
               what="the control span")

    intake.start_outage("status", TRACES, status_code=503)
    batches: list[list[int]] = []
    for _ in range(3 * SMALL_TRACE_QUEUE):
        refused_before = _answered_not_stored(lab, TRACES)
        batches.append(spans.send(3))
        # The trace writer flushed this batch and the intake answered it 503 (a later flush, since
        # the answer count rose twice): batches then travel in separate payloads. Within one flush
        # and a retry at the backoff cap; the bound allows three of those for a loaded machine.
        wait_until(lambda b=refused_before: _answered_not_stored(lab, TRACES) >= b + 2,
                   3 * (TRACE_FLUSH + TRACE_BACKOFF_MAX), what="the batch refused")
    intake.end_outages()

    sent = [i for batch in batches for i in batch]
    newest = batches[-1]
    wait_until(lambda: set(newest) <= set(span_ids(intake, spans.service)),
               TRACE_RECOVERY, what="the newest batch after the outage")
    # A later flush of the writer: anything else still queued would have been sent by then.
    late = spans.send(1)
    wait_until(lambda: set(late) <= set(span_ids(intake, spans.service)), TRACE_RECOVERY,
               what="a span sent after recovery")
    arrived = [i for i in span_ids(intake, spans.service) if i in set(sent)]
    assert len(arrived) == len(set(arrived)), "a trace arrived twice"
    missing = [i for i in sent if i not in set(arrived)]
    assert missing, f"{len(sent)} traces through a queue of {SMALL_TRACE_QUEUE} payloads and none dropped"
    # What was dropped is the oldest: every missing trace was sent before every arrived one.
    assert max(missing) < min(arrived), (
        f"dropped traces are not the oldest: missing {missing}, arrived {sorted(arrived)}")
    summary = {"traces_sent": len(sent), "traces_arrived": len(arrived), "traces_dropped": len(missing),
               "batches": len(batches), "queue_size": SMALL_TRACE_QUEUE}
    record_property("counts", summary)
    print(f"\nresilience long-outage counts: {summary}")
