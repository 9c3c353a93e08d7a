"""A task start held across its backend's stop, as the stop-during-deploy tests of both backends
(tests/backends/test_stop_during_start.py, tests/docker/test_lifecycle.py) run it."""

from __future__ import annotations

import threading
from collections.abc import Callable

from lab.world import wait_until


def start_across_stop(backend, start: Callable[[], None], stop: Callable[[], None], *,
                      reached: threading.Event, go: threading.Event, held_at: str, timeout: float,
                      stop_timeout: float) -> BaseException | None:
    """Run `start` on a thread until it is held (it sets `reached`, then waits for `go`), then `stop`
    on another; let the start go on once the stop has begun (it has returned, or the backend no
    longer takes new work); wait for both. Returns what the start raised (None: nothing)."""
    outcome: dict[str, BaseException] = {}

    def run() -> None:
        try:
            start()
        except BaseException as exc:  # noqa: BLE001 - what the caller asserts on
            outcome["error"] = exc

    starter = threading.Thread(target=run, daemon=True)
    starter.start()
    assert reached.wait(timeout), f"the task start never reached {held_at}"
    stopper = threading.Thread(target=stop, daemon=True)
    stopper.start()
    wait_until(lambda: not stopper.is_alive() or getattr(backend, "stopping", False), 60,
               what="the stop to begin")
    go.set()
    starter.join(timeout)
    stopper.join(stop_timeout)
    assert not starter.is_alive() and not stopper.is_alive()
    return outcome.get("error")
