"""Placement as ECS does it: resources, host ports per network mode, refusals with ECS's reasons."""

from __future__ import annotations

import pytest

from lab.ecs.scheduler import (
    InstanceView,
    PlacedTask,
    TaskNeeds,
    check_fit,
    daemon_gaps,
    daemon_surplus,
    place,
)


def td(*containers, network_mode="bridge", **task):
    return {"family": "f", "networkMode": network_mode, "containerDefinitions": list(containers), **task}


AGENT_APM = td({"name": "datadog-agent", "cpu": 100, "memory": 512,
                "portMappings": [{"containerPort": 8126, "hostPort": 8126, "protocol": "tcp"},
                                 {"containerPort": 8125, "hostPort": 8125, "protocol": "udp"}]})


def instance(n, **kw):
    return InstanceView(arn=f"arn:aws:ecs:us-east-1:123456789012:container-instance/c/{n:032x}",
                        ec2_instance_id=f"i-{n:017x}", **kw)


def test_needs_sum_containers_and_prefer_memory_reservation():
    needs = TaskNeeds.from_task_definition(td({"name": "a", "cpu": 10, "memory": 256},
                                              {"name": "b", "cpu": 5, "memory": 512,
                                               "memoryReservation": 128}))
    assert (needs.cpu, needs.memory) == (15, 384)


def test_host_ports_depend_on_network_mode():
    bridge_dynamic = td({"name": "web", "memory": 64, "portMappings": [{"containerPort": 8080}]})
    assert TaskNeeds.from_task_definition(bridge_dynamic).ports_tcp == frozenset()
    web = {"name": "web", "memory": 64, "portMappings": [{"containerPort": 8080}]}
    host = td(web, network_mode="host")
    assert TaskNeeds.from_task_definition(host).ports_tcp == {8080}
    awsvpc = td(web, network_mode="awsvpc")
    assert TaskNeeds.from_task_definition(awsvpc).ports_tcp == frozenset()
    needs = TaskNeeds.from_task_definition(AGENT_APM)
    assert (needs.ports_tcp, needs.ports_udp) == ({8126}, {8125})


def test_second_agent_on_one_instance_is_refused_for_its_ports():
    needs = TaskNeeds.from_task_definition(AGENT_APM)
    inst = instance(1, tasks=[PlacedTask("t1", needs)])
    failure = check_fit(inst, needs)
    assert failure.reason == "RESOURCE:PORTS" and "8126" in failure.detail


def test_udp_clash_is_its_own_reason():
    dsd = TaskNeeds(memory=64, ports_udp=frozenset({8125}))
    inst = instance(1, tasks=[PlacedTask("t1", dsd)])
    assert check_fit(inst, dsd).reason == "RESOURCE:PORTS_UDP"


def test_agent_reserved_ports_are_never_free():
    needs = TaskNeeds(memory=1, ports_tcp=frozenset({51678}))
    assert check_fit(instance(1), needs).reason == "RESOURCE:PORTS"


@pytest.mark.parametrize("needs,reason", [
    (TaskNeeds(cpu=5000, memory=64), "RESOURCE:CPU"),
    (TaskNeeds(cpu=10, memory=9000), "RESOURCE:MEMORY"),
])
def test_resources_beyond_what_remains_are_refused(needs, reason):
    assert check_fit(instance(1), needs).reason == reason


def test_memory_already_taken_counts():
    inst = instance(1, memory=1024, tasks=[PlacedTask("t1", TaskNeeds(memory=900))])
    assert check_fit(inst, TaskNeeds(memory=200)).reason == "RESOURCE:MEMORY"
    assert check_fit(inst, TaskNeeds(memory=100)) is None


def test_disconnected_agent_and_draining_instance():
    assert check_fit(instance(1, agent_connected=False), TaskNeeds()).reason == "AGENT"
    assert check_fit(instance(1, status="DRAINING"), TaskNeeds()).reason == "INACTIVE"


def test_run_task_count_spreads_then_reports_what_did_not_fit():
    needs = TaskNeeds(memory=64, ports_tcp=frozenset({8080}))
    result = place(needs, [instance(1), instance(2)], count=3)
    assert len(result.placed) == 2 and len(set(result.placed)) == 2
    assert {f.reason for f in result.failures} == {"RESOURCE:PORTS"}
    assert len(result.failures) == 2  # one per refusing instance, as RunTask lists them


def test_dynamic_ports_stack_on_one_instance():
    result = place(TaskNeeds(memory=64), [instance(1)], count=5)
    assert len(result.placed) == 5 and not result.failures


def test_no_instances_is_missing_not_silent():
    result = place(TaskNeeds(memory=64), [], count=1)
    assert not result.placed and result.failures[0].reason == "MISSING"


def test_distinct_instance_and_member_of():
    insts = [instance(1, attributes={"ecs.instance-type": "m5.large"}),
             instance(2, attributes={"ecs.instance-type": "t3.micro"})]
    spread = place(TaskNeeds(memory=64), insts, count=3, group="g",
                   constraints=[{"type": "distinctInstance"}])
    assert len(spread.placed) == 2 and spread.failures[0].reason == "ATTRIBUTE"
    only_m5 = place(TaskNeeds(memory=64), insts, count=2,
                    constraints=[{"type": "memberOf",
                                  "expression": "attribute:ecs.instance-type == m5.large"}])
    assert set(only_m5.placed) == {insts[0].arn}


def test_daemon_needs_one_task_per_active_instance_including_new_ones():
    group = "service:datadog-agent"
    insts = [instance(1, tasks=[PlacedTask("t1", TaskNeeds(), group=group)]), instance(2)]
    assert [i.arn for i in daemon_gaps(group, insts)] == [insts[1].arn]
    insts.append(instance(3))
    assert len(daemon_gaps(group, insts)) == 2
    insts[0].tasks.append(PlacedTask("t0", TaskNeeds(), group=group))
    assert daemon_surplus(group, insts) == ["t1"]


def test_service_event_says_why_in_ecs_words():
    needs = TaskNeeds.from_task_definition(AGENT_APM)
    result = place(needs, [instance(1, tasks=[PlacedTask("t", needs)])])
    event = result.service_event("datadog-agent")
    assert "was unable to place a task" in event and "already using a port required by your task" in event


def test_binpack_memory_fills_the_fullest_instance_first():
    busy = instance(1, tasks=[PlacedTask("t", TaskNeeds(memory=4000))])
    empty = instance(2)
    result = place(TaskNeeds(memory=256), [empty, busy], count=2,
                   strategy=[{"type": "binpack", "field": "memory"}])
    assert result.placed == [busy.arn, busy.arn]


def test_unknown_strategy_is_refused_not_ignored():
    with pytest.raises(ValueError, match="placement strategy"):
        place(TaskNeeds(memory=1), [instance(1)], strategy=[{"type": "bogus"}])


def test_a_daemon_task_already_asked_to_stop_is_not_surplus():
    # An old revision's task asked to stop still holds its instance (until reported STOPPED), but it
    # is leaving: the new revision's task beside it is no surplus, whatever their ARNs' order.
    group = "service:datadog-agent"
    for old, new in (("t1", "t2"), ("t2", "t1")):
        insts = [instance(1, tasks=[PlacedTask(old, TaskNeeds(), group=group, stopping=True),
                                    PlacedTask(new, TaskNeeds(), group=group)])]
        assert daemon_surplus(group, insts) == []
        assert daemon_gaps(group, insts) == []
