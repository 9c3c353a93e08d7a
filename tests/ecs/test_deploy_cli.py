"""`ecs-lab deploy FILE --daemon` / `--count N`: register, schedule, and say where tasks landed."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from lab.ecs.cli import deploy
from lab.ecs.cluster import EcsCluster

TASKDEFS = Path(__file__).resolve().parents[2] / "lab" / "ecs" / "taskdefs"


def test_deploy_daemon_runs_one_agent_per_instance(control_plane, world, fake_runner):
    with EcsCluster(world, fake_runner, control_plane=control_plane, agent_interval=0.1) as cluster:
        cluster.add_instance("127.0.1.1")
        cluster.add_instance("127.0.1.2")
        result = CliRunner().invoke(deploy, [str(TASKDEFS / "datadog-agent-ecs-apm.json"), "--daemon",
                                             "--endpoint", control_plane.endpoint,
                                             "--cluster", world.cluster.name, "--timeout", "15"])
        assert result.exit_code == 0, result.output
        assert "created DAEMON service datadog-agent-task" in result.output
        assert result.output.count("RUNNING ") == 2
        assert sorted(len(fake_runner.running_on(n)) for n in (1, 2)) == [1, 1]


def test_deploy_bad_file_exits_like_the_aws_cli(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"family": "x", "containerDefinitions": [{"name": "a", "image": "b",
                                                                        "memory": "256"}]}))
    result = CliRunner().invoke(deploy, [str(bad), "--endpoint", "http://127.0.0.1:9"])
    assert result.exit_code == 255
    assert "Invalid type for parameter containerDefinitions[0].memory" in result.output


def test_deploy_count_reports_placement_failures(control_plane, world, fake_runner):
    with EcsCluster(world, fake_runner, control_plane=control_plane, agent_interval=0.1) as cluster:
        cluster.add_instance("127.0.1.1")
        result = CliRunner().invoke(deploy, [str(TASKDEFS / "datadog-agent-ecs-apm.json"), "--count", "2",
                                             "--endpoint", control_plane.endpoint,
                                             "--cluster", world.cluster.name, "--timeout", "15"])
        assert result.exit_code == 1
        assert "placement failure: RESOURCE:PORTS" in result.output
        assert result.output.count("RUNNING ") == 1
