"""The health catalog, as pkg/status/health: components register at start and are unhealthy until
the catalog's first ping finds them alive; the catalog pings every `ping_interval` (15 s in the
agent, so a freshly started agent answers `agent health` with FAIL for up to 15 s - why the docs'
task definition gives the check a 15 s startPeriod).

A component here is alive when its liveness function says so (its loop ran recently, its reader
threads are up); the catalog records the answer at each ping, as the agent records whether each
component consumed its last ping.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable


class HealthCatalog:
    def __init__(self, ping_interval: float) -> None:
        self.ping_interval = ping_interval
        self._checks: dict[str, Callable[[], bool]] = {}
        self._healthy: dict[str, bool] = {}
        self._lock = threading.Lock()
        self.pings = 0

    def register(self, name: str, alive: Callable[[], bool]) -> None:
        with self._lock:
            self._checks[name] = alive
            self._healthy[name] = False  # unhealthy until the first ping

    def ping(self) -> None:
        with self._lock:
            checks = dict(self._checks)
        results = {}
        for name, alive in checks.items():
            try:
                results[name] = bool(alive())
            except Exception:  # noqa: BLE001 - a failing liveness probe is an unhealthy component
                results[name] = False
        with self._lock:
            self._healthy.update(results)
            self.pings += 1

    async def run(self) -> None:
        """The catalog's ticker: the first ping one interval after start, as the agent's."""
        while True:
            await asyncio.sleep(self.ping_interval)
            self.ping()

    def status(self) -> dict[str, list[str]]:
        """health.Status as the IPC API serves it: `{"Healthy": [...], "Unhealthy": [...]}`."""
        with self._lock:
            healthy = sorted(n for n, ok in self._healthy.items() if ok)
            unhealthy = sorted(n for n, ok in self._healthy.items() if not ok)
        return {"Healthy": healthy, "Unhealthy": unhealthy}
