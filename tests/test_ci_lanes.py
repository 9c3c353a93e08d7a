"""`.ci/lanes.py`: the docker lane starts only once the images made in the background are done
(their build's time must not count against a docker test's pytest-timeout)."""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from pathlib import Path

import pytest

LANES = Path(__file__).resolve().parent.parent / ".ci" / "lanes.py"


@pytest.fixture
def lanes(monkeypatch):
    spec = importlib.util.spec_from_file_location("ci_lanes", LANES)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "ci_lanes", module)
    spec.loader.exec_module(module)
    return module


def test_no_background_build_named_means_no_wait(lanes):
    assert lanes.images_finished("")


def test_the_docker_lane_waits_for_the_build_to_end(lanes, tmp_path, capsys):
    log = tmp_path / "ci-images.log"
    log.write_text("images: commands[0]> python -m lab.backends.images --quiet\n")
    assert not lanes.images_finished(str(log))
    lanes.IMAGES_LOG = str(log)

    def finish() -> None:
        time.sleep(1.0)
        with log.open("a") as f:
            f.write("images-finished-at 1796518000\n")

    threading.Thread(target=finish).start()
    began = time.monotonic()
    lanes.wait_for_images("docker-tests", threading.Event())
    assert 0.9 <= time.monotonic() - began < 10
    assert "images ready after" in capsys.readouterr().out


def test_only_the_docker_lanes_first_phase_waits_for_images(lanes):
    plan = lanes.lanes([])
    assert [p.name for p in plan["docker"] if p.needs_images] == ["docker-tests"]
    assert not any(p.needs_images for p in plan["local"])
