"""Bounded fuzzing: each test has its own max_examples and deadline; the whole suite stays under a
minute on two shared cores. `derandomize` keeps runs reproducible (a failure shows its example), so
no example database is written (nothing left in the tree)."""

from __future__ import annotations

import atexit
import shutil
import tempfile

from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir

# Hypothesis caches what it learns from the source tree under its home directory (`.hypothesis/` in
# the working directory by default); keep it out of the repository and remove it afterwards.
_HOME = tempfile.mkdtemp(prefix="ecs-lab-hypothesis-")
set_hypothesis_home_dir(_HOME)
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)

settings.register_profile(
    "lab-fuzz", max_examples=150, deadline=500, derandomize=True, print_blob=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("lab-fuzz")
