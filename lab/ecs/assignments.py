"""ECS's Agent Communication Service, as the lab plays it: task assignments pushed to instance agents.

The real ECS container agent holds a websocket (ACS) on which the control plane pushes task
assignments, so a placed task starts at once rather than at the agent's next poll. In the lab,
every write that places or stops a task publishes on `ASSIGNMENTS`, and the instance agents wake
on it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable


class AssignmentFeed:
    """Who wants to hear that tasks were placed or asked to stop (ACS's push, module docstring).
    Listeners must be quick and non-blocking: they run under `ECS_LOCK`, in the writer's thread."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Add a listener; the returned callable removes it."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return unsubscribe

    def publish(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener()


# One feed per process, as moto's backends are one per process.
ASSIGNMENTS = AssignmentFeed()
