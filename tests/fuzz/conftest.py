"""Bounded fuzzing: each test has its own max_examples and deadline; the whole suite stays under a
minute on two shared cores. `derandomize` keeps runs reproducible (a failure shows its example)."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile(
    "lab-fuzz", max_examples=150, deadline=500, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("lab-fuzz")
