"""`ecs-lab`: the lab's command line.

Subcommands live beside the code they drive and are imported only when used, so `ecs-lab --help`
stays fast and one broken component never hides the others.
"""

from __future__ import annotations

import importlib

import click


class LazyGroup(click.Group):
    """A click group whose subcommands are `module:attribute` strings imported on first use."""

    def __init__(self, *args, lazy: dict[str, str] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            module_name, attr = self.lazy[name].split(":")
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, name)


@click.group(
    cls=LazyGroup,
    lazy={
        "up": "lab.commands:up",
        "down": "lab.commands:down",
        "status": "lab.commands:status",
        "logs": "lab.commands:logs",
        "run": "lab.commands:run",
        "list": "lab.commands:list_labs",
        "agent": "lab.agent.cli:agent",
        "app": "lab.apps.cli:app",
        "deploy": "lab.ecs.cli:deploy",
        "fake": "lab.cli:fake",
        "images": "lab.backends.images:images_cli",
        "compare": "lab.compare.cli:compare",
        "exercise": "lab.sandbox.cli:exercise",
        "doctor": "lab.sandbox.cli:doctor",
    },
)
@click.version_option(package_name="ecs-agent-lab")
def main() -> None:
    """A local ECS world for proving a Datadog Agent setup before it reaches a cluster."""


@click.group(
    cls=LazyGroup,
    lazy={
        "imds": "lab.fakes.imds.cli:imds",
        "ecs": "lab.fakes.ecs_metadata.cli:ecs",
        "intake": "lab.fakes.intake.cli:intake",
        "fips-proxy": "lab.fakes.fips_proxy.cli:fips_proxy",
        "egress-proxy": "lab.fakes.egress_proxy.cli:egress_proxy",
    },
)
def fake() -> None:
    """Run one of the lab's fakes on its own (IMDS, ECS metadata, intake, FIPS proxy)."""


if __name__ == "__main__":
    main()
