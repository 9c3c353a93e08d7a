"""A version matrix: the same scenarios once per agent, a JUnit file and a capture per agent.

    LAB_AGENT_IMAGES="emulated,emulated:real-timing,public.ecr.aws/datadog/agent:7.60.0" \
        python -m lab.compare.matrix --backend docker --out matrix-out scenarios

Each AGENT (the `ecs-lab compare` syntax) runs in its own pytest process, one after the other (a
docker engine holds one lab at a time), into OUT/<agent>/ (junit.xml, junit.html, the capture).
It prints a scenario x agent table and exits 1 when any scenario failed on any agent, 2 when a
run could not run its scenarios. Any two columns can then be diffed with
`ecs-lab compare --reuse` after copying them to OUT2/baseline and OUT2/candidate.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import click

from lab.compare.agents import AgentSpecError, parse_agent
from lab.compare.report import junit_html
from lab.compare.run import run_agent
from lab.compare.surface import load_run

IMAGES_VAR = "LAB_AGENT_IMAGES"


def agent_list(text: str) -> list[str]:
    """Comma-separated (an image reference has no comma); blanks around each are dropped."""
    return [a.strip() for a in text.split(",") if a.strip()]


def dir_label(agent: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", agent).strip("_")


@click.command()
@click.option("--agent", "agents", multiple=True, metavar="AGENT",
              help=f"an agent of the matrix (repeatable); default: ${IMAGES_VAR}, comma-separated")
@click.option("--backend", type=click.Choice(["local", "docker"]), default="local", show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("matrix-out"), show_default=True)
@click.argument("scenarios", nargs=-1)
def matrix(agents: tuple[str, ...], backend: str, out_dir: Path, scenarios: tuple[str, ...]) -> None:
    names = list(agents) or agent_list(os.environ.get(IMAGES_VAR, ""))
    if not names:
        raise click.UsageError(f"no agents: pass --agent AGENT (repeatable) or set {IMAGES_VAR}")
    try:
        specs = [parse_agent(name) for name in names]
    except AgentSpecError as exc:
        raise click.UsageError(str(exc)) from None
    results: dict[str, dict[str, str]] = {}
    codes = {}
    for spec in specs:
        run = run_agent(dir_label(spec.spec), spec, scenarios or ("scenarios",), backend, out_dir,
                        echo=lambda line: click.echo(line, err=True))
        codes[spec.spec] = run.exit_code
        junit = run.directory / "junit.xml"
        if junit.exists():
            (run.directory / "junit.html").write_text(junit_html(junit), encoding="utf-8")
        try:
            results[spec.spec] = {n: t.outcome for n, t in load_run(run.directory).tests.items()}
        except ValueError:
            results[spec.spec] = {}
    nodeids = sorted({n for outcomes in results.values() for n in outcomes})
    lines = ["| scenario | " + " | ".join(results) + " |", "|---" * (len(results) + 1) + "|"]
    lines += [f"| `{n}` | " + " | ".join(results[a].get(n, "-") for a in results) + " |" for n in nodeids]
    lines.append("| pytest exit code | " + " | ".join(str(codes[a]) for a in results) + " |")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "matrix.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    click.echo("\n".join(lines))
    if any(code not in (0, 1) for code in codes.values()):
        sys.exit(2)
    sys.exit(1 if any(code == 1 for code in codes.values()) else 0)


if __name__ == "__main__":
    matrix()
