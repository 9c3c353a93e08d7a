"""The emulated agent's retry queues behave like the real agent's
(docs/resilience.md#the-agents-retry-queues): what is retried, what is dropped, oldest first,
counted, and nothing stored twice after an outage."""

from __future__ import annotations

import asyncio
import time

import pytest

from lab.agent.config import AgentConfig
from lab.agent.forwarder import Forwarder, RetryLimits, RetryQueue, Transaction, retriable
from lab.fakes.intake.server import IntakeServer

SERIES = "/api/v2/series"


def _txn(name: str, n: int, size: int = 10) -> Transaction:
    return Transaction(name, "http://127.0.0.1:9/x", bytes([n % 256]) * size, {})


@pytest.mark.parametrize("name, status, again", [
    ("traces", 503, True), ("traces", 408, True), ("traces", 404, False), ("traces", 429, False),
    ("apm_stats", 500, True), ("series", 503, True), ("series", 404, True), ("series", 429, True),
    ("series", 400, False), ("series", 403, False), ("series", 413, False), ("process", 502, True),
])
def test_what_each_sender_retries(name, status, again):
    assert retriable(name, status) is again


def test_a_full_payload_queue_drops_the_oldest_whatever_order_they_failed_in():
    queue = RetryQueue("trace_writer", max_payloads=3, backoff_base=0.1, backoff_max=10, newest_first=False)
    first, second, third, fourth = (_txn("traces", i) for i in range(4))
    assert queue.add(second) == [] and queue.add(first) == [] and queue.add(fourth) == []
    assert queue.add(third) == [first]  # first was created first, though it failed after second
    kept = [t.created for t in queue.due(time.monotonic())]
    assert kept == sorted(t.created for t in (second, third, fourth))


def test_a_byte_bounded_queue_drops_the_oldest_and_retries_newest_first():
    queue = RetryQueue("forwarder", max_bytes=25, backoff_base=2, backoff_max=64, newest_first=True)
    a, b, c = (_txn("series", i) for i in range(3))
    assert queue.add(a) == [] and queue.add(b) == [] and queue.add(c) == [a]
    assert queue.bytes == 20 and queue.due(time.monotonic()) == [c, b]
    assert queue.add(_txn("series", 9, size=26)) != []  # bigger than the whole queue: never kept


def test_backoff_grows_with_failures_is_capped_and_halves_on_success():
    queue = RetryQueue("trace_writer", max_payloads=3, backoff_base=0.1, backoff_max=10, newest_first=False)
    assert queue.backoff() == 0.0
    for _ in range(40):
        queue.failed()
    assert all(0 <= queue.backoff() <= 10 for _ in range(100)) and queue.attempt == 40
    queue.succeeded()
    assert queue.attempt == 20


def test_queue_limits_come_from_the_real_settings_and_bad_values_are_refused():
    limits = RetryLimits.from_env({"DD_APM_TRACE_WRITER_QUEUE_SIZE": "4",
                                   "DD_FORWARDER_RETRY_QUEUE_PAYLOADS_MAX_SIZE": "1000"})
    assert (limits.trace_payloads, limits.forwarder_bytes, limits.stats_payloads) == (4, 1000, 174)
    with pytest.raises(ValueError, match="DD_APM_TRACE_WRITER_QUEUE_SIZE='x' is not an integer"):
        RetryLimits.from_env({"DD_APM_TRACE_WRITER_QUEUE_SIZE": "x"})
    with pytest.raises(ValueError, match="must be at least 1"):
        RetryLimits.from_env({"DD_APM_STATS_WRITER_QUEUE_SIZE": "0"})


async def _until(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


def _config(url: str) -> AgentConfig:
    return AgentConfig.from_env({"DD_API_KEY": "lab", "DD_DD_URL": url, "DD_APM_DD_URL": url})


def _series(url: str, n: int) -> Transaction:
    from lab.fakes.intake.samples import series_body

    body, headers = series_body(n_series=1, metric=f"lab.retry.{n}")
    return Transaction("series", url + SERIES, body, dict(headers))


def test_after_an_outage_every_payload_is_stored_exactly_once():
    with IntakeServer() as intake:
        url = intake.listen("127.0.0.1", 0).url
        intake.start_outage({"mode": "status", "endpoint": SERIES})

        async def run() -> Forwarder:
            fwd = Forwarder(_config(url), limits=RetryLimits())
            await fwd.start()
            for n in range(20):
                fwd.submit(_series(url, n))
            await _until(lambda: fwd.counters["series"].retries >= 20, 10, "every payload retried once")
            await asyncio.get_running_loop().run_in_executor(None, intake.end_outages)
            await _until(lambda: fwd.counters["series"].sent == 20, 20, "all 20 delivered")
            await fwd.stop()
            return fwd

        fwd = asyncio.run(run())
    stored = intake.store.payloads(SERIES)
    metrics = sorted(intake.store.decoded(p).data[0]["metric"] for p in stored)
    assert metrics == sorted(f"lab.retry.{n}" for n in range(20))  # all there, none twice
    stats = intake.store.route_stats()[SERIES]
    assert stats["answered_not_stored"] >= 20 and stats["accepted"] == 20
    assert fwd.counters["series"].dropped == 0


def test_a_long_outage_drops_the_oldest_payloads_and_counts_them():
    with IntakeServer() as intake:
        url = intake.listen("127.0.0.1", 0).url
        intake.start_outage({"mode": "refuse"})

        async def run() -> Forwarder:
            fwd = Forwarder(_config(url), limits=RetryLimits(forwarder_bytes=10**9, trace_payloads=3))
            await fwd.start()
            from lab.fakes.intake.samples import traces_body

            for n in range(8):
                body, headers = traces_body(service=f"svc-{n}")
                fwd.submit(Transaction("traces", url + "/api/v0.2/traces", body, dict(headers)))
                await _until(lambda n=n: fwd.counters["traces"].retries >= n + 1, 10,
                             f"trace payload {n} failed")
            await asyncio.get_running_loop().run_in_executor(None, intake.end_outages)
            # Every payload delivered or dropped. (Payloads being retried are out of the queue
            # while their attempt runs, as in the agent's sender, so a payload submitted at that
            # moment may find room: at least the 3 newest survive, on a loaded machine more.)
            await _until(lambda: fwd.counters["traces"].sent + fwd.counters["traces"].dropped == 8, 30,
                         "every payload delivered or dropped")
            await fwd.stop()
            return fwd

        fwd = asyncio.run(run())
    services = [intake.store.decoded(p).data["tracerPayloads"][0]["chunks"][0]["spans"][0]["service"]
                for p in intake.store.payloads("/api/v0.2/traces")]
    c = fwd.counters["traces"]
    assert c.sent >= 3 and len(services) == c.sent
    # The survivors are the newest, each once; everything older was dropped and counted.
    assert sorted(services) == [f"svc-{n}" for n in range(8 - c.sent, 8)]
    assert c.dropped == 8 - c.sent and c.dropped_queue_full == c.dropped
