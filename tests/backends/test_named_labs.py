"""Two named labs side by side with the real CLI (`ecs-lab up --detach --name`): each on its own
subnet, ports, home and cluster; each intake gets only its own lab's traces; each dashboard shows its
own lab; `down` leaves no process, no port and no claim."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest

from lab.backends.process import tail_file
from lab.fakes.intake.client import IntakeClient
from lab.subnet_claims import claim_subnet
from lab.world import wait_until

from .cli_process import ecs_lab, gone, listening

# Names of this run's own: `ecs-lab list` shows every lab on the machine, and another run of this
# module (another CI job, or a worker pytest-xdist gave part of it) may have its own alpha and bravo.
RUN = uuid.uuid4().hex[:6]
ALPHA, BRAVO = f"alpha-{RUN}", f"bravo-{RUN}"
NAMES = (ALPHA, BRAVO)
CHROMIUM = "/usr/bin/chromium"




def _get_json(url: str) -> dict:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as resp:
        return json.loads(resp.read())






@pytest.fixture(scope="module")
def lab_env(tmp_path_factory):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAB_", "DD_"))}
    env.update(LAB_HOME=str(tmp_path_factory.mktemp("named") / "home"), NO_PROXY="127.0.0.0/8",
               no_proxy="127.0.0.0/8", LAB_UP_TIMEOUT="400")  # two labs starting on a busy machine
    return env


@pytest.fixture(scope="module")
def two_labs(lab_env):
    """Both labs started at once, as two users would: they race for subnets and ports."""
    # --ready-timeout: the apps' ddtrace start-up, two at once, on a machine other developers load.
    argv = ["up", "--detach", "--app", "imdsv1", "--ui", "--ready-timeout", "90"]
    ups = {name: subprocess.Popen([sys.executable, "-m", "lab.cli", *argv, "--name", name], env=lab_env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for name in NAMES}
    try:
        for name, up in ups.items():
            _out, err = up.communicate(timeout=450)
            assert up.returncode == 0, f"ecs-lab up --name {name}: {err[-3000:]}"
        states = {}
        for name in NAMES:
            shown = ecs_lab("status", "--name", name, "--json", env=lab_env)
            assert shown.returncode == 0, shown.stderr
            states[name] = json.loads(shown.stdout)
        yield states
    finally:
        for name in NAMES:
            state_file = Path(lab_env["LAB_HOME"]) / "labs" / name / "state.json"
            if state_file.exists():  # what a failed assertion left running
                ecs_lab("down", "--name", name, env=lab_env)


def test_each_named_lab_has_its_own_subnet_ports_home_and_cluster(two_labs, lab_env):
    alpha, bravo = two_labs[ALPHA], two_labs[BRAVO]
    for name, state in two_labs.items():
        assert state["name"] == name and state["ready"]
        assert state["cluster"] == f"ecs-lab-{name}"
        assert state["state_file"] == str(Path(lab_env["LAB_HOME"]) / "labs" / name / "state.json")
        # Every address of the lab is on its own subnet; the shared servers on free ports there.
        for key in ("intake_url", "control_plane", "dashboard_url", "task_metadata_url", "egress_proxy_url"):
            assert urlsplit(state[key]).hostname == f"{state['subnet']}.0.1", (key, state[key])
        assert state["instances"][0]["private_ip"] == f"{state['subnet']}.1.1"
        assert urlsplit(state["intake_url"]).port != 8091 and urlsplit(state["control_plane"]).port != 4566
    assert alpha["subnet"] != bravo["subnet"]
    assert alpha["instances"][0]["instance_id"] != bravo["instances"][0]["instance_id"]

    listed = ecs_lab("list", "--json", env=lab_env)
    assert listed.returncode == 0, listed.stderr
    by_name = {lab["name"]: lab for lab in json.loads(listed.stdout) if lab["name"] in NAMES}
    assert set(by_name) == set(NAMES)
    for name, state in two_labs.items():
        assert by_name[name]["pid"] == state["pid"] and by_name[name]["subnet"] == state["subnet"], (
            f"{name}: listed {by_name[name]}, state pid {state['pid']} subnet {state['subnet']}")
        assert by_name[name]["intake_url"] == state["intake_url"]

    again = ecs_lab("up", "--detach", "--name", ALPHA, env=lab_env)
    assert again.returncode != 0 and f"lab '{ALPHA}' is already running" in again.stderr
    bad = ecs_lab("up", "--name", "Not_A_Name", env=lab_env)
    assert bad.returncode == 2 and "lower-case letters" in bad.stderr
    # A subnet a running lab holds is refused to another, naming the holder.
    taken = ecs_lab("up", "--detach", "--name", f"charlie-{RUN}", "--subnet", alpha["subnet"], env=lab_env)
    assert taken.returncode != 0 and f"subnet {alpha['subnet']} is claimed by lab '{ALPHA}'" in taken.stderr


def test_each_intake_gets_only_its_own_labs_traces(two_labs):
    sent = {}
    for name, state in two_labs.items():
        work = _get_json(f"{state['apps']['imdsv1']['url']}/work?ms=1&depth=2")
        sent[name] = int(work["trace_id"]) & (2**64 - 1)  # the span's trace_id is the low 64 bits
    for name, state in two_labs.items():
        intake = IntakeClient(state["intake_url"])
        mine = intake.wait_for_spans(service="web-imdsv1", timeout=90,
                                     predicate=lambda s, t=sent[name]: int(s["trace_id"]) == t)
        assert {s["hostname"] for s in mine} == {state["instances"][0]["instance_id"]}
        other = next(n for n in NAMES if n != name)
        spans = intake.spans()
        assert spans, f"{name}'s intake holds no span"
        assert not [s for s in spans if int(s["trace_id"]) == sent[other]], \
            f"{other}'s trace reached {name}'s intake"
        hosts = {s["hostname"] for s in spans}
        assert hosts == {state["instances"][0]["instance_id"]}, f"{name}'s intake got spans of {hosts}"


def test_each_dashboard_shows_its_own_lab(two_labs, tmp_path):
    urls = {name: state["dashboard_url"] for name, state in two_labs.items()}
    assert len(set(urls.values())) == 2
    for name, url in urls.items():
        snapshot = wait_until(lambda u=url: (_get_json(f"{u}/api/snapshot").get("topology") or None),
                              timeout=30, what=f"{name}'s dashboard topology")
        assert snapshot["cluster"] == f"ecs-lab-{name}"
        assert [i["private_ip"] for i in snapshot["instances"]] == [f"{two_labs[name]['subnet']}.1.1"]
    # And as a person sees them: each page, in a real browser, names its own cluster.
    if not shutil.which(CHROMIUM):
        pytest.fail("Debian's chromium is not installed: sh .ci/browser-deps.sh (apt-get install chromium)")
    import playwright.sync_api as playwright_api

    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-proxy-server",
                  "--disable-background-networking", "--disable-component-update", "--no-first-run"])
        try:
            page = browser.new_page()
            for name, url in urls.items():
                page.goto(url)
                page.wait_for_function("document.getElementById('cluster').textContent.length > 0",
                                       timeout=30_000)
                assert page.locator("#cluster").text_content() == f"ecs-lab-{name}"
        finally:
            browser.close()


def test_down_stops_each_lab_leaving_no_process_port_or_claim(two_labs, lab_env):
    for name, state in two_labs.items():
        pids = [state["pid"], *(p["pid"] for p in state["processes"].values())]
        stopped = ecs_lab("down", "--name", name, env=lab_env)
        assert stopped.returncode == 0 and "lab stopped" in stopped.stdout, stopped.stderr
        wait_until(lambda p=pids: all(gone(pid) for pid in p), timeout=30, what=f"{name}'s processes to end")
        assert listening(state["subnet"]) == [], f"{name} left ports open"
        assert not (Path(lab_env["LAB_HOME"]) / "labs" / name / "state.json").exists()
        # The subnet is free again: it can be claimed (and is released at once).
        claim_subnet(state["subnet"]).release()
        other = next(n for n in NAMES if n != name)
        if ecs_lab("status", "--name", other, "--json", env=lab_env).returncode == 0:
            # The other lab is untouched by this one's down.
            assert IntakeClient(two_labs[other]["intake_url"]).health()

    def still_listed() -> list[dict]:
        listed = json.loads(ecs_lab("list", "--json", env=lab_env).stdout)
        return [lab for lab in listed if lab["name"] in NAMES]

    try:
        wait_until(lambda: not still_listed(), timeout=30, what=f"ecs-lab list to drop {NAMES}")
    except TimeoutError as exc:
        # Who still holds what, for the report: the record, and what its pid runs now.
        held = [(lab, psutil.Process(lab["pid"]).cmdline() if psutil.pid_exists(lab["pid"]) else "gone")
                for lab in still_listed()]
        raise AssertionError(f"{exc}: still listed {held}") from None
    log = Path(lab_env["LAB_HOME"]) / "labs" / ALPHA / "run" / "supervisor.log"
    assert log.exists(), "the named lab's logs live in its own home"
    assert "stopping the lab" in tail_file(log, 50)
