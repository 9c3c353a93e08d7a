"""The dashboard in a real headless browser (Debian's chromium driven by Playwright): the topology
appears, an edge goes dark when an exercise breaks its hop and lights up after the fix."""

from __future__ import annotations

import shutil
import time

import pytest

from lab.sandbox.dashboard import Dashboard
from lab.sandbox.exercises import ExerciseSession

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Never skipped: CI installs both (.ci/run); without them the test fails saying how to get them.
try:
    import playwright.sync_api as playwright_api
except ImportError:  # pragma: no cover - the dev extra has it
    pytest.fail("Playwright for Python is missing: pip install -e '.[dev]'", pytrace=False)
if not shutil.which(CHROMIUM):
    pytest.fail(
        "Debian's chromium is not installed: sh .ci/browser-deps.sh (apt-get install chromium)", pytrace=False
    )


@pytest.fixture
def page(tmp_path):
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            locale="en-US",
        )
        try:
            yield browser.new_page()
        finally:
            browser.close()


def _edge_state(page, edge: str) -> str | None:
    row = page.locator(f'tr[data-edge="{edge}"]')
    return row.get_attribute("data-ok") if row.count() else None


def test_topology_and_an_edge_going_dark_and_back(sandbox_lab, target, page, tmp_path):
    with Dashboard(sandbox_lab, exercise_state=tmp_path / "exercise.json") as dash:
        page.goto(dash.url)
        # The topology: the instance, its agent task and an app task, as the world and ECS say.
        page.locator('[data-testid="topology"] li[data-instance="1"]').wait_for(timeout=15_000)
        topo = page.locator('[data-testid="topology"]').inner_text()
        assert "datadog-agent-task" in topo and "web-imdsv1-task" in topo and "RUNNING" in topo
        edge = "app-apm:web-imdsv1"
        page.wait_for_function(
            f"document.querySelector('tr[data-edge=\"{edge}\"]')?.dataset.ok === 'true'", timeout=20_000
        )
        session = ExerciseSession(target, tmp_path / "exercise.json")
        try:
            session.start("apm-non-local-traffic")
            broke_at = time.monotonic()
            page.wait_for_function(
                f"document.querySelector('tr[data-edge=\"{edge}\"]')?.dataset.ok === 'false'", timeout=20_000
            )
            dark_after = time.monotonic() - broke_at
            reason = page.locator(f'tr[data-edge="{edge}"] td.reason').inner_text()
            assert reason, "a dark edge says why"
            assert "rgb(198, 40, 40)" == page.locator(f'tr[data-edge="{edge}"] td.rate').evaluate(
                "el => getComputedStyle(el).color"
            )
            # The agent's own data still flows (once the redeployed agent sends): only the app's hop
            # is dark.
            page.wait_for_function(
                "document.querySelector('tr[data-edge=\"agent-intake:series\"]')?.dataset.ok === 'true'",
                timeout=20_000,
            )
            assert _edge_state(page, edge) == "false"
            # No FIPS proxy in this lab: no proxy port edges.
            assert _edge_state(page, "agent-fips:metrics") is None
            session.solve()
            page.wait_for_function(
                f"document.querySelector('tr[data-edge=\"{edge}\"]')?.dataset.ok === 'true'", timeout=30_000
            )
        finally:
            session.reset()
        assert dark_after < 20


def test_a_redeploy_shows_its_deployment_appear_and_settle(sandbox_lab, target, page, tmp_path):
    """The control plane's view, live: an agent redeploy (a new revision, update-service) shows a new
    PRIMARY deployment of that revision IN_PROGRESS, then COMPLETED with the old deployment gone, the
    service's counts back to running = desired, and ECS's events for it.

    The lab's rollout of one local agent takes about a second, less than the dashboard's refresh: the
    IN_PROGRESS moment is held open by pausing the service scheduler for this lab's cluster (what the
    lab does while it stops), so the page is seen mid-rollout every time, then the roll is let go."""
    from lab.sandbox.target import container, set_env
    from lab.stack import AGENT_SERVICE

    svc = f'tr.deployment[data-service="{AGENT_SERVICE}"]'
    original = target.service(AGENT_SERVICE)["taskDefinition"]
    scheduler = sandbox_lab.control_plane.service_scheduler
    assert scheduler is not None, "the sandbox lab runs the embedded control plane and its service scheduler"
    with Dashboard(sandbox_lab, exercise_state=tmp_path / "exercise.json") as dash:
        page.goto(dash.url)
        page.locator(f'{svc}[data-status="PRIMARY"][data-rollout="COMPLETED"]').wait_for(timeout=20_000)
        try:
            scheduler.pause(target.cluster)
            try:
                arn = target.deploy_revision(
                    AGENT_SERVICE,
                    lambda td: set_env(container(td, agent=True), "LAB_DEPLOYMENT", str(time.time())),
                )
                revision = arn.rsplit("/", 1)[-1]
                new = page.locator(f'{svc}[data-status="PRIMARY"][data-task-definition="{revision}"]')
                new.wait_for(timeout=10_000)
                assert new.get_attribute("data-rollout") == "IN_PROGRESS"
                # While it rolls the old deployment is still listed, ACTIVE.
                assert page.locator(f'{svc}[data-status="ACTIVE"]').count() == 1
            finally:
                scheduler.resume(target.cluster)
            page.locator(
                f'{svc}[data-status="PRIMARY"][data-task-definition="{revision}"][data-rollout="COMPLETED"]'
            ).wait_for(timeout=60_000)
            page.wait_for_function(f"document.querySelectorAll('{svc}').length === 1", timeout=10_000)
            counts = page.locator(f'tr.service[data-service="{AGENT_SERVICE}"] td').nth(1).inner_text()
            running, desired, pending = (int(x) for x in counts.split("/"))
            assert running == desired >= 1 and pending == 0, counts
            events = page.locator(f'[data-testid="ecs-events"] li[data-service="{AGENT_SERVICE}"]')
            texts = events.all_inner_texts()
            assert any("has reached a steady state" in t for t in texts), texts
            assert any("has started 1 tasks" in t for t in texts), texts
        finally:
            target.ecs.update_service(cluster=target.cluster, service=AGENT_SERVICE, taskDefinition=original)
            target.wait_rolled(AGENT_SERVICE, original)
            target.refresh()
