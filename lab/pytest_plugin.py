"""pytest plugin (entry point `ecs_lab`): a session-wide lab and fixtures for scenarios.

Filled in by the local backend work; this module must import cheaply because pytest loads it in
every run.
"""

from __future__ import annotations


def pytest_addoption(parser) -> None:
    group = parser.getgroup("ecs-lab")
    group.addoption("--backend", action="store", default=None, choices=("local", "docker"),
                    help="which backend scenarios run on (default: local, or LAB_BACKEND)")
