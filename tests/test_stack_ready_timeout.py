"""LAB_READY_TIMEOUT: a whole run's container readiness timeout (a loaded machine), unless a stack
names its own; a bad value is a clear error."""

from __future__ import annotations

import pytest

from lab.stack import DEFAULT_READY_TIMEOUT, Stack


def test_the_env_sets_the_default_and_an_explicit_value_wins(monkeypatch):
    monkeypatch.delenv("LAB_READY_TIMEOUT", raising=False)
    assert Stack().ready_timeout == DEFAULT_READY_TIMEOUT
    monkeypatch.setenv("LAB_READY_TIMEOUT", "75")
    assert Stack().ready_timeout == 75.0
    assert Stack(ready_timeout=5).ready_timeout == 5


@pytest.mark.parametrize("value", ["soon", "0", "-3"])
def test_a_bad_value_is_refused(monkeypatch, value):
    monkeypatch.setenv("LAB_READY_TIMEOUT", value)
    with pytest.raises(ValueError, match="LAB_READY_TIMEOUT"):
        Stack()
