"""How long the doctor waits on the agent's ECS health before it reports the agent-health hop."""

from __future__ import annotations

from lab.sandbox import doctor

HEALTH_CHECK = {"healthCheck": {"command": ["CMD-SHELL", "agent health"], "interval": 30, "retries": 3,
                                "startPeriod": 15}}


class StubTarget:
    """The agent service's tasks as a sequence of snapshots, one per poll."""

    def __init__(self, snapshots: list[list[tuple[str, str, str]]], failing_to_start: bool) -> None:
        self.snapshots = snapshots  # each: (task arn, lastStatus, healthStatus)
        self.polls = 0
        self._failing = failing_to_start

    def _now(self) -> list[tuple[str, str, str]]:
        return self.snapshots[min(self.polls, len(self.snapshots) - 1)]

    def agent_containers(self) -> list[tuple[str, str, str]]:
        tasks = self._now()
        self.polls += 1
        return tasks

    def failing_to_start(self, service: str) -> bool:
        return self._failing


def test_tasks_that_never_run_are_not_waited_for(monkeypatch):
    monkeypatch.setattr(doctor.time, "sleep", lambda s: (_ for _ in ()).throw(AssertionError("waited")))
    target = StubTarget([[("arn:task/1", "PROVISIONING", "UNKNOWN")]], failing_to_start=True)
    assert doctor._settled_health(target, HEALTH_CHECK) == [("arn:task/1", "UNKNOWN")]
    assert target.polls == 1


def test_a_replacement_task_is_waited_for_until_its_check_decides(monkeypatch):
    monkeypatch.setattr(doctor.time, "sleep", lambda s: None)
    # The UNHEALTHY task was replaced (it had run): the new one is PENDING, then RUNNING and HEALTHY.
    target = StubTarget([[("arn:task/2", "PENDING", "UNKNOWN")],
                         [("arn:task/2", "RUNNING", "UNKNOWN")],
                         [("arn:task/2", "RUNNING", "HEALTHY")]], failing_to_start=False)
    assert doctor._settled_health(target, HEALTH_CHECK) == [("arn:task/2", "HEALTHY")]
    assert target.polls == 3


def test_a_running_task_whose_check_has_not_run_is_waited_for(monkeypatch):
    monkeypatch.setattr(doctor.time, "sleep", lambda s: None)
    # Even if an older task of the service failed to start, a running one's check still decides.
    target = StubTarget([[("arn:task/3", "RUNNING", "UNKNOWN")], [("arn:task/3", "RUNNING", "UNHEALTHY")],
                         [("arn:task/3", "RUNNING", "HEALTHY")]], failing_to_start=True)
    assert doctor._settled_health(target, HEALTH_CHECK) == [("arn:task/3", "HEALTHY")]
