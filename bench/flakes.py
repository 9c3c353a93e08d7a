"""Flake report: run the scenario suite N times on the local backend and M times on docker, and
write every failure (test id, run, the tail of its output) into a markdown report.

Each run is a fresh `python -m pytest <paths> -p no:cacheprovider -rA --junitxml=...` (docker runs
add `--backend docker`), one after the other, in a private LAB_HOME so a run never attaches to a
lab the user has running. What failed is read from the run's JUnit XML (every failed or errored
test with its message and traceback tail); a run that produced no XML (pytest crashed, or the
timeout ended it) is recorded as one failure of the whole run, with the tail of its output. The
report says what was run, on which commit, how loaded the machine was, each run's counts and wall
time, and per test how many runs it failed in: a test that failed in some runs and passed in others
is a flake, to be fixed at its cause.

Usage:
  python bench/flakes.py --local 50 --docker 10                       # the whole scenario suite
  python bench/flakes.py --local 2 --docker 1 scenarios/resilience    # one directory
  python bench/flakes.py --local 5 -- -k outage                       # extra pytest arguments after --
  python bench/flakes.py --tally                                      # all reports, for this code
Writes bench/results/flakes.md (`--out`) and its runs as JSON beside it (`flakes.json`), keeps the
per-run logs and JUnit XML in the lab's working directory (`.lab/flakes/<report name>/`, not
committed), and exits 1 when any run failed. Ctrl-C or SIGTERM ends the series: the run in progress gets
one SIGINT and stops its labs as pytest does (a kill only if it has not ended in 180 s), its temporary
LAB_HOME is removed, and the report keeps the runs that finished.

"On the final code" across several reports (a series of runs outlasts a working session): every run
records a digest of the code under test (`CODE_PATHS` as committed, with a `+` when the checkout
changed them) and of the Python packages it ran with. `--tally` adds up the JSON reports in
`bench/results/` whose runs had this checkout's code digest, per backend, path set and package set:
runs, clean runs, and the clean runs in a row since the last failure, oldest report first. Work on
anything outside `CODE_PATHS` (docs, bench, the lab's own tests) does not reset the count; a change to
the lab, the scenarios or the images does.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TAIL_LINES = 40
# What a scenario run exercises: the lab, the scenarios (their conftest included), the images' recipes
# and the package's declared dependencies.
CODE_PATHS = ("lab", "scenarios", "docker", "pyproject.toml")
RESULTS = REPO / "bench" / "results"


@dataclass
class Failure:
    test: str
    kind: str  # failure | error | run
    message: str
    tail: str


@dataclass
class Run:
    backend: str
    index: int
    returncode: int
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    log: str = ""
    commit: str = ""  # the code this run imported (commits made meanwhile show here)
    code: str = ""  # code_digest() when the run started


def _tail(text: str, lines: int = TAIL_LINES) -> str:
    """The last lines, with this machine's paths made relative (the report is committed)."""
    tail = "\n".join(text.rstrip().splitlines()[-lines:])
    for path, name in ((str(REPO) + "/", ""), (sys.prefix + "/", "<venv>/"),
                       (sys.base_prefix + "/", "<python>/")):
        tail = tail.replace(path, name)
    return tail


def read_junit(path: Path) -> tuple[dict[str, int], list[Failure]]:
    """Counts and failures of one run's JUnit XML (pytest's xunit1 family)."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    failures: list[Failure] = []
    for suite in suites:
        for key in counts:
            counts[key] += int(suite.get(key, 0))
        for case in suite.iter("testcase"):
            for kind in ("failure", "error"):
                for node in case.findall(kind):
                    test = f"{case.get('classname', '')}::{case.get('name', '')}"
                    failures.append(Failure(test, kind, (node.get("message") or "").splitlines()[0][:300]
                                            if node.get("message") else "", _tail(node.text or "")))
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return counts, failures


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                          check=False).stdout.strip()


def current_commit() -> str:
    """The checkout's commit, `+` when its files differ from it."""
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return _git("rev-parse", "--short", "HEAD") + ("+" if dirty else "")


