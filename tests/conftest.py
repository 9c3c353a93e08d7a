"""Shared fixtures for the lab's own tests."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile

import pytest

_CHILDREN_TMP = pytest.StashKey[tuple[str, "str | None"]]()


def pytest_configure(config: pytest.Config) -> None:
    """The processes tests start themselves (`python -m lab.apps load`, scripts that import ddtrace)
    write to their temp dir, and ddtrace leaves a file there per process that it never removes.
    Give them a temp dir of this test process's own, removed when it ends. This process keeps the
    system's (pytest's own `tmp_path` directories, kept after a failed run, stay where pytest puts
    them): `gettempdir()` fixes it before the variable changes."""
    tempfile.gettempdir()
    path = tempfile.mkdtemp(prefix="ecs-lab-tests-")
    config.stash[_CHILDREN_TMP] = (path, os.environ.get("TMPDIR"))
    os.environ["TMPDIR"] = path
    _sigint_as_from_a_terminal()


def _sigint_as_from_a_terminal() -> None:
    """Started as a background job of a non-interactive shell (`( pytest ... & )` in a script),
    pytest inherits SIGINT ignored, and so would every process a test starts (an ignored signal
    stays ignored across exec): the tests that stop a CLI with SIGINT, as Ctrl-C does, would wait
    for it in vain. Run as from a terminal: Python's own handler here, the default in children."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_unconfigure(config: pytest.Config) -> None:
    path, before = config.stash.get(_CHILDREN_TMP, ("", None))
    if not path:
        return
    shutil.rmtree(path, ignore_errors=True)
    if before is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = before
