"""ecs-agent-lab: a local ECS world for proving a Datadog Agent setup before it reaches a cluster.

`from lab import EcsLab, Stack` is the entry point for users' own test suites (docs/public_api.md);
both are imported on first use, so `import lab` stays cheap for the CLI and the containers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["EcsLab", "Stack", "__version__"]

if TYPE_CHECKING:
    from lab.assembly import EcsLab
    from lab.stack import Stack

_LAZY = {"EcsLab": "lab.assembly", "Stack": "lab.stack"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lab' has no attribute {name!r}")
