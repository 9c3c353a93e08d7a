"""Stacks that modules ask `lab_with` for are started ahead, on a background thread, a few tests
before their module runs: their start then overlaps those tests' waits on the intake instead of
adding to the run (started much earlier, they would only load the 2 cores for longer). A module
names its stack's settings in a module-level `LAB_WITH` dict and passes the same dict to
`lab_with`, which takes the running stack over (and stops it when the module ends)."""

from __future__ import annotations

import os

import pytest

LEAD = 3  # tests before the module's first lab_with test: a stack starts in ~1.5 s
_START_AT: dict[int, list[dict]] = {}  # item index -> LAB_WITH settings to start when it runs


def pytest_collection_finish(session) -> None:
    backend = session.config.getoption("--backend") or os.environ.get("LAB_BACKEND", "local")
    if backend != "local" or session.config.option.collectonly:
        return
    seen: set[int] = set()
    for index, item in enumerate(session.items):
        settings = getattr(getattr(item, "module", None), "LAB_WITH", None)
        if "lab_with" in getattr(item, "fixturenames", ()) and isinstance(settings, dict) \
                and id(item.module) not in seen:
            seen.add(id(item.module))
            _START_AT.setdefault(max(0, index - LEAD), []).append(settings)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem) -> None:
    if not _START_AT:
        return
    from lab.pytest_plugin import start_ahead

    for settings in _START_AT.pop(item.session.items.index(item), ()):
        start_ahead(**settings)