def code_digest() -> str:
    """A digest of CODE_PATHS as committed at HEAD; `+` when the checkout differs from them there."""
    trees = _git("rev-parse", *(f"HEAD:{p}" for p in CODE_PATHS))
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS)
    return hashlib.sha256(trees.encode()).hexdigest()[:12] + ("+" if dirty else "")


def deps_digest() -> str:
    """A digest of the installed distributions (name==version) of the Python the runs use."""
    names = sorted({f"{d.metadata['Name']}=={d.version}".lower() for d in importlib.metadata.distributions()
                    if d.metadata["Name"]})
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:12]


def _terminated(signum, frame) -> None:
    """SIGTERM (`kill`, a CI job's cancel) ends the series as Ctrl-C does: the run in progress stops
    its labs, its temporary LAB_HOME goes, the report keeps the runs that finished."""
    raise KeyboardInterrupt


def _stop_run(proc: subprocess.Popen, grace: float = 180) -> None:
    """End a pytest run so that it stops what it started: one SIGINT, which pytest turns into an
    orderly teardown (every lab fixture stops its lab); wait until the last process of the run has
    ended, and kill what is left only after `grace` s. With `-n` the SIGINT goes to each xdist worker
    (the run's other processes), not to the controller: a controller interrupted asks its workers
    to exit, and execnet interrupts a worker 5 s later and kills it 10 s after the ask, in the middle
    of stopping its labs; a worker interrupted itself finishes its teardown and reports, and the
    controller then ends the run.
    (subprocess.run's own handling kills the child 0.25 s after a Ctrl-C, leaving its labs.)"""
    # The lab's own checks: live members, not zombies.
    from lab.backends.process import group_alive, group_members

    if proc.poll() is not None and not group_alive(proc.pid):
        return
    workers = [pid for pid in group_members(proc.pid) if pid != proc.pid]
    for pid in workers or [proc.pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + grace
    try:
        proc.wait(timeout=grace)
        while group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    except subprocess.TimeoutExpired:
        pass
    if proc.poll() is None or group_alive(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        print(f"the run did not end within {grace:.0f} s of its SIGINT and was killed: its labs are "
              "left to the lab's reaper (`ecs-lab down` stops any that remain)", file=sys.stderr)


def run_once(backend: str, index: int, paths: list[str], extra: list[str], workdir: Path,
             timeout: float) -> Run:
    xml = workdir / f"{backend}-{index}.xml"
    log = workdir / f"{backend}-{index}.log"
    home = Path(tempfile.mkdtemp(prefix="flakes-lab-home-"))
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy")}
    env.update({"LAB_HOME": str(home), "LAB_STATE": str(home / "state.json"), "LAB_BACKEND": backend,
                "NO_PROXY": "127.0.0.1,localhost", "PYTHONPATH": str(REPO)})
    argv = [sys.executable, "-m", "pytest", *paths, "-p", "no:cacheprovider", "-rA", f"--junitxml={xml}",
            "--backend", backend, *extra]
    commit = current_commit()
    code_at_start = code_digest()
    began = time.monotonic()
    try:
        with open(log, "wb") as out:
            # Its own session: a Ctrl-C at the terminal reaches this process only, which then
            # interrupts the run once (a second SIGINT would cut pytest's teardown short).
            proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _stop_run(proc)
                code = -1
            except BaseException:  # Ctrl-C, or SIGTERM (see main): the run's labs stop before we go
                _stop_run(proc)
                raise
    finally:
        shutil.rmtree(home, ignore_errors=True)
    seconds = time.monotonic() - began
    output = log.read_text(errors="replace") if log.exists() else ""
    shown = log.relative_to(REPO) if log.is_relative_to(REPO) else log
    run = Run(backend, index, code, seconds, log=str(shown), commit=commit, code=code_at_start)
    if xml.exists():
        try:
            run.counts, run.failures = read_junit(xml)
        except ET.ParseError as exc:
            run.failures = [Failure("(whole run)", "run", f"unreadable JUnit XML: {exc}", _tail(output))]
    else:
        why = f"timed out after {timeout:.0f}s" if code == -1 else f"pytest exited {code} without a report"
        run.failures = [Failure("(whole run)", "run", why, _tail(output))]
    if code not in (0, 5) and not run.failures:  # 5: nothing collected (e.g. every test deselected)
        run.failures = [Failure("(whole run)", "run", f"pytest exited {code}", _tail(output))]
    return run


def as_json(runs: list[Run], args: argparse.Namespace, began: str, commit: str, deps: str) -> dict:
    return {
        "started": began, "commit": commit, "deps": deps, "paths": args.paths,
        "pytest_args": args.pytest_args,
        "runs": [{"backend": r.backend, "index": r.index, "commit": r.commit, "code": r.code,
                  "exit": r.returncode, "seconds": round(r.seconds, 1), "counts": r.counts,
                  "failures": [{"test": f.test, "kind": f.kind, "message": f.message} for f in r.failures]}
                 for r in runs],
    }


def tally(code: str, results: Path = RESULTS) -> str:
    """Every JSON report's runs with code digest `code`, added up (see the module docstring)."""
    groups: dict[tuple[str, str, str], list[tuple[tuple[str, int], dict]]] = {}
    for path in sorted(results.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(doc, dict) or "runs" not in doc or "deps" not in doc:
            continue  # another bench's results
        what = " ".join(doc.get("paths", [])) + "".join(f" {a}" for a in doc.get("pytest_args", []))
        for run in doc["runs"]:
            if run.get("code") == code:
                groups.setdefault((run["backend"], what, doc["deps"]), []).append(
                    ((doc["started"], run["index"]), run | {"report": path.name}))
    lines = [f"# Flake tally for code `{code}`", ""]
    if code.endswith("+"):
        lines += ["(the checkout differs from its commit in the code under test: these runs name no "
                  "committed code)", ""]
    if not groups:
        return "\n".join(lines + ["No run of this code in any report."]) + "\n"
    lines += ["| backend | paths and pytest arguments | packages | runs | clean | clean in a row, newest | "
              "reports |", "|---|---|---|---|---|---|---|"]
    for (backend, what, deps), items in sorted(groups.items()):
        items.sort(key=lambda item: item[0])
        clean = [not run["failures"] and run["exit"] in (0, 5) for _, run in items]
        streak = 0
        for ok in reversed(clean):
            if not ok:
                break
            streak += 1
        reports = sorted({run["report"] for _, run in items})
        lines.append(f"| {backend} | `{what}` | `{deps}` | {len(items)} | {sum(clean)} | {streak} | "
                     f"{', '.join(reports)} |")
    return "\n".join(lines) + "\n"


def render(runs: list[Run], args: argparse.Namespace, began: str, load: tuple, commit: str,
           code: str = "", deps: str = "") -> str:
    lines = [
        "# Flake report",
        "",
        f"- started {began} UTC, commit `{commit}` (code digest `{code}`, packages `{deps}`: "
        "`bench/flakes.py --tally`), "
        f"{platform.platform()}, {os.cpu_count()} CPUs, "
        f"load average at start {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}, at end "
        f"{os.getloadavg()[0]:.1f}",
        f"- paths: `{' '.join(args.paths)}`; extra pytest arguments: "
        f"`{' '.join(args.pytest_args) or '(none)'}`",
        f"- runs: {args.local} local, {args.docker} docker; "
        f"**{sum(1 for r in runs if r.failures)} of {len(runs)} runs failed**, "
        f"{sum(len(r.failures) for r in runs)} failures in all",
        "",
        "| backend | run | commit | code | exit | wall s | passed | failed | errors | skipped |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        c = r.counts
        lines.append(f"| {r.backend} | {r.index} | `{r.commit}` | `{r.code}` | {r.returncode} | "
                     f"{r.seconds:.0f} | "
                     f"{c.get('passed', '-')} | {c.get('failures', '-')} | {c.get('errors', '-')} | "
                     f"{c.get('skipped', '-')} |")
    by_test: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        for f in r.failures:
            by_test.setdefault((r.backend, f.test), []).append(r)
    lines += ["", "## Failures by test", ""]
    if not by_test:
        lines.append("None.")
    else:
        lines += ["| backend | test | runs failed | of |", "|---|---|---|---|"]
        for (backend, test), failed in sorted(by_test.items()):
            total = sum(1 for r in runs if r.backend == backend)
            lines.append(f"| {backend} | `{test}` | {len(failed)} | {total} |")
        lines += ["", "## Each failure", ""]
        for r in runs:
            for f in r.failures:
                lines += [f"### {r.backend} run {r.index}: `{f.test}` ({f.kind})", "",
                          f"{f.message}", "", f"Log: `{r.log}`", "", "```", f.tail, "```", ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="*", default=["scenarios"], help="what pytest runs (default: scenarios)")
    ap.add_argument("--local", type=int, default=2, help="runs on the local backend")
    ap.add_argument("--docker", type=int, default=0, help="runs on the docker backend")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds one run may take")
    ap.add_argument("--out", default=str(RESULTS / "flakes.md"))
    ap.add_argument("--tally", action="store_true",
                    help="add up the JSON reports' runs of this checkout's code (or --code) and exit")
    ap.add_argument("--code", help="with --tally: the code digest to add up (default: this checkout's)")
    raw = sys.argv[1:] if argv is None else argv
    extra: list[str] = []
    if "--" in raw:
        cut = raw.index("--")
        raw, extra = raw[:cut], raw[cut + 1:]
    args = ap.parse_args(raw)
    args.pytest_args = extra
    signal.signal(signal.SIGTERM, _terminated)
    # Started as a background job of a non-interactive shell (`nohup ... &` in a script), this
    # process has SIGINT ignored, and an ignored signal stays ignored across exec: each run would
    # then ignore the one SIGINT that stops it through its teardown, and be killed 180 s later. A
    # handler of our own is reset to the default in the child, so pytest gets Ctrl-C as usual.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if args.tally:
        print(tally(args.code or code_digest(), Path(args.out).parent), end="")
        return 0
    if args.local < 0 or args.docker < 0 or args.local + args.docker == 0:
        ap.error("--local and --docker are run counts (>= 0), at least one run in all")
    missing = [p for p in args.paths if not (REPO / p.split("::")[0]).exists()]  # absolute paths too
    if missing:
        ap.error(f"no such path in the repository: {', '.join(missing)}")

    out = Path(args.out)
    workdir = REPO / ".lab" / "flakes" / out.stem
    out.parent.mkdir(parents=True, exist_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    began = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    load = os.getloadavg()
    commit = current_commit()
    code, deps = code_digest(), deps_digest()
    runs: list[Run] = []
    plan = [("local", i) for i in range(1, args.local + 1)]
    plan += [("docker", i) for i in range(1, args.docker + 1)]
    for backend, i in plan:
        try:
            run = run_once(backend, i, args.paths, extra, workdir, args.timeout)
        except KeyboardInterrupt:
            print(f"interrupted in {backend} run {i}; {out} keeps the {len(runs)} finished run(s)",
                  file=sys.stderr)
            return 130
        runs.append(run)
        status = "ok" if not run.failures else f"{len(run.failures)} failed: " + ", ".join(
            f.test for f in run.failures)
        print(f"{backend} run {i}: exit {run.returncode} in {run.seconds:.0f}s, {run.counts or '-'}: "
              f"{status}", flush=True)
        # A report so far, should a later run hang.
        out.write_text(render(runs, args, began, load, commit, code, deps))
        report = as_json(runs, args, began, commit, deps)
        out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}")
    return 1 if any(r.failures for r in runs) else 0


if __name__ == "__main__":
    raise SystemExit(main())
