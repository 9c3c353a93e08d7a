"""`Stack(external_instances=N)`: ECS Anywhere hosts follow the EC2 instances; what cannot work is
refused up front with a clear reason."""

from __future__ import annotations

import pytest

from lab.assembly import EcsLab
from lab.stack import Stack


def test_external_hosts_are_numbered_after_the_ec2_instances():
    stack = Stack(instances=2, external_instances=1)
    assert [stack.is_external(n) for n in (1, 2, 3, 4)] == [False, False, True, False]


@pytest.mark.parametrize("kwargs, message", [
    ({"instances": 0, "external_instances": 1}, "sample apps are EC2 services"),
    ({"external_instances": -1}, "cannot be negative"),
    ({"external_instances": 1, "user_data": "#!/bin/sh\n"}, "external instances have none"),
])
def test_what_cannot_run_is_refused_with_its_reason(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Stack(**kwargs)


def test_external_hosts_only_with_no_sample_apps_is_a_valid_stack():
    assert Stack(instances=0, external_instances=2, apps=()).external_instances == 2


def test_the_docker_backend_refuses_external_hosts_before_touching_the_engine():
    with pytest.raises(ValueError, match="local backend only"):
        EcsLab(Stack(external_instances=1), backend="docker")
