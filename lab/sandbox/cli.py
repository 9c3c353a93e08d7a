"""`ecs-lab exercise ...` and `ecs-lab doctor [TASKDEF.json]`: the sandbox from a terminal, against the
lab `ecs-lab up` runs (found through its state file)."""

from __future__ import annotations

import json
import locale
import os
import sys
from pathlib import Path

import click

from lab.sandbox.target import LabTarget, TargetError
from lab.state_file import name_option


def _lang(value: str | None) -> str:
    from lab.sandbox.texts import LANGS

    if value:
        return value
    env = os.environ.get("LC_ALL") or os.environ.get("LANG") or (locale.getlocale()[0] or "")
    return next((lang for lang in LANGS if env.lower().startswith(lang)), "en")


def _session():
    from lab.sandbox.exercises import ExerciseSession
    from lab.state_file import lab_home

    try:
        target = LabTarget.from_state_file()
    except TargetError as exc:
        raise click.ClickException(str(exc)) from None
    return ExerciseSession(target, lab_home() / "exercise.json")


LANG_OPTION = click.option(
    "--lang",
    type=click.Choice(["en", "ko", "ja"]),
    default=None,
    help="Language of the texts (default: from LANG).",
)


@click.group()
@name_option
def exercise() -> None:
    """Break/fix exercises on the running lab (docs/sandbox.md)."""


@exercise.command("list")
@name_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@LANG_OPTION
def list_(as_json: bool, lang: str | None) -> None:
    """The exercises."""
    from lab.sandbox.exercises import catalogue

    items = catalogue(_lang(lang))
    if as_json:
        click.echo(json.dumps(items, ensure_ascii=False, indent=2))
        return
    for item in items:
        click.echo(f"{item['id']:30} {'+'.join(item['backends']):13} {item['title']}")


@exercise.command()
@name_option
@click.argument("exercise_id")
@LANG_OPTION
def start(exercise_id: str, lang: str | None) -> None:
    """Break the lab (recording how to put it back)."""
    from lab.sandbox.exercises import EXERCISES

    if exercise_id not in EXERCISES:
        raise click.BadParameter(
            f"no exercise {exercise_id!r}; known: {', '.join(EXERCISES)}", param_hint="EXERCISE_ID"
        )
    try:
        ex = _session().start(exercise_id)
    except TargetError as exc:
        raise click.ClickException(str(exc)) from None
    text = ex.text(_lang(lang))
    click.echo(
        f"{text['title']}\n\n{text['story']}\n\nRun `ecs-lab exercise check` when you think it is fixed."
    )


@exercise.command()
@name_option
@click.option("--json", "as_json", is_flag=True, help="Print the hops as JSON.")
def check(as_json: bool) -> None:
    """Exit 0 only when data flows again on every hop (seen at the intake)."""
    try:
        report = _session().check()
    except TargetError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(report.as_dict(), indent=2) if as_json else report.text())
    if not report.ok:
        broken = report.first_broken
        click.echo(f"not fixed yet: {broken.hop} is still broken", err=True)
        sys.exit(1)
    click.echo("fixed: data flows on every hop")


@exercise.command()
@name_option
@LANG_OPTION
def hint(lang: str | None) -> None:
    """The next hint."""
    try:
        click.echo(_session().hint(_lang(lang)))
    except TargetError as exc:
        raise click.ClickException(str(exc)) from None


@exercise.command()
@name_option
@LANG_OPTION
def solve(lang: str | None) -> None:
    """Apply the solution (through the control plane, as a user would)."""
    try:
        click.echo(_session().solve(_lang(lang)))
    except TargetError as exc:
        raise click.ClickException(str(exc)) from None


@exercise.command()
@name_option
def reset() -> None:
    """Put back the task definitions the exercise changed."""
    try:
        _session().reset()
    except TargetError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("the lab is back to where the exercise started")


@click.command()
@click.argument("taskdef", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@name_option
def doctor(taskdef: Path | None, as_json: bool) -> None:
    """Walk every hop of the running lab, or check TASKDEF.json statically; exit 1 if one is broken."""
    from lab.sandbox.doctor import static_findings, walk

    if taskdef is not None:
        try:
            found = static_findings(json.loads(taskdef.read_text()))
        except ValueError as exc:
            raise click.ClickException(f"{taskdef}: {exc}") from None
        if as_json:
            click.echo(
                json.dumps(
                    [{"hop": h, "code": f.code, "field": f.field, "message": f.message} for h, f in found],
                    indent=2,
                )
            )
        else:
            for hop, f in found:
                click.echo(f"FAIL  {hop}: {f.field}: {f.message}")
            click.echo("every hop is OK" if not found else f"first broken hop: {found[0][0]}")
        sys.exit(1 if found else 0)
    try:
        report = walk(LabTarget.from_state_file())
    except TargetError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(report.as_dict(), indent=2) if as_json else report.text())
    sys.exit(0 if report.ok else 1)
