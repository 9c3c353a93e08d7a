"""The emulated agent's periodic loops keep the cadence of the real agent's Go tickers: a run that
takes long does not push the next one back, and ticks it ran past are dropped.

Found by the unit suite under CI load (`test_real_timing_first_run_health_process_and_no_private_endpoint`):
the process check's second run came 14.7 s after the agent was up, not 10 s, because each loop slept
its interval *after* the run (reading /proc takes seconds on a loaded host), so every run pushed the
next one back by its own length. The real agent's process-check runner, aggregator and trace writer
run on `time.NewTicker`.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

from lab.agent.main import Agent

SLACK = 0.25  # seconds a start may come late on a loaded host; every wrong cadence is 0.4 s or more off


def assert_starts(starts: list[float], expected: list[float]) -> None:
    assert len(starts) == len(expected) and all(
        want <= got <= want + SLACK for got, want in zip(starts, expected, strict=True)), (starts, expected)


def starts_of(interval: float, run_takes: list[float], **kwargs) -> list[float]:
    """When each run started, in seconds after the first, for runs taking `run_takes` seconds."""
    starts: list[float] = []

    async def main() -> None:
        async def fn() -> None:
            starts.append(time.monotonic())
            await asyncio.sleep(run_takes[len(starts) - 1])
            if len(starts) == len(run_takes):
                raise asyncio.CancelledError

        host = SimpleNamespace(_ticks={})
        try:
            await Agent._every(host, interval, "test", fn, **kwargs)
        except asyncio.CancelledError:
            pass

    asyncio.run(main())
    return [t - starts[0] for t in starts]


def test_a_long_run_does_not_push_the_next_one_back():
    # Sleeping the interval after each run would start them at 0, 1.6, 3.2, 4.8.
    assert_starts(starts_of(1.0, [0.6, 0.6, 0.6, 0.0]), [0.0, 1.0, 2.0, 3.0])


def test_ticks_a_run_overran_are_dropped_not_run_at_once():
    # The first run takes 2.4 s: the ticks at 1 and 2 are gone (not run at once at 2.4); the next
    # run is at 3 (not at 3.4, the interval after the run).
    assert_starts(starts_of(1.0, [2.4, 0.0, 0.0]), [0.0, 3.0, 4.0])


def test_a_woken_run_leaves_the_schedule_as_it_was():
    async def main() -> list[float]:
        starts: list[float] = []
        wake = asyncio.Event()

        async def fn() -> None:
            starts.append(time.monotonic())
            if len(starts) == 4:
                raise asyncio.CancelledError

        async def poke() -> None:
            await asyncio.sleep(0.5)
            wake.set()

        poker = asyncio.create_task(poke())
        try:
            await Agent._every(SimpleNamespace(_ticks={}), 1.0, "test", fn, wake)
        except asyncio.CancelledError:
            pass
        await poker
        return [t - starts[0] for t in starts]

    # Woken at 0.5, the next ticks stay at 1 and 2 (not 1.5 and 2.5).
    assert_starts(asyncio.run(main()), [0.0, 0.5, 1.0, 2.0])


def test_a_restart_delay_counts_from_the_end_of_the_run():
    assert_starts(starts_of(1.0, [0.6, 0.6, 0.0], ticker=False), [0.0, 1.6, 3.2])
