"""Whether the installed ddtrace still offers the docs' in-code `tracer.configure(hostname=...)`.

The Datadog ECS docs' Python snippet sets the agent host with `tracer.configure(hostname=...)`. ddtrace
3 removed that parameter (and every other way to re-point a started tracer); the sample app's
`in_code` variant therefore asks IMDS before ddtrace starts and hands it DD_AGENT_HOST
(lab/apps/web.py). This test fails the day ddtrace offers the parameter again, so the variant can use it.
"""

from __future__ import annotations

import inspect

import pytest


def test_tracer_configure_has_no_hostname_parameter():
    from ddtrace.trace import tracer

    params = inspect.signature(tracer.configure).parameters
    assert "hostname" not in params and "port" not in params, (
        "ddtrace offers tracer.configure(hostname=...) again: the in_code variant should use it "
        f"(parameters: {sorted(params)})")
    with pytest.raises(TypeError):
        tracer.configure(hostname="127.0.0.1")  # the docs' line fails as a user would see it
