"""bench/flakes.py finds a flaky test: a test that fails in one run and passes in the other is
reported with its id, the run it failed in and the tail of its output; a clean run is not."""

from __future__ import annotations

import json
import shutil
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import flakes  # noqa: E402

FLAKY = '''
import os
from pathlib import Path

MARK = Path(os.environ["FLAKES_TEST_MARK"])


def test_steady():
    assert 1 + 1 == 2


def test_flaky_once():
    first = not MARK.exists()
    MARK.touch()
    assert not first, "first run loses the race on purpose"
'''


def test_a_flake_is_reported_with_its_test_id_run_and_output(tmp_path, monkeypatch):
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_sample.py").write_text(FLAKY)
    monkeypatch.setenv("FLAKES_TEST_MARK", str(tmp_path / "mark"))
    name = f"flakes-test-{uuid.uuid4().hex[:8]}"
    out = tmp_path / "report" / f"{name}.md"
    runs = flakes.REPO / ".lab" / "flakes" / name
    # --rootdir: the test ids are then `test_sample::...` wherever pytest puts tmp_path (under
    # xdist and tox it found another root above it).
    try:
        code = flakes.main(["--local", "2", "--timeout", "120", "--out", str(out), str(suite), "--",
                            "-q", "-p", "no:randomly", f"--rootdir={suite}"])
        assert (runs / "local-1.xml").exists(), "the run's JUnit XML is kept in the lab's working directory"
    finally:
        shutil.rmtree(runs, ignore_errors=True)
    report = out.read_text()
    assert code == 1
    assert "**1 of 2 runs failed**" in report
    assert "| local | `test_sample::test_flaky_once` | 1 | 2 |" in report
    assert "first run loses the race on purpose" in report
    assert "test_steady" not in report.split("## Failures by test")[1]
    # The runs as JSON, with the digest of the code they ran, add up across reports (--tally).
    doc = json.loads(out.with_suffix(".json").read_text())
    code = flakes.code_digest()
    runs_seen = [(r["index"], r["code"], bool(r["failures"])) for r in doc["runs"]]
    assert runs_seen == [(1, code, True), (2, code, False)]
    table = flakes.tally(code, out.parent)
    assert f"| local | `{suite}" in table
    assert "| 2 | 1 | 1 | " in table, table  # 2 runs, 1 clean, 1 clean in a row (the newest)
    assert "No run of this code" in flakes.tally("0" * 12, out.parent)


def test_tally_counts_clean_runs_in_a_row_in_run_order(tmp_path):
    # Ten runs of one report, run 2 failed: 9 clean, the newest 8 in a row. (Run 10 must sort after
    # run 9, not after run 1.)
    runs = [{"backend": "local", "index": i, "code": "c0de", "exit": 1 if i == 2 else 0,
             "failures": [{"test": "t", "kind": "failure", "message": ""}] if i == 2 else []}
            for i in range(1, 11)]
    (tmp_path / "flakes_x.json").write_text(json.dumps(
        {"started": "2026-12-06 08:00:00", "deps": "d", "paths": ["scenarios"], "pytest_args": [],
         "runs": runs}))
    assert "| local | `scenarios` | `d` | 10 | 9 | 8 | flakes_x.json |" in flakes.tally("c0de", tmp_path)


def test_bad_counts_and_paths_are_refused(tmp_path, capsys):
    for argv in (["--local", "0", "--docker", "0"], ["--local", "-1"], ["no/such/dir"]):
        try:
            flakes.main([*argv, "--out", str(tmp_path / "x.md")])
        except SystemExit as exc:
            assert exc.code == 2
        else:
            raise AssertionError(f"{argv} was accepted")
    assert "no such path" in capsys.readouterr().err


HELD = '''
import os
import time
from pathlib import Path

import pytest

MARKS = Path(os.environ["FLAKES_TEST_MARKS"])


@pytest.fixture
def lab():
    (MARKS / "up").write_text(os.environ["LAB_HOME"])
    yield
    (MARKS / "torn-down").touch()  # what a lab fixture does here: stop the lab


def test_held(lab):
    deadline = time.monotonic() + 300  # longer than the test waits: only a SIGINT ends it in time
    while time.monotonic() < deadline and not (MARKS / "never").exists():
        time.sleep(0.1)
'''


