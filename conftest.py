"""How the lab's own suites spread over pytest-xdist workers (`.ci/lanes.py` runs them with
`-n N --dist loadgroup`).

A module's tests share its labs (module-scoped fixtures start a stack each), so a module goes to one
worker as a whole, as with `--dist loadfile`. A module of long, independent tests on one shared lab
(the sandbox's exercises, ~30 s each) would then be the run's tail on one worker: it sets
`XDIST_SPLIT = N` and its tests go to N groups, each group one worker with its own lab.
"""

from __future__ import annotations

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items) -> None:
    if not config.getoption("dist", "no") == "loadgroup":
        return
    index: dict[str, int] = {}
    for item in items:
        module = getattr(item, "module", None)
        if module is None or item.get_closest_marker("xdist_group") is not None:
            continue
        name = module.__name__
        split = getattr(module, "XDIST_SPLIT", 1)
        if split > 1:
            n = index.get(name, 0)
            index[name] = n + 1
            name = f"{name}-{n % split}"
        item.add_marker(pytest.mark.xdist_group(name))
