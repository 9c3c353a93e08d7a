"""`ecs-lab compare`: the same scenarios on two agents, and what changed between them."""

from __future__ import annotations

import sys
from pathlib import Path

import click

DEFAULT_SCENARIOS = ("scenarios",)


@click.command("compare")
@click.option("--baseline", "baseline", required=True, metavar="AGENT",
              help="the agent you run today: emulated, emulated:real-timing, or an image reference")
@click.option("--candidate", "candidate", required=True, metavar="AGENT", help="the agent to validate")
@click.option("--backend", type=click.Choice(["local", "docker"]), default="local", show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("compare-out"), show_default=True, help="where captures and reports are written")
@click.option("--baseline-env", multiple=True, metavar="KEY=VALUE",
              help="extra baseline agent env (repeatable)")
@click.option("--candidate-env", multiple=True, metavar="KEY=VALUE",
              help="extra candidate agent env (repeatable)")
@click.option("--ignore", "ignore_file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="known differences not to fail on (see docs/compare.md)")
@click.option("--no-default-ignore", is_flag=True,
              help="also report the timing-dependent differences ignored by default (docs/compare.md)")
@click.option("--reuse", is_flag=True,
              help="do not run anything: compare the captures already in OUT/baseline and OUT/candidate")
@click.option("--pytest-arg", "pytest_args", multiple=True, metavar="ARG",
              help="passed on to both pytest runs (repeatable), e.g. --pytest-arg=-k --pytest-arg=dogstatsd")
@click.argument("scenarios", nargs=-1)
def compare(baseline: str, candidate: str, backend: str, out_dir: Path, baseline_env: tuple[str, ...],
            candidate_env: tuple[str, ...], ignore_file: Path | None, no_default_ignore: bool, reuse: bool,
            pytest_args: tuple[str, ...], scenarios: tuple[str, ...]) -> None:
    """Run SCENARIOS (default: scenarios) on the baseline and the candidate agent, keep every intake
    payload, and write OUT/report.md, report.json, report.html and each agent's junit.xml.

    Exit 0: nothing breaking. Exit 1: breaking changes (removed metrics, tags or endpoints, or
    scenarios that pass on the baseline and fail on the candidate). Exit 2: the comparison could
    not be made (bad arguments, a pytest run that did not run its scenarios).
    """
    from lab.compare.agents import AgentSpecError, parse_agent, parse_env_pairs
    from lab.compare.diff import compare as compare_surfaces
    from lab.compare.ignore import DEFAULT_RULES, IgnoreFileError, load_ignore
    from lab.compare.report import report_document, write_reports
    from lab.compare.run import run_agent
    from lab.compare.surface import CaptureError, load_run, surface_of

    try:
        agents = {"baseline": parse_agent(baseline, parse_env_pairs(baseline_env)),
                  "candidate": parse_agent(candidate, parse_env_pairs(candidate_env))}
        rules = (load_ignore(ignore_file) if ignore_file else []) + ([] if no_default_ignore
                                                                     else list(DEFAULT_RULES))
    except (AgentSpecError, IgnoreFileError) as exc:
        raise click.UsageError(str(exc)) from None
    runs: dict[str, dict] = {}
    if not reuse:
        for path in scenarios or DEFAULT_SCENARIOS:
            if not Path(path.split("::")[0]).exists():
                raise click.UsageError(f"scenario path {path!r} does not exist")
        for label, agent in agents.items():
            try:
                run = run_agent(label, agent, scenarios or DEFAULT_SCENARIOS, backend, out_dir, pytest_args,
                                echo=lambda line: click.echo(line, err=True))
            except FileExistsError as exc:
                raise click.UsageError(str(exc)) from None
            runs[label] = run.as_dict()
    try:
        loaded = {label: load_run(out_dir / label) for label in agents}
    except CaptureError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    for label, run in loaded.items():
        runs.setdefault(label, {"exit_code": run.exit_code})
    surfaces = {label: surface_of(run) for label, run in loaded.items()}
    comparison = compare_surfaces(surfaces["baseline"], surfaces["candidate"], rules)
    agent_info = {label: loaded[label].agent or agents[label].describe() for label in agents}
    doc = report_document(comparison, surfaces["baseline"], surfaces["candidate"], agent_info["baseline"],
                          agent_info["candidate"], runs)
    paths = write_reports(out_dir, doc)
    not_run = [label for label, r in runs.items() if r.get("exit_code") not in (0, 1)]
    click.echo(f"{doc['verdict']}: {len(comparison.breaking)} breaking, {len(comparison.informational)} "
               f"informational, {len(comparison.ignored)} ignored; report: {paths['md']}")
    for diff in comparison.breaking:
        click.echo(f"  BREAKING {diff.id}: {diff.detail}")
    if not_run:
        click.echo(f"error: the {' and '.join(not_run)} run did not run its scenarios (pytest exit code "
                   f"{', '.join(str(runs[label]['exit_code']) for label in not_run)}); see "
                   f"{', '.join(str(out_dir / label / 'pytest.log') for label in not_run)}", err=True)
        sys.exit(2)
    sys.exit(1 if comparison.breaking else 0)