HELD_ON_WORKERS = '''
import os
import time
from pathlib import Path

import pytest

MARKS = Path(os.environ["FLAKES_TEST_MARKS"])


@pytest.fixture
def lab(request):
    me = os.environ.get("PYTEST_XDIST_WORKER", "main")
    (MARKS / f"up-{me}").write_text(os.environ["LAB_HOME"])
    yield
    time.sleep(7)  # a lab stop takes seconds: more than xdist gives a worker it asks to exit (5 s)
    (MARKS / f"torn-down-{me}").touch()
    (Path(os.environ["LAB_HOME"]) / f"stopped-{me}").touch()  # a lab writes its home as it stops


@pytest.mark.parametrize("n", [1, 2])
def test_held(lab, n):
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (MARKS / "never").exists():
        time.sleep(0.1)
'''


def _ignore_sigint() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _stop_a_series_mid_run(tmp_path, suite_text: str, runs: int, pytest_args: list[str],
                           up: list[str], preexec_fn=None) -> tuple[int, str, Path, Path]:
    """Start `flakes.py --local runs` on a one-file suite, wait for the fixtures that write the
    marks `up` (each holding the run's LAB_HOME), SIGTERM the series and let it end.
    Returns its exit code, its stderr, the run's LAB_HOME and the marks directory."""
    import os
    import signal
    import subprocess

    from lab.world import wait_until

    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_held.py").write_text(suite_text)
    marks = tmp_path / "marks"
    marks.mkdir()
    name = f"flakes-test-{uuid.uuid4().hex[:8]}"
    out = tmp_path / "report" / f"{name}.md"
    env = {**os.environ, "FLAKES_TEST_MARKS": str(marks)}
    proc = subprocess.Popen(
        [sys.executable, str(flakes.REPO / "bench" / "flakes.py"), "--local", str(runs), "--out",
         str(out), str(suite), "--", "-q", "-p", "no:randomly", f"--rootdir={suite}", *pytest_args],
        env=env, stderr=subprocess.PIPE, text=True, preexec_fn=preexec_fn)
    try:
        wait_until(lambda: all((marks / m).exists() for m in up), 90,
                   what=f"the run's fixtures to be up ({', '.join(up)})")
        home = Path((marks / up[0]).read_text())
        assert home.is_dir()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        shutil.rmtree(flakes.REPO / ".lab" / "flakes" / name, ignore_errors=True)
    return proc.returncode, err, home, marks


@pytest.mark.parametrize("started_as", ["foreground", "background job"])
def test_sigterm_stops_the_run_in_progress_through_its_teardown_and_removes_its_lab_home(
        tmp_path, started_as):
    """A series killed (SIGTERM, or Ctrl-C) must not leave the run's labs behind: the run gets one
    SIGINT, so pytest tears its fixtures down, and the run's temporary LAB_HOME is removed.
    "background job": started as `nohup flakes.py ... &` from a script, it inherits SIGINT ignored
    (POSIX shells do that to a background job without job control); its run must not."""
    code, err, home, marks = _stop_a_series_mid_run(
        tmp_path, HELD, 2, [], ["up"],
        preexec_fn=None if started_as == "foreground" else _ignore_sigint)
    assert code == 130, err
    assert (marks / "torn-down").exists(), "the run was killed before its teardown"
    assert not home.exists(), f"{home} left behind"
    assert "interrupted in local run 1" in err and "keeps the 0 finished run(s)" in err


def test_sigterm_during_an_xdist_run_waits_for_every_worker_teardown_before_removing_the_lab_home(
        tmp_path):
    """The series runs the suite with `-n 2`: each xdist worker runs its own labs. Stopped, the run
    must end as a Ctrl-C at a terminal ends it (every process of the run gets the SIGINT, each
    worker tears its labs down), and the run's LAB_HOME goes only once the last of them has ended.
    (Found in a series stopped mid-run: a worker still starting a Fargate lab wrote into the home
    after the controller had ended and the home was removed.)"""
    code, err, home, marks = _stop_a_series_mid_run(
        tmp_path, HELD_ON_WORKERS, 1, ["-n", "2"], ["up-gw0", "up-gw1"])
    assert code == 130, err
    assert {m.name for m in marks.glob("torn-down-*")} == {"torn-down-gw0", "torn-down-gw1"}, err
    assert not home.exists(), f"{home} left behind: {sorted(p.name for p in home.iterdir())}"
